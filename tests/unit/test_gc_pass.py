"""The one GC pass (ops.gc_pass) without an engine or etcd: where the desired state comes from, what a
pass removes or (check mode) would remove, and that the agent's timers and both modules run this pass.

The same pass runs against the real Docker engine and a real etcd in tests/integration/test_docker_gc.py
(the modules) and tests/integration/test_gc_timers_docker.py (the timers).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import CorruptRecord
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons import gc_timers
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.gc_timers import GcSettings, GcTimers
from ansible_collections.dcspark.dcm.plugins.module_utils.ops import gc_pass as ops
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.gc_pass import (
    CONTAINERS,
    IMAGES,
    DesiredStateMissing,
    desired_records,
    gc_pass,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.state.etcd import KeyValue
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore
from ansible_collections.dcspark.dcm.plugins.modules import dcm_container_gc, dcm_image_gc

HOST = "n1"
MANAGED = {labels.MANAGED: "true"}
RECORD = {
    "name": "face",
    "spec_hash": "h1",
    "placement": {"master": HOST, "driver": "n2", "workers": [HOST]},
    "images": {"master": "reg:5000/face-master:3", "driver": "reg:5000/face-driver:3", "worker": "reg:5000/face-worker:3"},
}


# -- fakes ----------------------------------------------------------------------------------------
class FakeEtcd:
    """Answers DcmStore's prefix reads from ``{key: value}``."""

    def __init__(self, values: dict) -> None:
        self.values = values
        self.reads: list = []

    def get_prefix(self, prefix: str, revision: int = 0, keys_only: bool = False) -> tuple:
        self.reads.append(prefix)
        kvs = [KeyValue(key, "" if keys_only else value, 7, 7, 1, 0)
               for key, value in sorted(self.values.items()) if key.startswith(prefix)]
        return kvs, 7


def etcd_with(*records: dict, raw: dict | None = None) -> FakeEtcd:
    values = {keys.cluster_key(record["name"]): json.dumps(record) for record in records}
    values.update(raw or {})
    return FakeEtcd(values)


def node_labels(cluster: str, node: str, spec_hash: str = "h1") -> dict:
    return {**MANAGED, labels.CLUSTER: cluster, labels.NODE: node, labels.SPEC_HASH: spec_hash}


class FakeDocker:
    """The Docker SDK's low-level client, as far as a pass uses it."""

    def __init__(self) -> None:
        self.raw_containers = [
            {"Id": "c-needed", "Names": ["/spark-worker-face-1"], "State": "exited", "Labels": node_labels("face", "worker-1")},
            {"Id": "c-orphan", "Names": ["/spark-worker-gone-1"], "State": "exited", "Labels": node_labels("gone", "worker-1")},
            {"Id": "c-busy", "Names": ["/spark-master-gone"], "State": "running", "Labels": node_labels("gone", "master")},
        ]
        self.raw_images = [
            {"Id": "sha256:old", "Size": 30, "SharedSize": 0, "Created": 1, "Labels": MANAGED, "RepoTags": ["reg:5000/old:1"]},
            {"Id": "sha256:new", "Size": 40, "SharedSize": 0, "Created": 2, "Labels": MANAGED, "RepoTags": ["reg:5000/new:1"]},
            {"Id": "sha256:placed", "Size": 50, "SharedSize": 0, "Created": 0, "Labels": MANAGED,
             "RepoTags": ["reg:5000/face-worker:3"]},
        ]
        self.calls: list = []
        self.closed = False

    def containers(self, all=False, filters=None):  # pylint: disable=redefined-builtin
        assert all is True and labels.MANAGED_FILTER in filters["label"]
        return self.raw_containers

    def info(self):
        return {"DockerRootDir": "/var/lib/docker"}

    def df(self):
        return {"LayersSize": 120, "Images": self.raw_images, "Containers": []}

    def remove_container(self, cid, v=False, force=False):
        assert v is True and force is False
        self.calls.append(("rm", cid))

    def remove_image(self, ref, force=False):
        assert force is False
        self.calls.append(("rmi", ref))
        return [{"Deleted": ref}]

    def close(self):
        self.closed = True


def statvfs(_path):
    return SimpleNamespace(f_blocks=200, f_frsize=1)  # C = 200 bytes; U = 120: above any threshold below 0.6


class Connector:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine
        self.urls: list = []

    def __call__(self, url, timeout):
        self.urls.append((url, timeout))
        return self.engine


# -- the desired state's sources -----------------------------------------------------------------------
def test_gc_refuses_to_run_without_a_desired_state():
    with pytest.raises(DesiredStateMissing, match=r"etcd_endpoints.*desired: \[\]"):
        desired_records(None, None)
    assert desired_records([], None) == []
    assert desired_records([RECORD], None) == [RECORD]


def test_the_desired_state_is_read_from_the_cluster_records_of_the_store_and_combined_with_desired():
    other = {**RECORD, "name": "other"}
    etcd = etcd_with(RECORD)
    assert desired_records(None, DcmStore(etcd)) == [RECORD]
    assert etcd.reads == [keys.CLUSTERS]  # the cluster records only: not hosts, cordons or histories
    assert desired_records([other], DcmStore(etcd)) == [other, RECORD]
    assert desired_records([], DcmStore(etcd_with())) == []


def test_a_record_that_does_not_parse_fails_the_pass_before_docker_is_even_asked():
    engine = FakeDocker()
    connect = Connector(engine)
    broken = etcd_with(RECORD, raw={keys.cluster_key("broken"): "{not json"})
    for kind in (CONTAINERS, IMAGES):
        with pytest.raises(CorruptRecord, match="etcd key /dcm/clusters/broken does not hold JSON"):
            gc_pass(kind, HOST, store=DcmStore(broken), docker_connect=connect, threshold=0.0, statvfs=statvfs)
    assert connect.urls == [] and engine.calls == []


# -- a pass -----------------------------------------------------------------------------------------
def test_a_container_pass_removes_what_no_desired_cluster_needs_or_lists_it_in_check_mode():
    for check_mode in (True, False):
        engine = FakeDocker()
        result = gc_pass(CONTAINERS, HOST, store=DcmStore(etcd_with(RECORD)), docker_connect=Connector(engine),
                         check_mode=check_mode)
        assert [entry["id"] for entry in result.plan["selected"]] == ["c-orphan"]
        assert result.kept == {"c-needed": "needed by a desired cluster", "c-busy": "running"}
        assert result.plan["host_name"] == HOST and result.gone == {"c-orphan"}
        assert result.diff() == {
            "before": {"containers": ["spark-master-gone", "spark-worker-face-1", "spark-worker-gone-1"]},
            "after": {"containers": ["spark-master-gone", "spark-worker-face-1"]},
        }
        assert result.removed == ([] if check_mode else ["c-orphan"])
        assert engine.calls == ([] if check_mode else [("rm", "c-orphan")]) and engine.closed


def test_an_image_pass_frees_half_of_what_images_use_least_recently_used_first():
    for check_mode in (True, False):
        engine = FakeDocker()
        result = gc_pass(IMAGES, HOST, desired=[RECORD], docker_connect=Connector(engine), threshold=0.0,
                         last_used_file="/nonexistent/last-used.json", check_mode=check_mode, statvfs=statvfs)
        plan = result.plan
        assert (plan["target_bytes"], plan["capacity_bytes"], plan["data_root"]) == (60, 200, "/var/lib/docker")
        assert [entry["id"] for entry in plan["selected"]] == ["sha256:old", "sha256:new"]
        assert plan["kept"] == {"sha256:placed": "placed on this host by a desired cluster"}
        assert result.freed_bytes == 70 and result.gone == {"sha256:old", "sha256:new"}
        assert result.diff()["after"] == {"images": ["sha256:placed"]}
        assert engine.calls == ([] if check_mode else [("rmi", "sha256:old"), ("rmi", "sha256:new")])


# -- one pass for the timers and both modules ------------------------------------------------------------
class Spy:
    """Records every call of ``ops.gc_pass`` and runs it on the fake engine."""

    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine
        self.calls: list = []

    def __call__(self, kind, host_name, **kwargs):
        self.calls.append((kind, host_name, kwargs))
        kwargs.update(docker_connect=Connector(self.engine), statvfs=statvfs)
        return gc_pass(kind, host_name, **kwargs)


def test_the_timers_run_the_pass_with_the_desired_state_of_their_store(monkeypatch):
    engine = FakeDocker()
    timers = GcTimers(HOST, GcSettings(image_threshold=0.0, docker_url="unix:///x.sock"), etcd_with(RECORD),
                      docker_connect=Connector(engine), statvfs=statvfs)
    direct = gc_pass(CONTAINERS, HOST, store=DcmStore(etcd_with(RECORD)), docker_connect=Connector(FakeDocker()),
                     check_mode=True)
    assert timers.run_pass(CONTAINERS).plan == direct.plan
    assert engine.calls == [("rm", "c-orphan")]

    spy = Spy(FakeDocker())
    monkeypatch.setattr(gc_timers, "gc_pass", spy)
    timers.run_pass(IMAGES)
    (kind, host, kwargs), = spy.calls
    assert (kind, host, kwargs["store"], kwargs["threshold"]) == (IMAGES, HOST, timers.store, 0.0)
    assert kwargs["docker_timeout"] == gc_timers.DOCKER_TIMEOUT and "desired" not in kwargs


class FakeModule:
    """What a module's body sees of DcmModule."""

    def __init__(self, params: dict, store=None, check_mode: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.result: dict = {"changed": False}
        self._store = store

    def store(self):
        return self._store

    def fail(self, msg, **details):
        raise AssertionError(f"the module failed: {msg} {details}")


@pytest.mark.parametrize("module, kind, params", [
    (dcm_container_gc, CONTAINERS, {}),
    (dcm_image_gc, IMAGES, {"threshold": 0.0, "include_foreign": False, "last_used_file": "/nonexistent.json"}),
])
def test_both_modules_run_the_same_pass(monkeypatch, module, kind, params):
    spy = Spy(FakeDocker())
    monkeypatch.setattr(module, "gc_pass", spy)
    m = FakeModule({"host_name": HOST, "desired": [RECORD], "scope_labels": None, "docker_host": "unix:///x.sock",
                    **params}, store=DcmStore(etcd_with()), check_mode=True)
    module.collect(m)
    (called_kind, host, kwargs), = spy.calls
    assert (called_kind, host, kwargs["desired"], kwargs["check_mode"]) == (kind, HOST, [RECORD], True)
    assert kwargs["store"] is m.store() and kwargs["docker_url"] == "unix:///x.sock"
    assert m.result["changed"] is True and m.result["removed"] == [] and spy.engine.calls == []
    assert set(m.result["diff"]) == {"before", "after"}
    assert ops.PassResult is gc_timers.PassResult
