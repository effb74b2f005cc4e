"""The DCM agent's garbage-collection timers (DCSpark paper, section 4.3): its third thread.

Every ``container_interval`` seconds the agent removes the exited DCSpark
containers that no desired cluster still needs; every ``image_interval``
seconds it removes DCSpark images least recently used first until Eq. 1's
``F`` is freed. An interval of 0 turns that timer off.

A pass is :func:`..ops.gc_pass.gc_pass`, the one the modules ``dcm_container_gc``
and ``dcm_image_gc`` (and so ``playbooks/gc.yml``) run: the policy of
:mod:`..policy.gc`, the reads and removals of :mod:`..host.docker` (only
DCSpark-labelled containers and images are ever candidates, removal is never
forced), and what the desired clusters place on this host. The desired state is
read from ``/dcm/clusters/`` (:meth:`DcmStore.clusters`) at the start of every
pass. A pass that cannot read all of it (etcd unreachable, a record that is not
JSON) removes nothing, since a guessed desired state could remove what a
cluster still needs.

A failing pass is logged and tried again one interval later; it never stops
the agent. The schedule (:class:`Schedule`) is pure and driven by an
injectable monotonic clock, so it is tested without waiting.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..core.errors import DcmError
from ..core.units import human_bytes
from ..host.docker import DEFAULT_LAST_USED_FILE, connect
from ..ops.gc_pass import CONTAINERS, IMAGES, PassResult, gc_pass
from ..policy.gc import DEFAULT_THRESHOLD
from ..state.etcd import EtcdClient
from ..state.events import EventLog
from ..state.store import DcmStore

LOG = logging.getLogger("dcm-agent")

DEFAULT_INTERVAL = 300.0  # seconds: "every 5 minutes each agent removes exited DCSpark containers"
WHAT = {CONTAINERS: "container", IMAGES: "image"}  # for log lines: "image GC on node1: ..."
DOCKER_TIMEOUT = 300.0  # seconds per Docker call: removing a large image takes a while on a slow disk


@dataclass(frozen=True)
class GcSettings:
    """The agent configuration's GC keys (validated by ``agent.load_config``)."""

    container_interval: float = DEFAULT_INTERVAL  # 0: no container GC
    image_interval: float = DEFAULT_INTERVAL  # 0: no image GC
    image_threshold: float = DEFAULT_THRESHOLD  # T of Eq. 1
    last_used_file: str = DEFAULT_LAST_USED_FILE
    docker_url: str = "unix:///var/run/docker.sock"

    def intervals(self) -> dict:
        """``{timer: seconds}``, containers first: removing exited containers can free their images."""
        return {CONTAINERS: self.container_interval, IMAGES: self.image_interval}


class Schedule:
    """When each timer is due next. Pure: every method takes the current time.

    A timer is first due one interval after ``now`` (an agent in a restart loop
    does not run GC on every start), and after each pass one interval after
    that pass ended, successful or not: a pass slower than its interval never
    piles up passes, and a failing one is retried an interval later.
    """

    def __init__(self, intervals: dict, now: float) -> None:
        self.intervals = {name: float(seconds) for name, seconds in intervals.items() if seconds > 0}
        self.next_due = {name: now + seconds for name, seconds in self.intervals.items()}

    @property
    def enabled(self) -> bool:
        return bool(self.intervals)

    def due(self, now: float) -> list:
        """The timers due at ``now``, in the order of ``intervals``."""
        return [name for name in self.intervals if self.next_due[name] <= now]

    def done(self, name: str, now: float) -> None:
        """``name``'s pass ended at ``now``."""
        self.next_due[name] = now + self.intervals[name]

    def wait(self, now: float) -> float | None:
        """Seconds until the next timer is due (0 when one is overdue); None when every timer is off."""
        if not self.next_due:
            return None
        return max(0.0, min(self.next_due.values()) - now)


class GcTimers:
    """The agent's GC thread: runs the due passes, sleeps until the next one, until told to stop.

    ``client`` is an etcd client of its own (the other threads use theirs);
    ``events`` records each pass that removed something. ``docker_connect``,
    ``clock`` and ``statvfs`` are injectable for tests; ``scope`` (labels, as
    the modules' ``scope_labels``) narrows both passes, so a test on a shared
    engine only ever sees what it made.
    """

    def __init__(self, host: str, settings: GcSettings, client: EtcdClient, events: EventLog | None = None,
                 docker_connect: Callable = connect, clock: Callable[[], float] = time.monotonic,
                 scope: dict | None = None, statvfs: Callable = os.statvfs,
                 log: logging.Logger = LOG) -> None:
        self.host = host
        self.settings = settings
        self.client = client
        self.store = DcmStore(client)
        self.events = events
        self.docker_connect = docker_connect
        self.clock = clock
        self.scope = dict(scope) if scope else None
        self.statvfs = statvfs
        self.log = log
        self.schedule = Schedule(settings.intervals(), clock())

    def run_pass(self, kind: str) -> PassResult:
        """One pass of ``kind`` now, whatever the schedule says; errors propagate."""
        result = gc_pass(kind, self.host, store=self.store, docker_url=self.settings.docker_url,
                         docker_timeout=DOCKER_TIMEOUT, docker_connect=self.docker_connect, scope=self.scope,
                         threshold=self.settings.image_threshold, last_used_file=self.settings.last_used_file,
                         statvfs=self.statvfs)
        self.report(result)
        return result

    def tick(self) -> list:
        """Run every due pass (a failure is logged, never raised); returns the results of those that ran."""
        results = []
        for kind in self.schedule.due(self.clock()):
            try:
                results.append(self.run_pass(kind))
            except DcmError as exc:
                self.log.warning("%s GC on %s: %s (next try in %.0f s)", WHAT[kind], self.host, exc,
                                 self.schedule.intervals[kind])
            except Exception as exc:  # pylint: disable=broad-except  # Docker SDK and socket errors
                self.log.warning("%s GC on %s: %s: %s (next try in %.0f s)", WHAT[kind], self.host,
                                 type(exc).__name__, exc, self.schedule.intervals[kind])
            finally:
                self.schedule.done(kind, self.clock())
        return results

    def run(self, stopping: threading.Event) -> None:
        """Tick until ``stopping`` is set (the agent's SIGTERM)."""
        if not self.schedule.enabled:
            return
        while not stopping.is_set():
            self.tick()
            stopping.wait(self.schedule.wait(self.clock()))

    def report(self, result: PassResult) -> None:
        """Log the pass; record a ``gc`` event when it removed something."""
        for item, reason in sorted(result.not_removed.items()):
            self.log.warning("%s GC on %s kept %s: %s", WHAT[result.kind], self.host,
                             result.names.get(item, item[:19]), reason)
        if not result.removed:
            self.log.debug("%s GC on %s: nothing to remove", WHAT[result.kind], self.host)
            return
        if result.kind == CONTAINERS:
            names = ", ".join(sorted(result.names.get(item, item[:12]) for item in result.removed))
            message = f"removed {len(result.removed)} exited DCSpark container(s) from {self.host}: {names}"
            fields = {"removed_containers": len(result.removed)}
        else:
            plan = result.plan
            message = (f"removed {len(result.removed)} DCSpark image(s) from {self.host}, "
                       f"{human_bytes(result.freed_bytes)} freed (images used {plan['usage_ratio']:.1%} of "
                       f"the disk, threshold {plan['threshold']:.1%}, target {human_bytes(plan['target_bytes'])})")
            fields = {"removed_images": len(result.removed), "freed_bytes": result.freed_bytes,
                      "target_bytes": plan["target_bytes"]}
        if result.not_removed:
            fields["not_removed"] = len(result.not_removed)
        if self.events is not None:
            self.events.record("gc", message, host=self.host, **fields)
        else:
            self.log.info("%s", message)
