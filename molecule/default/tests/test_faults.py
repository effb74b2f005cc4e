"""Fault injection on the scenario's pool: the DCM master and agents keep clusters alive.

Each test breaks something for real, asserts that the pool repairs itself (within a generous
deadline: a repair that never comes fails), and measures how long it took; the figures and whether
they meet the issue's targets are printed (``FAULT ...`` lines) and written to
benchmarks/results/faults.json. Targets are reported, not asserted: a wall-clock limit in a test on
a shared 2-core machine would fail on load, not on a defect. What is broken is always restored, so
the tests that follow (and test_pool.py) find a healthy pool.

- a worker container is killed: ALIVE again in the Spark master (target 20 s);
- a cluster record replaced by invalid JSON, then by a newer layout: nothing of that cluster is
  removed or replaced, the agents and the master say so, and it is whole once the record is back;
- a whole host is frozen (``docker pause`` of the simulated host: its agent, etcd member, Docker
  engine and containers stop answering, as after a power loss): its nodes are rescheduled and the
  cluster is whole again (target 60 s), and the application runs again;
- a host is drained with cordon_host.yml: its nodes run elsewhere when the playbook returns;
- the leading DCM master is frozen: a standby leads (target 15 s) and no cluster record is lost;
- one of three etcd members is stopped: deploy, undeploy and status keep working;
- 10 deploy/undeploy runs at once: no host overcommitted, every record consistent, no orphan;
- GC with foreign images and containers: only DCSpark leftovers go, in-use images stay.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_clusters import ETCDCTL, FACE, VIDEO, Pool, newest_reports, playbook

RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks", "results", "faults.json")
FIGURES: dict = {}


def report(capsys, name: str, seconds: float, target: float | None, **detail) -> None:
    met = None if target is None else seconds <= target
    FIGURES[name] = {"seconds": round(seconds, 1), "target": target, "met": met, **detail}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w", encoding="utf-8") as handle:
        json.dump(FIGURES, handle, indent=2, sort_keys=True)
    with capsys.disabled():
        goal = "no time target" if target is None else f"target {target:g} s: {'met' if met else 'MISSED'}"
        print(f"\nFAULT {name}: {seconds:.1f} s ({goal}) {json.dumps(detail, sort_keys=True)}")


def wait_for(what: str, predicate, timeout: float, step: float = 0.5):
    """Poll ``predicate`` until it returns something truthy; returns ``(value, seconds)``."""
    started = time.monotonic()
    last_error = None
    while time.monotonic() - started < timeout:
        try:
            value = predicate()
        except (AssertionError, OSError, ValueError, subprocess.SubprocessError) as exc:
            value, last_error = None, exc
        if value:
            return value, time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout:g} s (last error: {last_error})")


class Faults:
    """The pool, read through any host whose etcd member answers."""

    def __init__(self, pool: Pool) -> None:  # pylint: disable=redefined-outer-name
        self.pool = pool
        from testinfra.utils.ansible_runner import AnsibleRunner

        runner = AnsibleRunner(pool.inventory)
        self.sandbox = {name: runner.get_variables(name).get("dcm_sandbox_name") for name in pool.names}
        self.via = pool.first

    def etcd(self, key: str, prefix: bool = False) -> dict:
        result = self.pool.hosts[self.via].run(f"{ETCDCTL} get {key} {'--prefix' if prefix else ''} -w json")
        assert result.rc == 0, result.stderr
        kvs = json.loads(result.stdout).get("kvs") or []
        return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"])) for kv in kvs}

    def record(self, cluster: str) -> dict | None:
        return self.etcd(f"/dcm/clusters/{cluster}").get(f"/dcm/clusters/{cluster}")

    def placed(self, cluster: str) -> dict:
        return self.placed_of(self.record(cluster) or {})

    def status(self, cluster: str) -> dict:
        return newest_reports(self.etcd("/dcm/status/", prefix=True), cluster)

    def master_json(self, cluster: str) -> dict:
        """The master's ``/json/`` through the pool's gateway, which follows the master wherever it moves
        (etcd read through :attr:`via`: the first host's member may be the one stopped)."""
        password = self.etcd(f"/dcm/secrets/{cluster}")[f"/dcm/secrets/{cluster}"]["secrets"]["ui_password"]
        gateway = self.etcd(f"/dcm/hosts/{self.pool.first}")[f"/dcm/hosts/{self.pool.first}"]
        status, body = self.pool.gateway(f"/clusters/{cluster}/json/", cluster, password,
                                         base=f"https://{gateway['address']}:{gateway['gateway_port']}")
        assert status == 200, f"{cluster}: the gateway answered {status}: {body[:300]}"
        return json.loads(body)

    def alive(self, cluster: str) -> list:
        return sorted(w["id"] for w in self.master_json(cluster).get("workers", []) if w.get("state") == "ALIVE")

    def whole(self, cluster: str, workers: int) -> bool:
        """Every node running on its placed host at the record's generation, and every worker ALIVE."""
        record = self.record(cluster)
        status = self.status(cluster)
        for node, host in self.placed(cluster).items():
            seen = status.get(node) or {}
            if seen.get("host") != host or seen.get("state") != "running" or \
                    seen.get("generation") != record["generation"]:
                return False
        return len(self.alive(cluster)) >= workers

    def local_container(self, host: str) -> str:
        """The simulated host's container on the local engine, found by the sandbox's own labels."""
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=org.dcspark.sandbox={self.sandbox[host]}",
             "--filter", f"label=org.dcspark.sandbox-host={host}"],
            capture_output=True, text=True, check=True).stdout.split()
        assert len(out) == 1, f"{host}: expected one sandbox container, found {out}"
        return out[0]

    def leader(self) -> dict | None:
        return self.etcd("/dcm/leader").get("/dcm/leader")

    def events(self, kind: str | None = None) -> list:
        # keys: /dcm/events/<writer>/<time>, merged by time
        found = self.etcd("/dcm/events/", prefix=True)
        events = [found[key] for key in sorted(found, key=lambda key: (key.rsplit("/", 1)[1], key))]
        return [e for e in events if kind is None or e.get("kind") == kind]

    def overcommitted(self) -> dict:
        hosts = {k.rsplit("/", 1)[1]: v for k, v in self.etcd("/dcm/hosts/", prefix=True).items()}
        used: dict = {}
        for record in self.etcd("/dcm/clusters/", prefix=True).values():
            spec = record["spec"]
            for node, host in self.placed_of(record).items():
                role = node.partition("-")[0]
                cpus = float(spec[role]["cpus"])
                used[host] = used.get(host, 0.0) + cpus
        return {h: (c, hosts[h]["allocatable"]["cpus"]) for h, c in used.items()
                if h in hosts and c > float(hosts[h]["allocatable"]["cpus"]) + 1e-9}

    @staticmethod
    def placed_of(record: dict) -> dict:
        placement = record.get("placement") or {}
        nodes = {"master": placement.get("master"), "driver": placement.get("driver")}
        nodes.update({f"worker-{i}": h for i, h in enumerate(placement.get("workers") or [], start=1)})
        if "history" in (record.get("spec") or {}):  # beside the driver
            nodes["history"] = placement.get("driver")
        return nodes


def run_ok(pool: Pool, name: str, *args: str, timeout: int = 1800) -> str:
    run = playbook(pool.inventory, name, *args, timeout=timeout)
    assert run.returncode == 0, f"{name} {' '.join(args)} failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    return run.stdout


@pytest.fixture(scope="module")
def faults(pool) -> Faults:  # pylint: disable=redefined-outer-name
    return Faults(pool)


@pytest.fixture(scope="module")
def face(pool, faults):
    """face deployed away from the first host (the operator's), so a host that fails can be frozen."""
    if faults.record(FACE):
        run_ok(pool, "undeploy_cluster.yml", "-e", f"cluster={FACE}")
    run_ok(pool, "cordon_host.yml", "-e", f"host={pool.first}", "-e", "state=cordoned", "-e", "reason=fault tests")
    try:
        run_ok(pool, "deploy_cluster.yml", "-e", "spec=face.json", "-e", "run_app=false")
    finally:
        run_ok(pool, "cordon_host.yml", "-e", f"host={pool.first}", "-e", "state=active")
    assert pool.first not in faults.placed(FACE).values()
    yield FACE
    playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={FACE}", timeout=600)


def test_a_killed_worker_is_alive_again(pool, faults, face, capsys):
    host = faults.placed(face)["worker-1"]
    before = faults.alive(face)
    assert len(before) == 3, before
    started = time.monotonic()
    pool.hosts[host].check_output("docker kill spark-worker-face-1")
    alive, _seconds = wait_for("3 workers ALIVE again, one of them new",
                               lambda: (ids := faults.alive(face)) and len(ids) == 3 and ids != before and ids,
                               timeout=60, step=0.25)
    seconds = time.monotonic() - started
    status = faults.status(face)["worker-1"]
    started_by_agent = [e for e in faults.events("start") if e.get("container") == "spark-worker-face-1"]
    report(capsys, "worker_killed_to_alive", seconds, 20, host=host, started_by_agent=bool(started_by_agent))
    assert status["state"] == "running" and status["host"] == host
    assert started_by_agent and started_by_agent[-1]["source"] == host  # its own agent started it


def test_a_record_in_doubt_keeps_every_container_of_its_cluster_until_it_is_understood(pool, faults, face, capsys):
    """face's record replaced by invalid JSON, then by a newer layout: on every host its containers stay (same
    ids, running) through several agent passes and master checks, the agents and the master say so; the
    record put back, the cluster is whole with the same containers."""
    key = f"/dcm/clusters/{face}"
    via = pool.hosts[faults.via]
    raw = via.check_output(f"{ETCDCTL} get {key} --print-value-only")
    record = json.loads(raw)
    hosts = sorted(set(faults.placed(face).values()))

    def running() -> dict:
        return {host: sorted(via_host.check_output(
            f"docker ps -q --no-trunc --filter label=org.dcspark.cluster={face} --filter status=running").split())
            for host, via_host in ((h, pool.hosts[h]) for h in hosts)}

    def put(value: str) -> None:
        encoded = base64.b64encode(value.encode()).decode()
        via.check_output(f"echo {encoded} | base64 -d | {ETCDCTL} put {key}")

    before = running()
    assert sum(len(ids) for ids in before.values()) == len(faults.placed(face)), before
    seen_before = {json.dumps(e, sort_keys=True) for e in faults.events("record-in-doubt")}
    try:
        for value in ("{not json", json.dumps(dict(record, format=2))):
            put(value)
            time.sleep(8)  # four agent passes, a master check
            assert running() == before, value
        doubts = [e for e in faults.events("record-in-doubt")
                  if e.get("cluster") == face and json.dumps(e, sort_keys=True) not in seen_before]
        sources = {e["source"] for e in doubts}
        assert set(hosts) <= sources, (hosts, doubts)  # every agent holding a node of face said so
        assert any(source.startswith("master-") for source in sources), doubts  # and the leading master
        assert any("does not hold JSON" in e["message"] for e in doubts)
        assert any("format 2, newer than" in e["message"] for e in doubts)
    finally:
        put(raw)
    _value, seconds = wait_for("face understood again and whole", lambda: faults.whole(face, 3), timeout=60)
    assert running() == before  # the same containers: nothing was replaced
    report(capsys, "record_in_doubt_kept", seconds, None, hosts=hosts, held=sum(len(v) for v in before.values()))


def test_a_frozen_host_has_its_nodes_moved_and_the_app_runs_again(pool, faults, face, capsys):
    placed = faults.placed(face)
    candidates = [h for h in pool.names if h != pool.first]
    victim = max(candidates, key=lambda h: (list(placed.values()).count(h), h))
    moving = sorted(node for node, host in placed.items() if host == victim)
    assert moving, f"face has no node on {victim}: {placed}"
    box = faults.local_container(victim)
    subprocess.run(["docker", "pause", box], check=True, capture_output=True)
    started = time.monotonic()
    try:
        wait_for(f"{victim}'s nodes moved and face whole again",
                 lambda: victim not in faults.placed(face).values() and faults.whole(face, 3),
                 timeout=240, step=1)
        seconds = time.monotonic() - started
        after = faults.placed(face)
        moves = {node: after[node] for node in moving}
        report(capsys, "host_frozen_to_cluster_whole", seconds, 60, host=victim, moved=moves)
        assert all(host != victim for host in after.values())
        assert any(e.get("cluster") == face and victim in e["message"] for e in faults.events("reschedule"))
        # the application runs again on the repaired cluster (an unchanged deploy runs it)
        out = run_ok(pool, "deploy_cluster.yml", "-e", "spec=face.json")
        assert "face: OK" in out, out[-4000:]
    finally:
        subprocess.run(["docker", "unpause", box], check=True, capture_output=True)
    # back from the dead, the host re-registers and its agent removes the nodes that moved away
    wait_for(f"{victim} registered again without face containers",
             lambda: faults.etcd(f"/dcm/hosts/{victim}") and not pool.containers(victim, FACE), timeout=120, step=2)


def test_a_drained_host_is_emptied_and_the_cluster_stays_whole(pool, faults, face, capsys):
    """The master's host is drained: the master moves, and the UI gateway follows it with no manual step
    (``whole`` reads the master's page through the gateway)."""
    placed = faults.placed(face)
    victim = placed["master"]
    moving = sorted(node for node, host in placed.items() if host == victim)
    started = time.monotonic()
    try:
        out = run_ok(pool, "cordon_host.yml", "-e", f"host={victim}", "-e", "state=drained",
                     "-e", "reason=fault tests")  # returns once the nodes run elsewhere
        seconds = time.monotonic() - started
        after = faults.placed(face)
        assert victim not in after.values(), after
        assert f"{victim} is drained" in out
        # the playbook waits for the containers; the Spark daemons then need their start-up
        assert after["master"] != victim
        wait_for("face whole again, its master's page served by the gateway", lambda: faults.whole(face, 3),
                 timeout=120)
        whole = time.monotonic() - started
        wait_for(f"no face container left on {victim}", lambda: not pool.containers(victim, FACE), timeout=60)
        report(capsys, "drain_to_nodes_running_elsewhere", seconds, None, host=victim, whole_after=round(whole, 1),
               moved={node: after[node] for node in moving})
    finally:
        run_ok(pool, "cordon_host.yml", "-e", f"host={victim}", "-e", "state=active")
    assert not faults.etcd(f"/dcm/cordon/{victim}")


def test_a_frozen_leader_is_replaced_and_no_record_is_lost(pool, faults, face, capsys):
    leader = faults.leader()
    assert leader, "no DCM master leads"
    records = faults.etcd("/dcm/clusters/", prefix=True)
    host = pool.hosts[leader["name"]]
    host.check_output("systemctl kill --signal=SIGSTOP dcm-master")
    started = time.monotonic()
    try:
        new, _s = wait_for("another master leads",
                           lambda: (now := faults.leader()) and now["name"] != leader["name"] and now,
                           timeout=60, step=0.25)
        seconds = time.monotonic() - started
        report(capsys, "leader_frozen_to_standby_leading", seconds, 15, old=leader["name"], new=new["name"])
    finally:
        host.check_output("systemctl kill --signal=SIGCONT dcm-master")
    assert faults.etcd("/dcm/clusters/", prefix=True) == records
    # the old leader wakes up as a standby: the lead stays where it went
    time.sleep(5)
    assert faults.leader()["name"] == new["name"]
    assert any(e["kind"] == "leader" and new["name"] in e["message"] for e in faults.events("leader"))


def test_deploy_undeploy_and_status_work_with_one_etcd_member_stopped(pool, faults, face, capsys):
    # the first member: every client lists it first, so each must skip it
    stopped = pool.first
    faults.via = next(h for h in pool.names if h != stopped)
    pool.hosts[stopped].check_output("systemctl stop etcd")
    started = time.monotonic()
    try:
        run_ok(pool, "deploy_cluster.yml", "-e", "spec=video_synopsis.json", "-e", "run_app=false")
        assert faults.whole(VIDEO, 2)
        status = run_ok(pool, "status.yml")
        assert "video-synopsis gen" in status and "face gen" in status
        run_ok(pool, "undeploy_cluster.yml", "-e", f"cluster={VIDEO}")
        assert faults.record(VIDEO) is None
        assert not any(pool.containers(h, VIDEO) for h in pool.names)
        report(capsys, "deploy_status_undeploy_with_one_etcd_member_down", time.monotonic() - started, None,
               stopped=stopped)
    finally:
        pool.hosts[stopped].check_output("systemctl start etcd")
        faults.via = pool.first
    wait_for("the stopped member healthy again",
             lambda: pool.hosts[stopped].run(f"{ETCDCTL} endpoint health").rc == 0, timeout=60)


def test_ten_concurrent_deploy_and_undeploy_runs_leave_a_consistent_pool(pool, faults, face, capsys):
    """Deploys and undeploys of two clusters (face and video-synopsis), all started at once.

    Both run before the storm, so every undeploy has something to remove while deploys of the
    same clusters race with it.
    """
    run_ok(pool, "deploy_cluster.yml", "-e", "spec=video_synopsis.json", "-e", "run_app=false")
    runs = [("deploy_cluster.yml", "-e", "spec=video_synopsis.json", "-e", "run_app=false")] * 3 + \
           [("undeploy_cluster.yml", "-e", f"cluster={VIDEO}")] * 2 + \
           [("deploy_cluster.yml", "-e", "spec=face.json", "-e", "run_app=false")] * 3 + \
           [("undeploy_cluster.yml", "-e", f"cluster={FACE}")] * 2
    overcommits: list = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                found = faults.overcommitted()
            except AssertionError:
                found = {}
            if found:
                overcommits.append(found)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(runs)) as executor:
        results = list(executor.map(lambda args: playbook(pool.inventory, *args, timeout=1800), runs))
    seconds = time.monotonic() - started
    done.set()
    watcher.join(5)
    # A deploy whose cluster an undeploy removed after the deploy's reservation (while it rolled or waited)
    # lost the race and must say so; any other failure, and any failed undeploy, is a fault.
    # molecule's ansible.cfg sends a failed task's message to stderr: keep the end of both
    lost, failed = [], []
    for args, r in zip(runs, results):
        if r.returncode == 0:
            continue
        said = r.stdout + r.stderr
        if args[0] == "deploy_cluster.yml" and ("was undeployed while this run waited" in said
                                                or "was undeployed during this rollout" in said):
            lost.append(" ".join(args))
        else:
            # the failing task's message first: CI's summary shows only the start of an assertion
            why = [line.strip() for line in said.splitlines() if "msg:" in line or "fatal:" in line][:4]
            failed.append((" ".join(args), why, r.stdout[-1500:], r.stderr[-1500:]))
    assert not overcommits, overcommits[:3]
    # Whatever order they landed in, each cluster is either deployed and whole, or gone entirely.
    for cluster, workers in ((FACE, 3), (VIDEO, 2)):
        if faults.record(cluster):
            wait_for(f"{cluster} whole", lambda c=cluster, w=workers: faults.whole(c, w), timeout=300, step=2)
        else:
            wait_for(f"no {cluster} container left", lambda c=cluster: not any(
                pool.containers(h, c) for h in pool.names), timeout=120, step=2)
    report(capsys, "ten_concurrent_runs", seconds, None, failed=len(failed), lost_to_an_undeploy=len(lost),
           deployed=sorted(c for c in (FACE, VIDEO) if faults.record(c)))
    # every run finished on its own terms: undeploys succeed, deploys of a fitting spec succeed unless an
    # undeploy removed their cluster after them (which they said)
    assert not failed, failed
    # and the pool can still be driven to a known state
    run_ok(pool, "undeploy_cluster.yml", "-e", f"cluster={VIDEO}")
    run_ok(pool, "deploy_cluster.yml", "-e", "spec=face.json", "-e", "run_app=false")
    assert faults.whole(FACE, 3)


def test_gc_removes_only_dcspark_leftovers(pool, faults, face, capsys):
    host = next(h for h in pool.names if h in faults.placed(face).values())
    box = pool.hosts[host]
    run_label = f"org.dcspark.test=gc-{os.getpid()}"
    # A foreign image (no DCSpark label) made from the host's own /bin/true, a foreign exited
    # container; DCSpark leftovers: an image of a cluster that is gone and an exited node of it.
    box.check_output("head -c 4000000 /dev/urandom > /tmp/gc-blob")
    box.check_output(f"tar -C / -ch bin/true lib/x86_64-linux-gnu/libc.so.6 lib64/ld-linux-x86-64.so.2 "
                     f"| docker import --change 'LABEL {run_label}' - gc-foreign:1")
    box.check_output(f"tar -C /tmp -c gc-blob | docker import --change 'LABEL {run_label}' "
                     "--change 'LABEL org.dcspark.managed=true org.dcspark.cluster=gone' - gc-leftover:1")
    foreign = box.check_output(f"docker create --label {run_label} gc-foreign:1 /bin/true")
    leftover = box.check_output(
        f"docker create --label {run_label} --label org.dcspark.managed=true --label org.dcspark.cluster=gone "
        f"--label org.dcspark.node=worker-1 --label org.dcspark.spec-hash=old gc-foreign:1 /bin/true")
    box.check_output(f"docker start {foreign} {leftover} && docker wait {foreign} {leftover}")
    leftover_image = box.check_output("docker images -q --no-trunc gc-leftover:1")
    in_use = sorted(set(box.check_output(
        "docker ps --filter label=org.dcspark.managed=true --format '{{.Image}}'").split()))
    assert in_use, f"no running DCSpark container on {host}"
    try:
        started = time.monotonic()
        out = run_ok(pool, "gc.yml", "-e", "gc_threshold=0", "--limit", host)
        seconds = time.monotonic() - started
        containers = box.check_output(f"docker ps -aq --no-trunc --filter label={run_label}").split()
        assert foreign in containers, "the foreign container was removed"
        assert leftover not in containers, "the DCSpark leftover container was kept"
        assert box.run("docker image inspect gc-foreign:1").rc == 0, "the foreign image was removed"
        assert box.run(f"docker image inspect {leftover_image}").rc != 0, "the DCSpark leftover image was kept"
        for image in in_use:  # what running nodes use: kept
            assert box.run(f"docker image inspect {image}").rc == 0, image
        assert faults.whole(face, 3)
        summary = [line.strip() for line in out.splitlines() if "images:" in line or "containers:" in line]
        report(capsys, "gc_pass", seconds, None, host=host, summary=summary[-2:])
    finally:
        box.run(f"docker rm -f {foreign} {leftover}")
        box.run("docker rmi -f gc-foreign:1 gc-leftover:1")
        box.run("rm -f /tmp/gc-blob")
