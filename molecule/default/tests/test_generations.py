"""Generations and rollback on the scenario's pool, with the real playbooks, agents and registry.

One story, in order (each test builds on the one before, as an operator's week would):
generation A is specs/face.json; B changes one package version (numpy 2.1.3 -> 2.1.2) and rolls
onto the running cluster, workers first and the master last; a rollback returns to A and the
application proves the versions; a refresh of A's unchanged spec rebuilds new digests; a rollback
with a retention of 2 prunes B; a rollback to B then fails and changes nothing; gc.yml deletes B's
images from the registry and its disk use drops; every retained generation still deploys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest
from test_clusters import AS_PULLER, FACE, REPO, Pool, history_apps, playbook, playbook_process

STATE: dict = {}  # what each step learned, for the steps after it
KEEP_2 = ("-e", "dcm_generations_keep=2")


def deployed_generation(run) -> int:
    found = re.findall(r"cluster face, generation (\d+)", run.stdout)
    assert found, run.stdout[-3000:] + run.stderr[-2000:]
    return int(found[-1])


def ok(run, what: str) -> None:
    assert run.returncode == 0, f"{what} failed:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"


def versions(run) -> str:
    """The application's verdict: it checks every executor's versions against the spec's --expect-* arguments."""
    assert "face: OK" in run.stdout, run.stdout[-5000:]
    return run.stdout


def registry_bytes(pool: Pool) -> int:
    return int(pool.hosts[pool.first].check_output("du -sb /var/lib/docker-registry").split()[0])


def manifest_status(pool: Pool, reference: str) -> int:
    """HTTP status of ``reference`` (registry/repo@digest) in the pool registry, asked from the first host."""
    registry, _sep, rest = reference.partition("/")
    repository, _sep, digest = rest.partition("@")
    out = pool.hosts[pool.first].check_output(
        f"curl -s -o /dev/null -w '%%{{http_code}}' --cacert /etc/dcm/pki/ca.crt -I {AS_PULLER} "
        "-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "
        "-H 'Accept: application/vnd.oci.image.manifest.v1+json' https://%s/v2/%s/manifests/%s",
        registry, repository, digest)
    return int(out)


def created(pool: Pool, record: dict) -> dict:
    """When each node's container of ``record`` was created: ``{node: iso time}`` (one kernel clock)."""
    placement = record["placement"]
    hosts = {"master": placement["master"], "driver": placement["driver"]}
    hosts.update({f"worker-{i}": host for i, host in enumerate(placement["workers"], start=1)})
    names = {"master": "spark-master-face", "driver": "spark-driver-face"}
    names.update({f"worker-{i}": f"spark-worker-face-{i}" for i in range(1, len(placement["workers"]) + 1)})
    return {node: pool.inspect(hosts[node], names[node])["Created"] for node in hosts}


def probe(pool: Pool) -> str:
    """What face's driver reads from its volume."""
    return pool.hosts[STATE["driver_host"]].check_output("docker exec spark-driver-face cat /data/probe").strip()


@pytest.fixture(scope="module")
def spec_b(tmp_path_factory):
    """face.json with numpy 2.1.2 instead of 2.1.3 (and the application told to expect it)."""
    folder = tmp_path_factory.mktemp("face-b")
    spec = json.loads(open(os.path.join(REPO, "specs", "face.json"), encoding="utf-8").read())
    spec["runtime"]["pip_packages"] = [p.replace("numpy==2.1.3", "numpy==2.1.2") for p in spec["runtime"]["pip_packages"]]
    spec["app"]["args"] = [a.replace("2.1.3", "2.1.2") for a in spec["app"]["args"]]
    assert "numpy==2.1.2" in spec["runtime"]["pip_packages"] and "2.1.2" in spec["app"]["args"]
    shutil.copytree(os.path.join(REPO, "specs", "apps"), folder / "apps")
    path = folder / "face.json"
    path.write_text(json.dumps(spec, indent=2))
    return str(path)


@pytest.fixture(scope="module", autouse=True)
def fresh_face(pool):
    """Start without a face cluster or its history (so generations count from 1 here); purge it at the end."""
    ok(playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={FACE}", "-e", "purge=true", timeout=900),
       "undeploy")
    assert pool.etcd_get("/dcm/generations/face/", prefix=True) == {}
    yield
    playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={FACE}", "-e", "purge=true", timeout=900)


def test_a_package_change_is_a_new_generation_rolled_out_workers_first_master_last(pool, spec_b):
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", "spec=face.json", "-e", "run_app=false")
    ok(run, "deploy of generation A")
    STATE["a"] = deployed_generation(run)
    assert STATE["a"] == 1
    STATE["a_images"] = pool.cluster(FACE)["images"]
    before = created(pool, pool.cluster(FACE))
    # face's driver keeps /data on a volume (specs/face.json): what generation A writes there stays
    STATE["driver_host"] = pool.cluster(FACE)["placement"]["driver"]
    wrote = pool.hosts[STATE["driver_host"]].run("docker exec spark-driver-face sh -c 'echo from-generation-a > /data/probe'")
    assert wrote.rc == 0, wrote.stderr

    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", f"spec={spec_b}")
    ok(run, "deploy of generation B")
    versions(run)
    STATE["b"] = deployed_generation(run)
    record = pool.cluster(FACE)
    assert STATE["b"] == 2 and "rollout" not in record
    assert "numpy==2.1.2" in record["spec"]["runtime"]["pip_packages"]
    STATE["b_images"] = record["images"]
    assert set(STATE["b_images"].values()).isdisjoint(STATE["a_images"].values())
    assert "rolling change from generation 1" in run.stdout, run.stdout[-4000:]
    after = created(pool, record)
    assert all(after[node] > before[node] for node in after), (before, after)  # every node was replaced
    assert record["placement"]["driver"] == STATE["driver_host"]  # kept with its volume
    assert probe(pool) == "from-generation-a"
    # workers two at a time (each step waits for the moved ones to run healthy), the driver, the master last
    assert max(after["worker-1"], after["worker-2"]) < after["worker-3"] < after["driver"] < after["master"], after


def test_a_rollback_returns_to_the_old_versions_with_the_same_name_and_endpoints(pool):
    run = playbook(pool.inventory, "rollback_cluster.yml", "-e", f"cluster={FACE}")
    ok(run, "rollback")
    versions(run)  # the application checked numpy 2.1.3 on the driver and every executor
    record = pool.cluster(FACE)
    STATE["rollback"] = record["generation"]
    assert record["generation"] == 3 and record["images"] == STATE["a_images"]
    assert "numpy==2.1.3" in record["spec"]["runtime"]["pip_packages"]
    assert record["name"] == FACE and "Spark master: spark://spark-master-face:7077" in run.stdout
    history = pool.etcd_get("/dcm/generations/face/", prefix=True)
    assert sorted(entry["generation"] for entry in history.values()) == [1, 2, 3]
    assert history["/dcm/generations/face/0000000003"]["rollback_of"] == 1
    assert record["placement"]["driver"] == STATE["driver_host"] and probe(pool) == "from-generation-a"
    # face's history server (specs/face.json) was replaced with its generation's image, beside the driver on
    # the same volume: it lists the application generation B ran as well as the rollback's own run
    apps = [job["app_id"] for job in pool.etcd_get(f"/dcm/jobs/{FACE}/", prefix=True).values()
            if job.get("app_id") and job["state"] == "succeeded"]
    assert len(apps) >= 2, apps
    listed: list = []
    for _attempt in range(30):  # the server scans its folder every 10 s
        listed = history_apps(pool, FACE, pool.ui_password(FACE))
        if set(apps) <= set(listed):
            break
        time.sleep(2)
    assert set(apps) <= set(listed), (apps, listed)


def test_a_refresh_of_an_unchanged_spec_builds_new_digests(pool, capsys):
    """A refresh rebuilds every step and pushes new digests. gc.yml is started while it builds: the
    registry's garbage collection waits until the pushes end (it would delete the blobs of a push in
    progress and restart the registry under it), and the images pushed then pull and run."""
    # all at once: the rolling change has its own tests above, this one is about the new digests
    deploy = playbook_process(pool.inventory, "deploy_cluster.yml", "-e", "spec=face.json", "-e", "refresh=true",
                              "-e", "dcm_rollout_strategy=all-at-once")
    collections: list = []
    collector = None
    out = []
    for line in deploy.stdout:  # read on while gc.yml runs, so the deploy never blocks on its output
        out.append(line)
        if collector is None and "Build step 1 of 2" in line:
            collector = threading.Thread(target=lambda: collections.append(
                playbook(pool.inventory, "gc.yml", "-e", "gc_images=false")))
            collector.start()
    run = subprocess.CompletedProcess(deploy.args, deploy.wait(timeout=600), "".join(out), deploy.stderr.read())
    ok(run, "refresh deploy")
    assert collector is not None, "the refresh built nothing: " + run.stdout[-3000:]
    collector.join(timeout=1200)
    ok(collections[0], "gc.yml during the refresh's build")
    said = " ".join(collections[0].stdout.split())
    waited = re.search(r"waited ([0-9.]+) s for: build of face, tag ", said)
    assert waited, "the registry's garbage collection did not wait for the build's pushes: " + said[-3000:]
    with capsys.disabled():
        print(f"\nREGISTRY LOCK gc.yml started during the refresh's build waited {waited.group(1)} s for its pushes")
    versions(run)
    record = pool.cluster(FACE)
    STATE["refresh"] = record["generation"]
    STATE["refresh_images"] = record["images"]
    assert record["generation"] == 4 and record["spec_hash"] == pool.etcd_get(
        "/dcm/generations/face/0000000001")["/dcm/generations/face/0000000001"]["spec_hash"]
    assert set(record["images"].values()).isdisjoint(STATE["a_images"].values())
    origin = pool.etcd_get("/dcm/generations/face/0000000004")["/dcm/generations/face/0000000004"]["origin"]
    assert origin == "refresh"


def test_a_rollback_to_a_pruned_generation_fails_and_changes_nothing(pool):
    # return to A once more, retaining 2: generations 1 to 3 leave the history (B's images with them)
    run = playbook(pool.inventory, "rollback_cluster.yml", "-e", f"cluster={FACE}", "-e", "generation=3",
                   "-e", "run_app=false", "-e", "dcm_rollout_strategy=all-at-once", *KEEP_2)
    ok(run, "rollback to generation 3")
    history = pool.etcd_get("/dcm/generations/face/", prefix=True)
    assert sorted(entry["generation"] for entry in history.values()) == [4, 5]
    queued = pool.etcd_get("/dcm/registry/prune/face/", prefix=True)
    assert sorted(entry["generation"] for entry in queued.values()) == [1, 2, 3]

    before = (pool.state(), pool.cluster(FACE), history)
    run = playbook(pool.inventory, "rollback_cluster.yml", "-e", f"cluster={FACE}", "-e", f"generation={STATE['b']}")
    assert run.returncode != 0
    said = " ".join((run.stdout + run.stderr).split())
    assert "cluster face has no generation 2 any more (retained: 4, 5)" in said, said[-3000:]
    assert (pool.state(), pool.cluster(FACE), pool.etcd_get("/dcm/generations/face/", prefix=True)) == before


def test_pruning_frees_registry_disk_and_keeps_what_is_retained(pool, capsys):
    before = registry_bytes(pool)
    run = playbook(pool.inventory, "gc.yml", "-e", "dcm_registry_prune_grace=0", "-e", "gc_images=false")
    ok(run, "gc.yml")
    after = registry_bytes(pool)
    with capsys.disabled():
        print(f"\nREGISTRY before {before} bytes, after {after} bytes: freed {before - after} bytes")
    assert after < before, (before, after)
    for role in ("master", "worker", "driver", "runtime"):
        assert manifest_status(pool, STATE["b_images"][role]) == 404, role  # B is gone
        assert manifest_status(pool, STATE["a_images"][role]) == 200, role  # A runs (generation 5)
        assert manifest_status(pool, STATE["refresh_images"][role]) == 200, role  # retained (generation 4)
    assert pool.etcd_get("/dcm/registry/prune/", prefix=True) == {}


@pytest.mark.parametrize("generation", [4, 5])
def test_every_retained_generation_still_deploys(pool, generation):
    run = playbook(pool.inventory, "rollback_cluster.yml", "-e", f"cluster={FACE}", "-e", f"generation={generation}",
                   "-e", "dcm_rollout_strategy=all-at-once", "-e", "run_app=false")
    ok(run, f"rollback to generation {generation}")
    record = pool.cluster(FACE)
    wanted = STATE["refresh_images"] if generation == 4 else STATE["a_images"]
    assert record["images"] == wanted and "rollout" not in record
    assert "every node replaced at once" in run.stdout


def test_an_undeploy_keeps_the_clusters_volume_and_purge_removes_it(pool):
    host = pool.hosts[STATE["driver_host"]]
    ok(playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={FACE}", timeout=900), "undeploy")
    assert pool.cluster(FACE) is None and not pool.containers(STATE["driver_host"], FACE)
    path = host.check_output("docker volume inspect -f '{{.Mountpoint}}' dcm-face-data")
    assert host.check_output(f"cat {path}/probe").strip() == "from-generation-a"
    events = host.check_output("docker volume inspect -f '{{.Mountpoint}}' dcm-face.history")
    assert host.check_output(f"ls {events}").split(), "the history volume lost its event logs"
    ok(playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={FACE}", "-e", "purge=true", timeout=900),
       "undeploy with purge")
    for name in pool.names:
        assert pool.hosts[name].run("docker volume inspect dcm-face-data").rc != 0, f"dcm-face-data left on {name}"
        assert pool.hosts[name].run("docker volume inspect dcm-face.history").rc != 0, f"dcm-face.history left on {name}"
