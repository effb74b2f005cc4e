"""A new generation keeps the nodes that mount a volume on the hosts holding their data (real etcd, TLS)."""

from __future__ import annotations

import pytest
from support import run_module
from test_etcd_store import raw_spec, register
from test_generations_etcd import build
# the pool of three hosts (4 CPUs, 8 GiB each) the resize tests use
from test_scale_etcd import pool  # noqa: F401  pylint: disable=unused-import

from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore

pytestmark = pytest.mark.etcd

VOLUMES = [{"name": "data", "path": "/data", "nodes": ["driver", "worker"]}]


def deploy(pool, volumes, worker_memory: str = "1g", workers: int = 3) -> dict:
    spec = raw_spec("face", workers=workers, worker_memory=worker_memory)
    if volumes:
        spec["volumes"] = volumes
    result = run_module("dcm_cluster", {"spec": spec, "images": build("a"), "strategy": "all-at-once",
                                        **pool.module_args()})
    assert result.get("failed") is not True, result
    return result


def test_a_changed_spec_keeps_the_driver_and_workers_with_their_volumes(pool):
    first = deploy(pool, VOLUMES)["placement"]
    # a bigger worker is a changed spec, planned again: the nodes with data stay where it is
    second = deploy(pool, VOLUMES, worker_memory="2g")
    assert second["changed"] is True
    assert second["placement"]["driver"] == first["driver"]
    assert second["placement"]["workers"] == first["workers"]
    # one more worker: the three that hold data stay, the new one goes where the scheduler says
    third = deploy(pool, VOLUMES, worker_memory="2g", workers=4)
    assert third["placement"]["workers"][:3] == first["workers"]


def test_a_pinned_node_that_no_longer_fits_is_refused_and_nothing_changes(pool):
    first = deploy(pool, VOLUMES)
    snapshot = pool.dump()
    host = first["placement"]["driver"]
    spec = dict(raw_spec("face", workers=3, driver=(5, "1g")), volumes=VOLUMES)
    refused = run_module("dcm_cluster", {"spec": spec, "images": build("a"), **pool.module_args()})
    assert refused.get("failed") is True
    assert f"driver (5 CPUs, 1g) keeps its volumes on {host}, which has 4 CPUs" in refused["msg"], refused["msg"]
    assert pool.dump() == snapshot


def test_after_an_undeploy_the_next_deploy_finds_its_data_where_the_last_generation_left_it(pool):
    first = deploy(pool, VOLUMES)["placement"]
    register(DcmStore(pool.client), "h4", 8, 16)  # a bigger empty host: a fresh plan goes there
    assert run_module("dcm_cluster", {"name": "face", "state": "absent", **pool.module_args()})["changed"] is True

    def plan(volumes) -> dict:
        spec = raw_spec("face", workers=3, worker_memory="2g")
        if volumes:
            spec["volumes"] = volumes
        planned = run_module("dcm_cluster", {"spec": spec, "images": build("a"), **pool.module_args()}, check=True)
        assert planned.get("failed") is not True, planned
        return planned["placement"]

    fresh = plan(None)  # no volume in the new spec: nothing is pinned
    assert "h4" in [fresh["driver"], *fresh["workers"]] and fresh != first
    # the retained generation says where the data is: the driver and the workers go back there
    again = deploy(pool, VOLUMES, worker_memory="2g")["placement"]
    assert (again["driver"], again["workers"]) == (first["driver"], first["workers"])
    # purge drops the history, and with it what pinned them (the undeploy playbook removes the volumes)
    purged = run_module("dcm_cluster", {"name": "face", "state": "absent", "purge": True, **pool.module_args()})
    assert purged["changed"] is True
    assert plan(VOLUMES) == fresh
