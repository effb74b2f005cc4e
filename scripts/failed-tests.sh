#!/usr/bin/env bash
# Print the failing tests named in the given logs (pytest's short summary, also inside molecule's
# framed verifier output; ansible-test's "ERROR: file:line: ..." findings), one line each, so the
# last lines of a failed `make test` say what failed. Before them, the last lines of each failing
# pytest test's error ("E ..." lines: the end of an assertion's message, e.g. a playbook's tail),
# since the short summary keeps only the first line of a message.
# Usage: scripts/failed-tests.sh LOG [LOG...]   (prints nothing when no log names a failing test)
set -uo pipefail
ERROR_LINES=${FAILED_TESTS_ERROR_LINES:-10}
plain() {  # colours and molecule's frame off
  sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g; s/^[[:space:]]*│[[:space:]]?//' "$1"
}
for log in "$@"; do
  [[ -r $log ]] || continue
  plain "$log" | awk -v keep="$ERROR_LINES" -v name="${log##*/}" '
    function short(line) {  # a long line keeps its start and its end (where a joined output ends)
      return length(line) <= 240 ? line : substr(line, 1, 80) " ... " substr(line, length(line) - 159)
    }
    function flush(   i, start) {
      if (section != "" && n > 0) {
        start = n > keep ? n - keep + 1 : 1
        printf "  %s: %s, the end of its error:\n", name, section
        for (i = start; i <= n; i++) print "    " short(lines[i])
      }
      section = ""; n = 0
    }
    /^___+ .+ ___+$/ { flush(); section = $0; gsub(/^_+ | _+$/, "", section); next }
    /^===/ { flush(); next }
    section != "" && /^E / { lines[++n] = $0 }
    END { flush() }'
done
for log in "$@"; do
  [[ -r $log ]] || continue
  # pytest's "FAILED path::test - reason" / "ERROR ..." lines, ansible-test's findings
  plain "$log" \
    | grep -E '^(FAILED|ERROR) [^ ]+\.py::|^ERROR: [^ ]+:[0-9]+:' \
    | cut -c1-300 \
    | sed "s|^|  ${log##*/}: |"
done | awk '!seen[$0]++' | head -n 20
