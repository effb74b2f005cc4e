#!/usr/bin/env bash
# Make sure a Docker engine answers. Does nothing when `docker info` already works.
# Otherwise starts it: through systemd when systemd is PID 1, else as a background
# dockerd (log: /var/log/dcspark-dockerd.log, pid: /run/dcspark-dockerd.pid), and
# waits until `docker info` succeeds, at most DOCKER_START_TIMEOUT seconds (60).
# It never stops or restarts an engine, whoever started it.
set -euo pipefail

timeout=${DOCKER_START_TIMEOUT:-60}
log=${DCSPARK_DOCKERD_LOG:-/var/log/dcspark-dockerd.log}
pidfile=${DCSPARK_DOCKERD_PIDFILE:-/run/dcspark-dockerd.pid}

docker_ready() { docker info >/dev/null 2>&1; }

if docker_ready; then
    echo "ensure-docker: Docker engine is running"
    exit 0
fi

if ! command -v docker >/dev/null 2>&1; then
    echo "ensure-docker: no docker CLI; run scripts/ensure-system-deps.sh first" >&2
    exit 1
fi

sudo=()
if ((EUID != 0)); then
    sudo=(sudo -n)
fi

started_pid=""
if [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; then
    echo "ensure-docker: starting docker.service through systemd"
    "${sudo[@]}" systemctl start docker
elif pgrep -x dockerd >/dev/null 2>&1; then
    # Someone else's dockerd is still coming up: wait for it, do not start a second one.
    echo "ensure-docker: a dockerd (pid $(pgrep -x dockerd | tr '\n' ' '| sed 's/ $//')) is already running; waiting for it"
else
    if ! command -v dockerd >/dev/null 2>&1; then
        echo "ensure-docker: no dockerd binary; run scripts/ensure-system-deps.sh first" >&2
        exit 1
    fi
    echo "ensure-docker: starting dockerd in the background (log: $log)"
    # setsid: the daemon outlives this script and is not hit by a Ctrl-C sent to make.
    "${sudo[@]}" sh -c "setsid nohup dockerd >>'$log' 2>&1 </dev/null & echo \$! >'$pidfile'"
    started_pid=$(cat "$pidfile")
fi

for ((waited = 0; waited < timeout; waited++)); do
    if docker_ready; then
        echo "ensure-docker: Docker engine ready after ${waited}s"
        exit 0
    fi
    if [[ -n "$started_pid" ]] && [[ ! -d /proc/$started_pid ]]; then
        echo "ensure-docker: dockerd (pid $started_pid) exited; last lines of $log:" >&2
        tail -n 20 "$log" >&2 || true
        exit 1
    fi
    if ((waited > 0 && waited % 5 == 0)); then
        echo "ensure-docker: waiting for the Docker engine (${waited}s of ${timeout}s)"
    fi
    sleep 1
done

echo "ensure-docker: the Docker engine did not answer 'docker info' within ${timeout}s" >&2
[[ -f "$log" ]] && { echo "last lines of $log:" >&2; tail -n 20 "$log" >&2; }
exit 1
