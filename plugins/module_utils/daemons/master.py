"""The DCM master: keeps every cluster placed on live hosts, without an operator.

Every master host runs one (systemd unit ``dcm-master``); one of them leads. The lead is the key
``/dcm/leader`` written on the leader's own lease (``leader_ttl`` seconds, refreshed every
``campaign_interval``): when the leader dies its lease expires and a standby, which campaigns every
``campaign_interval`` seconds, writes the key. Every write the leader makes is a transaction that
compares ``/dcm/leader`` with its own value, so a leader that was frozen and lost its lease can
never act on stale state (fencing).

Every ``interval`` seconds the leader compares desired and observed state:

- a node whose host lost its lease (for longer than ``host_grace``, so an agent restart is not a
  death) or whose host is drained is rescheduled with the same scheduler (:func:`reschedule`), its
  other nodes staying where they are; the new placement is committed guarded like a reservation,
  and the agents converge (the new host starts the node, a drained host removes it);
- a cluster whose nodes fit nowhere is marked degraded in its record, with the scheduler's reason,
  and retried on every check; it is marked recovered once its nodes are placed on live hosts;
- an exited container is restarted by its own agent within its convergence interval (the master
  sees it in ``/dcm/status/`` and needs to do nothing).

Between checks the leader also looks at the list of registered hosts at every campaign interval:
when a host leaves (or comes back) it checks at once instead of waiting for the next 10 s tick.

Every action is an event under ``/dcm/events/``. No Ansible import: the ``dcm_master`` role
installs a copy of ``module_utils`` and runs :func:`main`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import daemon

from ..core import naming
from ..core.errors import DcmError, ScheduleError, StoreError
from ..state.etcd import EtcdClient, EtcdConfig, etcd_config_from
from ..policy.scheduler import reschedule
from ..policy.placement import (MALFORMED, Snapshot, cluster_usage, doubt_changes, malformed_reason, pool_hosts,
                                record_format_problem, requests_of)
from ..state.store import DcmStore

LOG = logging.getLogger("dcm-master")

DEFAULT_CONFIG_PATH = "/etc/dcm/master.json"
REPAIRS_KEPT = 10  # the newest repairs a cluster record remembers


@dataclass
class MasterConfig:
    """What ``/etc/dcm/master.json`` holds (written by the dcm_master role)."""

    name: str
    etcd: EtcdConfig
    interval: float = 10.0  # seconds between checks of desired against observed state
    leader_ttl: int = 10  # seconds: how long a dead leader keeps the lead
    campaign_interval: float = 2.0  # seconds between lease refreshes (leader) or campaigns (standby)
    host_grace: float = 10.0  # seconds a host must stay without lease before its nodes move


KNOWN_KEYS = ("name", "etcd", "interval", "leader_ttl", "campaign_interval", "host_grace")


def load_config(path: str = DEFAULT_CONFIG_PATH) -> MasterConfig:
    """Read and check the master's JSON configuration; errors name the key and the fix."""
    raw = daemon.read_config(path, "master")
    unknown = sorted(set(raw) - set(KNOWN_KEYS))
    if unknown:
        raise DcmError(f"{path}: unknown keys {', '.join(unknown)} (allowed: {', '.join(KNOWN_KEYS)})")
    numbers = {key: daemon.positive_seconds(path, key, raw.get(key, default))
               for key, default in (("interval", 10.0), ("leader_ttl", 10), ("campaign_interval", 2.0))}
    try:
        numbers["host_grace"] = float(raw.get("host_grace", 10.0))
    except (TypeError, ValueError):
        numbers["host_grace"] = -1.0
    if numbers["host_grace"] < 0:
        raise DcmError(f"{path}: host_grace must be zero or a positive number of seconds, "
                       f"got {raw.get('host_grace')!r}")
    if numbers["campaign_interval"] * 2 > numbers["leader_ttl"]:
        raise DcmError(f"{path}: campaign_interval ({numbers['campaign_interval']:g} s) must be at most half of "
                       f"leader_ttl ({numbers['leader_ttl']:g} s), or the leader loses its lease between refreshes")
    return MasterConfig(
        name=str(raw.get("name") or socket.gethostname().split(".")[0]),
        etcd=etcd_config_from(raw.get("etcd"), path),
        interval=numbers["interval"],
        leader_ttl=max(int(numbers["leader_ttl"]), 2),
        campaign_interval=numbers["campaign_interval"],
        host_grace=numbers["host_grace"],
    )


# -- the decisions of one check: pure, tested without etcd --------------------------------------
@dataclass
class Decision:
    """What the leader does to one cluster record."""

    cluster: str
    kind: str  # "move", "degraded", "recovered", or "doubt" (not committed: the record cannot be acted on)
    reason: str
    moves: dict = field(default_factory=dict)  # node -> (old host, new host)
    placement: dict | None = None


def _why_moving(host: str, lost: set) -> str:
    return f"{host} lost its lease" if host in lost else f"{host} is drained"


def reconcile(snap: Snapshot, lost: set) -> list:
    """Decisions for every running cluster: ``lost`` are hosts gone longer than the grace period.

    Clusters are repaired in name order, each against the pool as the previous repairs left it,
    so two repairs in one check never overcommit a host.

    A record that does not load (``snap.unreadable``), has a newer layout, or whose fields have the wrong
    shape gives a ``doubt`` decision and is left as it is; the other clusters are checked as usual.
    """
    decisions = [Decision(name, "doubt", why) for name, why in snap.unreadable.items()]
    # every record whose reservations can be counted is counted where it runs, in doubt or not
    clusters: dict = {}
    for name in sorted(snap.clusters):
        record = snap.clusters[name]
        try:
            cluster_usage(record)
        except MALFORMED as exc:
            decisions.append(Decision(name, "doubt", malformed_reason(name, exc)))
            continue
        clusters[name] = record
        problem = record_format_problem(record)
        if problem:
            decisions.append(Decision(name, "doubt", f"cluster record {name} {problem}"))
    in_doubt = {decision.cluster for decision in decisions}
    for name in sorted(set(clusters) - in_doubt):
        record = clusters[name]
        try:
            decision = _reconcile_one(name, record, snap, clusters, lost)
        except MALFORMED as exc:
            decisions.append(Decision(name, "doubt", malformed_reason(name, exc)))
            continue
        if decision is not None:
            decisions.append(decision)
            if decision.kind == "move":
                clusters[name] = dict(record, placement=decision.placement)
    return decisions


def _reconcile_one(name: str, record: dict, snap: Snapshot, clusters: dict, lost: set) -> Decision | None:
    """The decision for one cluster record (``clusters``: every record as the repairs before left it)."""
    if record.get("desired_state", "running") != "running" or not record.get("placement"):
        return None
    if record.get("rollout"):
        # the deploy moving it between generations owns it until the rollout ends
        return None
    drained = snap.drained
    moving = {node: host for node, host in naming.placed_nodes(record) if host in lost or host in drained}
    degraded = record.get("degraded")
    if not moving:
        absent = sorted({host for _node, host in naming.placed_nodes(record) if host not in snap.hosts})
        if degraded and not absent:
            return Decision(name, "recovered", "every node is placed on a live host")
        return None
    reason = "; ".join(sorted({_why_moving(host, lost) for host in moving.values()}))
    pool = pool_hosts(snap.hosts, clusters.values(), snap.cordoned, exclude_cluster=name)
    try:
        # the history server is not placed on its own: it follows the driver (same host)
        plan = reschedule(name, requests_of(record["spec"]), record["placement"],
                          [node for node in moving if node != "history"], pool)
    except ScheduleError as exc:
        text = f"{reason}: {exc}"
        if not degraded or degraded.get("reason") != text:
            return Decision(name, "degraded", text)
        return None
    new_hosts = dict(naming.placed_nodes(dict(record, placement=plan.placement)))
    moves = {node: (host, new_hosts[node]) for node, host in moving.items()}
    return Decision(name, "move", reason, moves=moves, placement=plan.placement)


def apply_decision(record: dict, decision: Decision, now: float) -> dict:
    """The cluster record after ``decision`` (a new dict; the generation does not change)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    new = dict(record)
    if decision.kind == "move":
        new["placement"] = decision.placement
        new.pop("degraded", None)
        repair = {"time": stamp, "reason": decision.reason,
                  "moves": {node: list(hosts) for node, hosts in sorted(decision.moves.items())}}
        new["repairs"] = (list(record.get("repairs") or []) + [repair])[-REPAIRS_KEPT:]
    elif decision.kind == "degraded":
        since = (record.get("degraded") or {}).get("since", stamp)
        new["degraded"] = {"reason": decision.reason, "since": since, "checked_at": stamp}
    elif decision.kind == "recovered":
        new.pop("degraded", None)
    return new


# -- leader election --------------------------------------------------------------------------
class Leadership:
    """The lead on the leader key, held on this master's own lease (through the state API ``store``)."""

    def __init__(self, store: DcmStore, name: str, ttl: int, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.clock = clock
        self.lease = 0
        self.value = ""  # what the leader key holds while we lead (the fencing compare)

    @property
    def leading(self) -> bool:
        return bool(self.lease)

    def hold(self) -> tuple:
        """Refresh the lead or campaign for it; returns ``(leading now, changed)``."""
        if self.lease:
            if self.store.keepalive(self.lease) > 0 and self.store.leads(self.value):
                return True, False
            LOG.warning("%s lost the lead (lease %x gone)", self.name, self.lease)
            self.lease, self.value = 0, ""
            return False, True
        if self.store.leader_present():
            return False, False
        lease = self.store.grant(self.ttl)
        value = json.dumps({"name": self.name, "lease": f"{lease:x}", "pid": os.getpid(),
                            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))},
                           sort_keys=True)
        if not self.store.campaign(value, lease):
            self.store.revoke(lease)
            return False, False
        self.lease, self.value = lease, value
        return True, True

    def resign(self) -> None:
        """Give the lead up at once (clean stop): a standby takes over on its next campaign."""
        if self.lease:
            try:
                self.store.revoke(self.lease)
            except StoreError as exc:
                LOG.warning("could not revoke lease %x (%s); a standby leads once it expires", self.lease, exc)
            self.lease, self.value = 0, ""

    def fence(self) -> dict:
        """The transaction compare that holds only while we still lead."""
        return self.store.fence(self.value)


# -- the daemon ---------------------------------------------------------------------------------
class Master:
    """The check loop; ``clock`` is injectable for tests."""

    def __init__(self, config: MasterConfig, client: EtcdClient, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = DcmStore(client)
        self.clock = clock
        self.leadership = Leadership(self.store, config.name, config.leader_ttl, clock)
        self.events = self.store.event_log(f"master-{config.name}", log=LOG, clock=clock,
                                           sweep_legacy=True)
        self.missing_since: dict = {}  # host -> when this leader first saw it without a lease
        self.stopping = threading.Event()
        self.checks = 0
        self.hosts_seen: frozenset | None = None  # registered hosts at the last check
        self.doubts: dict = {}  # cluster -> why its record cannot be acted on, as last announced

    def lost_hosts(self, snap: Snapshot, now: float) -> tuple:
        """``(lost, pending)``: placed hosts without a lease past the grace period, and those within it."""
        placed = set()
        for record in snap.clusters.values():
            try:
                placed.update(host for _node, host in naming.placed_nodes(record) if host)
            except MALFORMED:
                continue  # a record of the wrong shape: reconcile says so and leaves it as it is
        absent = placed - set(snap.hosts)
        self.missing_since = {host: self.missing_since.get(host, now) for host in absent}
        lost = {host for host, since in self.missing_since.items() if now - since >= self.config.host_grace}
        return lost, absent - lost

    def hosts_changed(self) -> bool:
        """True when a host registered or left since the last check (one keys-only read)."""
        return self.store.host_names() != self.hosts_seen

    def check(self) -> list:
        """One comparison of desired and observed state; returns the decisions committed."""
        snap = self.store.snapshot(lenient=True)
        self.hosts_seen = frozenset(snap.hosts)
        now = self.clock()
        lost, pending = self.lost_hosts(snap, now)
        if pending:
            LOG.info("hosts without a lease, within the %g s grace: %s", self.config.host_grace,
                     ", ".join(sorted(pending)))
        committed = []
        # Each decision was planned against the snapshot plus the decisions before it, so the guard
        # moves with our own commits: nothing else may have written since the last one.
        revision = snap.revision
        decisions = reconcile(snap, lost)
        for decision in decisions:
            if decision.kind == "doubt":
                continue
            record = apply_decision(snap.clusters[decision.cluster], decision, now)
            ok, revision = self.store.commit_repair(decision.cluster, record, revision, self.leadership.fence())
            if not ok:
                LOG.info("the pool changed during the check (or the lead was lost); checking again next time")
                break
            committed.append(decision)
            self._announce(decision)
        # after the repairs: an event is a write, and each repair is guarded on nothing written since the read
        self._say_doubts({d.cluster: d.reason for d in decisions if d.kind == "doubt"},
                         set(snap.clusters) | set(snap.unreadable))
        self.checks += 1
        return committed

    def _say_doubts(self, doubts: dict, present: set) -> None:
        """An event (and a log line) when a record comes into doubt, changes why, is understood again, or is
        deleted (``present``: the clusters that have a record)."""
        new, understood, gone = doubt_changes(self.doubts, doubts, present)
        for name, why in new.items():
            self.events.record("record-in-doubt", f"{why}; the DCM master leaves cluster {name} as it is (no repair) "
                               "until the record is understood again", cluster=name)
        for name in understood:
            self.events.record("record-understood", f"cluster record {name} is understood again", cluster=name)
        for name in gone:
            self.events.record("record-gone", f"cluster record {name} was deleted", cluster=name)
        self.doubts = doubts

    def _announce(self, decision: Decision) -> None:
        if decision.kind == "move":
            moved = ", ".join(f"{node} {old}->{new}" for node, (old, new) in sorted(decision.moves.items()))
            self.events.record("reschedule", f"cluster {decision.cluster}: {decision.reason}; moved {moved}",
                               cluster=decision.cluster,
                               moves={node: list(hosts) for node, hosts in decision.moves.items()})
        else:
            self.events.record(decision.kind, f"cluster {decision.cluster} {decision.kind}: {decision.reason}",
                               cluster=decision.cluster)

    def next_wait(self, last_check: float) -> float:
        """Seconds until the next check is due (a host within its grace period brings it forward)."""
        due = last_check + self.config.interval
        if self.missing_since:
            due = min(due, min(self.missing_since.values()) + self.config.host_grace)
        return max(due - self.clock(), 0.0)

    def run(self, ready: Callable[[], None] = lambda: None) -> None:
        """Campaign or lead until :meth:`stop`; etcd outages are logged and retried, never fatal."""
        notified = False
        last_check = float("-inf")
        while not self.stopping.is_set():
            try:
                leading, changed = self.leadership.hold()
                if changed:
                    self.missing_since, self.hosts_seen = {}, None
                    if leading:
                        self.events.record("leader", f"{self.config.name} leads the DCM masters", host=self.config.name)
                if not notified:
                    ready()
                    notified = True
                if leading and (self.next_wait(last_check) <= 0 or self.hosts_changed()):
                    last_check = self.clock()
                    self.check()
            except StoreError as exc:
                LOG.warning("etcd: %s (retrying)", exc)
            except Exception as exc:  # pylint: disable=broad-except  # one bad pass never ends the daemon
                LOG.warning("check: %s: %s (retrying)", type(exc).__name__, exc)
            self.stopping.wait(self.config.campaign_interval)
        self.leadership.resign()

    def stop(self, *_args: object) -> None:
        self.stopping.set()


def show_leader(config: MasterConfig) -> int:
    """``dcm-master --show``: print the current leader record (exit 1 when nobody leads)."""
    return daemon.show(DcmStore(EtcdClient(config.etcd)).raw_leader(), "no DCM master leads (/dcm/leader is absent)")


def main(argv: list | None = None) -> int:
    path, show = daemon.command_line(argv, "DCM_MASTER_CONFIG", DEFAULT_CONFIG_PATH)
    daemon.start_logging()
    try:
        config = load_config(path)
        if show:
            return show_leader(config)
        master = Master(config, EtcdClient(config.etcd))
    except DcmError as exc:
        LOG.error("%s", exc)
        return 2
    daemon.stop_on_signals(master.stop)
    LOG.info("%s: checks every %g s while leading, lead lease %d s, host grace %g s", config.name,
             config.interval, config.leader_ttl, config.host_grace)
    master.run(ready=lambda: daemon.notify_systemd("READY=1\nSTATUS=campaigning"))
    return 0
