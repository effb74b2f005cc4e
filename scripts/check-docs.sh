#!/usr/bin/env bash
# Render the documentation of every module (plugins/modules/*.py) and every filter
# (plugins/filter/*.yml, plus whatever ansible-doc lists for the collection) with
# ansible-doc. Fails when a page errors, warns or comes out empty.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
ansible_doc=${VENV:-$repo/.venv}/bin/ansible-doc
namespace=$(sed -n 's/^namespace: *//p' galaxy.yml)
name=$(sed -n 's/^name: *//p' galaxy.yml)
collection=$namespace.$name

failures=0
checked=0
render() {  # render TYPE NAME
    local type=$1 fqcn=$collection.$2 out err
    err=$(mktemp)
    if ! out=$("$ansible_doc" -t "$type" "$fqcn" 2>"$err"); then
        echo "FAIL $type $fqcn: ansible-doc exited non-zero" >&2
    elif [[ -s "$err" ]]; then
        echo "FAIL $type $fqcn: ansible-doc complained" >&2
    elif [[ -z "${out//[[:space:]]/}" ]]; then
        echo "FAIL $type $fqcn: empty documentation" >&2
    else
        echo "ok   $type $fqcn"
        checked=$((checked + 1))
        rm -f "$err"
        return 0
    fi
    sed 's/^/     /' "$err" >&2
    rm -f "$err"
    failures=$((failures + 1))
}

shopt -s nullglob
modules=()
for path in plugins/modules/*.py; do
    module=$(basename "$path" .py)
    [[ "$module" == __init__ ]] || modules+=("$module")
done

filters=()
for path in plugins/filter/*.yml plugins/filter/*.yaml; do
    filters+=("$(basename "${path%.*}")")
done
# Filters ansible-doc finds in the collection's filter plugins (catches undocumented ones).
listed=$("$ansible_doc" -t filter --list --json "$collection" \
    | "$(dirname "$ansible_doc")/python" -c 'import json, sys; print("\n".join(k.rsplit(".", 1)[1] for k in json.load(sys.stdin)))')
while read -r filter; do
    [[ -n "$filter" ]] && filters+=("$filter")
done <<<"$listed"
mapfile -t filters < <(printf '%s\n' "${filters[@]}" | sort -u | sed '/^$/d')

for module in "${modules[@]}"; do render module "$module"; done
for filter in "${filters[@]}"; do render filter "$filter"; done

if ((failures > 0)); then
    echo "check-docs: $failures of $((failures + checked)) plugin pages failed" >&2
    exit 1
fi
echo "check-docs: $checked plugin pages rendered (${#modules[@]} modules, ${#filters[@]} filters)"
