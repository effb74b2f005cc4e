"""Generations, rolling changes and registry retention: the pure logic (rollout.py, registry.py).

The same code runs against a real etcd in tests/integration/test_generations_etcd.py and on real
containers in the sandbox suite (molecule/default/tests/test_generations.py).
"""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.daemons import converge

from ansible_collections.dcspark.dcm.plugins.module_utils.policy import rollout

from ansible_collections.dcspark.dcm.plugins.module_utils.policy import placement
from ansible_collections.dcspark.dcm.plugins.module_utils.host.docker import desired_on_host
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.registry import (
    images_in_use,
    parse_reference,
    prune_plan,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec, spec_hash

REG = "10.0.0.11:5000"


def images(tag: str) -> dict:
    """Image references by digest of one build (``tag`` makes the digests its own)."""
    return {role: f"{REG}/dcspark-{role}@sha256:{hashlib.sha256((tag + role).encode()).hexdigest()}"
            for role in ("runtime", "master", "worker", "driver")}


def make_spec(workers: int = 3, spark: str = "4.0.1", skimage: str = "0.24.0", worker_memory: str = "1g") -> dict:
    return normalize_spec({
        "name": "face",
        "runtime": {"spark_version": spark, "pip_packages": [f"scikit-image=={skimage}"]},
        "master": {"cpus": 0.5, "memory": "768m"},
        "driver": {"cpus": 1, "memory": "1g"},
        "worker": {"cpus": 1, "memory": worker_memory, "count": workers},
    })


def make_record(generation: int, spec: dict, tag: str, placement: dict | None = None) -> dict:
    return {
        "name": "face", "spec": spec, "spec_hash": spec_hash(spec), "generation": generation,
        "desired_state": "running", "images": images(tag), "secret": "s" * 64,
        "network": {"name": "dcm-face", "driver": "overlay"},
        "placement": placement or {"master": "h1", "driver": "h2", "workers": ["h1", "h2", "h3"]},
    }


def rolled(old: dict, new: dict) -> dict:
    return rollout.start_rollout(old, new, 0.0)


def test_a_rollout_moves_workers_in_batches_then_the_driver_then_the_master():
    record = rolled(make_record(1, make_spec(), "a"), make_record(2, make_spec(skimage="0.23.2"), "b"))
    steps = []
    while record.get("rollout"):
        batch = rollout.next_batch(record, 2)
        steps.append(batch)
        record = rollout.advance(record, batch)
    assert steps == [["worker-1", "worker-2"], ["worker-3"], ["driver"], ["master"]]
    assert "rollout" not in record


def test_nodes_not_moved_run_the_old_generation_and_moved_ones_the_new():
    old, new = make_record(1, make_spec(), "a"), make_record(2, make_spec(skimage="0.23.2"), "b")
    record = rollout.advance(rolled(old, new), ["worker-1", "worker-2"])
    on_h1 = converge.desired_nodes([record], "h1")
    assert on_h1["spark-worker-face-1"].image == new["images"]["worker"]
    assert on_h1["spark-worker-face-1"].generation == 2
    assert on_h1["spark-master-face"].image == old["images"]["master"]
    assert on_h1["spark-master-face"].generation == 1
    on_h3 = converge.desired_nodes([record], "h3")
    assert on_h3["spark-worker-face-3"].image == old["images"]["worker"]
    # the cluster's secret is the same for both generations, so old and new nodes talk to each other
    assert dict(on_h1["spark-worker-face-1"].secrets)["auth"] == dict(on_h3["spark-worker-face-3"].secrets)["auth"]


def test_added_workers_start_at_once_and_dropped_ones_stay_until_their_turn():
    old = make_record(1, make_spec(workers=3), "a")
    new = make_record(2, make_spec(workers=2, skimage="0.23.2"), "b",
                      {"master": "h1", "driver": "h2", "workers": ["h1", "h2"]})
    record = rolled(old, new)
    assert [n for n, _h, _v in rollout.node_views(record)] == ["worker-1", "worker-2", "worker-3", "driver", "master"]
    record = rollout.advance(record, rollout.next_batch(record, 2))
    record = rollout.advance(record, rollout.next_batch(record, 2))  # worker-3 goes away
    assert "worker-3" not in [n for n, _h, _v in rollout.node_views(record)]
    grown = rolled(old, make_record(2, make_spec(workers=4), "b",
                                    {"master": "h1", "driver": "h2", "workers": ["h1", "h2", "h3", "h3"]}))
    views = {node: view["generation"] for node, _h, view in rollout.node_views(grown)}
    assert views == {"worker-1": 1, "worker-2": 1, "worker-3": 1, "worker-4": 2, "driver": 1, "master": 1}


def test_reserved_capacity_follows_the_generation_each_node_runs():
    old = make_record(1, make_spec(worker_memory="1g"), "a")
    new = make_record(2, make_spec(worker_memory="2g"), "b")
    record = rolled(old, new)
    gib = 1 << 30
    assert placement.cluster_usage(record)["h3"][1] == gib
    record = rollout.advance(record, ["worker-1", "worker-2"])
    record = rollout.advance(record, ["worker-3"])
    assert placement.cluster_usage(record)["h3"][1] == 2 * gib
    assert placement.cluster_usage(old) == placement.cluster_usage(rollout.from_view(rolled(old, new)))


def test_a_change_of_spark_version_or_network_cannot_roll():
    old = make_record(1, make_spec(), "a")
    assert rollout.rolling_possible(old, make_record(2, make_spec(skimage="0.23.2"), "b")) == (True, "")
    possible, why = rollout.rolling_possible(old, make_record(2, make_spec(spark="3.5.3"), "b"))
    assert not possible and "Spark 4.0.1 and 3.5.3" in why
    moved = dict(make_record(2, make_spec(), "b"), network={"name": "bridge", "driver": "flannel"})
    assert rollout.rolling_possible(old, moved) == (False, "the cluster's network changes")
    unfinished = rolled(old, make_record(2, make_spec(), "b"))
    assert "still rolling out" in rollout.rolling_possible(unfinished, make_record(3, make_spec(), "c"))[1]


def test_a_step_waits_for_the_moved_nodes_to_run_healthy_at_the_new_generation():
    record = rollout.advance(rolled(make_record(1, make_spec(), "a"), make_record(2, make_spec(), "b")),
                             ["worker-1", "worker-2"])
    status = {("face", "worker-1"): {"state": "running", "generation": 2, "health": "healthy"},
              ("face", "worker-2"): {"state": "running", "generation": 1, "health": "healthy"}}
    ready, waiting = rollout.moved_ready(record, status)
    assert not ready and waiting == ["worker-2: running at generation 1"]
    status[("face", "worker-2")] = {"state": "running", "generation": 2, "health": "starting"}
    assert rollout.moved_ready(record, status) == (False, ["worker-2: health starting"])
    status[("face", "worker-2")]["health"] = "healthy"
    assert rollout.moved_ready(record, status) == (True, [])


def test_the_rollback_target_is_the_newest_earlier_generation_that_differs():
    history = {g: rollout.history_entry(make_record(g, make_spec(), tag)) for g, tag in ((1, "a"), (2, "b"), (3, "c"))}
    current = make_record(4, make_spec(), "c")  # a rollback to 3 made 4 a copy of 3
    history[4] = rollout.history_entry(current, "rollback", 3)
    assert rollout.pick_generation(current, history, None)["generation"] == 2
    assert rollout.pick_generation(current, history, 1)["generation"] == 1
    with pytest.raises(DcmError, match=r"no generation 7 any more \(retained: 1, 2, 3, 4\)"):
        rollout.pick_generation(current, history, 7)
    with pytest.raises(DcmError, match="runs generation 4 already"):
        rollout.pick_generation(current, history, 4)
    with pytest.raises(DcmError, match="no earlier generation that differs"):
        rollout.pick_generation(make_record(1, make_spec(), "a"), {1: history[1]}, None)


def test_history_entries_keep_no_secret():
    entry = rollout.history_entry(make_record(2, make_spec(), "b"), "refresh")
    assert "secret" not in entry and entry["origin"] == "refresh" and entry["generation"] == 2


def test_references_parse_and_bad_ones_are_named():
    assert parse_reference(f"{REG}/dcspark-master@sha256:{'a' * 64}") == (REG, "dcspark-master", None, "sha256:" + "a" * 64)
    assert parse_reference(f"{REG}/dcspark-master:abc") == (REG, "dcspark-master", "abc", None)
    with pytest.raises(DcmError, match="not an image reference"):
        parse_reference("dcspark master")


def test_the_prune_deletes_only_images_nothing_uses_after_the_grace_period():
    running = make_record(5, make_spec(), "e")
    rolling = rolled(make_record(1, make_spec(), "r"), dict(make_record(2, make_spec(), "s"), name="other"))
    history = {"face": {4: rollout.history_entry(make_record(4, make_spec(), "d"))}}
    used = images_in_use([running, rolling], history)
    queue = {
        "/dcm/registry/prune/face/0000000001": {"images": images("a"), "queued_at": 100.0},
        "/dcm/registry/prune/face/0000000004": {"images": images("d"), "queued_at": 100.0},
        "/dcm/registry/prune/other/0000000001": {"images": images("r"), "queued_at": 100.0},
        "/dcm/registry/prune/face/0000000002": {"images": images("b"), "queued_at": 990.0},
        "/dcm/registry/prune/face/0000000003": {"images": {"master": "elsewhere:5000/x@sha256:" + "f" * 64},
                                                "queued_at": 100.0},
    }
    plan = prune_plan(queue, used, REG, now=1000.0, grace=60)
    assert sorted(plan.delete) == sorted(images("a").values())
    assert {k["image"] for k in plan.kept} == set(images("d").values()) | set(images("r").values())
    assert any("rolling out of generation 1" in k["why"] for k in plan.kept)
    assert plan.waiting == ["/dcm/registry/prune/face/0000000002"]
    assert plan.foreign == ["elsewhere:5000/x@sha256:" + "f" * 64]
    assert "/dcm/registry/prune/face/0000000002" not in plan.done
    assert prune_plan(queue, used, REG, now=1000.0, grace=0).waiting == []


def test_during_a_rollout_a_host_keeps_the_images_of_the_generation_each_of_its_nodes_runs():
    old, new = make_record(1, make_spec(), "a"), make_record(2, make_spec(skimage="0.23.2"), "b")
    record = rollout.advance(rolled(old, new), ["worker-1", "worker-2"])
    on_h1 = desired_on_host([record], "h1")  # worker-1 moved (new image), the master not yet (old image)
    assert new["images"]["worker"] in on_h1.image_refs and old["images"]["master"] in on_h1.image_refs
    assert old["images"]["worker"] not in on_h1.image_refs


def test_a_history_server_moves_after_its_driver_and_before_the_master():
    spec = normalize_spec({"name": "face", "runtime": {"spark_version": "4.0.1"}, "worker": {"count": 2},
                           "history": {}})
    record = {"name": "face", "spec": spec, "placement": {"master": "h1", "driver": "h2", "workers": ["h1", "h2"]}}
    assert rollout.rollout_order(record) == ["worker-1", "worker-2", "driver", "history", "master"]
    assert ("history", "h2") in [(node, host) for node, host, _view in rollout.node_views(record)]
