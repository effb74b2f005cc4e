#!/usr/bin/env bash
# What benchmarks/bench_spark.py needs beyond `make setup`, installed only when missing:
#   - Java 17 or newer on this machine (Debian's openjdk-17-jre-headless), for the native side;
#   - .build/bench-native: a virtualenv with the pyspark distribution and the Python packages of
#     benchmarks/specs/sparkbench.json, the same versions the DCSpark images get (rebuilt when the
#     spec changes);
#   - benchmarks/requirements.txt (matplotlib, for the plot) in .venv.
#
# Usage: scripts/ensure-bench-deps.sh [PYTHON]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${1:-python3}
spec=$repo/benchmarks/specs/sparkbench.json
native=$repo/.build/bench-native

java_major() {
    java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}
if ! command -v java >/dev/null 2>&1 || (($(java_major) < 17)); then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure-bench-deps: Java 17 or newer is needed and there is no apt-get here; install a JDK/JRE 17" >&2
        exit 1
    fi
    echo "ensure-bench-deps: installing openjdk-17-jre-headless"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
fi
echo "ensure-bench-deps: $(java -version 2>&1 | head -1)"

# The spec's Spark and Python packages, one per line: what the runtime image installs.
mapfile -t wanted < <("$python" -c '
import json, sys
runtime = json.load(open(sys.argv[1]))["runtime"]
print("pyspark==" + runtime["spark_version"])
print("\n".join(runtime.get("pip_packages", [])))' "$spec")
stamp=$native/.stamp
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${wanted[*]}" ]]; then
    echo "ensure-bench-deps: creating $native (${wanted[*]})"
    rm -rf "$native"
    "$python" -m venv "$native"
    "$native/bin/python" -m pip install --disable-pip-version-check -q "${wanted[@]}"
    echo "${wanted[*]}" > "$stamp"
fi
echo "ensure-bench-deps: native Spark in $native (${wanted[*]})"

"$repo/.venv/bin/python" -m pip install --disable-pip-version-check -q -r "$repo/benchmarks/requirements.txt"
