"""One garbage-collection pass on one Docker host (DCSpark paper, section 4.3): the only one there is.

The modules ``dcm_container_gc`` and ``dcm_image_gc`` (so ``playbooks/gc.yml``) and the DCM agent's GC
timers (:mod:`..daemons.gc_timers`) all call :func:`gc_pass`, which runs the same steps in the same
order:

1. the desired state: the cluster records of ``/dcm/clusters/`` (:meth:`DcmStore.clusters`), an explicit
   ``desired`` list, or both combined; neither is an error (:class:`DesiredStateMissing`), since a
   guessed empty desired state could remove what a cluster still needs, and a record that does not
   parse fails the read (:class:`CorruptRecord`), so such a pass removes nothing;
2. what those records place on this host (:func:`desired_on_host`), read before Docker is, so a cluster
   committed meanwhile is at worst pulled again;
3. the policy of :mod:`..policy.gc` on what the engine holds (only DCSpark-labelled containers and images
   are candidates);
4. the removals (never forced), unless ``check_mode``: then the pass lists what would go.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from ..core.errors import DcmError
from ..host.docker import (
    DEFAULT_DOCKER_HOST,
    DEFAULT_LAST_USED_FILE,
    DesiredOnHost,
    connect,
    desired_on_host,
    gather_containers,
    gather_images,
    read_last_used,
    remove_containers,
    remove_images,
)
from ..policy.gc import DEFAULT_THRESHOLD, plan_container_gc, plan_image_gc
from ..state.store import DcmStore

CONTAINERS = "containers"
IMAGES = "images"
DOCKER_TIMEOUT = 60.0  # seconds per Docker call (the modules); the agent allows more
NO_DESIRED_STATE = (
    "garbage collection needs the desired state, or it could remove what a cluster still needs: "
    "set etcd_endpoints to read the cluster records from etcd, or pass desired: [] explicitly "
    "when no cluster is desired on this host"
)


class DesiredStateMissing(DcmError):
    """Neither etcd nor an explicit desired state was given (GC refuses to guess)."""


@dataclass
class PassResult:
    """What one GC pass did on this host (or, in check mode, would do)."""

    kind: str  # CONTAINERS or IMAGES
    removed: list = field(default_factory=list)  # ids (empty in check mode)
    not_removed: dict = field(default_factory=dict)  # id -> why (Docker refused, gone meanwhile)
    freed_bytes: int = 0  # images: Σ unique size of the removed ones (check mode: of the selected ones)
    plan: dict = field(default_factory=dict)  # the policy's plan, as the modules return it
    names: dict = field(default_factory=dict)  # id -> container name or image tags, for messages
    in_scope: dict = field(default_factory=dict)  # id -> container name or image id, of everything in scope
    gone: set = field(default_factory=set)  # ids removed (check mode: selected)
    kept: dict = field(default_factory=dict)  # id -> why it stays (the plan's "kept")

    def diff(self) -> dict:
        """``{"before": {kind: [...]}, "after": {kind: [...]}}``: names of containers, ids of images, sorted."""
        before = sorted(self.in_scope.values())
        after = sorted(name for item, name in self.in_scope.items() if item not in self.gone)
        return {"before": {self.kind: before}, "after": {self.kind: after}}


def desired_records(desired: list | None, store: DcmStore | None = None) -> list:
    """Cluster records from ``desired`` and, when a store is given, from ``/dcm/clusters/``.

    Both sources may be given; their records are combined, so GC keeps what either wants. Neither is a
    :class:`DesiredStateMissing` error: an empty desired state must be said explicitly (``desired: []``).
    A record in etcd that does not parse raises :class:`CorruptRecord`: never taken for an absent one.
    """
    if desired is None and store is None:
        raise DesiredStateMissing(NO_DESIRED_STATE)
    records = list(desired or [])
    if store is not None:
        records.extend(store.clusters().values())
    return records


def container_pass(docker, wanted: DesiredOnHost, host_name: str, scope: dict | None = None,
                   check_mode: bool = False) -> PassResult:
    """Exited DCSpark containers no desired cluster needs, on the engine behind ``docker``."""
    containers = gather_containers(docker, scope)
    plan = plan_container_gc(containers, wanted.nodes)
    if check_mode:
        removed, not_removed = [], {}
        gone = {container.id for container in plan.selected}
    else:
        removed, not_removed = remove_containers(docker, plan.selected)
        gone = set(removed)
    summary = plan.to_dict()
    summary["host_name"] = host_name
    return PassResult(kind=CONTAINERS, removed=removed, not_removed=not_removed, plan=summary,
                      names={container.id: container.name for container in plan.selected},
                      in_scope={container.id: container.name for container in containers},
                      gone=gone, kept=dict(plan.kept))


def image_pass(docker, wanted: DesiredOnHost, host_name: str, threshold: float, last_used: dict,
               scope: dict | None = None, include_foreign: bool = False, check_mode: bool = False,
               statvfs: Callable = os.statvfs) -> PassResult:
    """DCSpark images, least recently used first, until Eq. 1's F at ``threshold`` is freed."""
    inventory = gather_images(docker, last_used, scope, statvfs)
    plan = plan_image_gc(inventory.images, inventory.used, inventory.capacity, threshold,
                         protected=wanted.image_refs, include_foreign=include_foreign)
    if check_mode:
        removed, not_removed = [], {}
        gone = {image.id for image in plan.selected}
        freed = plan.freed
    else:
        removed, not_removed = remove_images(docker, plan.selected)
        gone = set(removed)
        freed = sum(image.unique_size for image in plan.selected if image.id in gone)
    summary = plan.to_dict()
    summary.update(data_root=inventory.data_root, host_name=host_name, out_of_scope=inventory.out_of_scope)
    return PassResult(kind=IMAGES, removed=removed, not_removed=not_removed, freed_bytes=freed, plan=summary,
                      names={image.id: ", ".join(image.tags) or image.id[:19] for image in plan.selected},
                      in_scope={image.id: image.id for image in inventory.images},
                      gone=gone, kept=dict(plan.kept))


def gc_pass(kind: str, host_name: str, *, store: DcmStore | None = None, desired: list | None = None,
            docker_url: str = DEFAULT_DOCKER_HOST, docker_timeout: float = DOCKER_TIMEOUT,
            docker_connect: Callable = connect, scope: dict | None = None, threshold: float = DEFAULT_THRESHOLD,
            include_foreign: bool = False, last_used_file: str = DEFAULT_LAST_USED_FILE, check_mode: bool = False,
            statvfs: Callable = os.statvfs) -> PassResult:
    """One pass of ``kind`` (:data:`CONTAINERS` or :data:`IMAGES`) on this host, named ``host_name`` in
    placements; the desired state from ``store`` and/or ``desired`` (see :func:`desired_records`).

    ``scope`` (labels) narrows what is considered; ``threshold``, ``include_foreign`` and
    ``last_used_file`` are the image pass's. Errors propagate (nothing is removed before the desired state
    and the engine were both read).
    """
    if kind not in (CONTAINERS, IMAGES):
        raise ValueError(f"kind must be {CONTAINERS!r} or {IMAGES!r}, got {kind!r}")
    wanted = desired_on_host(desired_records(desired, store), host_name)
    last_used = read_last_used(last_used_file) if kind == IMAGES else {}
    docker = docker_connect(docker_url, docker_timeout)
    try:
        if kind == CONTAINERS:
            return container_pass(docker, wanted, host_name, scope, check_mode)
        return image_pass(docker, wanted, host_name, threshold, last_used, scope, include_foreign, check_mode,
                          statvfs)
    finally:
        docker.close()
