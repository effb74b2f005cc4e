"""The registry's lock: builds hold it shared while they push, its garbage collection exclusively.

Upstream's garbage collection deletes every blob no manifest references, and a push uploads its blobs
before the manifest that references them: a collection that overlaps a push can delete the blobs of the
image being pushed, and its restart of the registry breaks the push. So the two exclude each other
through etcd. Each hold lives on its own lease: a holder that dies frees the lock when its TTL ends.

An exclusive taker first writes its key (from then on no new push starts; the write is refused while
another exclusive holder exists), then waits until the pushes already holding it shared have ended. A
taker that runs out of time leaves nothing behind and names who was in the way.
"""

from __future__ import annotations

import time
from typing import Callable

from ..core.errors import DcmError, StoreError
from ..state.store import DcmStore


class LockTimeout(DcmError):
    """The lock stayed held by others for the whole timeout; ``holders`` are the ones in the way."""

    def __init__(self, message: str, holders: list) -> None:
        super().__init__(message)
        self.holders = holders

    def details(self) -> dict:
        return {"holders": self.holders}


def describe(holder: dict, ttl: int | None = None) -> str:
    """One holder as a clause: what, where, by whom, since when, when its lease ends."""
    said = holder.get("purpose") or "an unnamed holder"
    where = " on ".join(part for part in (f"by {holder['by']}" if holder.get("by") else "", holder.get("host") or "")
                        if part)
    if where:
        said += f" ({where}"
        said += f", since {holder['since']})" if holder.get("since") else ")"
    if ttl is not None and ttl >= 0:
        said += f"; its lease ends in {ttl} s unless its holder renews it"
    return said


def hold(store: DcmStore, exclusive: bool, holder: dict, ttl: int, timeout: float, poll: float = 2.0,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Take the lock (``exclusive`` or shared) for ``holder`` on a new lease of ``ttl`` seconds.

    Returns ``{"lease", "waited", "waited_for"}`` (seconds, and what was in the way, once each). Raises
    :class:`LockTimeout` after ``timeout`` seconds, the lease revoked (the key goes with it)."""
    started = clock()
    deadline = started + timeout
    lease = store.grant(ttl)
    seen: list = []

    def blocked(holders: list) -> None:
        for one in holders:
            said = describe(one)
            if said not in seen:
                seen.append(said)
        if clock() >= deadline:
            in_the_way = "; ".join(describe(one, store.lease_ttl(one["lease"]) if one.get("lease") else None)
                                   for one in holders)
            raise LockTimeout(
                f"the pool registry's lock stayed held for {timeout:g} s by {in_the_way}. "
                + ("A garbage collection must not overlap a push: run gc.yml again once it has ended"
                   if exclusive else "A push must not overlap the registry's garbage collection: deploy again "
                                     "once it has ended")
                + " (a holder that died frees the lock when its lease ends)", holders)
        sleep(poll)
        if store.keepalive(lease) <= 0:  # a long wait must not outlive this taker's own lease
            raise DcmError(f"the lease of this hold on the registry's lock ({lease:x}) ended while it waited; "
                           "take the lock again")

    try:
        while (blocker := store.take_registry_lock(exclusive, holder, lease)) is not None:
            blocked([blocker])
        while exclusive and (readers := store.registry_lock_holders()["shared"]):
            blocked(readers)
    except BaseException:
        release(store, lease)
        raise
    return {"lease": lease, "waited": round(clock() - started, 1), "waited_for": seen}


def release(store: DcmStore, lease: int) -> bool:
    """Give the lock held on ``lease`` back (its key goes with the lease); False when it was gone already."""
    try:
        store.revoke(lease)
    except StoreError:
        if store.lease_ttl(lease) < 0:  # expired or revoked already
            return False
        raise
    return True
