"""Scheduler cases worked by hand from the paper's formulas (Eq. 2 and Eq. 3)."""

from __future__ import annotations

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import ScheduleError
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.scheduler import (
    Host,
    Request,
    least_requested_rate,
    reschedule,
    scale,
    schedule,
    schedule_pinned,
    worker_slots,
)

G = 1 << 30
M = 1 << 20


def cpu(n: float) -> int:
    return int(n * 1000)


def reqs(master=(1, 1 * G), driver=(1, 1 * G), worker=(1, 1 * G)) -> dict:
    return {
        "master": Request(cpu(master[0]), master[1]),
        "driver": Request(cpu(driver[0]), driver[1]),
        "worker": Request(cpu(worker[0]), worker[1]),
    }


def host(name, cpus, memory, used_cpus=0, used_memory=0, nodes=0, **kw) -> Host:
    return Host(name, cpu(cpus), memory, cpu(used_cpus), used_memory, nodes, **kw)


def scores(plan) -> dict:
    return {h["name"]: h for h in plan.to_dict()["hosts"]}


def test_eq2_rate_and_eq3_slots_by_hand():
    # Σc/C + Σm/M = 4/8 + 8g/32g = 0.75
    assert least_requested_rate(cpu(8), 32 * G, cpu(4), 8 * G) == pytest.approx(0.75)
    # min(Cr/Cw, Mr/Mw) = min(11/2, 8g/4g) = min(5.5, 2) -> 2
    assert worker_slots(cpu(11), 8 * G, Request(cpu(2), 4 * G)) == 2
    assert worker_slots(cpu(1.9), 100 * G, Request(cpu(2), 4 * G)) == 0


def test_heterogeneous_partly_used_hosts():
    """Worked example.

    rates before anything is placed:
      h1: 4/8 + 8/32 = 0.75   h2: 1/4 + 4/8 = 0.75   h3: 2/16 + 2/16 = 0.25
    master (2 CPU, 4g) -> h3 (lowest). h3 becomes 4/16 + 6/16 = 0.625.
    driver (1 CPU, 2g) -> h3 again (0.625 < 0.75). h3 now uses 5 CPU, 8g.
    workers (2 CPU, 4g) x5, v = min(Cr/Cw, Mr/Mw):
      h1: min(4/2, 24/4) = 2   h2: min(3/2, 4/4) = 1   h3: min(11/2, 8/4) = 2
    sorted: h3 (2, holds the cluster), h1 (2), h2 (1) -> h3 h3 h1 h1 h2
    """
    hosts = [
        host("h1", 8, 32 * G, 4, 8 * G, nodes=2),
        host("h2", 4, 8 * G, 1, 4 * G, nodes=1),
        host("h3", 16, 16 * G, 2, 2 * G, nodes=1),
    ]
    plan = schedule("face", reqs(master=(2, 4 * G), driver=(1, 2 * G), worker=(2, 4 * G)), 5, hosts)
    assert plan.placement == {"master": "h3", "driver": "h3", "workers": ["h3", "h3", "h1", "h1", "h2"]}
    by_name = scores(plan)
    assert by_name["h1"]["rates"] == {"master": 0.75, "driver": 0.75}
    assert by_name["h2"]["rates"] == {"master": 0.75, "driver": 0.75}
    assert by_name["h3"]["rates"] == {"master": 0.25, "driver": 0.625}
    assert [by_name[h]["worker_slots"] for h in ("h1", "h2", "h3")] == [2, 1, 2]
    assert by_name["h3"]["placed"] == ["master", "driver", "worker-1", "worker-2"]
    assert all(s["status"] == "chosen" for s in by_name.values())


def test_master_tie_goes_to_fewer_nodes_then_name():
    # both rates are 1.0 (2/4 + 4g/8g and 4/8 + 8g/16g); h2 holds fewer DCSpark nodes
    hosts = [host("h1", 4, 8 * G, 2, 4 * G, nodes=2), host("h2", 8, 16 * G, 4, 8 * G, nodes=1)]
    plan = schedule("c", reqs(), 1, hosts)
    assert plan.master == "h2"
    # identical empty hosts: the name decides, whatever the input order
    plan = schedule("c", reqs(), 1, [host("b", 4, 8 * G), host("a", 4, 8 * G)])
    assert (plan.master, plan.driver) == ("a", "b")  # after the master, a's rate is 1/4+1/8 > 0


def test_usage_is_updated_between_master_and_driver():
    # one big host, one small: the master takes the big one (both rate 0, name a < b),
    # then a's rate 2/4 + 2g/8g = 0.75 > b's 0 -> the driver goes to b
    plan = schedule("c", reqs(master=(2, 2 * G)), 1, [host("a", 4, 8 * G), host("b", 2, 4 * G)])
    assert (plan.master, plan.driver) == ("a", "b")


def test_preselection_accepts_an_exact_fit_and_rejects_one_byte_more():
    exact = [host("h", 3, 3 * G)]
    plan = schedule("c", reqs(), 1, exact)  # 1+1+1 CPU and 1g+1g+1g fit exactly
    assert plan.workers == ["h"]
    with pytest.raises(ScheduleError, match=r"worker 1 of 1"):
        schedule("c", reqs(worker=(1, G + 1)), 1, exact)


def test_workers_fill_the_largest_hosts_first_fewest_hosts():
    # after master+driver on 'm' (rate tie-break by name puts them on 'a'), v = a:4-... see below
    hosts = [host("a", 2, 2 * G), host("b", 3, 3 * G), host("c", 2, 2 * G), host("d", 5, 5 * G)]
    plan = schedule("c", reqs(), 6, hosts)
    # master -> a (all rates 0; name), driver -> b (a now 0.5+0.5)
    # v: a 0, b 2, c 2, d 5 -> d d d d d, then b (2, holds the cluster) before c
    assert plan.placement == {"master": "a", "driver": "b", "workers": ["d"] * 5 + ["b"]}


def test_cordoned_and_dead_hosts_are_never_used():
    hosts = [
        host("big", 64, 256 * G, cordoned=True),
        host("gone", 64, 256 * G, live=False),
        host("small", 4, 8 * G),
    ]
    plan = schedule("c", reqs(), 2, hosts)
    assert set(plan.hosts_used if hasattr(plan, "hosts_used") else plan.to_dict()["hosts_used"]) == {"small"}
    by_name = scores(plan)
    assert by_name["big"]["status"] == "excluded" and by_name["big"]["reasons"] == ["cordoned"]
    assert by_name["gone"]["reasons"] == ["not live: its DCM agent holds no lease"]


def test_infeasible_master_names_node_and_best_host():
    hosts = [host("h1", 8, 2 * G, 0, 1 * G), host("h2", 1, 64 * G, 0.5, 0)]
    with pytest.raises(ScheduleError) as info:
        schedule("face", reqs(master=(2, 2 * G)), 1, hosts)
    err = info.value
    assert err.node == "master"
    # h1 has 1g of 2g (50%), h2 0.5 of 2 CPUs (25%): h1 is the closest
    assert str(err) == ("cluster face: the master (2 CPUs, 2g) fits on no host: "
                        "the best host, h1, has 8 CPUs and 1.0 GiB free")
    reasons = {h["name"]: h["reasons"] for h in err.plan}
    assert reasons["h2"] == ["master does not fit: CPU 0.5 free < 2 requested"]


def test_infeasible_workers_reserve_nothing_and_say_how_many_fit():
    hosts = [host("h1", 4, 8 * G), host("h2", 2, 4 * G)]
    with pytest.raises(ScheduleError) as info:
        schedule("face", reqs(worker=(2, 2 * G)), 3, hosts)
    # master -> h1, driver -> h2; v: h1 min(3/2, 7/2)=1, h2 min(1/2, 3/2)=0 -> only one worker fits
    assert info.value.node == "worker-2"
    assert "worker 2 of 3 (2 CPUs, 2g) fits on no host; 1 worker fit after the master and driver" in str(info.value)
    assert "the best host, h1, has 1 CPU and 5.0 GiB free" in str(info.value)


def test_empty_pool_and_all_excluded_pool_are_explained():
    with pytest.raises(ScheduleError, match="the pool has no hosts"):
        schedule("c", reqs(), 1, [])
    with pytest.raises(ScheduleError, match=r"no host is a candidate \(h1: cordoned\)"):
        schedule("c", reqs(), 1, [host("h1", 8, 8 * G, cordoned=True)])


def test_duplicate_host_names_are_rejected():
    with pytest.raises(ScheduleError, match="listed twice"):
        schedule("c", reqs(), 1, [host("h", 4, 4 * G), host("h", 4, 4 * G)])


def test_hosts_already_holding_the_cluster_win_worker_ties():
    """A re-plan where 'x' still holds a node of cluster c.

    rates: a 4/8 + 4g/8g = 1.0, x the same, m 0 -> master m (m becomes 0.25+0.25 = 0.5),
    driver m again (0.5 < 1.0). v: a min(4/1, 4g/1g) = 4, x 4, m 2.
    a and x tie on v; x holds the cluster, so x comes first although 'a' < 'x'.
    """
    hosts = [
        host("a", 8, 8 * G, 4, 4 * G),
        host("x", 8, 8 * G, 4, 4 * G, clusters=frozenset({"c"})),
        host("m", 4, 4 * G),
    ]
    plan = schedule("c", reqs(), 2, hosts)
    assert plan.placement == {"master": "m", "driver": "m", "workers": ["x", "x"]}
    # the same pool for another cluster: no host holds it, the name decides
    assert schedule("other", reqs(), 2, hosts).workers == ["a", "a"]


# -- repair: reschedule only the nodes that must move ---------------------------
PLACED = {"master": "a", "driver": "b", "workers": ["c", "c", "b"]}


def test_reschedule_moves_only_the_nodes_of_the_lost_host_and_counts_the_ones_that_stay():
    # c is gone; a holds the master (1 CPU), b the driver and worker-3 (2 CPUs); d is empty.
    hosts = [host("a", 4, 8 * G), host("b", 4, 8 * G), host("c", 4, 8 * G, live=False), host("d", 2, 8 * G)]
    plan = reschedule("x", reqs(), PLACED, ["worker-1", "worker-2"], hosts)
    # Eq. 3 after the kept nodes: a 3 slots, b 2, d 2 -> both moved workers pack onto a.
    assert plan.placement == {"master": "a", "driver": "b", "workers": ["a", "a", "b"]}
    by_name = scores(plan)
    assert by_name["a"]["worker_slots"] == 3 and by_name["b"]["worker_slots"] == 2
    assert by_name["a"]["placed"] == ["worker-1", "worker-2"]  # kept nodes are not listed as placed
    assert by_name["c"]["status"] == "excluded"


def test_reschedule_places_a_lost_master_by_eq2_against_the_nodes_that_stay():
    hosts = [host("a", 4, 8 * G, live=False), host("b", 4, 8 * G), host("c", 4, 8 * G)]
    plan = reschedule("x", reqs(), PLACED, ["master"], hosts)
    # b holds 2 nodes (rate 0.5 + 0.25), c holds 2 workers (same rate): tie -> fewer nodes -> name: b
    assert plan.master == "b"
    assert plan.workers == ["c", "c", "b"] and plan.driver == "b"


def test_reschedule_that_does_not_fit_names_the_node_and_moves_nothing():
    hosts = [host("a", 2, 8 * G), host("b", 2, 8 * G), host("c", 4, 8 * G, cordoned=True)]
    with pytest.raises(ScheduleError) as caught:
        reschedule("x", reqs(), PLACED, ["worker-1", "worker-2"], hosts)
    assert caught.value.node == "worker-2"
    assert "worker-2" in str(caught.value) and "1 of the 2 workers to move fit" in str(caught.value)
    assert caught.value.plan  # the scores say why


def test_reschedule_rejects_a_node_the_placement_does_not_have():
    with pytest.raises(ScheduleError, match="no node named worker-9"):
        reschedule("x", reqs(), PLACED, ["worker-9"], [host("a", 4, 8 * G)])


# -- resize: what stays stays, added workers pack by Eq. 3 ----------------------
def test_scale_up_keeps_every_node_and_packs_the_added_workers_after_counting_them():
    # kept: a master (1), b driver + worker-3 (2), c worker-1 + worker-2 (2); d is empty with 2 CPUs
    hosts = [host("a", 4, 8 * G), host("b", 4, 8 * G), host("c", 4, 8 * G), host("d", 2, 8 * G)]
    plan = scale("x", reqs(), PLACED, 6, hosts)
    # Eq. 3 after the kept nodes: a 3 slots, b 2, c 2, d 2 -> a takes worker-4..6
    assert plan.placement == {"master": "a", "driver": "b", "workers": ["c", "c", "b", "a", "a", "a"]}
    assert scores(plan)["a"]["placed"] == ["worker-4", "worker-5", "worker-6"]


def test_scale_down_drops_the_highest_numbered_workers_and_places_nothing():
    plan = scale("x", reqs(), PLACED, 1, [host("a", 4, 8 * G), host("b", 4, 8 * G), host("c", 4, 8 * G)])
    assert plan.placement == {"master": "a", "driver": "b", "workers": ["c"]}
    assert all(not h["placed"] for h in plan.to_dict()["hosts"])


def test_scale_that_does_not_fit_names_the_first_added_worker_and_how_many_fit():
    hosts = [host("a", 2, 8 * G), host("b", 2, 8 * G), host("c", 2, 8 * G)]
    with pytest.raises(ScheduleError) as caught:
        scale("x", reqs(), PLACED, 5, hosts)  # a has 1 CPU left, b and c none: worker-4 fits, worker-5 not
    assert caught.value.node == "worker-5"
    assert "worker-5" in str(caught.value) and "1 of the 2 workers to add fit" in str(caught.value)
    assert caught.value.plan
    with pytest.raises(ScheduleError, match="worker count must be >= 1"):
        scale("x", reqs(), PLACED, 0, hosts)


# -- volumes: nodes with host-local data stay with it ------------------------------
def test_pinned_nodes_stay_on_their_hosts_and_the_rest_is_placed_around_them():
    hosts = [host("a", 4, 8 * G), host("b", 4, 8 * G), host("c", 4, 8 * G)]
    free = schedule("x", reqs(), 3, hosts)
    pins = {"driver": "c", "worker-1": "c", "worker-2": "b"}
    plan = schedule_pinned("x", reqs(), 3, hosts, pins)
    assert plan.driver == "c" and plan.workers[:2] == ["c", "b"]
    assert plan.placement != free.placement  # the pins changed the outcome
    assert scores(plan)["c"]["placed"][:2] == ["driver", "worker-1"]


def test_a_pinned_host_that_is_gone_frees_its_node():
    hosts = [host("a", 4, 8 * G), host("b", 4, 8 * G), host("c", 4, 8 * G, live=False)]
    plan = schedule_pinned("x", reqs(), 2, hosts, {"driver": "c", "worker-1": "gone"})
    assert plan.driver in ("a", "b") and "c" not in plan.workers


def test_a_pinned_node_that_no_longer_fits_its_host_is_refused_naming_both():
    hosts = [host("a", 4, 8 * G), host("b", 2, 8 * G, used_cpus=1.5)]
    with pytest.raises(ScheduleError) as caught:
        schedule_pinned("x", reqs(), 1, hosts, {"driver": "b"})
    assert caught.value.node == "driver"
    assert "driver (1 CPU" in str(caught.value) and "keeps its volumes on b" in str(caught.value)
    assert "purge=true" in str(caught.value) and caught.value.plan


def test_volume_pins_keep_the_roles_that_mount_a_volume_before_and_after():
    from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import volume_pins

    def spec(count, *roles_per_volume):
        return {"worker": {"count": count},
                "volumes": [{"name": f"v{i}", "path": f"/data/{i}", "nodes": list(roles)}
                            for i, roles in enumerate(roles_per_volume)]}

    previous = {"spec": spec(3, ["driver", "worker"]), "placement": PLACED}
    assert volume_pins(previous, spec(2, ["worker"])) == {"worker-1": "c", "worker-2": "c"}
    assert volume_pins(previous, spec(5, ["driver"], ["worker"])) == {
        "driver": "b", "worker-1": "c", "worker-2": "c", "worker-3": "b"}
    assert volume_pins({"spec": spec(3), "placement": PLACED}, spec(3, ["driver"])) == {}  # no data yet
    assert volume_pins(None, spec(3, ["driver"])) == {}
