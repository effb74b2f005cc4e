"""Pack the flanneld TEST DOUBLE as a flannel release artifact: python3 pack.py DEST_DIR VERSION [ARCH].

Writes DEST_DIR/flannel-VERSION-linux-ARCH.tar.gz (members flanneld, mk-docker-opts.sh and
README.md, as in the official artifact) and its ``.sha256``, byte for byte the same on every run
(fixed mtimes, owners and gzip header), so a converge that packs it again changes nothing.
Prints one JSON line: {"path", "sha256", "changed"}. Used by molecule/flannel only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
README = b"""TEST DOUBLE of flannel's release artifact, packed by tests/flannel_double/pack.py for the
molecule/flannel scenario. flanneld here is a Python stand-in; it is not flannel.
"""
MK_DOCKER_OPTS = b"""#!/bin/sh
echo "mk-docker-opts.sh (TEST DOUBLE): DCSpark wires Docker through daemon.json, not this script" >&2
exit 1
"""


def member(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def main(dest: str, version: str, arch: str = "amd64") -> int:
    with open(os.path.join(HERE, "flanneld"), "rb") as handle:
        flanneld = handle.read()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        member(tar, "flanneld", flanneld, 0o755)
        member(tar, "mk-docker-opts.sh", MK_DOCKER_OPTS, 0o755)
        member(tar, "README.md", README, 0o644)
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    data = packed.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, f"flannel-{version}-linux-{arch}.tar.gz")
    try:
        with open(path, "rb") as handle:
            changed = handle.read() != data
    except FileNotFoundError:
        changed = True
    if changed:
        with open(path, "wb") as handle:
            handle.write(data)
        with open(path + ".sha256", "w", encoding="utf-8") as handle:
            handle.write(digest + "\n")
    print(json.dumps({"path": path, "sha256": digest, "changed": changed}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
