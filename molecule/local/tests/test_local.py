"""Local mode on one simulated host (molecule verifier): the paper's one-machine mode, run for real.

The host is etcd's only member, the registry, the UI gateway, the DCM master and agent, and every Spark
node of face at once, on the bridge network backend, with inventories/local's settings. What is checked
is what a user of local mode does: deploy face (its images built on that host), run its application,
open its UIs through the gateway, and undeploy it leaving nothing behind.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "default", "tests"))
from test_clusters import ETCDCTL, FACE, Pool, history_apps, playbook  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def pool(request) -> Pool:
    inventory = request.config.option.ansible_inventory
    assert inventory, "run through molecule (testinfra's --ansible-inventory names the scenario's inventory)"
    return Pool(inventory)


def test_one_host_is_the_whole_pool(pool):
    assert pool.names == [pool.first]
    host = pool.hosts[pool.first]
    members = host.check_output(f"{ETCDCTL} member list -w simple")
    assert len(members.splitlines()) == 1, members  # etcd's only member
    for unit in ("etcd", "docker-registry", "nginx", "dcm-agent", "dcm-master"):  # nginx: the registry's front
        assert host.service(unit).is_running, unit
    assert "dcm-gateway" in host.check_output("docker ps --format '{{.Names}}'").split()
    record = pool.etcd_get(f"/dcm/hosts/{pool.first}")[f"/dcm/hosts/{pool.first}"]
    assert record["gateway_port"] == 8443
    # no swarm on the bridge backend
    assert host.check_output("docker info --format '{{.Swarm.LocalNodeState}}'") == "inactive"


def test_face_deploys_runs_its_application_and_undeploys_leaving_nothing(pool):
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", "spec=face.json", timeout=3000)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "face: OK" in run.stdout, run.stdout[-4000:]
    record = pool.cluster(FACE)
    assert record["network"] == {"name": f"dcm-{FACE}", "driver": "bridge"}
    assert set(record["placement"]["workers"]) == {record["placement"]["master"], record["placement"]["driver"]} == {
        pool.first}
    host = pool.hosts[pool.first]
    assert host.check_output(f"docker network inspect -f '{{{{.Driver}}}}' dcm-{FACE}") == "bridge"
    # every worker ALIVE and the deploy's application in the history server, through the gateway
    alive = sorted(w["host"] for w in pool.master_json(FACE)["workers"] if w["state"] == "ALIVE")
    assert alive == [f"spark-worker-{FACE}-{i}" for i in range(1, 4)], alive
    apps = sorted(job["app_id"] for job in pool.etcd_get(f"/dcm/jobs/{FACE}/", prefix=True).values()
                  if job.get("app_id") and job["state"] == "succeeded")
    assert apps, "the deploy's application has no job record"
    password = pool.ui_password(FACE)
    for _attempt in range(30):  # the server scans its folder every 10 s
        if apps[-1] in history_apps(pool, FACE, password):
            break
        time.sleep(2)
    assert apps[-1] in history_apps(pool, FACE, password)

    undeploy = playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={FACE}", "-e", "purge=true",
                        timeout=900)
    assert undeploy.returncode == 0, undeploy.stdout[-4000:] + undeploy.stderr[-2000:]
    assert pool.cluster(FACE) is None and pool.containers(pool.first, FACE) == []
    assert host.check_output(f"docker network ls -q --filter label=org.dcspark.cluster={FACE}") == ""
    assert host.check_output(f"docker volume ls -q --filter label=org.dcspark.cluster={FACE}") == ""
