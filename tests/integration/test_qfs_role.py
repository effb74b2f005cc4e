"""roles/qfs run for real on a throw-away systemd host container, with a test double of the QFS tarball.

The real QFS tarball cannot be obtained on the project's machines, so the test packs
``tests/qfs_double`` (stand-ins that read the same configuration files, listen on the configured
ports and record their command line) in the real tarball's layout and pins its checksum. What this
proves and what it does not: docs/qfs.md, "Verified here".

The host is ``dcspark/sandbox-host:bookworm`` (``make sandbox`` builds it) started with systemd as
PID 1 and no network (everything runs on its loopback), labelled ``org.dcspark.test-run`` and
removed by id at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
import time
import uuid

import pytest

from support import BIN, REPO, ansible_env

IMAGE = os.environ.get("DCM_TEST_SANDBOX_IMAGE", "dcspark/sandbox-host:bookworm")
VERSION = "2.2.7"
PLATFORM = "debian-12"
ARCH = platform.machine()
TOP = f"qfs-{PLATFORM}-{VERSION}-{ARCH}"
TARBALL = f"{TOP}.tgz"
DOUBLE = os.path.join(REPO, "tests", "qfs_double")
CAPABILITIES = (
    "AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID "
    "IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW "
    "SETFCAP SETGID SETPCAP SETUID SYSLOG SYS_ADMIN SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT "
    "SYS_PTRACE SYS_RAWIO SYS_TIME SYS_TTY_CONFIG WAKE_ALARM"
).split()

pytestmark = pytest.mark.docker


def make_tarball(folder) -> tuple:
    """The double in the release layout: TOP/bin/{metaserver,chunkserver,tools/qfs}, lib/, webui/."""
    buffer = io.BytesIO()

    def add(name: str, data: bytes = b"", mode: int = 0o644, directory: bool = False) -> None:
        info = tarfile.TarInfo(f"{TOP}/{name}".rstrip("/"))
        if directory:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            return
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))

    def double(name: str) -> bytes:
        with open(os.path.join(DOUBLE, name), "rb") as handle:
            return handle.read()

    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder_name in ("", "bin", "bin/tools", "lib", "webui", "webui/files"):
            add(folder_name, directory=True)
        add("bin/metaserver", double("metaserver"), 0o755)
        add("bin/chunkserver", double("chunkserver"), 0o755)
        add("bin/tools/qfs", double("qfs"), 0o755)
        add("lib/libqfs_access.so", b"not a library\n")
        add(f"lib/qfs-access-{VERSION}.jar", b"PK\x05\x06" + bytes(18))
        add(f"lib/hadoop-3.4.1-qfs-{VERSION}.jar", b"PK\x05\x06" + bytes(18))
        add("webui/qfsstatus.py", double("qfsstatus.py"), 0o755)
        add("webui/files/qfsstyle.css", b"body {}\n")
    path = folder / TARBALL
    path.write_bytes(buffer.getvalue())
    return path, "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()


def docker(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def on_host(host: str, *argv: str) -> subprocess.CompletedProcess:
    return docker("exec", host, *argv, check=False)


@pytest.fixture(scope="module")
def host():
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail(f"{IMAGE} is missing: build it with scripts/build-sandbox-image.sh {IMAGE}", pytrace=False)
    run_id = uuid.uuid4().hex[:12]
    name = f"dcm-test-qfs-{run_id}"
    args = ["run", "-d", "--name", name, "--hostname", "qfs1", "--network", "none",
            "--label", f"org.dcspark.test-run={run_id}",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock"]
    for capability in CAPABILITIES:
        args += ["--cap-add", capability]
    container_id = docker(*args, IMAGE, "/lib/systemd/systemd").stdout.strip()
    try:
        deadline = time.monotonic() + 120
        state = ""
        while time.monotonic() < deadline:
            state = on_host(container_id, "systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)
        assert state in ("running", "degraded"), f"systemd in the host container did not boot: {state!r}"
        yield container_id
    finally:
        docker("rm", "-f", "-v", container_id, check=False)


def converge(tmp_path, host: str, **role_vars) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(f"""
all:
  children:
    dcm_pool:
      children:
        dcm_masters:
          hosts:
            qfs1:
              ansible_connection: community.docker.docker
              ansible_host: {host}
              ansible_python_interpreter: /usr/bin/python3
              dcm_address: 127.0.0.1
""")
    playbook = tmp_path / "qfs.yml"
    playbook.write_text("""
- hosts: dcm_pool
  gather_facts: true
  roles:
    - role: dcspark.dcm.qfs
""")
    extra_vars = {"qfs_ready_retries": 20, "qfs_ready_delay": 1, **role_vars}
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), str(playbook), "-e", json.dumps(extra_vars)]
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)


def changed(proc) -> int:
    recap = proc.stdout.rsplit("PLAY RECAP", 1)[-1]
    return int(recap.split("changed=")[1].split()[0])


def said(proc) -> str:
    return " ".join((proc.stdout + proc.stderr).split())


def nothing_created(host: str) -> list:
    """What the role must not have created before the artifact was verified."""
    found = []
    if on_host(host, "getent", "passwd", "qfs").returncode == 0:
        found.append("user qfs")
    for path in ("/opt/qfs", "/etc/qfs", "/var/lib/qfs", "/etc/systemd/system/qfs-metaserver.service",
                 "/etc/systemd/system/qfs-chunkserver.service", "/etc/systemd/system/qfs-webui.service",
                 "/var/cache/dcm/upstream/qfs"):
        if on_host(host, "test", "-e", path).returncode == 0:
            found.append(path)
    return found


def read(host: str, path: str) -> str:
    proc = on_host(host, "cat", path)
    assert proc.returncode == 0, f"{path}: {proc.stderr}"
    return proc.stdout


def properties(text: str) -> dict:
    pairs = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _sep, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_without_a_pin_it_stops_naming_the_variable_and_the_file_and_creates_nothing(tmp_path, host):
    tarball, _checksum = make_tarball(tmp_path)
    proc = converge(tmp_path, host, qfs_local_artifact=str(tarball))
    assert proc.returncode != 0
    message = said(proc)
    assert "qfs_checksums" in message and TARBALL in message and VERSION in message, message[-3000:]
    assert nothing_created(host) == []


def test_without_the_artifact_it_stops_naming_the_variable_and_the_file_and_creates_nothing(tmp_path, host):
    _tarball, checksum = make_tarball(tmp_path)
    proc = converge(tmp_path, host, qfs_checksums={VERSION: {ARCH: checksum}},
                    qfs_local_artifact=str(tmp_path / "missing" / TARBALL))
    assert proc.returncode != 0
    message = said(proc)
    assert "qfs_local_artifact" in message and TARBALL in message, message[-3000:]
    assert nothing_created(host) == []


def test_a_wrong_artifact_is_refused_and_creates_nothing(tmp_path, host):
    tarball, _checksum = make_tarball(tmp_path)
    proc = converge(tmp_path, host, qfs_checksums={VERSION: {ARCH: "sha256:" + "0" * 64}},
                    qfs_local_artifact=str(tarball))
    assert proc.returncode != 0
    assert "qfs_local_artifact" in said(proc)
    assert nothing_created(host) == []


def test_installs_configures_initializes_once_and_changes_nothing_the_second_time(tmp_path, host):
    tarball, checksum = make_tarball(tmp_path)
    pinned = {"qfs_checksums": {VERSION: {ARCH: checksum}}, "qfs_local_artifact": str(tarball)}
    first = converge(tmp_path, host, **pinned)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]

    # The user: a system account without a login shell.
    passwd = on_host(host, "getent", "passwd", "qfs").stdout.strip().split(":")
    assert passwd[6] == "/usr/sbin/nologin" and int(passwd[2]) < 1000, passwd

    # The release: the binaries and the libraries of the tarball, root's.
    for path in ("/opt/qfs/bin/metaserver", "/opt/qfs/bin/chunkserver", "/opt/qfs/bin/qfs",
                 f"/opt/qfs/lib/qfs-access-{VERSION}.jar", "/opt/qfs/lib/libqfs_access.so",
                 "/opt/qfs/webui/qfsstatus.py", "/opt/qfs/webui/files/qfsstyle.css"):
        assert on_host(host, "test", "-f", path).returncode == 0, path
    assert on_host(host, "stat", "-c", "%U", "/opt/qfs/bin/metaserver").stdout.strip() == "root"

    # The configuration files, key by key (the names of QFS's annotated configuration files).
    meta = properties(read(host, "/etc/qfs/MetaServer.prp"))
    assert meta == {
        "metaServer.clientPort": "20000",
        "metaServer.chunkServerPort": "30000",
        "metaServer.cpDir": "/var/lib/qfs/meta/checkpoint",
        "metaServer.logDir": "/var/lib/qfs/meta/transaction_logs",
        "metaServer.createEmptyFs": "0",
        "metaServer.clusterKey": "dcm-dcspark",
        "metaServer.rootDirUser": "185",
        "metaServer.rootDirGroup": "185",
        "metaServer.rootDirMode": "0755",
        "metaServer.recoveryInterval": "30",
        "metaServer.msgLogWriter.logLevel": "INFO",
    }
    chunk = properties(read(host, "/etc/qfs/ChunkServer.prp"))
    assert chunk == {
        "chunkServer.metaServer.hostname": "127.0.0.1",
        "chunkServer.metaServer.port": "30000",
        "chunkServer.clientPort": "22000",
        "chunkServer.chunkDir": "/var/lib/qfs/chunks",
        "chunkServer.clusterKey": "dcm-dcspark",
        "chunkServer.hostname": "127.0.0.1",
        "chunkServer.nodeId": "FILE:/etc/machine-id",
        "chunkServer.msgLogWriter.logLevel": "INFO",
    }
    webui = read(host, "/etc/qfs/webui.conf")
    assert "webServer.port = 20050" in webui and "webServer.metaserverPort = 20000" in webui

    # The services: active, enabled, running as qfs, never as root.
    for unit in ("qfs-metaserver", "qfs-chunkserver", "qfs-webui"):
        assert on_host(host, "systemctl", "is-active", unit).stdout.strip() == "active", unit
        assert on_host(host, "systemctl", "is-enabled", unit).stdout.strip() == "enabled", unit
        pid = on_host(host, "systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()
        assert on_host(host, "ps", "-o", "user=", "-p", pid).stdout.strip() == "qfs", unit
        assert "NoNewPrivileges=yes" in read(host, f"/etc/systemd/system/{unit}.service")

    # The file system was created once, with -c; the folders belong to qfs.
    starts = read(host, "/var/lib/qfs/meta/starts.log").splitlines()
    assert [line for line in starts if line.startswith("-c ")] == ["-c /etc/qfs/MetaServer.prp"], starts
    assert on_host(host, "test", "-e", "/run/qfs-metaserver-init.env").returncode != 0
    assert on_host(host, "test", "-f", "/var/lib/qfs/meta/.dcm-initialized").returncode == 0
    assert on_host(host, "test", "-f", "/var/lib/qfs/chunks/.double-was-here").returncode == 0

    again = converge(tmp_path, host, **pinned)
    assert again.returncode == 0 and changed(again) == 0, again.stdout[-6000:]

    # A restart never creates a file system again: the metaserver starts without -c.
    assert on_host(host, "systemctl", "restart", "qfs-metaserver").returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(read(host, "/var/lib/qfs/meta/starts.log").splitlines()) <= len(starts):
        time.sleep(0.5)
    assert read(host, "/var/lib/qfs/meta/starts.log").splitlines()[-1] == "/etc/qfs/MetaServer.prp"


def test_a_lost_file_system_image_is_never_replaced_by_a_new_one(tmp_path, host):
    tarball, checksum = make_tarball(tmp_path)
    assert on_host(host, "systemctl", "stop", "qfs-metaserver").returncode == 0
    assert on_host(host, "sh", "-c", "rm -f /var/lib/qfs/meta/checkpoint/*").returncode == 0
    before = read(host, "/var/lib/qfs/meta/starts.log")
    proc = converge(tmp_path, host, qfs_checksums={VERSION: {ARCH: checksum}}, qfs_local_artifact=str(tarball))
    assert proc.returncode != 0
    assert "Restoring from Backups" in said(proc), said(proc)[-3000:]
    assert read(host, "/var/lib/qfs/meta/starts.log") == before, "the metaserver was started over a lost image"
    assert on_host(host, "sh", "-c", "ls -A /var/lib/qfs/meta/checkpoint").stdout == ""
