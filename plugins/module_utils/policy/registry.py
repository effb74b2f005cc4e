"""Registry retention: which queued images of pruned generations the pool registry may delete.

When a generation leaves a cluster's history (or the cluster is removed), its images are queued under
``/dcm/registry/prune/<cluster>/<N>`` in the same transaction (:mod:`store`). :func:`prune_plan`
decides, at one etcd revision, what of that queue goes: an image is kept while any cluster record
(the generation a rollout replaces included) or any retained generation names it, and a queue entry
younger than the grace period waits (a deploy that found the image in the registry a moment ago may not
have reserved it yet). The module ``dcm_registry_prune`` deletes the manifests through the registry
API; the registry's own garbage collection then frees their blobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from ..core.errors import DcmError

REFERENCE = re.compile(r"^(?P<registry>[^/]+)/(?P<repository>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[\w][\w.-]{0,127}))?"
                       r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def parse_reference(reference: str) -> tuple:
    """``(registry, repository, tag or None, digest or None)`` of ``host:port/repo[:tag][@digest]``."""
    match = REFERENCE.match(reference or "")
    if not match:
        raise DcmError(f"{reference!r} is not an image reference of the form registry/repository[:tag][@sha256:...]")
    return match.group("registry"), match.group("repository"), match.group("tag"), match.group("digest")


def images_in_use(records: Iterable[dict], histories: dict) -> dict:
    """``{reference: why kept}`` for every image a cluster record or a retained generation names."""
    used: dict = {}
    for record in records:
        name = record.get("name")
        for reference in (record.get("images") or {}).values():
            used.setdefault(reference, f"cluster {name} runs it (generation {record.get('generation')})")
        old = (record.get("rollout") or {}).get("from") or {}
        for reference in (old.get("images") or {}).values():
            used.setdefault(reference, f"cluster {name} still runs it while rolling out of generation "
                                       f"{old.get('generation')}")
    for name, history in histories.items():
        for generation, entry in history.items():
            for reference in (entry.get("images") or {}).values():
                used.setdefault(reference, f"cluster {name} retains it in generation {generation}")
    return used


@dataclass
class PrunePlan:
    delete: list = field(default_factory=list)  # references whose manifests go
    kept: list = field(default_factory=list)  # {"image", "why"}
    waiting: list = field(default_factory=list)  # queue keys inside the grace period
    done: list = field(default_factory=list)  # queue keys settled once the deletions succeed
    foreign: list = field(default_factory=list)  # references of another registry (left alone)


def prune_plan(queue: dict, used: dict, registry: str, now: float, grace: float) -> PrunePlan:
    """What the prune does with ``queue`` (``{key: entry}``) given the images ``used``."""
    plan = PrunePlan()
    seen = set()
    for key in sorted(queue):
        entry = queue[key]
        if now - float(entry.get("queued_at") or 0) < grace:
            plan.waiting.append(key)
            continue
        plan.done.append(key)
        for reference in sorted(set((entry.get("images") or {}).values())):
            if reference in seen:
                continue
            seen.add(reference)
            if reference in used:
                plan.kept.append({"image": reference, "why": used[reference]})
            elif parse_reference(reference)[0] != registry:
                plan.foreign.append(reference)
            else:
                plan.delete.append(reference)
    return plan


def provenance(recorded: dict | None, served: dict) -> tuple:
    """``(trusted, why)``: may a deploy reuse the images the registry ``served`` (``{role: digest}``) under a
    content tag, given what the pool's own build ``recorded`` for that tag in etcd (or None)?

    Only when etcd records exactly those digests: the tag is a hash anyone with the spec can compute,
    so whoever pushed first would otherwise decide what runs.
    """
    if recorded is None:
        return False, "etcd records no build of this pool for the tag"
    known = recorded.get("images") or {}
    differ = sorted(role for role in served if known.get(role) != served[role])
    if differ:
        serves = ", ".join(f"dcspark-{role} {served[role]}" for role in differ)
        records = ", ".join(str(known.get(role) or "none") for role in differ)
        return False, f"the registry serves {serves}, which no build of this pool pushed (etcd records {records})"
    return True, "the registry serves the digests a build of this pool recorded"
