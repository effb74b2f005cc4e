"""Image GC (Eq. 1, LRU) and container GC worked by hand."""

from __future__ import annotations

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gc import (
    ContainerInfo,
    ImageInfo,
    gc_target,
    plan_container_gc,
    plan_image_gc,
)

GB = 1 << 30


def test_eq1_target():
    assert gc_target(90 * GB, 100 * GB, 0.8) == 45 * GB  # 0.9 > 0.8 -> U/2
    assert gc_target(80 * GB, 100 * GB, 0.8) == 0  # 0.8 is not above 0.8
    assert gc_target(1, 100, 0.0) == 0  # U/2 of one byte rounds down
    with pytest.raises(ValueError, match="capacity"):
        gc_target(1, 0, 0.5)
    with pytest.raises(ValueError, match="threshold"):
        gc_target(1, 10, 1.5)


def test_lru_until_f_counting_unique_sizes():
    images = [
        ImageInfo("sha256:new", 30 * GB, last_used=300),
        ImageInfo("sha256:old", 10 * GB, last_used=100),
        ImageInfo("sha256:mid", 20 * GB, last_used=200),
        ImageInfo("sha256:oldest-busy", 50 * GB, last_used=1, in_use=True),
        ImageInfo("sha256:foreign", 40 * GB, last_used=2, dcspark=False),
        ImageInfo("sha256:desired", 40 * GB, last_used=3, tags=("reg:5000/dcspark-worker:abc",)),
    ]
    # U = 60g of 100g with T = 0.5: F = 30g. LRU: old (10g) then mid (20g) reach 30g; new stays.
    plan = plan_image_gc(images, used=60 * GB, capacity=100 * GB, threshold=0.5,
                         protected={"reg:5000/dcspark-worker:abc"})
    assert plan.target == 30 * GB
    assert [i.id for i in plan.selected] == ["sha256:old", "sha256:mid"]
    assert plan.freed == 30 * GB and plan.reached
    assert plan.kept == {
        "sha256:oldest-busy": "used by a container",
        "sha256:foreign": "not a DCSpark image",
        "sha256:desired": "placed on this host by a desired cluster",
    }
    as_dict = plan.to_dict()
    assert as_dict["usage_ratio"] == 0.6 and as_dict["selected"][0]["unique_size"] == 10 * GB


def test_foreign_images_only_when_asked():
    images = [ImageInfo("sha256:foreign", 40 * GB, last_used=2, dcspark=False), ImageInfo("sha256:d", GB, last_used=5)]
    plan = plan_image_gc(images, used=90 * GB, capacity=100 * GB, threshold=0.8, include_foreign=True)
    # F = 45g: the foreign image (least recently used) goes first, then the DCSpark one
    assert [i.id for i in plan.selected] == ["sha256:foreign", "sha256:d"]
    assert [i.id for i in plan_image_gc(images, used=90 * GB, capacity=100 * GB).selected] == ["sha256:d"]


def test_below_threshold_nothing_goes_and_short_of_f_everything_eligible_goes():
    images = [ImageInfo("sha256:a", GB, last_used=1), ImageInfo("sha256:b", GB, last_used=2)]
    assert plan_image_gc(images, used=10 * GB, capacity=100 * GB, threshold=0.8).selected == []
    plan = plan_image_gc(images, used=90 * GB, capacity=100 * GB, threshold=0.8)
    assert [i.id for i in plan.selected] == ["sha256:a", "sha256:b"] and not plan.reached


def test_protection_by_digest_reference():
    image = ImageInfo("sha256:x", GB, last_used=1, digests=("reg:5000/dcspark-master@sha256:aa",))
    plan = plan_image_gc([image], used=90 * GB, capacity=100 * GB, threshold=0.1,
                         protected={"reg:5000/dcspark-master@sha256:aa"})
    assert plan.selected == [] and "sha256:x" in plan.kept


def test_container_gc_keeps_what_desired_clusters_need():
    containers = [
        ContainerInfo("c1", "spark-worker-face-1", "exited", "face", "worker-1", "h1"),  # needed, same spec
        ContainerInfo("c2", "spark-worker-face-2", "exited", "face", "worker-2", "h0"),  # old spec hash
        ContainerInfo("c3", "spark-master-gone", "exited", "gone", "master", "h9"),  # cluster removed
        ContainerInfo("c4", "spark-driver-face", "running", "face", "driver", "h1"),  # running
        ContainerInfo("c5", "spark-worker-face-3", "dead", "face", "worker-3", None),  # no hash label, still placed
        ContainerInfo("c6", "spark-worker-face-9", "created", "face", "worker-9", "h1"),  # not exited
        ContainerInfo("c7", "eager_build", "exited", "face", None, "h1"),  # an image build's container
    ]
    desired = {("face", "worker-1", "h1"), ("face", "worker-2", "h1"), ("face", "worker-3", "h1"), ("face", "driver", "h1")}
    plan = plan_container_gc(containers, desired)
    assert [c.id for c in plan.selected] == ["c2", "c3"]
    assert plan.kept == {"c1": "needed by a desired cluster", "c4": "running", "c5": "needed by a desired cluster",
                         "c6": "created", "c7": "not a DCSpark node (no org.dcspark.node label)"}
