"""QFS for real on the scenario's pool: the release tarball named by DCM_QFS_TARBALL.

No registry here ships QFS, so CI runs without it (these tests are then reported as skipped, never as
passed) and keeps covering roles/qfs with the stand-ins under tests/qfs_double. With a real release
(`qfs-<platform>-<version>-<arch>.tgz`, docs/qfs.md says how to get one), it checks:

1. the role: runtime libraries, a file system really created once, the hardened daemons running as
   qfs, every chunkserver registered, the web UI answering, and a second site.yml changing nothing;
2. the images: every library the native client links resolves in them, for Spark 4.0 (Hadoop 3.4
   shim) and Spark 3.5 (Hadoop 3.3 shim);
3. Spark on QFS: one cluster writes a table to qfs://, another cluster (other Spark line) reads it
   back; event logs on QFS;
4. data locality: the share of NODE_LOCAL tasks reading a multi-chunk file, with DCM's host map and
   without it in the same run (benchmarks/results/qfs_locality.json).

    DCM_QFS_TARBALL=/path/qfs-debian-12-2.2.8-x86_64.tgz pytest molecule/default/tests/test_qfs_real.py \
        --ansible-inventory=inventories/sandbox/hosts.yml
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid

import pytest
from test_clusters import REPO, playbook, recap

TARBALL = os.environ.get("DCM_QFS_TARBALL", "")
JOBS = os.path.join(os.path.dirname(__file__), "qfs_jobs")
WRITER, READER = "qfs-writer", "qfs-reader"
WORKERS = 3
WIDE_ROWS = 7_000_000  # ~300 MB of CSV: five 64 MiB chunks

pytestmark = pytest.mark.skipif(not TARBALL, reason="DCM_QFS_TARBALL names no QFS release tarball: real QFS not run")


def qfs_vars(folder) -> list:
    """``-e @vars.json`` turning QFS on with the tarball, pinned by its sha256 (what an operator writes)."""
    match = re.fullmatch(r"qfs-(.+)-(\d+\.\d+\.\d+)-(x86_64|aarch64)\.tgz", os.path.basename(TARBALL))
    assert match, f"{TARBALL}: not a QFS release tarball name (qfs-<platform>-<version>-<arch>.tgz)"
    platform, version, arch = match.groups()
    with open(TARBALL, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    path = folder / "qfs-vars.json"
    path.write_text(json.dumps({"dcm_qfs_enabled": True, "qfs_version": version, "qfs_platform": platform,
                                "qfs_local_artifact": TARBALL, "qfs_checksums": {version: {arch: f"sha256:{digest}"}}}))
    return ["-e", f"@{path}"]


def spec(folder, name: str, spark: str, workers: int) -> str:
    app = folder / name
    app.mkdir()
    (app / "hello.py").write_text("print('hello')\n")
    path = folder / f"{name}.json"
    path.write_text(json.dumps({
        "name": name,
        "runtime": {"base_image": "debian:bookworm-slim", "spark_version": spark, "app_dir": name},
        "master": {"cpus": 0.25, "memory": "512m"}, "driver": {"cpus": 0.5, "memory": "1g"},
        "worker": {"cpus": 1, "memory": "1g", "count": workers},
        "spark_conf": {"spark.executor.memory": "512m", "spark.executor.cores": 1},
        "app": {"main": "hello.py"}}))
    return str(path)


@pytest.fixture(scope="module")
def qfs(pool, tmp_path_factory):
    """site.yml with QFS on."""
    folder = tmp_path_factory.mktemp("qfs")
    extra = qfs_vars(folder)
    first = playbook(pool.inventory, "site.yml", *extra)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    return {"extra": extra, "folder": folder}


@pytest.fixture(scope="module")
def clusters(pool, qfs):
    """A Spark 4.0 cluster (a worker on every host) and a Spark 3.5 cluster built with the QFS client."""
    specs = {WRITER: spec(qfs["folder"], WRITER, "4.0.1", WORKERS), READER: spec(qfs["folder"], READER, "3.5.3", 1)}
    try:
        for name, path in specs.items():
            run = playbook(pool.inventory, "deploy_cluster.yml", "-e", f"spec={path}", "-e", "run_app=false",
                           *qfs["extra"])
            assert run.returncode == 0, f"deploy of {name} failed:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
        yield specs
    finally:
        for name in specs:
            playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={name}", timeout=600)


def meta_address(pool) -> str:
    return pool.etcd_get(f"/dcm/hosts/{pool.first}")[f"/dcm/hosts/{pool.first}"]["address"]


def qfs_tool(pool, *args: str, user: str = "qfs"):
    """The release's qfs client on the metaserver host (root is QFS's superuser: only for clean-up)."""
    command = " ".join([f"sudo -u {user} /opt/qfs/bin/qfs -fs", f"qfs://{meta_address(pool)}:20000", *args])
    return pool.hosts[pool.first].run(command)


def submit(pool, cluster: str, app: str, *args, conf: dict | None = None):
    compact = {"separators": (",", ":")}  # -e key=value splits at spaces
    extra = ["-e", f"cluster={cluster}", "-e", f"app={os.path.join(JOBS, app)}",
             "-e", "args=" + json.dumps([str(arg) for arg in args], **compact)]
    if conf:
        extra += ["-e", "conf=" + json.dumps(conf, **compact)]
    run = playbook(pool.inventory, "submit.yml", *extra)
    assert run.returncode == 0, run.stdout[-6000:]
    return run.stdout


def test_the_role_runs_real_qfs_hardened_with_every_chunkserver_registered(pool, qfs):
    meta = pool.hosts[pool.first]
    for unit in ("qfs-metaserver", "qfs-webui"):
        assert meta.service(unit).is_running, unit
    addresses = []
    for name, host in pool.hosts.items():
        assert host.service("qfs-chunkserver").is_running, name
        pid = host.check_output("systemctl show -p MainPID --value qfs-chunkserver")
        assert host.check_output(f"ps -o user= -p {pid}") == "qfs", name
        assert "ProtectSystem=strict" in host.check_output("systemctl cat qfs-chunkserver")
        addresses.append(pool.etcd_get(f"/dcm/hosts/{name}")[f"/dcm/hosts/{name}"]["address"])
    # created once with -c, which exited: the daemon itself never got -c
    assert meta.file("/var/lib/qfs/meta/checkpoint/latest").exists
    assert "-c" not in meta.check_output("ps -o args= -C metaserver").split()
    assert qfs_tool(pool, "-ls", "/").rc == 0
    # the web UI lists every chunkserver (they registered with the metaserver)
    deadline, page = time.monotonic() + 90, ""
    while time.monotonic() < deadline:
        page = meta.run("curl -fsS http://127.0.0.1:20050/").stdout
        if all(address in page for address in addresses):
            break
        time.sleep(3)
    assert all(address in page for address in addresses), (addresses, page[-3000:])
    # idempotent: a second site.yml changes nothing anywhere
    again = playbook(pool.inventory, "site.yml", *qfs["extra"])
    assert again.returncode == 0, again.stdout[-6000:]
    assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in recap(again.stdout).values()), \
        again.stdout[-4000:]


def test_the_images_load_the_native_client_with_every_library_it_links(pool, clusters):
    for cluster in clusters:
        for name in pool.names:
            for container in pool.containers(name, cluster):
                out = pool.hosts[name].check_output(
                    f"docker exec {container} sh -c 'ldd /opt/qfs/lib/*.so* | grep -c \"not found\" || true'")
                assert out.strip() == "0", (cluster, container, out)
                jars = pool.hosts[name].check_output(f"docker exec {container} sh -c 'ls $SPARK_HOME/jars'")
                assert "dcspark-qfs-locality.jar" in jars and re.search(r"hadoop-3\.[34]\.\d+-qfs-", jars), jars


@pytest.fixture(scope="module")
def written(pool, clusters):
    base = f"qfs:///dcm-test-{uuid.uuid4().hex[:8]}"
    out = submit(pool, WRITER, "qfs_write.py", base, WIDE_ROWS)
    yield base, out
    qfs_tool(pool, "-rmr", "-skipTrash", base.replace("qfs://", ""), user="root")


def test_one_cluster_writes_to_qfs_and_another_reads_it_back(pool, written):
    base, out = written
    wrote = re.search(r"QFS-WRITE rows=(\d+) sum=(\d+)", out)
    assert wrote, out[-4000:]
    read = submit(pool, READER, "qfs_read.py", base)
    got = re.search(r"QFS-READ spark=3\.5\.3 rows=(\d+) sum=(\d+)", read)
    assert got and got.groups() == wrote.groups(), read[-4000:]


def test_locality_with_the_host_map_against_without_it(pool, written):
    base, out = written
    wide = re.search(r"QFS-WIDE files=1 bytes=(\d+)", out)
    assert wide and int(wide.group(1)) > 2 * 64 * 2**20, out[-3000:]  # more than two chunks
    # The mapped run also writes its event log to QFS.
    events = f"{base}/events"
    common = {"spark.sql.files.maxPartitionBytes": "16m", "spark.locality.wait": "10s"}
    runs = {}
    for label, conf in (("mapped", {**common, "spark.eventLog.enabled": "true", "spark.eventLog.dir": events}),
                        ("unmapped", {**common, "spark.hadoop.fs.qfs.dcspark.hostMap": "0.0.0.0=none"})):
        text = submit(pool, WRITER, "qfs_locality.py", base, WORKERS, conf=conf)
        found = re.search(r"LOCALITY (.*) total=(\d+) eligible=(\d+) eligible_local=(\d+)", text)
        assert found, text[-4000:]
        levels = dict(pair.split("=") for pair in found.group(1).split())
        runs[label] = {"node_local": int(levels.get("NODE_LOCAL", 0)) + int(levels.get("PROCESS_LOCAL", 0)),
                       "total": int(found.group(2)), "levels": levels,
                       # tasks whose chunk has a replica next to one of the cluster's workers (QFS chose where)
                       "could_be_local": int(found.group(3)), "local_of_those": int(found.group(4)),
                       "chunks": re.findall(r"BLOCK (\d+) (\d+) (\S+)", text)}
    share = {label: run["node_local"] / run["total"] for label, run in runs.items()}
    mapped = runs["mapped"]
    eligible_share = mapped["local_of_those"] / max(1, mapped["could_be_local"])
    result = {"bytes": int(wide.group(1)), "runs": runs, "node_local_share": share,
              "node_local_share_of_tasks_that_could_be_local": eligible_share, "target": 0.9,
              "qfs": os.path.basename(TARBALL)}
    os.makedirs(os.path.join(REPO, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(REPO, "benchmarks", "results", "qfs_locality.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    print(f"QFS LOCALITY mapped {share['mapped']:.0%} ({eligible_share:.0%} of the {mapped['could_be_local']} tasks "
          f"whose chunk has a replica next to a worker) unmapped {share['unmapped']:.0%} of {mapped['total']} tasks")
    assert mapped["total"] >= 10 and mapped["could_be_local"] >= 4, runs  # at least one chunk next to a worker
    assert eligible_share >= 0.9 and share["unmapped"] < eligible_share, runs
    listing = qfs_tool(pool, "-ls", events.replace("qfs://", ""))
    assert listing.rc == 0 and "app-" in listing.stdout, listing.stdout + listing.stderr
