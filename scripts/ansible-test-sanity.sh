#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection, offline-safe, without Docker.
#
# ansible-test needs the collection under a path ending in
# ansible_collections/<namespace>/<name>/, so the files git knows about (tracked,
# plus untracked files that .gitignore does not exclude) are staged into
# .build/ansible_collections/dcspark/dcm/ first. Extra arguments go to
# ansible-test, e.g. `scripts/ansible-test-sanity.sh --test validate-modules`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

venv=${VENV:-$repo/.venv}
ansible_test=$venv/bin/ansible-test
if [[ ! -x "$ansible_test" ]]; then
    echo "ansible-test-sanity: $ansible_test not found; run 'make setup' first" >&2
    exit 1
fi

namespace=$(sed -n 's/^namespace: *//p' galaxy.yml)
name=$(sed -n 's/^name: *//p' galaxy.yml)
stage=$repo/.build/ansible_collections/$namespace/$name

echo "ansible-test-sanity: staging the collection into ${stage#"$repo"/}"
rm -rf "$stage"
mkdir -p "$stage"
git ls-files -z --cached --others --exclude-standard \
    | rsync -a --from0 --files-from=- --ignore-missing-args ./ "$stage/"
# ansible-test lists content with git, walking up to the nearest .git: without a
# repository of its own the stage would resolve to this checkout, where .build/ is ignored.
git -C "$stage" init -q

# ansible-test bootstraps pip in each sanity venv with a get-pip script downloaded from a
# host that is unreachable here, unless a copy is in its cache: put the stand-in there.
# A real get-pip script already in the cache is left alone.
pip_version=$("$venv/bin/python" - <<'PY'
import pathlib, re
import ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
PY
)
cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [[ ! -f "$cache" ]] || grep -q dcspark-get-pip-stand-in "$cache"; then
    mkdir -p "$(dirname "$cache")"
    cp scripts/get_pip_offline.py "$cache"
fi

python_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$stage"
echo "ansible-test-sanity: ansible-test sanity --requirements --python $python_version $*"
exec "$ansible_test" sanity --requirements --python "$python_version" --color no "$@"
