"""The agent's GC timers: configuration to timers, and when each pass runs (no Docker, no etcd).

The passes themselves run against the real Docker engine and etcd in
tests/integration/test_gc_timers_docker.py; here ``run_pass`` is replaced by a
recorder, so only the scheduling is under test, driven by a hand-moved clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.daemons import agent
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import StoreError
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gc import DEFAULT_THRESHOLD
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.gc_timers import (
    CONTAINERS,
    DEFAULT_INTERVAL,
    IMAGES,
    GcSettings,
    GcTimers,
    PassResult,
    Schedule,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingTimers(GcTimers):
    """GcTimers whose passes only record when they ran, or fail as told."""

    def __init__(self, settings: GcSettings, clock, failing: dict | None = None) -> None:
        super().__init__("h1", settings, client=None, clock=clock)
        self.ran: list = []
        self.failing = failing or {}

    def run_pass(self, kind: str) -> PassResult:
        self.ran.append((kind, self.clock()))
        if kind in self.failing:
            raise self.failing[kind]
        return PassResult(kind=kind)


def write_config(tmp_path, **keys) -> str:
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"host_name": "h1", "etcd": {"endpoints": ["https://127.0.0.1:2379"]}, **keys}))
    return str(path)


# -- configuration -> timers ---------------------------------------------------------------------
def test_the_configuration_reaches_the_timers(tmp_path):
    config = agent.load_config(write_config(tmp_path, container_gc_interval=60, image_gc_interval=0,
                                            image_gc_threshold=0.5, last_used_file="/tmp/lu.json",
                                            docker_url="unix:///run/other.sock"))
    assert config.gc_settings() == GcSettings(container_interval=60.0, image_interval=0.0, image_threshold=0.5,
                                              last_used_file="/tmp/lu.json", docker_url="unix:///run/other.sock")
    timers = agent.make_gc_timers(config)
    assert timers is not None and timers.host == "h1"
    assert timers.schedule.intervals == {CONTAINERS: 60.0}  # 0 turned the image timer off
    assert timers.events is not None and timers.events.source == "h1"


def test_defaults_are_every_five_minutes_at_the_policy_threshold(tmp_path):
    settings = agent.load_config(write_config(tmp_path)).gc_settings()
    assert (settings.container_interval, settings.image_interval) == (DEFAULT_INTERVAL, DEFAULT_INTERVAL) == (300, 300)
    assert settings.image_threshold == DEFAULT_THRESHOLD


@pytest.mark.parametrize("keys, why", [
    ({"container_gc_interval": 0, "image_gc_interval": 0}, "garbage collection is off (container_gc_interval"),
    ({"converge": False}, "convergence is off"),
])
def test_no_timers_when_both_are_off_or_docker_is_not_used(tmp_path, caplog, keys, why):
    caplog.set_level(logging.INFO, logger="dcm-agent")
    assert agent.make_gc_timers(agent.load_config(write_config(tmp_path, **keys))) is None
    assert why in caplog.text


# -- the schedule ----------------------------------------------------------------------------------
def test_each_timer_is_first_due_one_interval_after_the_start():
    schedule = Schedule({CONTAINERS: 300, IMAGES: 600}, now=1000)
    assert schedule.due(1000) == [] and schedule.due(1299.9) == []
    assert schedule.wait(1000) == 300
    assert schedule.due(1300) == [CONTAINERS]
    assert schedule.due(1600) == [CONTAINERS, IMAGES]  # containers first: their images may become free


def test_the_next_pass_is_one_interval_after_the_last_one_ended():
    schedule = Schedule({CONTAINERS: 300, IMAGES: 300}, now=0)
    schedule.done(CONTAINERS, now=450)  # the pass was late (the agent was busy) and took a while
    assert schedule.next_due[CONTAINERS] == 750
    assert schedule.due(749) == [IMAGES] and schedule.wait(500) == 0  # images are overdue: no sleep
    schedule.done(IMAGES, now=500)
    assert schedule.wait(500) == 250 and schedule.due(750) == [CONTAINERS]


def test_an_interval_of_zero_turns_a_timer_off():
    schedule = Schedule({CONTAINERS: 0, IMAGES: 60}, now=0)
    assert schedule.enabled and schedule.due(10**9) == [IMAGES]
    off = Schedule({CONTAINERS: 0, IMAGES: 0}, now=0)
    assert not off.enabled and off.due(10**9) == [] and off.wait(0) is None


# -- ticking -----------------------------------------------------------------------------------------
def test_tick_runs_exactly_the_due_passes_in_order():
    clock = Clock(0)
    timers = RecordingTimers(GcSettings(container_interval=100, image_interval=250), clock)
    for now in (0, 99, 100, 199, 200, 250, 300):
        clock.now = now
        timers.tick()
    assert timers.ran == [(CONTAINERS, 100), (CONTAINERS, 200), (IMAGES, 250), (CONTAINERS, 300)]


def test_a_failing_pass_is_logged_and_retried_one_interval_later(caplog):
    clock = Clock(0)
    timers = RecordingTimers(GcSettings(container_interval=100, image_interval=100), clock,
                             failing={CONTAINERS: StoreError("no etcd endpoint answered"),
                                      IMAGES: ConnectionError("docker.sock went away")})
    clock.now = 100
    assert timers.tick() == []  # neither failure escapes, and the second pass ran after the first failed
    assert [kind for kind, _when in timers.ran] == [CONTAINERS, IMAGES]
    assert "container GC on h1: no etcd endpoint answered (next try in 100 s)" in caplog.text
    assert "image GC on h1: ConnectionError: docker.sock went away" in caplog.text
    clock.now = 199
    timers.tick()
    assert len(timers.ran) == 2
    timers.failing.clear()
    clock.now = 200
    assert [result.kind for result in timers.tick()] == [CONTAINERS, IMAGES]


def test_run_keeps_ticking_until_stopped():
    stopping = threading.Event()
    timers = RecordingTimers(GcSettings(container_interval=0.01, image_interval=0.02), time.monotonic)
    thread = threading.Thread(target=timers.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len([kind for kind, _when in timers.ran if kind == IMAGES]) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stopping.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    kinds = [kind for kind, _when in timers.ran]
    assert kinds.count(IMAGES) >= 2 and kinds.count(CONTAINERS) >= 2, kinds
    for kind, interval in ((CONTAINERS, 0.01), (IMAGES, 0.02)):
        times = [when for ran, when in timers.ran if ran == kind]
        assert all(later - earlier >= interval for earlier, later in zip(times, times[1:])), (kind, times)


def test_run_returns_when_stopped_and_at_once_when_every_timer_is_off():
    stopping = threading.Event()
    off = RecordingTimers(GcSettings(container_interval=0, image_interval=0), Clock())
    off.run(stopping)  # returns without waiting for a stop that nothing would ever send
    assert off.ran == []

    clock = Clock(0)
    timers = RecordingTimers(GcSettings(container_interval=5, image_interval=5), clock)
    clock.now = 5  # both due at once: the first tick runs them, then the stop ends the loop
    stopping.set()
    thread = threading.Thread(target=timers.run, args=(stopping,), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert timers.ran == []  # stopped before the first tick: SIGTERM does not start a GC pass
