"""The etcd store and the cluster modules against a real etcd 3.4 with TLS (see conftest.py).

What a user relies on: etcd refuses clients without a trusted certificate;
a reservation is all or nothing; concurrent deploys never overcommit a host
(the transaction guard makes losers re-read and re-plan); dead or cordoned
hosts get nothing; and the modules, run through Ansible, write exactly what
they report (nothing in check mode, nothing on failure).
"""

from __future__ import annotations

import json
import re
import threading

import pytest
from support import run_module

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import ScheduleError, StoreError
from ansible_collections.dcspark.dcm.plugins.module_utils.state.etcd import (
    EtcdClient,
    EtcdConfig,
    cmp_mod_revision_below,
    op_put,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gateway import verify_htpasswd
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import (
    cluster_usage,
    host_capacity,
    plan_cluster,
    pool_hosts,
    split_secrets,
    with_secrets,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore

pytestmark = pytest.mark.etcd

GIB = 1 << 30


def raw_spec(name: str, workers: int = 2, worker_cpus: float = 1, worker_memory: str = "1g",
             master: tuple = (1, "1g"), driver: tuple = (1, "1g")) -> dict:
    return {
        "name": name,
        "runtime": {"spark_version": "4.0.1"},
        "master": {"cpus": master[0], "memory": master[1]},
        "driver": {"cpus": driver[0], "memory": driver[1]},
        "worker": {"cpus": worker_cpus, "memory": worker_memory, "count": workers},
    }


def spec(name: str, **kwargs) -> dict:
    return normalize_spec(raw_spec(name, **kwargs))


def host_record(name: str, cpus: float, memory_gib: int) -> dict:
    """An agent's host record: 1 CPU and 2 GiB held back for the host's own daemons."""
    return {
        "name": name,
        "cpus": cpus + 1,
        "memory": (memory_gib + 2) * GIB,
        "allocatable": {"cpus": cpus, "memory": memory_gib * GIB},
        "address": "127.0.0.1",
    }


def register(store: DcmStore, name: str, cpus: float, memory_gib: int, ttl: int = 30) -> int:
    return store.register_host(host_record(name, cpus, memory_gib), ttl=ttl)


def stored_clusters(client: EtcdClient) -> dict:
    kvs, _rev = client.get_prefix(keys.CLUSTERS)
    return {keys.name_from_key(keys.CLUSTERS, kv.key): json.loads(kv.value) for kv in kvs}


def overcommitted(client: EtcdClient) -> dict:
    """Hosts whose reservations, recomputed from the records in etcd, exceed what they can give."""
    host_kvs, _rev = client.get_prefix(keys.HOSTS)
    capacity = {keys.name_from_key(keys.HOSTS, kv.key): host_capacity(json.loads(kv.value)) for kv in host_kvs}
    used: dict = {}
    for record in stored_clusters(client).values():
        for host, (cpus, memory, _nodes) in cluster_usage(record).items():
            total = used.get(host, (0, 0))
            used[host] = (total[0] + cpus, total[1] + memory)
    return {
        host: {"used": used.get(host), "capacity": capacity.get(host)}
        for host in set(used) | set(capacity)
        if host not in capacity or used.get(host, (0, 0))[0] > capacity[host][0]
        or used.get(host, (0, 0))[1] > capacity[host][1]
    }


def assert_names_node(exc_or_msg, node: str, count: int | None = None) -> None:
    """The scheduler's message names the node that did not fit and what the best host had left."""
    message = str(exc_or_msg)
    if node.startswith("worker-"):
        assert f"worker {node.split('-')[1]} of {count}" in message, message
    else:
        assert f"the {node} (" in message, message
    assert re.search(r"the best host, \S+, has [0-9.]+ CPUs? and [0-9.]+ \w+ free", message), message


# -- (a) TLS ---------------------------------------------------------------------
def test_tls_is_enforced(clean_etcd):
    server = clean_etcd
    endpoints = tuple(server.endpoints)
    refused = {
        "no client certificate": EtcdClient(EtcdConfig(endpoints, ca_cert=server.ca, timeout=5)),
        "certificate from an untrusted CA": EtcdClient(
            EtcdConfig(endpoints, server.ca, server.untrusted_cert, server.untrusted_key, timeout=5)),
        "plain http to the https port": EtcdClient(
            EtcdConfig((f"http://127.0.0.1:{server.client_port}",), timeout=5)),
    }
    for what, client in refused.items():
        with pytest.raises(StoreError) as caught:
            client.put("/dcm/probe", what)
        if "certificate" in what:  # the TLS handshake itself was refused
            assert "CERTIFICATE" in str(caught.value).upper(), (what, caught.value)
    # The client side checks the server too: without our CA the server's certificate is not trusted.
    blind = EtcdClient(EtcdConfig(endpoints, None, server.cert, server.key, timeout=5))
    with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED"):
        blind.status()
    assert server.client.get("/dcm/probe") is None
    # The refusals are about authentication: the same server takes the certified client's write.
    server.client.put("/dcm/probe", "ok")
    assert server.client.get("/dcm/probe").value == "ok"


# -- (b) generations and removal -------------------------------------------------
def test_reserve_generations_and_remove(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    register(store, "h1", 8, 16)
    register(store, "h2", 8, 16)

    first = store.reserve(spec("face", workers=2), deployed_by="tester")
    assert (first.changed, first.attempts, first.record["generation"]) == (True, 1, 1)
    assert first.plan is not None and first.previous is None
    stored = client.get(keys.cluster_key("face"))
    assert json.loads(stored.value) == split_secrets(first.record)[0]  # the secret is kept apart
    assert first.record["deployed_by"] == "tester" and first.record["desired_state"] == "running"

    again = store.reserve(spec("face", workers=2))
    assert (again.changed, again.record["generation"]) == (False, 1)
    assert client.get(keys.cluster_key("face")).mod_revision == stored.mod_revision  # not rewritten

    grown = store.reserve(spec("face", workers=5))
    assert (grown.changed, grown.record["generation"]) == (True, 2)
    assert grown.plan is not None and len(grown.record["placement"]["workers"]) == 5
    assert grown.previous["generation"] == 1
    regrown = json.loads(client.get(keys.cluster_key("face")).value)
    assert regrown["generation"] == 2 and grown.record["secret"] == first.record["secret"]
    assert store.held_secrets("face")["secrets"]["secret"] == first.record["secret"]  # a new generation keeps it

    images = {"master": "reg/m@sha256:1", "worker": "reg/w@sha256:2", "driver": "reg/d@sha256:3"}
    imaged = store.reserve(spec("face", workers=5), images=images)
    assert (imaged.changed, imaged.record["generation"], imaged.plan) == (True, 3, None)
    assert imaged.record["placement"] == grown.record["placement"]  # same spec: resources stay put
    assert not store.reserve(spec("face", workers=5), images=images).changed
    assert not store.reserve(spec("face", workers=5)).changed  # images omitted: keep what is recorded

    store.reserve(spec("other", workers=1))
    client.put(keys.status_key("h1", "face", "master"), '{"state": "running"}')
    client.put(keys.status_key("h2", "face", "worker-1"), '{"state": "running"}')
    client.put(keys.status_key("h1", "other", "master"), '{"state": "running"}')
    removed, purged = store.remove_cluster("face")
    assert purged == []
    assert removed["generation"] == 3
    assert client.get(keys.cluster_key("face")) is None
    assert store.status(cluster="face") == {}  # its status keys on every host
    assert client.get(keys.status_key("h1", "other", "master")) is not None  # and only its own
    assert client.get(keys.cluster_key("other")) is not None
    assert store.remove_cluster("face") == (None, [])


def test_removals_that_race_each_other_or_a_write_all_land(clean_etcd):
    """Two undeploys read the same record; a write lands between another removal's read and commit.

    Each removal reads again and removes what is there: one returns the record, the other finds none,
    and a removal whose record was rewritten meanwhile removes the newer record."""
    client = clean_etcd.client
    store = DcmStore(client)
    register(store, "h1", 4, 8)
    store.reserve(spec("face", workers=1))
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict = {}

    def undeploy(index: int) -> None:
        racer = DcmStore(clean_etcd.new_client())
        real_get = racer.client.get
        gets = []

        def get(key, *args, **kwargs):
            kv = real_get(key, *args, **kwargs)
            if key == keys.cluster_key("face") and not gets:
                gets.append(kv)
                barrier.wait()  # both have read the record before either commits
            return kv

        racer.client.get = get
        try:
            outcomes[index] = racer.remove_cluster("face")
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcomes[index] = exc

    threads = [threading.Thread(target=undeploy, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(isinstance(o, Exception) for o in outcomes.values()), outcomes
    assert sorted(o[0] is None for o in outcomes.values()) == [False, True]  # one removed it, one found none
    assert client.get(keys.cluster_key("face")) is None and client.get(keys.gateway_key("face")) is None

    # a write between the removal's read and its commit: the newer record is the one removed
    store.reserve(spec("face", workers=1))
    writer = DcmStore(clean_etcd.new_client())  # another writer, with its own connection
    real_txn = store.client.txn
    rewrites = []

    def txn(guards, ops, *args, **kwargs):
        if not rewrites:
            rewrites.append(writer.reserve(spec("face", workers=2)).record["generation"])
        return real_txn(guards, ops, *args, **kwargs)

    store.client.txn = txn
    removed, purged = store.remove_cluster("face")
    store.client.txn = real_txn
    assert (removed["generation"], purged) == (rewrites[0], []) and len(removed["placement"]["workers"]) == 2
    assert client.get(keys.cluster_key("face")) is None

    # a writer that never stops: the removal gives up and says so, nothing half-removed
    store.reserve(spec("face", workers=1))
    counter = iter(range(3, 100))
    store.client.txn = lambda guards, ops, *a, **k: (
        writer.reserve(spec("face", workers=1 + next(counter) % 2)), real_txn(guards, ops, *a, **k))[1]
    with pytest.raises(StoreError, match="kept changing while it was being removed"):
        store.remove_cluster("face", attempts=3)
    store.client.txn = real_txn
    assert client.get(keys.cluster_key("face")) is not None and client.get(keys.secrets_key("face")) is not None


# -- (c) the race ------------------------------------------------------------------
RACERS = 20


def test_a_node_reported_by_two_hosts_while_it_moves_is_the_newer_report(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    client.put(keys.status_key("h1", "face", "worker-1"), '{"host": "h1", "observed_at": "2026-12-07T07:00:09Z"}')
    client.put(keys.status_key("h2", "face", "worker-1"), '{"host": "h2", "observed_at": "2026-12-07T07:00:10Z"}')
    client.put(keys.status_key("h1", "face", "master"), '{"host": "h1", "observed_at": "2026-12-07T07:00:09Z"}')
    client.put(keys.status_key("h1", "video", "master"), '{"host": "h1", "observed_at": "2026-12-07T07:00:09Z"}')
    client.put(keys.STATUS + "face/driver", '{"host": "h3"}')  # the layout before reports were keyed by host
    assert {node: report["host"] for node, report in store.status(cluster="face").items()} == {
        ("face", "worker-1"): "h2", ("face", "master"): "h1"}
    assert sorted(store.status()) == [("face", "master"), ("face", "worker-1"), ("video", "master")]
    client.put(keys.status_key("h1", "face", "worker-1"), '{"host": "h1", "observed_at": "2026-12-07T07:00:11Z"}')
    assert store.status(cluster="face")[("face", "worker-1")]["host"] == "h1"


def test_concurrent_deploys_never_overcommit(clean_etcd):
    """20 deploys read the same pool, then race to commit; only some fit.

    A barrier holds every deploy after its first read until all have read, so
    all plan on the same empty pool and exactly one first commit can succeed:
    every other deploy must hit the guard, re-read and re-plan.
    """
    store = DcmStore(clean_etcd.client)
    for name in ("h1", "h2", "h3"):
        register(store, name, 4, 8)
    specs = [
        spec(f"race{i:02d}", workers=1 + i % 3, worker_cpus=1, worker_memory="1g",
             master=(0.5, "512m"), driver=(0.5, "1g"))
        for i in range(RACERS)
    ]
    empty_pool = store.snapshot().pool()
    for each in specs:  # every cluster fits alone: whoever loses, loses to the others
        plan_cluster(each, empty_pool)
    demand = sum(sum(cpus for cpus, _m, _n in cluster_usage(
        {"spec": s, "placement": plan_cluster(s, empty_pool).placement}).values()) for s in specs)
    assert demand > 3 * 4000  # millicpus: far more than the pool can give

    barrier = threading.Barrier(RACERS, timeout=60)
    outcomes: dict = {}
    reads: dict = {}

    def deploy(index: int) -> None:
        racer = DcmStore(clean_etcd.new_client())
        real_snapshot = racer.snapshot
        reads[index] = 0

        def snapshot():
            snap = real_snapshot()
            reads[index] += 1
            if reads[index] == 1:
                barrier.wait()
            return snap

        racer.snapshot = snapshot
        try:
            outcomes[index] = racer.reserve(specs[index], deployed_by=f"thread-{index}")
        except Exception as exc:  # noqa: BLE001 - every outcome is asserted below
            outcomes[index] = exc

    threads = [threading.Thread(target=deploy, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    winners = {i: o for i, o in outcomes.items() if not isinstance(o, Exception)}
    losers = {i: o for i, o in outcomes.items() if isinstance(o, ScheduleError)}
    others = {i: repr(o) for i, o in outcomes.items() if i not in winners and i not in losers}
    assert not others, others
    # No host is overcommitted, recomputed from what etcd holds.
    assert overcommitted(clean_etcd.client) == {}
    assert len(winners) + len(losers) == RACERS
    assert winners and losers
    records = stored_clusters(clean_etcd.client)
    assert set(records) == {specs[i]["name"] for i in winners}
    for i, reservation in winners.items():
        assert records[specs[i]["name"]] == split_secrets(reservation.record)[0]
        assert reservation.attempts == reads[i]
    # Every loser says which node did not fit and what the best host had left, and has no record.
    for i, exc in losers.items():
        assert exc.node in ("master", "driver") or re.fullmatch(r"worker-\d+", exc.node), exc.node
        assert_names_node(exc, exc.node, specs[i]["worker"]["count"])
        assert specs[i]["name"] not in records
    # The guard was exercised: one first-round commit won, everyone else re-read and re-planned.
    total_reads = sum(reads.values())
    first_round_wins = [i for i, r in winners.items() if r.attempts == 1]
    assert len(first_round_wins) == 1
    assert total_reads >= RACERS + (RACERS - 1) > len(winners)
    print(f"race: winners={len(winners)} losers={len(losers)} attempts={total_reads} "
          f"max={max(reads.values())} winner_attempts={sorted(r.attempts for r in winners.values())}")


# -- (d) the guard, deterministically --------------------------------------------------
def test_stale_plan_is_rejected_and_replanned(clean_etcd, monkeypatch):
    client = clean_etcd.client
    store = DcmStore(client)
    register(store, "h1", 4, 16)
    register(store, "h2", 4, 16)
    shape = {"workers": 2, "worker_cpus": 1}  # 4 CPUs: master, driver and two workers

    stale = store.snapshot()
    store.reserve(spec("first", **shape))
    # Planned on the stale pool, the second cluster would overcommit a host (h1: 3 + 3 CPUs of 4).
    stale_plan = plan_cluster(spec("second", **shape), stale.pool())
    with_first = pool_hosts(stale.hosts, [*stored_clusters(client).values(),
                                          {"name": "second", "spec": spec("second", **shape),
                                           "placement": stale_plan.placement}])
    assert any(h.requested_cpus > h.cpus for h in with_first)

    # The guard built from the stale revision fails, and writes nothing.
    guard = cmp_mod_revision_below(keys.CLUSTERS, stale.revision + 1, keys.prefix_end(keys.CLUSTERS))
    ok, _responses, _rev = client.txn([guard], [op_put(keys.cluster_key("second"), "{}")])
    assert not ok and client.get(keys.cluster_key("second")) is None

    # reserve() handed the stale snapshot once: its commit fails, it re-reads and re-plans.
    served = []

    def snapshot_once_stale():
        served.append("stale" if not served else "fresh")
        return stale if len(served) == 1 else type(store).snapshot(store)

    monkeypatch.setattr(store, "snapshot", snapshot_once_stale)
    second = store.reserve(spec("second", **shape))
    assert second.attempts == 2 and served == ["stale", "fresh"]
    assert second.record["placement"] != stale_plan.placement
    assert overcommitted(client) == {}
    assert set(stored_clusters(client)) == {"first", "second"}


def test_cordon_after_the_read_forces_a_replan(clean_etcd, monkeypatch):
    client = clean_etcd.client
    store = DcmStore(client)
    register(store, "a", 8, 16)
    register(store, "b", 8, 16)
    stale = store.snapshot()
    assert plan_cluster(spec("c", workers=1), stale.pool()).master == "a"
    store.set_cordon("a", True, reason="disk replacement")  # the operator cordons between read and commit

    served = []

    def snapshot_once_stale():
        served.append(len(served))
        return stale if len(served) == 1 else type(store).snapshot(store)

    monkeypatch.setattr(store, "snapshot", snapshot_once_stale)
    result = store.reserve(spec("c", workers=1))
    assert result.attempts == 2
    placement = result.record["placement"]
    assert {placement["master"], placement["driver"], *placement["workers"]} == {"b"}


# -- (e) dead and cordoned hosts ----------------------------------------------------------
def test_dead_and_cordoned_hosts_are_not_used(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    big1 = register(store, "big1", 16, 32, ttl=5)
    register(store, "big2", 16, 32, ttl=5)
    register(store, "small", 4, 8, ttl=5)
    early = store.reserve(spec("early", workers=1))
    assert early.record["placement"]["master"] == "big1"  # all empty: the name breaks the tie

    client.lease_revoke(big1)  # the agent died: its lease (and so its host record) is gone
    assert client.get(keys.host_key("big1")) is None
    assert store.set_cordon("big2", True, reason="maintenance")
    pool = {h.name: h for h in store.snapshot().pool()}
    assert (pool["big1"].live, pool["big2"].cordoned) == (False, True)

    late = store.reserve(spec("late", workers=2))
    placement = late.record["placement"]
    assert {placement["master"], placement["driver"], *placement["workers"]} == {"small"}
    reasons = {h["name"]: h["reasons"] for h in late.plan.to_dict()["hosts"]}
    assert any("not live" in r for r in reasons["big1"]) and "cordoned" in reasons["big2"]

    with pytest.raises(ScheduleError) as caught:  # big hosts would take it; small cannot
        store.reserve(spec("big", workers=1, worker_cpus=2))
    assert "excluded" in str(caught.value) and client.get(keys.cluster_key("big")) is None

    assert store.set_cordon("big2", False)
    moved = store.reserve(spec("big", workers=1, worker_cpus=2))
    assert set(moved.plan.to_dict()["hosts_used"]) == {"big2"}
    assert overcommitted(client) == {"big1": {"used": (2000, 2 * GIB), "capacity": None}}  # early's, on a dead host


# -- (f) the modules through Ansible, with TLS ---------------------------------------------
def test_dcm_schedule_plans_on_the_live_pool(clean_etcd):
    store = DcmStore(clean_etcd.client)
    register(store, "h1", 4, 8)
    register(store, "h2", 8, 16)
    register(store, "h3", 8, 16)
    store.set_cordon("h3", True)
    before = clean_etcd.dump()
    result = run_module("dcm_schedule", {"spec": raw_spec("plan", workers=3), **clean_etcd.module_args()})
    assert result.get("failed") is not True, result
    assert result["changed"] is False and result["revision"] > 0
    assert "h3" not in result["hosts_used"]
    status = {h["name"]: h["status"] for h in result["hosts"]}
    assert status["h3"] == "excluded" and status["h2"] == "chosen"
    assert clean_etcd.dump() == before


def test_dcm_cluster_lifecycle(clean_etcd, tmp_path):
    client = clean_etcd.client
    store = DcmStore(client)
    register(store, "h1", 8, 16)
    register(store, "h2", 8, 16)
    spec_file = tmp_path / "face.json"
    spec_file.write_text(json.dumps(raw_spec("face", workers=3)))
    args = {"spec": str(spec_file), "deployed_by": "pytest", **clean_etcd.module_args()}

    before = clean_etcd.dump()
    checked = run_module("dcm_cluster", args, check=True, diff=True)
    assert checked.get("failed") is not True, checked
    assert checked["changed"] is True and checked["generation"] == 1
    assert len(checked["placement"]["workers"]) == 3 and checked["hosts_used"]
    assert checked["diff"]["after"]["placement"] == checked["placement"]
    assert clean_etcd.dump() == before  # check mode wrote nothing

    created = run_module("dcm_cluster", args, diff=True)
    assert created["changed"] is True and created["generation"] == 1 and created["attempts"] == 1
    assert created["placement"] == checked["placement"]
    stored = client.get(keys.cluster_key("face"))
    stored_record = with_secrets(json.loads(stored.value), DcmStore(client).held_secrets("face")["secrets"])
    # the cluster's spark.authenticate secret is stored (apart from the record), random, and never shown
    assert "secret" not in json.loads(stored.value)
    assert len(stored_record["secret"]) == 64 and int(stored_record["secret"], 16) >= 0
    assert created["record"]["secret"] == "********" and stored_record["secret"] not in json.dumps(created)
    assert {**stored_record, "secret": "********", "ui_password": "********"} == created["record"]
    # ... and so is its UI password, whose hash alone is the gateway's; the hosts' copies go without it
    assert stored_record["ui_password"] not in json.dumps(created)
    entry = json.loads(client.get(keys.gateway_key("face")).value)
    assert entry["user"] == "face" and verify_htpasswd(entry["htpasswd"], "face", stored_record["ui_password"])
    for host in DcmStore(client).held_secrets("face")["hosts"]:
        copy = json.loads(client.get(keys.host_secrets_key(host, "face")).value)
        assert copy["secret"] == stored_record["secret"] and "ui_password" not in copy
    assert created["record"]["deployed_by"] == "pytest"

    again = run_module("dcm_cluster", args)
    assert again["changed"] is False and again["generation"] == 1
    assert client.get(keys.cluster_key("face")).mod_revision == stored.mod_revision

    grown = run_module("dcm_cluster", {**args, "spec": raw_spec("face", workers=4)}, diff=True)
    assert grown["changed"] is True and grown["generation"] == 2
    assert grown["diff"]["before"]["generation"] == 1 and grown["diff"]["after"]["generation"] == 2
    regrown = json.loads(client.get(keys.cluster_key("face")).value)
    assert regrown["generation"] == 2
    # a new generation keeps the cluster's secret
    assert DcmStore(client).held_secrets("face")["secrets"]["secret"] == stored_record["secret"]

    client.put(keys.status_key("h1", "face", "master"), '{"state": "running"}')
    absent = {"state": "absent", "name": "face", **clean_etcd.module_args()}
    snapshot = clean_etcd.dump()
    would_remove = run_module("dcm_cluster", absent, check=True)
    assert would_remove["changed"] is True and clean_etcd.dump() == snapshot
    removed = run_module("dcm_cluster", absent, diff=True)
    assert removed["changed"] is True and removed["diff"]["after"] == {}
    assert client.get_prefix(keys.CLUSTERS)[0] == [] and client.get_prefix(keys.STATUS)[0] == []
    assert client.get_prefix(keys.GATEWAY)[0] == []  # the gateway stops serving it
    assert run_module("dcm_cluster", absent)["changed"] is False


def test_dcm_cluster_failures_write_nothing(clean_etcd):
    store = DcmStore(clean_etcd.client)
    register(store, "h1", 4, 8)
    register(store, "h2", 4, 8)
    store.reserve(spec("resident", workers=2))
    etcd_args = clean_etcd.module_args()
    before = clean_etcd.dump()

    too_big = run_module("dcm_cluster", {"spec": raw_spec("huge", workers=6), **etcd_args})
    assert too_big.get("failed") is True and too_big["node"] == "worker-3"
    assert_names_node(too_big["msg"], "worker-3", 6)
    assert {h["name"] for h in too_big["hosts"]} == {"h1", "h2"}

    # A change that does not fit leaves the running generation alone.
    regrown = run_module("dcm_cluster", {"spec": raw_spec("resident", workers=2, master=(5, "1g")), **etcd_args})
    assert regrown.get("failed") is True and regrown["node"] == "master"
    assert_names_node(regrown["msg"], "master")

    malformed = raw_spec("bad", workers=0)
    malformed["colour"] = "blue"
    bad = run_module("dcm_cluster", {"spec": malformed, **etcd_args})
    assert bad.get("failed") is True
    assert "worker.count" in bad["msg"] and "colour" in bad["msg"], bad["msg"]

    mislabelled = run_module("dcm_cluster", {"spec": raw_spec("x"), "images": {"executor": "reg/e:1"}, **etcd_args})
    assert mislabelled.get("failed") is True and "images.executor" in mislabelled["msg"], mislabelled["msg"]

    no_etcd = run_module("dcm_cluster", {"spec": raw_spec("x")})
    assert no_etcd.get("failed") is True and "etcd_endpoints" in no_etcd["msg"]

    assert clean_etcd.dump() == before
