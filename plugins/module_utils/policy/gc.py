"""Garbage-collection policy (DCSpark paper, section 4.3): pure, no I/O.

Images, Eq. 1: with ``C`` the capacity of the filesystem under Docker's data
root, ``U`` the bytes used by images and ``T`` the threshold,
``F = U/2`` when ``U/C > T``, else ``F = 0``. DCSpark images are removed least
recently used first until the bytes freed (each image's unique size, not its
shared layers) reach ``F``. Images used by any container, or placed on this
host by a desired cluster, are never selected; other images (without the
DCSpark label) only when asked.

Containers: exited DCSpark containers that no desired cluster still needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

DEFAULT_THRESHOLD = 0.8


@dataclass(frozen=True)
class ImageInfo:
    """One local image, as the policy needs it."""

    id: str
    unique_size: int  # bytes that would be freed by removing only this image
    last_used: float  # epoch seconds: recorded last container start, else the image's creation time
    dcspark: bool = True  # carries the DCSpark label
    in_use: bool = False  # some container (running or not) uses it
    tags: tuple = ()
    digests: tuple = ()  # repo@sha256 references


@dataclass
class ImageGcPlan:
    capacity: int
    used: int
    threshold: float
    target: int  # F, bytes
    selected: list = field(default_factory=list)  # ImageInfo, in removal order
    freed: int = 0  # Σ unique_size of selected
    kept: dict = field(default_factory=dict)  # image id -> why it is kept (protected ones)

    @property
    def ratio(self) -> float:
        return self.used / self.capacity if self.capacity else 0.0

    @property
    def reached(self) -> bool:
        return self.freed >= self.target

    def to_dict(self) -> dict:
        return {
            "capacity_bytes": self.capacity,
            "used_bytes": self.used,
            "usage_ratio": round(self.ratio, 6),
            "threshold": self.threshold,
            "target_bytes": self.target,
            "freed_bytes": self.freed,
            "target_reached": self.reached,
            "selected": [
                {"id": img.id, "tags": list(img.tags), "unique_size": img.unique_size, "last_used": img.last_used}
                for img in self.selected
            ],
            "kept": dict(self.kept),
        }


def gc_target(used: int, capacity: int, threshold: float) -> int:
    """Eq. 1: bytes to free, ``U/2`` above the threshold, else 0."""
    if capacity <= 0:
        raise ValueError(f"filesystem capacity must be positive, got {capacity}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    return used // 2 if used / capacity > threshold else 0


def plan_image_gc(
    images: Iterable[ImageInfo],
    used: int,
    capacity: int,
    threshold: float = DEFAULT_THRESHOLD,
    protected: Iterable[str] = (),
    include_foreign: bool = False,
) -> ImageGcPlan:
    """Choose the images to remove.

    ``protected`` holds image ids and references (tags or ``name@sha256:``
    digests) that desired clusters place on this host.
    """
    target = gc_target(used, capacity, threshold)
    plan = ImageGcPlan(capacity=capacity, used=used, threshold=threshold, target=target)
    protected_refs = set(protected)
    candidates = []
    for image in images:
        if image.in_use:
            plan.kept[image.id] = "used by a container"
        elif image.id in protected_refs or protected_refs.intersection(image.tags) or protected_refs.intersection(image.digests):
            plan.kept[image.id] = "placed on this host by a desired cluster"
        elif not image.dcspark and not include_foreign:
            plan.kept[image.id] = "not a DCSpark image"
        else:
            candidates.append(image)
    if target == 0:
        return plan
    candidates.sort(key=lambda img: (img.last_used, img.id))
    for image in candidates:
        if plan.freed >= target:
            break
        plan.selected.append(image)
        plan.freed += image.unique_size
    return plan


@dataclass(frozen=True)
class ContainerInfo:
    """One DCSpark container on the host."""

    id: str
    name: str
    state: str  # Docker's State.Status: created, running, exited, dead...
    cluster: str | None  # org.dcspark.cluster label
    node: str | None  # org.dcspark.node label
    spec_hash: str | None = None  # org.dcspark.spec-hash label


REMOVABLE_STATES = ("exited", "dead")


@dataclass
class ContainerGcPlan:
    selected: list = field(default_factory=list)
    kept: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "selected": [{"id": c.id, "name": c.name, "cluster": c.cluster, "node": c.node, "state": c.state}
                         for c in self.selected],
            "kept": dict(self.kept),
        }


def plan_container_gc(containers: Iterable[ContainerInfo], desired: Iterable[tuple]) -> ContainerGcPlan:
    """Exited DCSpark containers that no desired cluster still needs.

    ``desired`` holds ``(cluster, node, spec_hash)`` for every node that desired
    clusters place on this host; an exited container of such a node (same spec
    hash) is kept, since the agent restarts it rather than recreating it.
    """
    wanted = set(desired)
    wanted_nodes = {(cluster, node) for cluster, node, _hash in wanted}
    plan = ContainerGcPlan()
    for container in containers:
        if not container.node:
            # An image build's intermediate containers inherit the image's DCSpark labels but are
            # no node: the builder removes them itself, and removing one would break its build.
            plan.kept[container.id] = "not a DCSpark node (no org.dcspark.node label)"
        elif container.state not in REMOVABLE_STATES:
            plan.kept[container.id] = f"{container.state}"
        elif (container.cluster, container.node, container.spec_hash) in wanted or (
            container.spec_hash is None and (container.cluster, container.node) in wanted_nodes
        ):
            plan.kept[container.id] = "needed by a desired cluster"
        else:
            plan.selected.append(container)
    return plan
