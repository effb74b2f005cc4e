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
from xml.etree import ElementTree

import pytest
import yaml

from support import BIN, REPO, ansible_env

IMAGE = os.environ.get("DCM_TEST_SANDBOX_IMAGE", "dcspark/sandbox-host:bookworm")
VERSION = "2.2.8"
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
        add("lib/qfs_double_common.py", double("qfs_double_common.py"))
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

    # The file system was created once, with -c (which exits), by the qfs user in the meta folder;
    # the daemon then started without -c, working in that folder (it writes there).
    starts = read(host, "/var/lib/qfs/meta/starts.log").splitlines()
    assert starts[0] == "cwd=/var/lib/qfs/meta -c /etc/qfs/MetaServer.prp", starts
    assert [line for line in starts if " -c " in line] == starts[:1], starts
    assert starts[-1] == "cwd=/var/lib/qfs/meta /etc/qfs/MetaServer.prp", starts
    assert on_host(host, "stat", "-c", "%U", "/var/lib/qfs/meta/checkpoint/latest").stdout.strip() == "qfs"
    assert on_host(host, "systemctl", "is-active", "qfs-metaserver-create-fs").stdout.strip() != "active"
    assert on_host(host, "test", "-f", "/var/lib/qfs/meta/.dcm-initialized").returncode == 0
    assert on_host(host, "test", "-f", "/var/lib/qfs/chunks/.double-was-here").returncode == 0

    again = converge(tmp_path, host, **pinned)
    assert again.returncode == 0 and changed(again) == 0, again.stdout[-6000:]

    # A restart never creates a file system again: the metaserver starts without -c.
    assert on_host(host, "systemctl", "restart", "qfs-metaserver").returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(read(host, "/var/lib/qfs/meta/starts.log").splitlines()) <= len(starts):
        time.sleep(0.5)
    assert read(host, "/var/lib/qfs/meta/starts.log").splitlines()[-1] == "cwd=/var/lib/qfs/meta /etc/qfs/MetaServer.prp"


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


# -- QFS in the runtime images: roles/spark_images/tasks/qfs.yml and the tag (inputs.yml) -------------
# No image is built (about 1 GB each): the role's own task files run on localhost against a QFS
# install tree made here, and the test reads the build files and the tag they produce.

SPEC = {"name": "face", "runtime": {"spark_version": "4.0.1", "base_image": "debian:bookworm-slim"}}


def qfs_tree(folder, hadoop: str = "3.4.1", access: bytes = b"access") -> str:
    lib = folder / "opt-qfs" / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    (lib / f"qfs-access-{VERSION}.jar").write_bytes(access)
    (lib / f"hadoop-{hadoop}-qfs-{VERSION}.jar").write_bytes(b"shim " + hadoop.encode())
    (lib / "hadoop-2.10.1-qfs-2.2.7.jar").write_bytes(b"old shim")
    (lib / "libqfs_access.so").write_bytes(b"native")
    (lib / "libqfs_client.so").write_bytes(b"native client")
    # Like the real release: the soname a library asks for is a symlink to the versioned file.
    (lib / "libJerasure.so.2.0.0").write_bytes(b"jerasure")
    (lib / "libJerasure.so.2").symlink_to("libJerasure.so.2.0.0")
    return str(folder / "opt-qfs")


def image_inputs(tmp_path, name: str, hosts: int = 3, **role_vars) -> tuple:
    """Run qfs.yml (when enabled) and inputs.yml of spark_images; returns (result dict, process)."""
    work = tmp_path / name
    work.mkdir()
    pool = "\n".join(f"            h{index}: {{ansible_connection: local, dcm_address: 10.0.0.{index}}}"
                     for index in range(2, hosts + 1))
    (work / "hosts.yml").write_text(f"""
all:
  children:
    dcm_pool:
      children:
        dcm_masters:
          hosts:
            localhost: {{ansible_connection: local, ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}", dcm_address: 10.0.0.1}}
        dcm_workers:
          hosts:
{pool if pool else '            {}'}
""")
    out = work / "out.json"
    (work / "play.yml").write_text(f"""
- hosts: localhost
  gather_facts: false
  vars:
    spark_images_spec: {json.dumps(SPEC)}
  tasks:
    - name: Settle the spec with the role's own first step
      ansible.builtin.include_role:
        name: dcspark.dcm.spark_images
        tasks_from: settle.yml
    - name: The base image, as base.yml would have found it
      ansible.builtin.set_fact:
        spark_images__base_ref: debian:bookworm-slim
        spark_images__base_id: sha256:0123
    - name: QFS
      ansible.builtin.include_role:
        name: dcspark.dcm.spark_images
        tasks_from: qfs.yml
      when: spark_images_qfs_enabled | default(false) | bool
    - name: Inputs and tag
      ansible.builtin.include_role:
        name: dcspark.dcm.spark_images
        tasks_from: inputs.yml
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{{{ {{'tag': spark_images__tag, 'files': spark_images__files, 'qfs': spark_images__qfs | default(none)}} | to_json }}}}"
        dest: "{out}"
        mode: "0644"
""")
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(work / "hosts.yml"), str(work / "play.yml"),
           "-e", json.dumps(role_vars)]
    proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                          capture_output=True, text=True, timeout=300, check=False)
    return (json.loads(out.read_text()) if out.exists() else None), proc


def test_images_get_the_jars_the_native_libraries_and_the_documented_settings(tmp_path):
    tree = qfs_tree(tmp_path)
    result, proc = image_inputs(tmp_path, "on", spark_images_qfs_enabled=True, spark_images_qfs_dir=tree,
                                spark_images_qfs_event_log_dir="qfs:///history/spark-events")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    qfs = result["qfs"]
    # The jars of the release for Spark 4.0.1's Hadoop 3.4.1, not the other shims; every native library.
    assert sorted(os.path.basename(path) for path in qfs["jars"]) == [f"hadoop-3.4.1-qfs-{VERSION}.jar",
                                                                      f"qfs-access-{VERSION}.jar"]
    # Every library the loader may ask for, symlinked names included (the real libqfs_access.so asks
    # for libJerasure.so.2, a symlink: without it the first write to qfs:// failed with an
    # UnsatisfiedLinkError).
    assert sorted(os.path.basename(path) for path in qfs["libs"]) == [
        "libJerasure.so.2", "libJerasure.so.2.0.0", "libqfs_access.so", "libqfs_client.so"]
    assert set(qfs["packages"]) >= {"libboost-regex1.74.0", "libkrb5-3", "libssl3"}

    files = result["files"]
    # Hadoop settings, key by key (QFS Migration Guide; Qfs.java's AbstractFileSystem binding).
    site = files["runtime/qfs/conf/core-site.xml"]
    hadoop = {prop.findtext("name"): prop.findtext("value") for prop in ElementTree.fromstring(site)}
    assert hadoop == {
        # QFS's file system, block locations named after the cluster's workers (QfsLocality.scala).
        "fs.qfs.impl": "org.dcspark.qfs.LocalityMappedFileSystem",
        "fs.AbstractFileSystem.qfs.impl": "com.quantcast.qfs.hadoop.Qfs",
        "fs.qfs.metaServerHost": "10.0.0.1",  # the first master: no qfs_metaservers group
        "fs.qfs.metaServerPort": "20000",
        "fs.qfs.createParams": "3",  # 3 hosts: replication 3, not Reed-Solomon
    }
    # The same as Spark properties, plus the library paths and the event log on QFS.
    spark = dict(line.split(" ", 1) for line in files["runtime/qfs/conf/spark-defaults.conf"].splitlines()
                 if line and not line.startswith("#"))
    assert spark == {**{"spark.hadoop." + key: value for key, value in hadoop.items()},
                     "spark.driver.extraLibraryPath": "/opt/qfs/lib",
                     "spark.executor.extraLibraryPath": "/opt/qfs/lib",
                     "spark.eventLog.enabled": "true",
                     "spark.eventLog.dir": "qfs:///history/spark-events"}
    # The runtime Dockerfile: unchanged above, the QFS block appended; every property reaches
    # spark-submit; the manifest holds every binary's sha256.
    dockerfile = files["runtime/Dockerfile"]
    block = dockerfile.split("# QFS client (dcspark.dcm.spark_images", 1)[1]
    assert "COPY qfs/ /opt/qfs/" in block and "COPY qfs-jars/ /opt/dcspark/spark/jars/" in block
    assert "LD_LIBRARY_PATH=/opt/qfs/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" in block
    assert "HADOOP_CONF_DIR=/opt/qfs/conf" in block
    # The libraries QFS links come from Debian in the apt layer; the build fails naming any that
    # does not resolve, then compiles the locality file system with Spark's own Scala compiler.
    apt_layer = dockerfile.split("apt-get install", 1)[1].split("apt-get clean", 1)[0]
    assert all(package in apt_layer for package in qfs["packages"])
    assert "sh /opt/qfs/src/check-libs.sh /opt/qfs/lib" in block
    assert files["runtime/qfs/src/check-libs.sh"] == open(os.path.join(REPO, "roles", "spark_images", "files", "qfs",
                                                                       "check-libs.sh"), encoding="utf-8").read()
    assert "scala.tools.nsc.Main" in block and "/opt/qfs/src/QfsLocality.scala" in block
    assert "class LocalityMappedFileSystem extends QuantcastFileSystem" in files["runtime/qfs/src/QfsLocality.scala"]
    # build.yml writes these files into folders qfs_context.yml creates
    with open(os.path.join(REPO, "roles", "spark_images", "tasks", "qfs_context.yml"), encoding="utf-8") as handle:
        created = set(yaml.safe_load(handle)[0]["loop"])
    assert {os.path.dirname(name) for name in files if name.startswith("runtime/qfs/")} <= created
    assert block.index("USER root") < block.index("RUN set -eu") < block.rindex("USER 185:185")
    for key, value in spark.items():
        assert f"-D{key}={value}" in block, key
    assert "-Dspark.history.fs.logDirectory=qfs:///history/spark-events" in block
    manifest = files["runtime/qfs/MANIFEST"]
    for name, data in (("lib/libqfs_access.so", b"native"), (f"spark/jars/qfs-access-{VERSION}.jar", b"access")):
        assert f"{name} {hashlib.sha256(data).hexdigest()}" in manifest


def test_the_tag_changes_with_qfs_and_with_its_jars(tmp_path):
    off, proc = image_inputs(tmp_path, "off")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "qfs" not in off["files"]["runtime/Dockerfile"].lower()
    on, proc = image_inputs(tmp_path, "on", spark_images_qfs_enabled=True, spark_images_qfs_dir=qfs_tree(tmp_path / "a"))
    assert proc.returncode == 0, proc.stdout[-4000:]
    other, proc = image_inputs(tmp_path, "other", spark_images_qfs_enabled=True,
                               spark_images_qfs_dir=qfs_tree(tmp_path / "b", access=b"another build"))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert len({off["tag"], on["tag"], other["tag"]}) == 3
    # Files outside the QFS block are the same: enabling QFS adds QFS's Debian libraries to the apt
    # layer and appends its block, nothing else.
    added = " " + " ".join(on["qfs"]["packages"])
    assert added in on["files"]["runtime/Dockerfile"]
    assert on["files"]["runtime/Dockerfile"].replace(added, "", 1).startswith(off["files"]["runtime/Dockerfile"])


def test_nine_hosts_switch_to_reed_solomon(tmp_path):
    result, proc = image_inputs(tmp_path, "nine", hosts=9, spark_images_qfs_enabled=True,
                                spark_images_qfs_dir=qfs_tree(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "<value>S</value>" in result["files"]["runtime/qfs/conf/core-site.xml"]


def test_a_missing_shim_stops_naming_the_variable_and_the_file(tmp_path):
    tree = qfs_tree(tmp_path, hadoop="3.3.6")
    result, proc = image_inputs(tmp_path, "missing", spark_images_qfs_enabled=True, spark_images_qfs_dir=tree)
    assert proc.returncode != 0 and result is None
    message = said(proc)
    assert f"{tree}/lib/hadoop-3.4.1-qfs-{VERSION}.jar" in message, message[-3000:]
    assert "spark_images_qfs_hadoop_version" in message and f"hadoop-3.3.6-qfs-{VERSION}.jar" in message
