"""The upstream_binary role on this machine: pinned artifacts from a local copy or a loopback download.

No upstream release site is reachable here, so the artifact is a tarball made by the test, served
from a local path or by an HTTP server on 127.0.0.1. Everything goes under tmp_path.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import platform
import tarfile
import threading

import pytest

from support import run_playbook

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
VERSION = "1.2.3"
TOOL = b"#!/bin/sh\necho tool 1.2.3\n"


def make_artifact(folder) -> tuple:
    name = f"tool-v{VERSION}-linux-{ARCH}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"tool-v{VERSION}-linux-{ARCH}/tool")
        info.size, info.mode = len(TOOL), 0o755
        tar.addfile(info, io.BytesIO(TOOL))
    path = folder / name
    path.write_bytes(buffer.getvalue())
    return path, "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()


def install(tmp_path, checksums, local_path="", url="http://127.0.0.1:9/none/{version}/tool.tar.gz"):
    playbook = tmp_path / "install.yml"
    playbook.write_text(f"""
- hosts: localhost
  connection: local
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: dcspark.dcm.upstream_binary
      vars:
        upstream_binary_name: tool
        upstream_binary_version: "{VERSION}"
        upstream_binary_url: "{url}"
        upstream_binary_checksums: {checksums!r}
        upstream_binary_checksums_var: tool_checksums
        upstream_binary_local_path: "{local_path}"
        upstream_binary_local_path_var: tool_local_artifact
        upstream_binary_dest: "{tmp_path / 'bin'}"
        upstream_binary_cache_dir: "{tmp_path / 'cache'}"
        upstream_binary_archive_members:
          - src: "tool-v{{version}}-linux-{{arch}}/tool"
""")
    return run_playbook(str(playbook))


def changed(proc) -> int:
    recap = proc.stdout.rsplit("PLAY RECAP", 1)[-1]
    return int(recap.split("changed=")[1].split()[0])


def test_installs_a_pinned_local_copy_once(tmp_path):
    artifact, checksum = make_artifact(tmp_path)
    first = install(tmp_path, {VERSION: {ARCH: checksum}}, local_path=str(artifact))
    assert first.returncode == 0, first.stdout + first.stderr
    tool = tmp_path / "bin" / "tool"
    assert tool.read_bytes() == TOOL and tool.stat().st_mode & 0o111
    again = install(tmp_path, {VERSION: {ARCH: checksum}}, local_path=str(artifact))
    assert again.returncode == 0 and changed(again) == 0, again.stdout


def test_a_wrong_checksum_installs_nothing(tmp_path):
    artifact, _checksum = make_artifact(tmp_path)
    proc = install(tmp_path, {VERSION: {ARCH: "sha256:" + "0" * 64}}, local_path=str(artifact))
    assert proc.returncode != 0
    assert "tool_local_artifact" in proc.stdout + proc.stderr
    assert not (tmp_path / "bin" / "tool").exists()
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(path.is_file() for path in cache.rglob("*")), "a bad artifact was cached"


def test_no_pin_is_refused_naming_the_variable(tmp_path):
    artifact, _checksum = make_artifact(tmp_path)
    proc = install(tmp_path, {}, local_path=str(artifact))
    assert proc.returncode != 0
    said = " ".join((proc.stdout + proc.stderr).split())
    assert "tool_checksums" in said and VERSION in said and ARCH in said, said[-2000:]
    assert not (tmp_path / "bin" / "tool").exists()


@pytest.fixture()
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_downloads_and_verifies_when_there_is_no_local_copy(tmp_path, server):
    served, base = server
    artifact, checksum = make_artifact(served)
    proc = install(tmp_path, {VERSION: {ARCH: checksum}}, url=f"{base}/{artifact.name}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "bin" / "tool").read_bytes() == TOOL
    artifact.unlink()  # the cache serves the second run: nothing is fetched
    again = install(tmp_path, {VERSION: {ARCH: checksum}}, url=f"{base}/{artifact.name}")
    assert again.returncode == 0 and changed(again) == 0, again.stdout + again.stderr
