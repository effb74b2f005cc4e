"""Resizing a deployed cluster through dcm_cluster's ``workers``, on a real etcd with TLS.

The agents are not running here (the sandbox suite scales a running cluster); this checks what the
reservation writes: the same images and network, every staying node on its host, added workers
placed by the scheduler, nothing written when the added workers do not fit.
"""

from __future__ import annotations

import pytest
from support import run_module
from test_etcd_store import overcommitted, register
from test_generations_etcd import build, deploy, history

from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore

pytestmark = pytest.mark.etcd


@pytest.fixture
def pool(clean_etcd):
    store = DcmStore(clean_etcd.client)
    for host in ("h1", "h2", "h3"):
        register(store, host, 4, 8)
    return clean_etcd


def scale(pool, workers, check: bool = False, **extra) -> dict:
    return run_module("dcm_cluster", {"name": "face", "workers": workers, **pool.module_args(), **extra}, check=check)


def test_growing_and_shrinking_keep_every_staying_node_where_it_is(pool):
    first = deploy(pool, "a", workers=2)
    before = first["placement"]

    grown = scale(pool, 5)
    assert grown["changed"] is True, grown
    after = grown["placement"]
    kept = (after["master"], after["driver"], after["workers"][:2])
    assert kept == (before["master"], before["driver"], before["workers"])
    assert len(after["workers"]) == 5
    assert grown["record"]["images"] == build("a") and grown["record"]["spec"]["worker"]["count"] == 5
    assert grown["generation"] == first["generation"] + 1
    assert grown["scaled"] == {"from_workers": 2, "to_workers": 5, "from_generation": first["generation"],
                               "added": dict(zip(("worker-3", "worker-4", "worker-5"), after["workers"][2:])),
                               "removed": []}
    assert grown["rollout"] is not None  # a running cluster moves to it node by node (the default)
    assert history(pool.client)[grown["generation"]]["origin"] == "scale"
    assert overcommitted(pool.client) == {}

    shrunk = scale(pool, 1, strategy="all-at-once")
    placement = shrunk["placement"]
    assert (placement["master"], placement["driver"], placement["workers"]) == (
        before["master"], before["driver"], before["workers"][:1])
    assert shrunk["scaled"]["removed"] == ["worker-2", "worker-3", "worker-4", "worker-5"]
    assert shrunk["scaled"]["added"] == {}

    again = scale(pool, 1)
    assert again["changed"] is False and again["generation"] == shrunk["generation"]


def test_added_workers_that_do_not_fit_change_nothing_and_say_why(pool):
    deploy(pool, "a", workers=2)
    snapshot = pool.dump()
    # 3 hosts of 4 CPUs: master, driver and 2 workers hold 4; 8 more workers fit, the 9th does not
    refused = scale(pool, 11)
    assert refused.get("failed") is True
    assert "worker-11 (1 CPU" in refused["msg"] and "8 of the 9 workers to add fit" in refused["msg"], refused["msg"]
    assert pool.dump() == snapshot
    preview = scale(pool, 10, check=True)
    assert preview["changed"] is True and len(preview["placement"]["workers"]) == 10
    assert pool.dump() == snapshot  # check mode plans, writes nothing


@pytest.mark.parametrize(("args", "message"), [
    ({"workers": 0}, "worker.count: must be >= 1, got 0"),
    ({"workers": 10001}, "worker.count: must be <= 10000"),
    ({"workers": 3, "images": build("b")}, "workers resizes the recorded spec with its recorded images"),
])
def test_a_bad_resize_is_refused_with_the_rule(pool, args, message):
    deploy(pool, "a", workers=2)
    snapshot = pool.dump()
    refused = run_module("dcm_cluster", {"name": "face", **args, **pool.module_args()})
    assert refused.get("failed") is True and message in refused["msg"], refused
    assert pool.dump() == snapshot


def test_a_cluster_without_a_record_cannot_be_resized(pool):
    refused = scale(pool, 3)
    assert refused.get("failed") is True
    assert "cluster face has no record in etcd: deploy it first" in refused["msg"], refused
