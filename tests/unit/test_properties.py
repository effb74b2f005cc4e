"""Invariants of the scheduler and the image-GC policy, checked with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import ScheduleError
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gc import ImageInfo, gc_target, plan_image_gc
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.scheduler import Host, Request, schedule, worker_slots

M = 1 << 20


@st.composite
def hosts_strategy(draw, max_hosts=12):
    count = draw(st.integers(min_value=0, max_value=max_hosts))
    hosts = []
    for index in range(count):
        cpus = draw(st.integers(min_value=0, max_value=64)) * 500
        memory = draw(st.integers(min_value=0, max_value=256)) * 256 * M
        used_cpus = draw(st.integers(min_value=0, max_value=max(cpus, 0) // 500)) * 500
        used_memory = draw(st.integers(min_value=0, max_value=memory // (256 * M))) * 256 * M
        hosts.append(Host(
            name=f"h{index:02d}", cpus=cpus, memory=memory, requested_cpus=used_cpus, requested_memory=used_memory,
            nodes=draw(st.integers(min_value=0, max_value=5)),
            live=draw(st.booleans()) or draw(st.booleans()), cordoned=draw(st.integers(0, 9)) == 0,
        ))
    return hosts


request_strategy = st.builds(
    Request,
    cpus=st.integers(min_value=1, max_value=16).map(lambda n: n * 500),
    memory=st.integers(min_value=1, max_value=32).map(lambda n: n * 512 * M),
)
worker_request_strategy = st.builds(
    Request,
    cpus=st.integers(min_value=1, max_value=8).map(lambda n: n * 1000),
    memory=st.integers(min_value=1, max_value=32).map(lambda n: n * 512 * M),
)


def _usage(plan, requests):
    return plan.usage(requests)


@settings(max_examples=400, deadline=None)
@given(hosts_strategy(), request_strategy, request_strategy, worker_request_strategy, st.integers(1, 40))
def test_plans_never_exceed_capacity_and_place_every_node(hosts, master, driver, worker, count):
    requests = {"master": master, "driver": driver, "worker": worker}
    try:
        plan = schedule("c", requests, count, hosts)
    except ScheduleError as exc:
        assert exc.node and exc.node.split("-")[0] in str(exc)
        return
    assert len(plan.workers) == count and plan.master and plan.driver
    by_name = {h.name: h for h in hosts}
    for name, (cpus, memory, _nodes) in plan.usage(requests).items():
        h = by_name[name]
        assert h.live and not h.cordoned
        assert h.requested_cpus + cpus <= h.cpus, name
        assert h.requested_memory + memory <= h.memory, name


@settings(max_examples=300, deadline=None)
@given(hosts_strategy(), request_strategy, request_strategy, worker_request_strategy, st.integers(1, 40), st.randoms())
def test_plans_do_not_depend_on_host_order(hosts, master, driver, worker, count, rnd):
    requests = {"master": master, "driver": driver, "worker": worker}
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    try:
        first = schedule("c", requests, count, hosts).placement
    except ScheduleError as exc:
        try:
            schedule("c", requests, count, shuffled)
        except ScheduleError as again:
            assert again.node == exc.node
            return
        raise AssertionError("order changed feasibility")
    assert schedule("c", requests, count, shuffled).placement == first


@settings(max_examples=300, deadline=None)
@given(hosts_strategy(), request_strategy, request_strategy, worker_request_strategy, st.integers(1, 40))
def test_identical_workers_use_the_fewest_hosts_possible(hosts, master, driver, worker, count):
    requests = {"master": master, "driver": driver, "worker": worker}
    try:
        plan = schedule("c", requests, count, hosts)
    except ScheduleError:
        return
    # capacities left for workers once the master and driver are placed
    used = {h.name: [h.requested_cpus, h.requested_memory] for h in hosts}
    for role, name in (("master", plan.master), ("driver", plan.driver)):
        used[name][0] += requests[role].cpus
        used[name][1] += requests[role].memory
    slots = sorted(
        (worker_slots(h.cpus - used[h.name][0], h.memory - used[h.name][1], worker)
         for h in hosts if h.live and not h.cordoned and h.cpus > 0 and h.memory > 0),
        reverse=True,
    )
    fewest, total = 0, 0
    while total < count:
        total += slots[fewest]
        fewest += 1
    assert len(set(plan.workers)) == fewest


@settings(max_examples=200, deadline=None)
@given(hosts_strategy(), request_strategy, worker_request_strategy, st.integers(1, 40))
def test_infeasible_means_nothing_is_returned(hosts, master, worker, count):
    """All or nothing: the function either returns a full plan or raises; it never returns a partial one."""
    requests = {"master": master, "driver": master, "worker": worker}
    try:
        plan = schedule("c", requests, count, hosts)
    except ScheduleError as exc:
        assert exc.plan is not None  # the explanation, never a placement
        assert all(isinstance(h, dict) for h in exc.plan)
        return
    assert len(plan.workers) == count


# -- image GC -------------------------------------------------------------------------------

image_strategy = st.builds(
    ImageInfo,
    id=st.uuids().map(lambda u: "sha256:" + u.hex),
    unique_size=st.integers(min_value=0, max_value=4 << 30),
    last_used=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    dcspark=st.booleans(),
    in_use=st.integers(0, 4).map(lambda n: n == 0),
    tags=st.just(()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(image_strategy, max_size=40, unique_by=lambda i: i.id), st.integers(1, 1 << 44),
       st.floats(min_value=0, max_value=1), st.booleans(), st.data())
def test_gc_never_selects_protected_and_frees_f_when_possible(images, capacity, threshold, include_foreign, data):
    used = sum(i.unique_size for i in images)
    protected = {i.id for i in images if data.draw(st.integers(0, 5)) == 0}
    plan = plan_image_gc(images, used, capacity, threshold, protected, include_foreign)
    target = used // 2 if used / capacity > threshold else 0
    assert plan.target == target == gc_target(used, capacity, threshold)
    allowed = [i for i in images if not i.in_use and i.id not in protected and (i.dcspark or include_foreign)]
    for image in plan.selected:
        assert not image.in_use and image.id not in protected
        assert image.dcspark or include_foreign
    assert plan.freed == sum(i.unique_size for i in plan.selected)
    if target == 0:
        assert plan.selected == []
    elif sum(i.unique_size for i in allowed) >= target:
        assert plan.freed >= target
        # stops as soon as F is reached: without the last image it would fall short
        assert plan.freed - plan.selected[-1].unique_size < target
    else:
        assert {i.id for i in plan.selected} == {i.id for i in allowed}
    # least recently used first: the selection is a prefix of the candidates in LRU order
    lru = sorted(allowed, key=lambda i: (i.last_used, i.id))
    assert [i.id for i in plan.selected] == [i.id for i in lru[: len(plan.selected)]]
