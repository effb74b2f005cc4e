"""Generations, rollback, rolling changes and the prune queue through the modules, on a real etcd with TLS.

The agents are not running here: where a step waits for nodes, the test writes the reports an agent
would (tests/integration/test_agent.py and the sandbox suite cover the agents themselves).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from support import run_module
from test_etcd_store import raw_spec, register

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.state.events import read_events
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore

pytestmark = pytest.mark.etcd

REG = "10.0.0.11:5000"


def build(tag: str) -> dict:
    return {role: f"{REG}/dcspark-{role}@sha256:{(tag * 64)[:64]}" for role in ("runtime", "master", "worker", "driver")}


def history(client) -> dict:
    kvs, _rev = client.get_prefix(keys.generations_prefix("face"))
    return {int(json.loads(kv.value)["generation"]): json.loads(kv.value) for kv in kvs}


def queue(client) -> dict:
    kvs, _rev = client.get_prefix(keys.REGISTRY_PRUNE)
    return {kv.key: json.loads(kv.value) for kv in kvs}


@pytest.fixture
def pool(clean_etcd):
    store = DcmStore(clean_etcd.client)
    for host in ("h1", "h2"):
        register(store, host, 8, 16)
    return clean_etcd


def deploy(pool, tag: str, workers: int = 2, **extra) -> dict:
    args = {"spec": raw_spec("face", workers=workers), "images": build(tag), "deployed_by": "pytest",
            "strategy": "all-at-once", **pool.module_args(), **extra}
    result = run_module("dcm_cluster", args)
    assert result.get("failed") is not True, result
    return result


def test_each_change_is_a_generation_and_only_the_newest_are_retained(pool):
    client = pool.client
    for tag in "abc":
        deploy(pool, tag, keep=2)
    assert sorted(history(client)) == [2, 3]
    assert history(client)[3]["images"] == build("c") and history(client)[3]["deployed_by"] == "pytest"
    assert "secret" not in json.dumps(history(client))
    assert [entry["generation"] for entry in queue(client).values()] == [1]
    assert list(queue(client).values())[0]["images"] == build("a")

    unchanged = deploy(pool, "c", keep=2)
    assert unchanged["changed"] is False and sorted(history(client)) == [2, 3]

    info = run_module("dcm_pool_info", {"cluster": "face", **pool.module_args()})
    shown = info["clusters"][0]["generations"]
    assert [g["generation"] for g in shown] == [3, 2] and shown[0]["current"] and not shown[1]["current"]
    assert shown[0]["line"].startswith("generation 3 (current): deploy by pytest at ")


def test_a_rollback_is_a_new_generation_with_the_old_spec_and_images(pool):
    client = pool.client
    deploy(pool, "a", workers=2)
    deploy(pool, "b", workers=3)
    before = pool.dump()
    args = {"name": "face", "rollback": True, "strategy": "all-at-once", **pool.module_args()}
    planned = run_module("dcm_cluster", args, check=True)
    assert planned["rollback_of"] == 1 and planned["generation"] == 3 and pool.dump() == before

    back = run_module("dcm_cluster", args)
    assert back["changed"] is True and back["rollback_of"] == 1 and back["generation"] == 3
    record = json.loads(client.get(keys.cluster_key("face")).value)
    assert record["images"] == build("a") and record["spec"]["worker"]["count"] == 2
    assert history(client)[3]["origin"] == "rollback" and history(client)[3]["rollback_of"] == 1
    # the default target is now generation 2: "undo" the rollback
    assert run_module("dcm_cluster", args, check=True)["rollback_of"] == 2


def test_a_rollback_to_a_pruned_or_unfitting_generation_changes_nothing(pool):
    client = pool.client
    deploy(pool, "a", workers=1, keep=2)
    deploy(pool, "b", workers=4, keep=2)
    deploy(pool, "c", workers=2, keep=2)
    before = pool.dump()
    gone = run_module("dcm_cluster", {"name": "face", "rollback": True, "generation": 1, **pool.module_args()})
    assert gone.get("failed") is True and "no generation 1 any more (retained: 2, 3)" in gone["msg"]
    assert pool.dump() == before

    # generation 2 wants 4 workers of 1 CPU; another cluster takes all but the 4 CPUs face uses now
    hog = run_module("dcm_cluster", {"spec": raw_spec("hog", workers=10, worker_cpus=1), **pool.module_args()})
    assert hog.get("failed") is not True, hog
    before = pool.dump()
    tight = run_module("dcm_cluster", {"name": "face", "rollback": True, "generation": 2, **pool.module_args()})
    assert tight.get("failed") is True, tight
    assert "generation 2 no longer fits the pool, nothing was changed" in tight["msg"]
    assert pool.dump() == before
    missing = run_module("dcm_cluster", {"name": "nope", "rollback": True, **pool.module_args()})
    assert missing.get("failed") is True and "cluster nope has no record" in missing["msg"]


def report(client, nodes: list, generation: int, health: str = "healthy") -> None:
    """What an agent writes for nodes running at ``generation`` (one host's agent: where they run does not
    matter to a rollout)."""
    for node in nodes:
        value = {"state": "running", "generation": generation, "health": health}
        client.put(keys.status_key("h1", "face", node), json.dumps(value))


def test_a_rolling_change_moves_workers_then_driver_then_master_as_nodes_become_healthy(pool):
    client = pool.client
    deploy(pool, "a", workers=3)
    changed = run_module("dcm_cluster", {"spec": raw_spec("face", workers=3), "images": build("b"),
                                         "strategy": "rolling", **pool.module_args()})
    assert changed["rollout"]["from"] == 1 and changed["rollout"]["pending"] == [
        "worker-1", "worker-2", "worker-3", "driver", "master"]

    args = {"name": "face", "batch": 2, "step_timeout": 60, "poll": 0.2, **pool.module_args()}
    planned = run_module("dcm_rollout", args, check=True)
    assert [s["nodes"] for s in planned["steps"]] == [["worker-1", "worker-2"], ["worker-3"], ["driver"], ["master"]]
    assert json.loads(client.get(keys.cluster_key("face")).value)["rollout"]["done"] == []

    seen = []

    def agent():
        """Report each moved node healthy at generation 2, the way the agents would, noting the order."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            record = json.loads(client.get(keys.cluster_key("face")).value)
            done = (record.get("rollout") or {}).get("done")
            if done is None:
                return
            for node in done:
                if node not in seen:
                    seen.append(node)
                    report(client, [node], 2)
            time.sleep(0.1)

    thread = threading.Thread(target=agent)
    thread.start()
    result = run_module("dcm_rollout", args)
    thread.join()
    assert result.get("failed") is not True, result
    assert [s["nodes"] for s in result["steps"]] == [["worker-1", "worker-2"], ["worker-3"], ["driver"], ["master"]]
    assert seen == ["worker-1", "worker-2", "worker-3", "driver"]
    assert "rollout" not in json.loads(client.get(keys.cluster_key("face")).value)
    said = [e["message"] for e in read_events(client, 20, "face") if e["kind"] == "rollout"]
    assert said[0] == "cluster face: worker-1, worker-2 moved from generation 1 to 2", said
    assert said[-1] == "cluster face: master moved from generation 1 to 2 (the rollout is complete)", said
    assert run_module("dcm_rollout", args)["changed"] is False


def test_a_rolling_step_that_never_gets_healthy_fails_and_stays_put(pool):
    client = pool.client
    deploy(pool, "a", workers=2)
    run_module("dcm_cluster", {"spec": raw_spec("face", workers=2), "images": build("b"), **pool.module_args()})
    args = {"name": "face", "batch": 1, "step_timeout": 2, "poll": 0.2, **pool.module_args()}
    report(client, ["worker-1"], 2, health="unhealthy")
    stuck = run_module("dcm_rollout", args)
    assert stuck.get("failed") is True and "worker-1: health unhealthy" in stuck["msg"]
    assert "deploy again to continue, or roll back" in stuck["msg"]
    assert json.loads(client.get(keys.cluster_key("face")).value)["rollout"]["done"] == ["worker-1"]


def test_a_rollout_whose_cluster_is_undeployed_meanwhile_says_so(pool):
    client = pool.client
    deploy(pool, "a", workers=2)
    run_module("dcm_cluster", {"spec": raw_spec("face", workers=2), "images": build("b"), **pool.module_args()})
    args = {"name": "face", "batch": 1, "step_timeout": 60, "poll": 0.2, **pool.module_args()}
    # worker-1 never gets healthy, so the rollout waits on its first step while an undeploy lands
    remover = threading.Timer(3, lambda: DcmStore(client).remove_cluster("face"))
    remover.start()
    gone = run_module("dcm_rollout", args)
    remover.join()
    assert gone.get("failed") is True, gone
    assert "cluster face was undeployed during this rollout" in gone["msg"], gone["msg"]
    assert client.get(keys.cluster_key("face")) is None


def test_undeploy_keeps_the_generations_and_a_redeploy_goes_on_from_them(pool):
    client = pool.client
    deploy(pool, "a")
    deploy(pool, "b")
    removed = run_module("dcm_cluster", {"state": "absent", "name": "face", **pool.module_args()})
    assert removed["changed"] is True and removed["purged"] == []
    assert sorted(history(client)) == [1, 2] and queue(client) == {}
    again = deploy(pool, "b")
    assert again["generation"] == 3 and sorted(history(client)) == [1, 2, 3]
    back = run_module("dcm_cluster", {"name": "face", "rollback": True, "strategy": "all-at-once", **pool.module_args()})
    assert back["rollback_of"] == 1 and back["generation"] == 4


def test_a_purging_undeploy_queues_every_generation_and_the_prune_keeps_what_is_in_use(pool):
    client = pool.client
    deploy(pool, "a", keep=5)
    deploy(pool, "b", keep=5)
    assert queue(client) == {}
    recorded = {"cluster": "face", "tag": "t1", "images": {"master": "sha256:" + "1" * 64}, **pool.module_args(),
                "state": "present"}
    assert run_module("dcm_image_record", recorded)["changed"] is True
    absent = {"state": "absent", "name": "face", "purge": True, **pool.module_args()}
    before = pool.dump()
    assert run_module("dcm_cluster", absent, check=True)["purged"] == [1, 2] and pool.dump() == before
    assert run_module("dcm_cluster", absent)["purged"] == [1, 2]
    assert history(client) == {} and client.get(keys.cluster_key("face")) is None
    assert client.get(keys.images_key("face", "t1")) is None  # its image provenance goes with it
    assert sorted(e["generation"] for e in queue(client).values()) == [1, 2]
    assert run_module("dcm_cluster", absent)["changed"] is False  # nothing left to remove or purge
    deploy(pool, "b")  # the same images deployed again before the registry was pruned
    prune = {"registry": REG, "registry_ca": pool.module_args()["etcd_ca_cert"], "grace": 0, **pool.module_args()}
    before = pool.dump()
    planned = run_module("dcm_registry_prune", prune, check=True)
    assert planned.get("failed") is not True, planned
    assert sorted(planned["deleted"]) == sorted(build("a").values())
    assert {k["image"] for k in planned["kept"]} == set(build("b").values())
    assert pool.dump() == before
    waiting = run_module("dcm_registry_prune", {**prune, "grace": 3600}, check=True)
    assert waiting["deleted"] == [] and len(waiting["waiting"]) == 2
