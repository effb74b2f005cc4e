"""The image build's check of the QFS native client (roles/spark_images/files/qfs/check-libs.sh).

QFS 2.2.8's libqfs_access.so failed to load in an image without libJerasure.so.2 (a symlink the build
had not copied); the check runs ldd on every library at build time. Here ldd is a stand-in on PATH
that answers like the real one, so the script's verdict and message are what is tested; docs/qfs.md
has the real build's run.
"""

from __future__ import annotations

import os
import subprocess

from support import REPO

SCRIPT = os.path.join(REPO, "roles", "spark_images", "files", "qfs", "check-libs.sh")


def run(tmp_path, ldd_output: dict) -> subprocess.CompletedProcess:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ldd_output:
        (lib / name).write_bytes(b"\x7fELF")
    stub = tmp_path / "bin"
    stub.mkdir()
    answers = "\n".join(f'  */{name}) printf "%s\\n" "{text}" ;;' for name, text in ldd_output.items())
    (stub / "ldd").write_text(f'#!/bin/sh\ncase "$1" in\n{answers}\nesac\n')
    (stub / "ldd").chmod(0o755)
    env = dict(os.environ, PATH=f"{stub}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["sh", SCRIPT, str(lib)], capture_output=True, text=True, env=env, check=False)


def test_a_library_that_does_not_resolve_fails_the_build_naming_it(tmp_path):
    proc = run(tmp_path, {
        "libqfs_access.so": "\tlibJerasure.so.2 => not found\n\tlibssl.so.3 => /usr/lib/x86_64-linux-gnu/libssl.so.3",
        "libqfs_client.so": "\tlibboost_regex.so.1.74.0 => not found",
        "libqfs_io.so": "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6",
    })
    assert proc.returncode == 1
    assert "libqfs_access.so needs libJerasure.so.2" in proc.stderr
    assert "libqfs_client.so needs libboost_regex.so.1.74.0" in proc.stderr
    assert "libssl" not in proc.stderr and "libqfs_io" not in proc.stderr
    assert "spark_images_qfs_packages" in proc.stderr


def test_libraries_that_all_resolve_pass(tmp_path):
    proc = run(tmp_path, {"libqfs_access.so": "\tlibJerasure.so.2 => /opt/qfs/lib/libJerasure.so.2",
                          "libJerasure.so.2": "\tlibgf_complete.so.1 => /opt/qfs/lib/libgf_complete.so.1"})
    assert proc.returncode == 0, proc.stderr
    assert "every library" in proc.stdout
