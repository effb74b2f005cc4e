#!/usr/bin/env bash
# Install the Debian packages the development and test environment needs, only
# when something is missing. Idempotent: a second run installs nothing and does
# not touch the network.
#
#   docker.io               the Docker engine (dockerd, containerd, runc)
#   etcd-server, etcd-client the real etcd used by integration tests
#   busybox-static          a static busybox for minimal test containers
#   debootstrap             builds base images offline (no image registry)
#   openssl, rsync, git     TLS material, staging for ansible-test, file lists
#   ShellCheck              so ansible-test sanity runs its shellcheck test (else skipped)
#   docker-registry         the real distribution registry for the registry client tests
#   chromium                a real browser for the UI gateway test (headless)
#   python3-venv            only when the Python used for .venv cannot create one
#
# Usage: scripts/ensure-system-deps.sh [PYTHON]
set -euo pipefail

python=${1:-python3}
packages=(docker.io etcd-server etcd-client busybox-static debootstrap openssl rsync git ca-certificates shellcheck docker-registry
    chromium)
lean=(chromium)  # installed without its recommended packages (a printing stack, fonts, a desktop's worth)

if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    packages+=(python3-venv)
fi

missing=()
for pkg in "${packages[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "ensure-system-deps: all system packages present (${packages[*]})"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-system-deps: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
    exit 1
fi

sudo=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ensure-system-deps: missing ${missing[*]}; run as root or install sudo" >&2
        exit 1
    fi
    sudo=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure-system-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q
full=() slim=()
for pkg in "${missing[@]}"; do
    if [[ " ${lean[*]} " == *" $pkg "* ]]; then slim+=("$pkg"); else full+=("$pkg"); fi
done
install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q)
if ((${#full[@]})); then "${install[@]}" "${full[@]}" </dev/null; fi
if ((${#slim[@]})); then "${install[@]}" --no-install-recommends "${slim[@]}" </dev/null; fi
echo "ensure-system-deps: installed ${missing[*]}"
