"""Image and container GC through Ansible against the real Docker engine.

The test builds its own images and containers (offline, from a static busybox),
every one labelled ``org.dcspark.test-run=<uuid>``, and runs the modules with
``scope_labels`` on that label, so nothing else on a shared engine can be
selected. What the image GC must remove is computed independently here: the
test reads the engine through the Docker SDK itself and runs the pure policy
(``gc.plan_image_gc``) on what it read, with the U and C the module reports
(other work on a shared engine may change U between two reads).

Images (sizes of their random file; LRU order by the recorded last use)::

    base        foreign  busybox, tagged; the parent of every other image
    foreign     foreign  8 MiB, last use 100 (oldest, but not DCSpark)
    parent      DCSpark  4 MiB, last use 200, has a child: unique size 0, Docker refuses it
    inuse       DCSpark  4 MiB, last use 300, a running container uses it
    desired     DCSpark  4 MiB, last use 400, worker image of a desired cluster on this host (by tag)
    desired-id  DCSpark  4 MiB, last use 500, driver image of a desired cluster on this host (by id)
    old1        DCSpark 16 MiB, last use 1000, two tags
    elsewhere   DCSpark  4 MiB, last use 1500, master image of that cluster, but its master is elsewhere
    old2        DCSpark 12 MiB, last use 2000, untagged
    old3        DCSpark  8 MiB, last use 3000
    child       DCSpark  4 MiB, last use 9000, built on parent
    fresh       DCSpark  4 MiB, no recorded use: its creation time (now)

With threshold 0, F = U/2 >= 37 MiB, so parent, old1, elsewhere and old2 are
always selected (32 MiB), and on an otherwise empty engine old3 closes it.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gc import ImageInfo, plan_image_gc
from docker_fixtures import TEST_RUN, cleanup, container, derive_image, engine, import_base
from support import run_module

pytestmark = pytest.mark.docker

MiB = 1 << 20
HOST = "gc-host"
OTHER_HOST = "other-host"
REPO = "dcspark-gc-test"
MANAGED = {labels.MANAGED: "true"}
TAR_SLACK = 64 * 1024  # a layer holding one file is the file plus tar headers and the directory entry


@dataclass
class World:
    run_id: str
    cluster: str
    images: dict = field(default_factory=dict)  # name -> image id
    tags: dict = field(default_factory=dict)  # name -> tags
    blob: dict = field(default_factory=dict)  # name -> bytes of its random file
    containers: dict = field(default_factory=dict)  # name -> container id
    last_used: dict = field(default_factory=dict)  # image id -> epoch seconds
    last_used_file: str = ""
    record: dict = field(default_factory=dict)

    @property
    def scope(self) -> dict:
        return {TEST_RUN: self.run_id}

    def args(self, **extra) -> dict:
        return {"host_name": HOST, "scope_labels": self.scope, **extra}


@pytest.fixture(scope="module")
def client():
    api = engine()
    yield api
    api.close()


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    run_id = uuid.uuid4().hex
    w = World(run_id=run_id, cluster=f"gct{run_id[:8]}")
    try:
        _build(client, w, str(tmp_path_factory.mktemp("gc") / "image-last-used.json"))
        yield w
    finally:
        problems = cleanup(client, run_id)
        assert not problems, f"cleanup of test run {run_id} left things behind: {problems}"


def _build(client, w: World, last_used_file: str) -> None:
    def tag(name):
        return f"{REPO}/{name}:{w.run_id}"
    w.images["base"] = import_base(client, w.run_id, f"{REPO}/base")

    def image(name, size, managed=True, parent="base", tags=None, last_used=None):
        w.tags[name] = tuple(tags if tags is not None else (tag(name),))
        w.blob[name] = size
        w.images[name] = derive_image(
            client, w.images[parent], w.run_id, size, MANAGED if managed else {}, w.tags[name]
        )
        if last_used is not None:
            w.last_used[w.images[name]] = float(last_used)

    image("foreign", 8 * MiB, managed=False, last_used=100)
    image("parent", 4 * MiB, last_used=200)
    image("inuse", 4 * MiB, last_used=300)
    image("desired", 4 * MiB, last_used=400)
    image("desired-id", 4 * MiB, last_used=500)
    image("old1", 16 * MiB, tags=(tag("old1"), tag("old1-alias")), last_used=1000)
    image("elsewhere", 4 * MiB, last_used=1500)
    image("old2", 12 * MiB, tags=(), last_used=2000)
    image("old3", 8 * MiB, last_used=3000)
    image("child", 4 * MiB, parent="parent", last_used=9000)
    image("fresh", 4 * MiB)

    w.last_used_file = last_used_file
    with open(last_used_file, "w", encoding="utf-8") as handle:
        json.dump(w.last_used, handle)

    w.record = {
        "name": w.cluster,
        "spec_hash": "h1",
        "placement": {"master": OTHER_HOST, "driver": HOST, "workers": [HOST, OTHER_HOST]},
        "images": {"master": tag("elsewhere"), "driver": w.images["desired-id"], "worker": tag("desired")},
        "desired_state": "running",
    }

    def node(cluster, name, spec_hash):
        return {**MANAGED, labels.CLUSTER: cluster, labels.NODE: name, labels.SPEC_HASH: spec_hash}

    inuse, true = w.images["inuse"], ["/bin/true"]
    w.containers["running"] = container(client, inuse, w.run_id, node(w.cluster, "driver", "h1"),
                                        ["/bin/sleep", "3600"])
    w.containers["needed"] = container(client, inuse, w.run_id, node(w.cluster, "worker-1", "h1"), true)
    w.containers["stale-spec"] = container(client, inuse, w.run_id, node(w.cluster, "driver", "h0"), true)
    w.containers["placed-elsewhere"] = container(client, inuse, w.run_id, node(w.cluster, "master", "h1"), true)
    w.containers["orphan"] = container(client, inuse, w.run_id, node(f"gone{w.run_id[:8]}", "worker-1", "h1"), true)
    w.containers["created"] = container(client, inuse, w.run_id, node(f"gone{w.run_id[:8]}", "worker-2", "h1"),
                                        true, start=False)
    w.containers["foreign"] = container(client, w.images["base"], w.run_id, {}, true)


# -- what the test reads itself ------------------------------------------------------------
def scoped_image_ids(client, w: World) -> set:
    return {i["Id"] for i in client.images(all=True, filters={"label": [f"{TEST_RUN}={w.run_id}"]})}


def scoped_container_ids(client, w: World) -> set:
    return {c["Id"] for c in client.containers(all=True, filters={"label": [f"{TEST_RUN}={w.run_id}"]})}


def independent_images(client, w: World) -> list:
    """The test's own reading of its images: sizes from df, users from the container list."""
    users = {c["ImageID"] for c in client.containers(all=True)}
    found = []
    for raw in client.df()["Images"]:
        image_labels = raw.get("Labels") or {}
        if image_labels.get(TEST_RUN) != w.run_id:
            continue
        found.append(ImageInfo(
            id=raw["Id"],
            unique_size=raw["Size"] - raw["SharedSize"],
            last_used=w.last_used.get(raw["Id"], float(raw["Created"])),
            dcspark=image_labels.get(labels.MANAGED) == "true",
            in_use=raw["Id"] in users,
            tags=tuple(t for t in raw.get("RepoTags") or () if t != "<none>:<none>"),
        ))
    return found


def names_of(w: World, ids) -> set:
    by_id = {image_id: name for name, image_id in w.images.items()}
    return {by_id.get(i, i) for i in ids}


# -- the safety rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["dcm_image_gc", "dcm_container_gc"])
def test_without_a_desired_state_nothing_is_removed(client, world, module):
    images, containers = scoped_image_ids(client, world), scoped_container_ids(client, world)
    result = run_module(module, world.args(threshold=0.0, last_used_file=world.last_used_file)
                        if module == "dcm_image_gc" else world.args())
    assert result.get("failed") is True, result
    assert "desired state" in result["msg"] and "etcd_endpoints" in result["msg"] and "desired: []" in result["msg"]
    assert scoped_image_ids(client, world) == images
    assert scoped_container_ids(client, world) == containers


# -- images -----------------------------------------------------------------------------------------
def test_image_gc_removes_what_the_policy_selects_and_nothing_else(client, world):
    w = world
    args = w.args(threshold=0.0, desired=[w.record], last_used_file=w.last_used_file)
    before = scoped_image_ids(client, w)
    own = {image.id: image for image in independent_images(client, w)}

    # Unique sizes really are Size - SharedSize: each image's own random file, shared layers excluded.
    for name in ("foreign", "inuse", "old1", "old2", "old3", "child", "fresh"):
        unique = own[w.images[name]].unique_size
        assert w.blob[name] <= unique <= w.blob[name] + TAR_SLACK, (name, unique)
    assert own[w.images["parent"]].unique_size == 0  # every layer of parent is also child's

    # Check mode: the plan, and nothing removed.
    checked = run_module("dcm_image_gc", args, check=True, diff=True)
    assert checked.get("failed") is not True, checked
    plan = checked["plan"]
    root = client.info()["DockerRootDir"]
    stat = os.statvfs(root)
    assert plan["capacity_bytes"] == stat.f_blocks * stat.f_frsize
    assert plan["data_root"] == root and plan["host_name"] == HOST
    assert plan["used_bytes"] >= sum(i.unique_size for i in own.values())

    expected = plan_image_gc(own.values(), plan["used_bytes"], plan["capacity_bytes"], 0.0,
                             protected={f"{REPO}/desired:{w.run_id}", w.images["desired-id"]})
    assert expected.target == plan["used_bytes"] // 2 > 0
    expected_ids = [image.id for image in expected.selected]
    assert [entry["id"] for entry in plan["selected"]] == expected_ids
    assert plan["target_bytes"] == expected.target and plan["freed_bytes"] == expected.freed
    assert plan["kept"] == expected.kept
    assert {"parent", "old1", "elsewhere", "old2"} <= names_of(w, expected_ids)  # F >= 37 MiB, see above
    assert names_of(w, expected.kept) == {"base", "foreign", "inuse", "desired", "desired-id"}
    assert plan["kept"][w.images["inuse"]] == "used by a container"
    assert plan["kept"][w.images["desired-id"]] == plan["kept"][w.images["desired"]] == \
        "placed on this host by a desired cluster"
    assert plan["kept"][w.images["foreign"]] == "not a DCSpark image"
    assert checked["changed"] is True and checked["removed"] == [] and checked["not_removed"] == {}
    assert checked["freed_bytes"] == expected.freed
    assert checked["diff"]["before"]["images"] == sorted(before)
    assert set(checked["diff"]["after"]["images"]) == before - set(expected_ids)
    assert scoped_image_ids(client, w) == before

    # The real run: the same selection; parent is refused by Docker (child builds on it): not removed.
    result = run_module("dcm_image_gc", args)
    assert result.get("failed") is not True, result
    assert [entry["id"] for entry in result["plan"]["selected"]] == expected_ids
    removable = [i for i in expected_ids if i != w.images["parent"]]
    assert result["removed"] == removable
    assert list(result["not_removed"]) == [w.images["parent"]]
    assert "dependent child images" in result["not_removed"][w.images["parent"]]
    assert result["freed_bytes"] == sum(own[i].unique_size for i in removable)
    assert result["changed"] is True
    after = scoped_image_ids(client, w)
    assert after == before - set(removable)
    for name in ("base", "foreign", "inuse", "desired", "desired-id", "parent", "child", "fresh"):
        assert w.images[name] in after or w.images[name] in removable, name
    for name in ("base", "foreign", "inuse", "desired", "desired-id", "parent"):
        assert w.images[name] in after, f"{name} must never be removed"
    for alias in w.tags["old1"]:  # both tags of the multi-tagged image went with it
        assert not client.images(name=alias)

    # Idempotence: at a threshold the first run's usage was above and the usage after it is below
    # (halfway between, so other work on a shared engine has half the freed bytes of slack).
    capacity = result["plan"]["capacity_bytes"]
    threshold = (result["plan"]["used_bytes"] - result["freed_bytes"] / 2) / capacity
    assert result["plan"]["used_bytes"] / capacity > threshold
    again = run_module("dcm_image_gc", {**args, "threshold": threshold})
    assert again.get("failed") is not True, again
    assert again["plan"]["target_bytes"] == 0, again["plan"]
    assert again["changed"] is False and again["removed"] == [] and again["plan"]["selected"] == []
    assert scoped_image_ids(client, w) == after


# -- containers -------------------------------------------------------------------------------
def test_container_gc_removes_unneeded_exited_dcspark_containers(client, world, clean_etcd):
    w = world
    c = w.containers
    by_id = {cid: name for name, cid in c.items()}
    before = scoped_container_ids(client, w)
    assert before == set(c.values())

    checked = run_module("dcm_container_gc", w.args(desired=[w.record]), check=True, diff=True)
    assert checked.get("failed") is not True, checked
    selected = {entry["id"] for entry in checked["plan"]["selected"]}
    assert {by_id[i] for i in selected} == {"stale-spec", "placed-elsewhere", "orphan"}
    assert checked["kept"] == {c["running"]: "running", c["needed"]: "needed by a desired cluster",
                               c["created"]: "created"}
    assert c["foreign"] not in checked["kept"] and c["foreign"] not in selected  # never even listed
    assert checked["changed"] is True and checked["removed"] == []
    assert len(checked["diff"]["before"]["containers"]) == 6 and len(checked["diff"]["after"]["containers"]) == 3
    assert scoped_container_ids(client, w) == before

    # The real run reads the same desired cluster from etcd instead of the desired option.
    clean_etcd.client.put(f"/dcm/clusters/{w.cluster}", json.dumps(w.record))
    etcd_args = w.args(**clean_etcd.module_args())
    result = run_module("dcm_container_gc", etcd_args)
    assert result.get("failed") is not True, result
    assert set(result["removed"]) == selected and result["not_removed"] == {}
    assert result["changed"] is True
    assert scoped_container_ids(client, w) == before - selected
    assert client.inspect_container(c["foreign"])["State"]["Status"] == "exited"
    assert client.inspect_container(c["running"])["State"]["Running"] is True

    again = run_module("dcm_container_gc", etcd_args)
    assert again.get("failed") is not True, again
    assert again["changed"] is False and again["removed"] == [] and again["plan"]["selected"] == []
    assert scoped_container_ids(client, w) == before - selected
