"""The DCM master against a real etcd 3.4 with TLS (see conftest.py).

What an operator relies on: one master leads and a standby takes over when its lease expires; a
leader that lost the lead can no longer write (fencing); nodes of a host that lost its lease move
to live hosts while the others stay; a host within its grace period keeps its nodes; drained hosts
are emptied, cordoned ones are not; a cluster that fits nowhere is marked degraded with the reason
and recovers; every action is an event; no repair overcommits a host.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from support import run_module
from test_etcd_store import overcommitted, raw_spec, register, spec, stored_clusters

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.core import naming
from ansible_collections.dcspark.dcm.plugins.module_utils.state.events import EventLog, read_events
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.master import Leadership, Master, MasterConfig
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import cluster_usage
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec

pytestmark = pytest.mark.etcd


def master(server, name: str = "m1", **settings) -> Master:
    config = MasterConfig(name=name, etcd=server.new_client().config, **{"host_grace": 0, **settings})
    return Master(config, server.new_client())


def leading(server, name: str = "m1", **settings) -> Master:
    dcm = master(server, name, **settings)
    assert dcm.leadership.hold() == (True, True)
    return dcm


def hosts_of(record: dict) -> dict:
    return dict(naming.placed_nodes(record))


def pool(store: DcmStore, *hosts: tuple) -> dict:
    return {name: register(store, name, cpus, memory) for name, cpus, memory in hosts}


def face_on_three_hosts(server, workers: int = 2) -> tuple:
    """``(client, store, leases, record)``: hosts a, b, c (4 CPUs, 8 GiB each) and face reserved on them."""
    store = DcmStore(server.client)
    leases = pool(store, ("a", 4, 8), ("b", 4, 8), ("c", 4, 8))
    return server.client, store, leases, store.reserve(spec("face", workers=workers)).record


def test_nodes_of_a_host_that_lost_its_lease_move_and_the_others_stay(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    leases = pool(store, ("a", 4, 8), ("b", 4, 8), ("c", 4, 8))
    before = store.reserve(spec("face", workers=3)).record
    placed = hosts_of(before)
    # the host holding the most nodes dies
    victim = max(sorted(set(placed.values())), key=lambda host: list(placed.values()).count(host))
    client.lease_revoke(leases[victim])

    dcm = leading(clean_etcd)
    decisions = dcm.check()

    after = stored_clusters(client)["face"]
    moved = {node for node, host in placed.items() if host == victim}
    assert [d.kind for d in decisions] == ["move"]
    assert set(decisions[0].moves) == moved
    assert victim not in hosts_of(after).values()
    assert {n: h for n, h in hosts_of(after).items() if n not in moved} == {
        n: h for n, h in placed.items() if n not in moved}  # nothing else moved
    assert after["generation"] == before["generation"] and after["images"] == before["images"]
    # the secret stays the cluster's, and its copies follow the nodes: the dead host's copy is gone
    held = store.held_secrets("face")
    assert "secret" not in after and held["secrets"]["secret"] == before["secret"]
    assert held["hosts"] == sorted(set(hosts_of(after).values()))
    assert "face" not in store.host_secrets(victim)
    assert all(store.host_secrets(host)["face"]["secret"] == before["secret"] for host in held["hosts"])
    assert after["repairs"][-1]["moves"] == {n: [victim, hosts_of(after)[n]] for n in sorted(moved)}
    assert not overcommitted(client)
    events = read_events(client, cluster="face")
    assert [e["kind"] for e in events] == ["reschedule"] and victim in events[0]["message"]
    assert dcm.check() == []  # repaired: the next check has nothing to do


def test_a_history_server_moves_with_its_driver_and_both_are_counted_where_they_land(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    leases = pool(store, ("a", 4, 8), ("b", 4, 8), ("c", 4, 8))
    raw = dict(raw_spec("face", workers=2), history={"cpus": 1, "memory": "2g"})
    before = store.reserve(normalize_spec(raw)).record
    placed = hosts_of(before)
    assert placed["history"] == placed["driver"]
    client.lease_revoke(leases[placed["driver"]])
    decisions = leading(clean_etcd).check()
    after = hosts_of(stored_clusters(client)["face"])
    assert [d.kind for d in decisions] == ["move"] and {"driver", "history"} <= set(decisions[0].moves)
    assert after["history"] == after["driver"] != placed["driver"]
    assert decisions[0].moves["history"] == (placed["driver"], after["driver"])
    # the driver's host holds both: 2 CPUs and 3 GiB more than the driver alone would
    usage = cluster_usage(stored_clusters(client)["face"])
    assert usage[after["driver"]][0] >= 2000 and usage[after["driver"]][1] >= 3 * (1 << 30)
    assert not overcommitted(client)


def test_records_that_cannot_be_read_or_understood_are_left_as_they_are_and_the_others_repaired(clean_etcd):
    """One bad record never stops the checks: a record that is not JSON, one of a newer layout and one whose
    placement has the wrong shape are each announced once and never written; face on a lost host is moved."""
    client = clean_etcd.client
    store = DcmStore(client)
    leases = pool(store, ("a", 4, 8), ("b", 4, 8), ("c", 4, 8))
    before = store.reserve(spec("face", workers=3)).record
    for name in ("newer", "shape"):
        store.reserve(spec(name, workers=1))
    raw = {"broken": "{not json",
           "newer": json.dumps(dict(stored_clusters(client)["newer"], format=99, future_field={"x": 1})),
           "shape": json.dumps(dict(stored_clusters(client)["shape"],
                                    placement={"master": "a", "driver": "a", "workers": 5}))}
    for name, value in raw.items():
        client.put(keys.cluster_key(name), value)
    victim = hosts_of(before)["master"]
    client.lease_revoke(leases[victim])

    dcm = leading(clean_etcd)
    decisions = dcm.check()
    assert [(d.cluster, d.kind) for d in decisions] == [("face", "move")]
    assert victim not in hosts_of(store.get_cluster("face")).values()
    for name, value in raw.items():  # never rewritten
        assert client.get(keys.cluster_key(name)).value == value, name
    doubts = {e["cluster"]: e["message"] for e in read_events(client) if e["kind"] == "record-in-doubt"}
    assert set(doubts) == {"broken", "newer", "shape"}
    assert "does not hold JSON" in doubts["broken"]
    assert "format 99, newer than the 1 this DCM understands" in doubts["newer"]
    assert "cannot be understood (TypeError" in doubts["shape"]
    assert all("no repair" in message for message in doubts.values())
    assert dcm.check() == []  # nothing new: no second announcement either
    assert len([e for e in read_events(client) if e["kind"] == "record-in-doubt"]) == 3
    client.put(keys.cluster_key("newer"), raw["newer"].replace('"format": 99', '"format": 1'))
    client.delete(keys.cluster_key("broken"))
    dcm.check()
    assert [e["cluster"] for e in read_events(client) if e["kind"] == "record-understood"] == ["newer"]
    assert [e["cluster"] for e in read_events(client) if e["kind"] == "record-gone"] == ["broken"]


def test_a_host_within_its_grace_period_keeps_its_nodes(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    leases = pool(store, ("a", 8, 16), ("b", 8, 16))
    before = store.reserve(spec("face", workers=2)).record
    client.lease_revoke(leases[before["placement"]["workers"][0]])
    dcm = leading(clean_etcd, host_grace=60)
    assert dcm.check() == []
    assert stored_clusters(client)["face"]["placement"] == before["placement"]
    assert set(dcm.missing_since) == {before["placement"]["workers"][0]}
    assert 0 < dcm.next_wait(time.time()) <= 60  # the check comes back when the grace ends


def test_a_cluster_that_fits_nowhere_is_degraded_then_recovers_when_its_host_returns(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    leases = pool(store, ("a", 3, 4), ("b", 3, 4))
    before = store.reserve(spec("face", workers=3)).record  # 5 CPUs of 6: no room to move 3
    victim = before["placement"]["workers"][0]
    client.lease_revoke(leases[victim])
    dcm = leading(clean_etcd)

    decisions = dcm.check()
    record = stored_clusters(client)["face"]
    assert [d.kind for d in decisions] == ["degraded"]
    assert record["placement"] == before["placement"]  # nothing half-moved
    assert f"{victim} lost its lease" in record["degraded"]["reason"]
    assert "fits on no host" in record["degraded"]["reason"]
    assert dcm.check() == []  # the same reason is not written again

    register(store, victim, 3, 4)  # the host comes back
    assert [d.kind for d in dcm.check()] == ["recovered"]
    record = stored_clusters(client)["face"]
    assert "degraded" not in record and record["placement"] == before["placement"]
    assert [e["kind"] for e in read_events(client, cluster="face")] == ["degraded", "recovered"]


def test_drain_empties_a_host_and_cordon_alone_does_not(clean_etcd):
    client, store, _leases, before = face_on_three_hosts(clean_etcd)
    busy = before["placement"]["workers"][0]
    dcm = leading(clean_etcd)

    assert store.set_cordon(busy, True, reason="disk check")
    assert dcm.check() == [] and stored_clusters(client)["face"]["placement"] == before["placement"]
    assert store.set_cordon(busy, True, reason="disk replacement", drain=True)
    assert not store.set_cordon(busy, True, reason="disk replacement", drain=True)  # idempotent
    decisions = dcm.check()
    assert [d.kind for d in decisions] == ["move"] and f"{busy} is drained" in decisions[0].reason
    assert busy not in hosts_of(stored_clusters(client)["face"]).values()
    assert not overcommitted(client)


def test_two_clusters_repaired_in_one_check_never_overcommit(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    leases = pool(store, ("a", 4, 8), ("b", 4, 8), ("c", 4, 8))
    store.reserve(spec("one", workers=1))  # master a, driver b, worker c (Eq. 3: the emptiest host)
    store.reserve(spec("two", workers=1))  # master a again (Eq. 2 tie: fewer nodes, then the name)
    assert all("a" in hosts_of(record).values() for record in stored_clusters(client).values())
    client.lease_revoke(leases["a"])
    decisions = leading(clean_etcd).check()
    assert sorted((d.cluster, d.kind) for d in decisions) == [("one", "move"), ("two", "move")]
    assert not overcommitted(client)
    assert all("a" not in hosts_of(record).values() for record in stored_clusters(client).values())


def test_a_standby_leads_when_the_leader_dies_and_a_stale_leader_cannot_write(clean_etcd):
    client, _store, leases, _record = face_on_three_hosts(clean_etcd)
    first = leading(clean_etcd, "m1", leader_ttl=2)
    second = master(clean_etcd, "m2", leader_ttl=2)
    assert second.leadership.hold() == (False, False)
    assert json.loads(client.get(keys.LEADER).value)["name"] == "m1"

    # m1 freezes (no more refreshes): its lease runs out and m2 takes over
    started = time.monotonic()
    while second.leadership.hold() != (True, True):
        assert time.monotonic() - started < 10, "the standby never took the lead"
        time.sleep(0.2)
    assert json.loads(client.get(keys.LEADER).value)["name"] == "m2"

    # m1 wakes up believing it leads: its writes are fenced off
    before = stored_clusters(client)
    client.lease_revoke(leases[before["face"]["placement"]["workers"][0]])
    assert first.check() == []
    assert stored_clusters(client) == before
    assert first.leadership.hold() == (False, True)  # and it learns it lost the lead
    assert [d.kind for d in second.check()] == ["move"]


def test_run_resigns_on_stop_and_records_the_lead(clean_etcd):
    client = clean_etcd.client
    dcm = master(clean_etcd, "m1", campaign_interval=0.2)
    ready = threading.Event()
    thread = threading.Thread(target=dcm.run, kwargs={"ready": ready.set}, daemon=True)
    thread.start()
    assert ready.wait(10)
    deadline = time.monotonic() + 10
    while client.get(keys.LEADER) is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    dcm.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert client.get(keys.LEADER) is None  # resigned: a standby need not wait for the lease
    assert [e["kind"] for e in read_events(client)] == ["leader"]


def test_the_leader_checks_at_once_when_a_host_leaves_instead_of_waiting_for_the_interval(clean_etcd):
    client, _store, leases, record = face_on_three_hosts(clean_etcd)
    victim = record["placement"]["workers"][0]
    dcm = master(clean_etcd, "m1", interval=3600, campaign_interval=0.2)
    thread = threading.Thread(target=dcm.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while dcm.checks < 1:  # the first check comes with the lead
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.lease_revoke(leases[victim])
        while victim in hosts_of(stored_clusters(client)["face"]).values():
            assert time.monotonic() < deadline, "the leader waited for its interval (an hour)"
            time.sleep(0.1)
        # A second check moved it. Its count goes up after its commit, which the loop above may see
        # first; one more check may also run while the lost host is still tracked.
        while dcm.checks < 2:
            assert time.monotonic() < deadline, "the move did not come from a check"
            time.sleep(0.05)
    finally:
        dcm.stop()
        thread.join(10)


def test_leadership_fence_is_the_leader_value(clean_etcd):
    lead = Leadership(DcmStore(clean_etcd.new_client()), "m9", ttl=5)
    assert lead.hold() == (True, True)
    assert json.loads(clean_etcd.client.get(keys.LEADER).value)["lease"] == f"{lead.lease:x}"
    lead.resign()
    assert clean_etcd.client.get(keys.LEADER) is None and not lead.leading


# -- the operator's side: dcm_host and dcm_pool_info through Ansible -------------------------------
def test_dcm_host_cordons_drains_and_releases_and_pool_info_shows_the_repair(clean_etcd):
    client, _store, _leases, record = face_on_three_hosts(clean_etcd)
    busy = record["placement"]["workers"][0]
    args = {"name": busy, "state": "drained", "reason": "disk replacement", **clean_etcd.module_args()}

    before = clean_etcd.dump()
    checked = run_module("dcm_host", args, check=True, diff=True)
    assert checked["changed"] is True and clean_etcd.dump() == before  # check mode writes nothing
    assert checked["diff"] == {"before": {"state": "active", "reason": ""},
                               "after": {"state": "drained", "reason": "disk replacement"}}
    drained = run_module("dcm_host", args)
    assert drained["changed"] is True and "face/worker-1" in drained["nodes"]
    assert run_module("dcm_host", args)["changed"] is False  # idempotent

    leading(clean_etcd).check()
    view = run_module("dcm_pool_info", {"cluster": "face", **clean_etcd.module_args()})
    hosts = {h["name"]: h for h in view["hosts"]}
    assert hosts[busy]["drained"] and hosts[busy]["clusters"] == []
    face = view["clusters"][0]
    assert face["health"] == "ok" and face["repairs"][-1]["reason"] == f"{busy} is drained"
    assert view["leader"]["name"] == "m1"
    assert [e["kind"] for e in view["events"]] == ["reschedule"]

    released = run_module("dcm_host", {**args, "state": "active"})
    assert released["changed"] is True and released["previous"]["drain"] is True
    assert client.get(keys.cordon_key(busy)) is None


def test_dcm_host_refuses_a_host_the_pool_does_not_know(clean_etcd):
    register(DcmStore(clean_etcd.client), "a", 4, 8)
    before = clean_etcd.dump()
    result = run_module("dcm_host", {"name": "sandbox9", "state": "drained", **clean_etcd.module_args()})
    assert result.get("failed") is True
    assert "host sandbox9 is not in the pool" in result["msg"] and "hosts: a" in result["msg"]
    assert clean_etcd.dump() == before


def test_the_event_log_keeps_only_the_newest(clean_etcd):
    ticks = iter(range(1, 100))
    log = EventLog(clean_etcd.new_client(), "test", keep=3, clock=lambda: float(next(ticks)))
    for number in range(5):
        log.record("gc", f"event {number}")
    assert log.prune() == 2
    assert [e["message"] for e in read_events(clean_etcd.client, limit=0)] == ["event 2", "event 3", "event 4"]


def test_events_of_every_writer_read_in_time_order_and_each_writer_prunes_only_its_own(clean_etcd):
    ticks = iter(range(1, 100))

    def clock() -> float:  # one shared clock interleaves the writers
        return float(next(ticks))

    store = DcmStore(clean_etcd.new_client())
    agent = store.agent_event_log("h1", keep=2, clock=clock)
    master = store.event_log("master-m1", keep=2, clock=clock, sweep_legacy=True)
    # what a pool wrote before events had a folder per writer: read in order, swept by a master
    clean_etcd.client.put(keys.EVENTS + f"{int(0.5e9):020d}-h9", json.dumps({"message": "legacy", "source": "h9"}))
    agent.record("start", "agent 0")  # an agent's pruning leaves others' events alone
    assert [e["message"] for e in read_events(clean_etcd.client, limit=0)] == ["legacy", "agent 0"]
    master.record("reschedule", "master 0")  # its first write prunes, the legacy event included
    for number in (1, 2):
        agent.record("start", f"agent {number}")
        master.record("reschedule", f"master {number}")
    assert [e["message"] for e in read_events(clean_etcd.client, limit=0)] == [
        "agent 0", "master 0", "agent 1", "master 1", "agent 2", "master 2"]
    assert {e["source"] for e in read_events(clean_etcd.client, limit=0)} == {"h1", "master-m1"}
    assert agent.prune() == 1  # its oldest; the master's stay
    assert [e["message"] for e in read_events(clean_etcd.client, limit=0)] == [
        "master 0", "agent 1", "master 1", "agent 2", "master 2"]
    assert master.prune() == 1
    assert [e["message"] for e in read_events(clean_etcd.client, limit=3)] == ["master 1", "agent 2", "master 2"]
