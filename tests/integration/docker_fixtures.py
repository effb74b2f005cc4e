"""Build throw-away images and containers on the real Docker engine, offline.

Everything made here carries ``org.dcspark.test-run=<run id>``, so a test run
can find (and clean up) exactly what it created on a shared engine, by id.
The base image is Debian's static busybox imported as a one-layer image; each
derived image adds one file of random bytes, so its unique size is known.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile

import pytest

TEST_RUN = "org.dcspark.test-run"
BUSYBOX = "/bin/busybox"
BUSYBOX_HINT = "install Debian's busybox-static (scripts/ensure-system-deps.sh, or apt-get install -y busybox-static)"
APPLETS = ("sh", "sleep", "true", "cat", "ls")
PT_INTERP = 3


def engine():
    """A low-level Docker SDK client that answered a ping, or a failed test saying how to start one."""
    import docker

    try:
        client = docker.APIClient(version="auto", timeout=120)
        client.ping()
    except Exception as exc:  # connection refused, missing socket, permission denied
        pytest.fail(
            f"the Docker engine is not reachable ({exc}); `make test` starts it, "
            "and so does scripts/ensure-docker.sh",
            pytrace=False,
        )
    return client


def _is_static(path: str) -> bool:
    """True when the ELF executable at ``path`` has no program interpreter (no dynamic loader)."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only (x86_64, arm64)
            return False
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        for index in range(phnum):
            handle.seek(phoff + index * phentsize)
            if struct.unpack("<I", handle.read(4))[0] == PT_INTERP:
                return False
    return True


def busybox_tar(owned_dirs: dict | None = None) -> bytes:
    """A root filesystem with a static busybox and the applet links the tests run, and ``owned_dirs``
    (``{path: uid}``, folders owned by that uid and group)."""
    if not os.path.isfile(BUSYBOX) or not _is_static(BUSYBOX):
        pytest.fail(f"{BUSYBOX} is missing or not statically linked: {BUSYBOX_HINT}", pytrace=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for path, uid in (owned_dirs or {}).items():
            folder = tarfile.TarInfo(path)
            folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o750, uid, uid
            tar.addfile(folder)
    return buffer.getvalue()


def import_base(client, run_id: str, repository: str) -> str:
    """Import the busybox root filesystem as ``repository:<run id>``; returns the image id."""
    answer = client.import_image_from_data(
        busybox_tar(), repository=repository, tag=run_id,
        changes=[f"LABEL {TEST_RUN}={run_id}", 'CMD ["/bin/sh"]'],
    )
    return json.loads(answer.strip().splitlines()[-1])["status"]


def blob_tar(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()


def derive_image(client, parent: str, run_id: str, size: int, labels: dict, tags: tuple = ()) -> str:
    """Commit ``parent`` plus a file of ``size`` random bytes, with ``labels``; returns the new id."""
    container = client.create_container(parent, command=["/bin/true"], labels={TEST_RUN: run_id})
    try:
        client.put_archive(container["Id"], "/", blob_tar(size))
        changes = [f"LABEL {name}={value}" for name, value in {**labels, TEST_RUN: run_id}.items()]
        image_id = client.commit(container["Id"], changes=changes)["Id"]
    finally:
        client.remove_container(container["Id"], force=True)
    for tag in tags:
        repository, _sep, version = tag.rpartition(":")
        client.tag(image_id, repository, version)
    return image_id


def container(client, image: str, run_id: str, labels: dict, command: list, start: bool = True) -> str:
    """Create (and start, and for short commands wait for) a container; returns its id."""
    created = client.create_container(
        image, command=command, labels={**labels, TEST_RUN: run_id},
        host_config=client.create_host_config(network_mode="none"),  # no network needed, none touched
    )
    if start:
        client.start(created["Id"])
        if command[0] != "/bin/sleep":
            client.wait(created["Id"], timeout=60)
    return created["Id"]


def cleanup(client, run_id: str) -> list:
    """Remove every container, then every image, labelled with this run, by id; returns what failed."""
    selector = {"label": [f"{TEST_RUN}={run_id}"]}
    problems = []
    for found in client.containers(all=True, filters=selector):
        try:
            client.remove_container(found["Id"], force=True, v=True)
        except Exception as exc:  # keep going: leave as little behind as possible
            problems.append(f"container {found['Id'][:12]}: {exc}")
    for _attempt in range(5):  # children before parents: retry what a dependent image blocked
        remaining = client.images(all=True, filters=selector)
        if not remaining:
            return problems
        for image in remaining:
            try:
                client.remove_image(image["Id"], force=True)
            except Exception:  # a child still exists or a parent was pruned with its child already
                pass
    leftovers = client.images(all=True, filters=selector)
    return problems + [f"image {image['Id'][:19]} left behind" for image in leftovers]
