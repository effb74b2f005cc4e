#!/usr/bin/env bash
# Print the failing tests named in the given logs (pytest's short summary, also inside molecule's
# framed verifier output; ansible-test's "ERROR: file:line: ..." findings), one line each, so the
# last lines of a failed `make test` say what failed.
# Usage: scripts/failed-tests.sh LOG [LOG...]   (prints nothing when no log names a failing test)
set -uo pipefail
for log in "$@"; do
  [[ -r $log ]] || continue
  # colours and molecule's frame off, then pytest's "FAILED path::test - reason" / "ERROR ..." lines
  sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g; s/^[[:space:]]*│[[:space:]]?//' "$log" \
    | grep -E '^(FAILED|ERROR) [^ ]+\.py::|^ERROR: [^ ]+:[0-9]+:' \
    | cut -c1-300 \
    | sed "s|^|  ${log##*/}: |"
done | awk '!seen[$0]++' | head -n 20
