"""The agent's GC timers and events, on the real Docker engine with the desired state in a real TLS etcd.

Everything made here carries ``org.dcspark.test-run=<uuid>`` (containers too, so the
cleanup finds them), and the timers run with that label as their scope (what the
modules call ``scope_labels``), so on a shared engine they can only ever select what
this test made. The converger test lists only its own cluster's containers for the
same reason. The clock of the timers is moved by hand: a pass runs because the
schedule says it is due, not because the test called it.

The GC world (sizes of each image's random file; LRU order by the recorded last use)::

    base      foreign  busybox, tagged; the parent of every other image
    foreign   foreign  1 MiB, last use 100: the oldest, but not a DCSpark image
    desired   DCSpark  1 MiB, last use 200: the worker image a desired cluster places on this host
    node      DCSpark  1 MiB, last use 300: used by the exited container "needed" and the running "busy"
    orphaned  DCSpark  1 MiB, last use 400: used only by "orphan", so free once the container pass ran
    old       DCSpark  2 MiB, last use 500
    newer     DCSpark  2 MiB, last use 600

    needed   exited   DCSpark, worker-1 of the desired cluster on this host, same spec hash
    busy     running  DCSpark, a node of a cluster that is no longer desired
    orphan   exited   DCSpark, a node of a cluster that is no longer desired
    foreign  exited   no DCSpark label
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid

import docker
import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.agent import AgentConfig, Converger
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.converge import DockerNodes
from ansible_collections.dcspark.dcm.plugins.module_utils.state.etcd import EtcdClient, EtcdConfig
from ansible_collections.dcspark.dcm.plugins.module_utils.state.events import EventLog, read_events
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gc import ImageInfo, plan_image_gc
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.gc_timers import CONTAINERS, IMAGES, GcSettings, GcTimers
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec
from docker_fixtures import TEST_RUN, busybox_tar, cleanup, container, derive_image, engine, import_base

pytestmark = [pytest.mark.docker, pytest.mark.etcd]

MiB = 1 << 20
HOST = "gct-host"
OTHER_HOST = "gct-elsewhere"
REPO = "dcspark-gct-test"
MANAGED = {labels.MANAGED: "true"}
INTERVAL = 300.0
DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api():
    client = engine()
    yield client
    client.close()


@pytest.fixture
def world(api, tmp_path):
    """The images, containers and cluster record of the module docstring; removed afterwards by the run label."""
    run_id = uuid.uuid4().hex
    w = {"run": run_id, "cluster": f"gct{run_id[:8]}", "images": {}, "tags": {}, "containers": {}, "last_used": {}}
    try:
        w["images"]["base"] = import_base(api, run_id, f"{REPO}/base")
        for name, size, managed, last_use in (("foreign", 1, False, 100), ("desired", 1, True, 200),
                                              ("node", 1, True, 300), ("orphaned", 1, True, 400),
                                              ("old", 2, True, 500), ("newer", 2, True, 600)):
            w["tags"][name] = f"{REPO}/{name}:{run_id}"
            image_id = derive_image(api, w["images"]["base"], run_id, size * MiB, MANAGED if managed else {},
                                    (w["tags"][name],))
            w["images"][name] = image_id
            w["last_used"][image_id] = float(last_use)
        w["last_used_file"] = str(tmp_path / "image-last-used.json")
        with open(w["last_used_file"], "w", encoding="utf-8") as handle:
            json.dump(w["last_used"], handle)

        def node(cluster, name):
            return {**MANAGED, labels.CLUSTER: cluster, labels.NODE: name, labels.SPEC_HASH: "h1"}

        gone = f"gone{run_id[:8]}"
        images, true = w["images"], ["/bin/true"]
        w["containers"]["needed"] = container(api, images["node"], run_id, node(w["cluster"], "worker-1"), true)
        w["containers"]["busy"] = container(api, images["node"], run_id, node(gone, "worker-2"), ["/bin/sleep", "3600"])
        w["containers"]["orphan"] = container(api, images["orphaned"], run_id, node(gone, "worker-1"), true)
        w["containers"]["foreign"] = container(api, images["base"], run_id, {}, true)
        w["record"] = {
            "name": w["cluster"], "spec_hash": "h1", "desired_state": "running",
            "placement": {"master": OTHER_HOST, "driver": OTHER_HOST, "workers": [HOST]},
            "images": {"master": w["tags"]["old"], "driver": w["tags"]["newer"], "worker": w["tags"]["desired"]},
        }
        yield w
    finally:
        problems = cleanup(api, run_id)
        assert not problems, f"cleanup of test run {run_id} left things behind: {problems}"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timers_for(w, etcd_client, clock, threshold=0.0, events=None) -> GcTimers:
    settings = GcSettings(container_interval=INTERVAL, image_interval=INTERVAL, image_threshold=threshold,
                          last_used_file=w["last_used_file"], docker_url=DOCKER_URL)
    return GcTimers(HOST, settings, etcd_client, events=events, clock=clock, scope={TEST_RUN: w["run"]})


def own_images(api, w) -> dict:
    """The test's own reading of its images (sizes from df), by id."""
    found = {}
    for raw in api.df()["Images"]:
        image_labels = raw.get("Labels") or {}
        if image_labels.get(TEST_RUN) == w["run"]:
            found[raw["Id"]] = raw
    return found


def own_container_ids(api, w) -> set:
    return {c["Id"] for c in api.containers(all=True, filters={"label": [f"{TEST_RUN}={w['run']}"]})}


def own_image_ids(api, w) -> set:
    return {i["Id"] for i in api.images(all=True, filters={"label": [f"{TEST_RUN}={w['run']}"]})}


def gc_events(etcd_client) -> list:
    return [event for event in read_events(etcd_client, limit=0) if event["kind"] == "gc"]


def test_one_timer_pass_removes_what_no_desired_cluster_needs_and_keeps_the_rest(api, world, clean_etcd):
    w, c, i = world, world["containers"], world["images"]
    clean_etcd.client.put(keys.cluster_key(w["cluster"]), json.dumps(w["record"]))
    clock = Clock()
    timers = timers_for(w, clean_etcd.new_client(), clock, threshold=0.0,
                        events=EventLog(clean_etcd.new_client(), HOST))
    containers_before, images_before = own_container_ids(api, w), own_image_ids(api, w)
    sizes = own_images(api, w)
    orphan_name = api.inspect_container(c["orphan"])["Name"].lstrip("/")

    clock.now = INTERVAL - 1
    assert timers.tick() == []  # not due yet: nothing runs, nothing goes
    assert own_container_ids(api, w) == containers_before and own_image_ids(api, w) == images_before

    clock.now = INTERVAL
    results = {result.kind: result for result in timers.tick()}
    assert sorted(results) == [CONTAINERS, IMAGES], "both timers were due; a failed pass is only logged"

    # Containers: only the exited DCSpark container no desired cluster needs.
    swept = results[CONTAINERS]
    assert swept.removed == [c["orphan"]] and swept.not_removed == {}
    assert own_container_ids(api, w) == containers_before - {c["orphan"]}
    assert swept.plan["kept"] == {c["needed"]: "needed by a desired cluster", c["busy"]: "running"}
    assert api.inspect_container(c["foreign"])["State"]["Status"] == "exited"  # never even listed

    # Images, threshold 0: F = U/2 of the engine. The candidates are the DCSpark images that no container
    # uses (the orphan is gone by now: containers run first) and no desired cluster places here, LRU first;
    # the test computes the same plan from its own reading, with the U and C the pass measured.
    collected = results[IMAGES]
    plan = collected.plan
    assert plan["target_bytes"] == plan["used_bytes"] // 2 > 0
    users = {found["ImageID"] for found in api.containers(all=True)}
    mine = [ImageInfo(id=image_id, unique_size=raw["Size"] - raw["SharedSize"],
                      last_used=w["last_used"].get(image_id, float(raw["Created"])),
                      dcspark=(raw.get("Labels") or {}).get(labels.MANAGED) == "true", in_use=image_id in users,
                      tags=tuple(raw.get("RepoTags") or ())) for image_id, raw in sizes.items()]
    expected = plan_image_gc(mine, plan["used_bytes"], plan["capacity_bytes"], 0.0, protected={w["tags"]["desired"]})
    expected_ids = [image.id for image in expected.selected]
    assert [entry["id"] for entry in plan["selected"]] == expected_ids
    assert expected_ids[0] == i["orphaned"]  # the least recently used candidate
    assert expected.freed >= expected.target or expected_ids == [i["orphaned"], i["old"], i["newer"]], \
        "F = U/2 is freed when the candidates allow it; otherwise every candidate goes"
    assert collected.removed == expected_ids and collected.not_removed == {}
    assert collected.freed_bytes == sum(image.unique_size for image in expected.selected) > 0
    assert own_image_ids(api, w) == images_before - set(expected_ids)
    for name in ("base", "foreign", "desired", "node"):
        assert i[name] in own_image_ids(api, w), f"{name} must never be removed"
    assert expected.kept[i["desired"]] == "placed on this host by a desired cluster"
    assert expected.kept[i["node"]] == "used by a container"
    assert expected.kept[i["foreign"]] == "not a DCSpark image"

    # One gc event per pass that removed something, from this host.
    events = gc_events(clean_etcd.client)
    assert [(e["source"], e["host"]) for e in events] == [(HOST, HOST)] * 2
    by_count = {("removed_containers" in e): e for e in events}
    assert by_count[True]["removed_containers"] == 1 and orphan_name in by_count[True]["message"]
    assert by_count[False]["removed_images"] == len(expected_ids)
    assert by_count[False]["freed_bytes"] == collected.freed_bytes
    assert by_count[False]["target_bytes"] == plan["target_bytes"]

    # The next passes are one interval later, and find nothing more to remove among the containers.
    clock.now = 2 * INTERVAL - 1
    assert timers.tick() == []
    clock.now = 2 * INTERVAL
    again = {result.kind: result for result in timers.tick()}
    assert again[CONTAINERS].removed == []
    assert len(gc_events(clean_etcd.client)) == 2 + bool(again[IMAGES].removed)


def test_above_the_disk_usage_threshold_only_no_image_goes(api, world, clean_etcd):
    w = world
    clean_etcd.client.put(keys.cluster_key(w["cluster"]), json.dumps(w["record"]))
    clock = Clock()
    timers = timers_for(w, clean_etcd.new_client(), clock, threshold=1.0,
                        events=EventLog(clean_etcd.new_client(), HOST))
    images_before = own_image_ids(api, w)
    clock.now = INTERVAL
    collected = timers.run_pass(IMAGES)
    assert collected.plan["target_bytes"] == 0 and collected.removed == [] and collected.plan["selected"] == []
    assert own_image_ids(api, w) == images_before
    assert gc_events(clean_etcd.client) == []  # a pass that removed nothing is no event


def test_without_the_whole_desired_state_a_pass_removes_nothing(api, world, clean_etcd, caplog):
    w = world
    clean_etcd.client.put(keys.cluster_key(w["cluster"]), json.dumps(w["record"]))
    clean_etcd.client.put(keys.cluster_key("broken"), "{not json")
    containers_before, images_before = own_container_ids(api, w), own_image_ids(api, w)
    clock = Clock()
    unreachable = EtcdClient(EtcdConfig((f"https://127.0.0.1:{closed_port()}",), clean_etcd.ca, clean_etcd.cert,
                                        clean_etcd.key, timeout=1.0))
    caplog.set_level(logging.WARNING)
    for etcd_client in (clean_etcd.new_client(), unreachable):
        timers = timers_for(w, etcd_client, clock, threshold=0.0, events=EventLog(clean_etcd.new_client(), HOST))
        clock.now += INTERVAL
        assert timers.tick() == []  # both passes failed, and neither failure escaped
        assert own_container_ids(api, w) == containers_before and own_image_ids(api, w) == images_before
    assert "etcd key /dcm/clusters/broken does not hold JSON" in caplog.text  # CorruptRecord, from DcmStore
    assert "no etcd endpoint answered" in caplog.text
    assert gc_events(clean_etcd.client) == []


# -- events of the converger --------------------------------------------------------------------------------
class OwnClusterNodes(DockerNodes):
    """The real Docker adapter, listing only this test's cluster (the agent lists every DCSpark node)."""

    def __init__(self, client, *clusters: str) -> None:
        super().__init__(client)
        self.clusters = set(clusters)

    def observed(self) -> list:
        return [found for found in super().observed() if found.labels.get(labels.CLUSTER) in self.clusters]


@pytest.fixture
def lab(api):
    run_id = uuid.uuid4().hex[:12]
    client = docker.DockerClient(version="auto", timeout=120)
    network = client.networks.create(f"dcm-gct-{run_id}", driver="bridge", labels={TEST_RUN: run_id})
    try:
        answer = api.import_image_from_data(busybox_tar(), repository=f"{REPO}/node", tag=run_id, changes=[
            f"LABEL {TEST_RUN}={run_id}", 'CMD ["/bin/sleep", "3600"]', "USER 185:185"])
        yield {"client": client, "run": run_id, "network": network.name,
               "image": json.loads(answer.strip().splitlines()[-1])["status"]}
    finally:
        problems = cleanup(api, run_id)
        network.remove()
        client.close()
        assert not problems, problems


def cluster_record(lab, worker_memory: str = "512m", name: str = "") -> dict:
    name = name or f"gct-{lab['run']}"
    spec = normalize_spec({
        "name": name, "runtime": {"spark_version": "4.0.1"},
        "master": {"cpus": 0.5, "memory": "256m"}, "driver": {"cpus": 0.25, "memory": "512m"},
        "worker": {"cpus": 1, "memory": worker_memory, "count": 1},
    })
    return {"name": name, "spec": spec, "spec_hash": "x", "generation": 1, "desired_state": "running",
            "images": {"master": lab["image"], "worker": lab["image"], "driver": lab["image"]},
            "network": {"name": lab["network"], "driver": "bridge"}, "secret": "s" * 64,
            "placement": {"master": HOST, "driver": HOST, "workers": [HOST]}}


def test_the_converger_records_an_event_for_each_container_it_creates_starts_and_removes(lab, clean_etcd):
    etcd = clean_etcd.client
    name = f"gct-{lab['run']}"
    config = AgentConfig(host_name=HOST, etcd=clean_etcd.new_client().config)
    converger = Converger(config, clean_etcd.new_client(), OwnClusterNodes(lab["client"], name),
                          events=EventLog(clean_etcd.new_client(), HOST))
    seen = 0

    def new_events() -> list:
        nonlocal seen
        events = read_events(etcd, limit=0)
        fresh, seen = events[seen:], len(events)
        return [(e["kind"], e["node"], e["container"]) for e in fresh]

    etcd.put(keys.cluster_key(name), json.dumps(cluster_record(lab)))
    converger.once(0)
    containers = {f"spark-{role}-{name}": role for role in ("master", "driver")}
    containers[f"spark-worker-{name}-1"] = "worker-1"
    assert sorted(new_events()) == sorted(("create", node, container) for container, node in containers.items())
    for event in read_events(etcd, limit=0):
        assert (event["source"], event["host"], event["cluster"], event["image"]) == (HOST, HOST, name, lab["image"])
        assert event["message"] == f"created {event['container']} on {HOST}"

    lab["client"].containers.get(f"spark-master-{name}").stop(timeout=1)
    converger.once(0)
    assert new_events() == [("start", "master", f"spark-master-{name}")]
    converger.once(0)
    assert new_events() == []  # nothing done, nothing recorded

    etcd.put(keys.cluster_key(name), json.dumps(cluster_record(lab, worker_memory="768m")))
    converger.once(0)
    worker = f"spark-worker-{name}-1"
    assert new_events() == [("remove", "worker-1", worker), ("create", "worker-1", worker)]
    assert "its configuration changed" in read_events(etcd, limit=2)[0]["message"]

    etcd.delete(keys.cluster_key(name))
    converger.once(0)
    removed = new_events()
    assert sorted(removed) == sorted(("remove", node, container) for container, node in containers.items())
    last = read_events(etcd, limit=3)
    assert all(e["cluster"] == name and e["host"] == HOST and e["source"] == HOST for e in last)
    assert all("no desired cluster places it here" in e["message"] for e in last)
    assert lab["client"].containers.list(all=True, filters={"label": f"{labels.CLUSTER}={name}"}) == []


def test_a_record_that_cannot_be_read_or_understood_keeps_its_containers_and_the_others_converge(lab, clean_etcd):
    """Never delete on doubt: cluster a's record replaced by invalid JSON, by a newer layout, by a field of the
    wrong shape; each time every container of a stays as it is (same id, still running) while b, whose master
    was stopped, is started again. Understood again: a converges as usual; deleted: its containers go."""
    etcd = clean_etcd.client
    a, b = f"gct-{lab['run']}", f"gct-{lab['run']}-b"
    converger = Converger(AgentConfig(host_name=HOST, etcd=clean_etcd.new_client().config), clean_etcd.new_client(),
                          OwnClusterNodes(lab["client"], a, b), events=EventLog(clean_etcd.new_client(), HOST))
    good = cluster_record(lab)
    etcd.put(keys.cluster_key(a), json.dumps(good))
    etcd.put(keys.cluster_key(b), json.dumps(cluster_record(lab, name=b)))
    converger.once(0)

    def ids(name: str) -> dict:
        found = lab["client"].containers.list(all=True, filters={"label": f"{labels.CLUSTER}={name}"})
        return {c.name: (c.id, c.status) for c in found}

    before = ids(a)
    assert len(before) == 3 and all(status == "running" for _id, status in before.values())
    bad = {"not JSON": "{not json",
           "a newer layout": json.dumps(dict(good, format=2, placement={"hosts": {HOST: ["master"]}})),
           "a field of the wrong shape": json.dumps(dict(good, placement=dict(good["placement"], workers=7)))}
    for what, value in bad.items():
        etcd.put(keys.cluster_key(a), value)
        lab["client"].containers.get(f"spark-master-{b}").stop(timeout=1)
        actions = converger.once(0)
        assert ids(a) == before, what  # nothing of a removed, replaced or stopped
        assert sorted(c.name for c in actions.held) == sorted(before), what
        assert [node.name for node, _c in actions.start] == [f"spark-master-{b}"], what  # b still converges
        assert a in converger.in_doubt, what
    doubts = [e for e in read_events(etcd, limit=0) if e["kind"] == "record-in-doubt"]
    assert [e["cluster"] for e in doubts] == [a, a, a]  # once per change of why, never per pass
    assert "does not hold JSON" in doubts[0]["message"] and "format 2, newer than" in doubts[1]["message"]
    assert "cannot be understood (TypeError" in doubts[2]["message"]
    assert all(f"its containers on {HOST} are kept as they run" in e["message"] for e in doubts)
    converger.once(0)
    assert len([e for e in read_events(etcd, limit=0) if e["kind"] == "record-in-doubt"]) == 3

    etcd.put(keys.cluster_key(a), json.dumps(good))
    actions = converger.once(0)
    assert actions.empty and not actions.held and ids(a) == before and not converger.in_doubt
    assert [e["cluster"] for e in read_events(etcd, limit=0) if e["kind"] == "record-understood"] == [a]
    # in doubt, then deleted: the cluster was undeployed, its containers go (and the event says which)
    etcd.put(keys.cluster_key(a), "{not json")
    converger.once(0)
    etcd.delete(keys.cluster_key(a))
    converger.once(0)
    assert ids(a) == {} and len(ids(b)) == 3
    assert [e["cluster"] for e in read_events(etcd, limit=0) if e["kind"] == "record-gone"] == [a]
