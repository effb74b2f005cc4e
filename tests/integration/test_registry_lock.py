"""dcm_registry_lock against a real etcd with TLS: pushes side by side, the garbage collection alone.

Every hold is taken by its own ``ansible localhost -m dcspark.dcm.dcm_registry_lock`` process, as a
build and gc.yml take it, so what is held between two runs is only what etcd keeps on the leases.
"""

from __future__ import annotations

import threading
import time

import pytest
from support import run_module

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys

pytestmark = pytest.mark.etcd


def lock(etcd, state: str, check: bool = False, **args) -> dict:
    return run_module("dcm_registry_lock", {"state": state, "poll": 0.5, **etcd.module_args(), **args}, check=check)


def held(etcd) -> list:
    kvs, _rev = etcd.client.get_prefix("/dcm/registry/lock/")
    return sorted(kv.key for kv in kvs)


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def test_pushes_share_the_lock_and_the_collection_waits_until_both_have_ended(clean_etcd):
    first = lock(clean_etcd, "shared", purpose="build of face, tag aaa")
    second = lock(clean_etcd, "shared", purpose="build of video, tag bbb")
    assert not first.get("failed") and not second.get("failed"), (first, second)
    assert first["waited"] == 0 and second["waited"] == 0 and first["lease"] != second["lease"]
    assert len(held(clean_etcd)) == 2

    refused = lock(clean_etcd, "exclusive", purpose="registry garbage collection (gc.yml)", timeout=2)
    assert refused.get("failed") is True
    said = refused["msg"]
    assert "stayed held for 2 s by build of face, tag aaa (by " in said and "build of video, tag bbb" in said, said
    assert "its lease ends in" in said and "run gc.yml again once it has ended" in said, said
    assert keys.REGISTRY_LOCK_EXCLUSIVE not in held(clean_etcd), "a collection that gave up left its key behind"

    # the collection waits; it gets the lock only once both pushes have given it back
    gave_back = []
    releaser = later(2, lambda: gave_back.append(lock(clean_etcd, "absent", lease=first["lease"])))
    releaser2 = later(4, lambda: gave_back.append(lock(clean_etcd, "absent", lease=second["lease"])))
    collection = lock(clean_etcd, "exclusive", purpose="registry garbage collection (gc.yml)", timeout=60)
    releaser.join()
    releaser2.join()
    assert not collection.get("failed"), collection
    assert [g["released"] for g in gave_back] == [True, True], gave_back
    assert collection["waited"] >= 4, collection  # it could not have had it before the second push ended
    assert any("build of video, tag bbb" in w for w in collection["waited_for"]), collection
    assert held(clean_etcd) == [keys.REGISTRY_LOCK_EXCLUSIVE]

    # while it runs, no push starts; once it is given back, one does
    refused = lock(clean_etcd, "shared", purpose="build of face, tag ccc", timeout=2)
    assert refused.get("failed") is True
    assert "registry garbage collection (gc.yml)" in refused["msg"] and "deploy again" in refused["msg"], refused
    assert held(clean_etcd) == [keys.REGISTRY_LOCK_EXCLUSIVE], "a push that gave up left its key behind"
    freed = later(2, lambda: lock(clean_etcd, "absent", lease=collection["lease"]))
    push = lock(clean_etcd, "shared", purpose="build of face, tag ccc", timeout=60)
    freed.join()
    assert not push.get("failed") and push["waited"] >= 1.5, push
    assert held(clean_etcd) == [keys.registry_shared_key(push["lease"])]


def test_a_waiting_collection_bars_new_pushes_so_it_is_not_starved(clean_etcd):
    push = lock(clean_etcd, "shared", purpose="a long push")
    result = {}
    waiter = threading.Thread(target=lambda: result.update(
        lock(clean_etcd, "exclusive", purpose="registry garbage collection (gc.yml)", timeout=60)))
    waiter.start()
    deadline = time.monotonic() + 30
    while keys.REGISTRY_LOCK_EXCLUSIVE not in held(clean_etcd) and time.monotonic() < deadline:
        time.sleep(0.2)
    # the collection waits for the push in progress, and a new push now waits for the collection
    late = lock(clean_etcd, "shared", purpose="a later push", timeout=2)
    assert late.get("failed") is True and "registry garbage collection" in late["msg"], late
    lock(clean_etcd, "absent", lease=push["lease"])
    waiter.join()
    assert not result.get("failed"), result


def test_a_holder_that_died_frees_the_lock_when_its_lease_ends(clean_etcd):
    dead = lock(clean_etcd, "shared", purpose="a build that was killed", ttl=10)
    assert not dead.get("failed"), dead
    collection = lock(clean_etcd, "exclusive", purpose="gc", timeout=60)
    assert not collection.get("failed"), collection
    assert collection["waited_for"] and "a build that was killed" in collection["waited_for"][0]
    # giving back a hold whose lease has ended is no error, and changes nothing
    gone = lock(clean_etcd, "absent", lease=dead["lease"])
    assert not gone.get("failed") and gone["released"] is False and gone["changed"] is False, gone
    assert held(clean_etcd) == [keys.REGISTRY_LOCK_EXCLUSIVE]
    lock(clean_etcd, "absent", lease=collection["lease"])
    assert held(clean_etcd) == []


def test_check_mode_takes_nothing_and_bad_requests_are_named(clean_etcd):
    push = lock(clean_etcd, "shared", purpose="a push")
    looked = lock(clean_etcd, "exclusive", check=True)
    assert not looked.get("failed") and looked["lease"] == 0, looked
    assert [h["purpose"] for h in looked["holders"]["shared"]] == ["a push"] and looked["holders"]["exclusive"] is None
    assert held(clean_etcd) == [keys.registry_shared_key(push["lease"])]
    no_lease = lock(clean_etcd, "absent")
    assert no_lease.get("failed") is True and "pass the lease that state=shared or exclusive returned" in no_lease["msg"]
    short = lock(clean_etcd, "shared", ttl=3)
    assert short.get("failed") is True and "ttl must be at least 10 s" in short["msg"], short
    lock(clean_etcd, "absent", lease=push["lease"])
