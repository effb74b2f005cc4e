#!/usr/bin/env bash
# Build the image of the sandbox's simulated hosts (sandbox/Dockerfile.host).
#
# The base comes from a registry when one answers (docker pull), else it is built offline from
# the machine's own Debian mirror: debootstrap --variant=minbase, then docker import. The host
# image is tagged with a hash of its inputs and rebuilt only when they change.
#
# Usage: scripts/build-sandbox-image.sh [IMAGE]      (default dcspark/sandbox-host:bookworm)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

image=${1:-dcspark/sandbox-host:bookworm}
suite=bookworm
pulled_base=${DCM_SANDBOX_BASE_IMAGE:-debian:bookworm}
offline_base=dcspark/debian-base:${suite}
inputs_hash=$(cat sandbox/Dockerfile.host "$0" | sha256sum | cut -c1-16)

if [[ "$(docker image inspect -f '{{ index .Config.Labels "org.dcspark.inputs" }}' "$image" 2>/dev/null || true)" == "$inputs_hash" ]]; then
    echo "sandbox image $image is up to date ($inputs_hash)"
    exit 0
fi

base=""
if docker image inspect "$pulled_base" >/dev/null 2>&1; then
    base=$pulled_base
elif timeout 30 docker pull -q "$pulled_base" >/dev/null 2>&1; then
    base=$pulled_base
elif docker image inspect "$offline_base" >/dev/null 2>&1; then
    base=$offline_base
else
    echo "no registry answered for $pulled_base: building $offline_base offline with debootstrap"
    mirror=${DCM_DEBIAN_MIRROR:-}
    if [[ -z "$mirror" ]]; then
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    fi
    if [[ -z "$mirror" ]]; then
        mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    fi
    if [[ -z "$mirror" ]]; then
        echo "cannot find a Debian mirror in /etc/apt/sources.list*; set DCM_DEBIAN_MIRROR" >&2
        exit 1
    fi
    command -v debootstrap >/dev/null || { echo "debootstrap is missing: run make setup" >&2; exit 1; }
    rootfs=$(mktemp -d /tmp/dcspark-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap $suite from $mirror (about 20 s)"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/tmp/dcspark-debootstrap.log 2>&1 \
        || { tail -20 /tmp/dcspark-debootstrap.log >&2; exit 1; }
    # the same mirror inside the image, deb822 style like Debian 12 itself
    rm -f "$rootfs/etc/apt/sources.list"
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" "$suite" "$suite" > "$rootfs/etc/apt/sources.list.d/debian.sources"
    tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$offline_base" >/dev/null
    base=$offline_base
fi

echo "building $image from $base"
docker build -q --build-arg "BASE_IMAGE=$base" --label "org.dcspark.inputs=$inputs_hash" \
    -t "$image" -f sandbox/Dockerfile.host sandbox >/dev/null
echo "built $image ($inputs_hash)"
