"""The GC's Docker adapter without an engine: parsing, desired state, last-use file, removal decisions."""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import docker.errors
import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels
from ansible_collections.dcspark.dcm.plugins.module_utils.host.docker import (
    DockerHostError,
    connect,
    containers_from_list,
    desired_on_host,
    filesystem_capacity,
    images_from_df,
    labels_match,
    normalize_reference,
    read_last_used,
    record_image_use,
    remove_containers,
    remove_images,
    single_reference,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gc import ContainerInfo, ImageInfo, plan_container_gc

MANAGED = {labels.MANAGED: "true"}


# -- desired state ---------------------------------------------------------------------------
RECORD = {
    "name": "face",
    "spec_hash": "h1",
    "placement": {"master": "n1", "driver": "n2", "workers": ["n1", "n2", "n2"]},
    "images": {"master": "reg:5000/face-master:3", "driver": "face-driver", "worker": "reg:5000/face-worker@sha256:ab"},
}


def test_desired_on_host_takes_the_image_of_each_node_placed_there():
    on_n2 = desired_on_host([RECORD], "n2")
    assert on_n2.nodes == {("face", "driver", "h1"), ("face", "worker-2", "h1"), ("face", "worker-3", "h1")}
    assert on_n2.image_refs == {"face-driver", "face-driver:latest", "reg:5000/face-worker@sha256:ab"}
    on_n1 = desired_on_host([RECORD], "n1")
    assert on_n1.nodes == {("face", "master", "h1"), ("face", "worker-1", "h1")}
    assert on_n1.image_refs == {"reg:5000/face-master:3", "reg:5000/face-worker@sha256:ab"}
    nothing = desired_on_host([RECORD], "n3")
    assert nothing.nodes == frozenset() and nothing.image_refs == frozenset()


def test_records_without_images_or_placement_protect_nothing_on_the_host_but_names_are_required():
    assert desired_on_host([{"name": "x"}], "n1").nodes == frozenset()
    assert desired_on_host([{"name": "x", "placement": {"master": "n1"}}], "n1").nodes == {("x", "master", None)}
    with pytest.raises(DcmError, match=r"desired\[1\]"):
        desired_on_host([RECORD, {"placement": {}}], "n1")


def test_desired_node_keeps_its_exited_container_through_the_policy():
    wanted = desired_on_host([RECORD], "n2").nodes
    plan = plan_container_gc([
        ContainerInfo("a", "spark-worker-face-2", "exited", "face", "worker-2", "h1"),
        ContainerInfo("b", "spark-worker-face-1", "exited", "face", "worker-1", "h1"),  # placed on n1
        ContainerInfo("c", "spark-driver-face", "exited", "face", "driver", "h0"),  # older spec
    ], wanted)
    assert [c.id for c in plan.selected] == ["b", "c"] and plan.kept == {"a": "needed by a desired cluster"}


@pytest.mark.parametrize("reference, normalized", [
    ("debian", "debian:latest"),
    ("debian:12", "debian:12"),
    ("docker.io/library/debian:12", "debian:12"),
    ("docker.io/dcspark/spark", "dcspark/spark:latest"),
    ("reg:5000/spark", "reg:5000/spark:latest"),
    ("reg:5000/spark:4", "reg:5000/spark:4"),
    ("reg:5000/spark:4@sha256:ab", "reg:5000/spark@sha256:ab"),
    ("sha256:0123", "sha256:0123"),
])
def test_references_are_spelled_as_docker_lists_them(reference, normalized):
    assert normalize_reference(reference) == normalized


def test_single_reference_follows_dockers_rule():
    assert single_reference([], [])
    assert single_reference(["a:1"], ["a@sha256:x"])
    assert not single_reference(["a:1", "a:2"], [])
    assert not single_reference(["a:1"], ["b@sha256:x"])
    assert single_reference([], ["reg:5000/a@sha256:x", "reg:5000/a@sha256:y"])


# -- parsing what the engine says ----------------------------------------------------------------
DF = {
    "LayersSize": 900,
    "Images": [
        {"Id": "sha256:aa", "Size": 500, "SharedSize": 100, "Created": 10, "Labels": {**MANAGED, "run": "1"},
         "RepoTags": ["a:1", "a:2"], "RepoDigests": []},
        {"Id": "sha256:bb", "Size": 300, "SharedSize": 100, "Created": 20, "Labels": None,
         "RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]},
        {"Id": "sha256:cc", "Size": 200, "SharedSize": -1, "Created": 30, "Labels": {**MANAGED, "run": "2"},
         "RepoTags": None, "RepoDigests": ["reg/c@sha256:cd"]},
    ],
    "Containers": [{"Id": "x", "ImageID": "sha256:bb", "State": "exited"}],
}


def test_images_from_df_unique_sizes_use_and_last_use():
    images, out_of_scope = images_from_df(DF, {"sha256:aa": 99.5, "cc": 77})
    assert out_of_scope == 0
    assert images == [
        ImageInfo("sha256:aa", 400, 99.5, dcspark=True, in_use=False, tags=("a:1", "a:2"), digests=()),
        ImageInfo("sha256:bb", 200, 20.0, dcspark=False, in_use=True, tags=(), digests=()),
        ImageInfo("sha256:cc", 200, 77, dcspark=True, in_use=False, tags=(), digests=("reg/c@sha256:cd",)),
    ]


def test_scope_labels_leave_other_images_out():
    images, out_of_scope = images_from_df(DF, {}, {"run": 2})
    assert [i.id for i in images] == ["sha256:cc"] and out_of_scope == 2
    assert labels_match({"a": "1", "b": "2"}, {"a": "1"}) and not labels_match(None, {"a": "1"})
    assert labels_match(None, None)


def test_containers_without_the_dcspark_label_are_never_listed():
    found = containers_from_list([
        {"Id": "1", "Names": ["/spark-master-face"], "State": "exited",
         "Labels": {**MANAGED, labels.CLUSTER: "face", labels.NODE: "master", labels.SPEC_HASH: "h"}},
        {"Id": "2", "Names": ["/web"], "State": "exited", "Labels": {"app": "web"}},
        {"Id": "3", "Names": [], "State": "running", "Labels": MANAGED},
    ])
    assert found == [
        ContainerInfo("1", "spark-master-face", "exited", "face", "master", "h"),
        ContainerInfo("3", "3", "running", None, None, None),
    ]


def test_capacity_is_the_whole_filesystem():
    assert filesystem_capacity("/x", lambda _p: SimpleNamespace(f_blocks=1000, f_frsize=4096)) == 4096000


# -- the last-use file ------------------------------------------------------------------------------
def test_last_use_round_trip_is_monotonic_and_atomic(tmp_path):
    path = str(tmp_path / "sub" / "image-last-used.json")
    assert read_last_used(path) == {}
    record_image_use(path, "sha256:aa", 100)
    record_image_use(path, "sha256:bb", 50)
    record_image_use(path, "sha256:aa", 90)  # an older start never moves the last use back
    assert read_last_used(path) == {"sha256:aa": 100.0, "sha256:bb": 50.0}
    assert sorted(os.listdir(tmp_path / "sub")) == ["image-last-used.json"]  # no temporary file left
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_a_broken_last_use_file_is_an_error_for_gc_and_rewritten_by_the_recorder(tmp_path):
    path = tmp_path / "last.json"
    path.write_text("{not json")
    with pytest.raises(DockerHostError, match="last.json"):
        read_last_used(str(path))
    path.write_text(json.dumps({"sha256:aa": "yesterday"}))
    with pytest.raises(DockerHostError, match="yesterday"):
        read_last_used(str(path))
    record_image_use(str(path), "sha256:bb", 5)
    assert read_last_used(str(path)) == {"sha256:bb": 5.0}


# -- removal decisions (a fake engine) ------------------------------------------------------------------
def _conflict(message: str, status: int = 409) -> docker.errors.APIError:
    response = SimpleNamespace(status_code=status, reason="Conflict")
    return docker.errors.APIError(message, response=response, explanation=message)


class FakeEngine:
    def __init__(self, refuse: dict | None = None, children: list | None = None, users: list | None = None):
        self.refuse = refuse or {}
        self.children = children or []
        self.users = users or []
        self.calls = []

    def remove_image(self, ref, force=False):
        assert force is False
        self.calls.append(("rmi", ref))
        if ref in self.refuse:
            raise self.refuse[ref]
        return [{"Untagged": ref}] if not ref.startswith("sha256:") else [{"Deleted": ref}]

    def containers(self, all=False, filters=None):
        return self.users

    def images(self, all=False):
        return self.children

    def remove_container(self, cid, v=False, force=False):
        assert force is False and v is True
        self.calls.append(("rm", cid))
        if cid in self.refuse:
            raise self.refuse[cid]


def test_a_refusal_is_reported_and_the_next_image_is_still_tried():
    engine = FakeEngine(refuse={"sha256:p": _conflict("conflict: image has dependent child images")})
    removed, refused = remove_images(engine, [ImageInfo("sha256:p", 0, 1), ImageInfo("sha256:q", 5, 2, tags=("q:1",))])
    assert removed == ["sha256:q"]
    assert refused == {"sha256:p": "Docker refused: conflict: image has dependent child images"}
    assert engine.calls == [("rmi", "sha256:p"), ("rmi", "sha256:q")]  # one reference: by id, atomically


def test_several_tags_are_untagged_down_to_one_only_when_nothing_blocks():
    image = ImageInfo("sha256:m", 5, 1, tags=("m:1", "m:2", "n:1"))
    engine = FakeEngine()
    assert remove_images(engine, [image]) == (["sha256:m"], {})
    assert engine.calls == [("rmi", "m:2"), ("rmi", "n:1"), ("rmi", "sha256:m")]

    blocked = FakeEngine(users=[{"Id": "c1", "Names": ["/late"], "ImageID": "sha256:m"}])
    removed, refused = remove_images(blocked, [image])
    assert removed == [] and "late" in refused["sha256:m"] and blocked.calls == []

    parent = FakeEngine(children=[{"Id": "sha256:kid", "ParentId": "sha256:m"}])
    removed, refused = remove_images(parent, [image])
    assert "dependent child images" in refused["sha256:m"] and parent.calls == []


def test_an_image_that_vanished_is_not_counted_as_removed():
    engine = FakeEngine(refuse={"sha256:g": _conflict("No such image", status=404)})
    assert remove_images(engine, [ImageInfo("sha256:g", 5, 1)]) == ([], {"sha256:g": "no longer exists"})


def test_containers_are_removed_without_force_and_refusals_reported():
    engine = FakeEngine(refuse={"b": _conflict("You cannot remove a running container b")})
    containers = [ContainerInfo(i, i, "exited", "c", "master") for i in ("a", "b", "c")]
    removed, refused = remove_containers(engine, containers)
    assert removed == ["a", "c"] and refused == {"b": "Docker refused: You cannot remove a running container b"}


# -- connecting ---------------------------------------------------------------------------------------
def test_a_missing_sdk_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)  # makes `import docker` raise ImportError
    with pytest.raises(DockerHostError, match=r"pip install docker, or Debian python3-docker"):
        connect()


def test_an_unreachable_engine_names_its_address(tmp_path):
    with pytest.raises(DockerHostError, match="no-engine.sock"):
        connect(f"unix://{tmp_path}/no-engine.sock", timeout=5)
