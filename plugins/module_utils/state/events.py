"""The event log: every action the DCM master and agents take, kept in etcd for the status view.

An event is one JSON record under ``/dcm/events/<writer>/<unix ns, 20 digits>``: each writer (the agent
of a host, ``agent-<host>``; a master, ``master-<name>``; a module) has a folder of its own, which is all
etcd lets it write, and keeps the newest ``keep`` there, pruning the oldest now and then. The status view
(``dcm_pool_info``, ``status.yml``) merges the folders by time and shows the newest. Writing an event
never stops the action it describes: a failed write is logged by the caller's logger and dropped.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

from . import keys
from ..core.errors import StoreError
from .etcd import EtcdClient, load

KINDS = (
    "leader",  # a master took or lost the lead
    "reschedule",  # nodes moved off a host (lost lease, drain)
    "degraded",  # a cluster cannot be repaired now, with the reason
    "recovered",  # a degraded cluster is whole again
    "create", "start", "remove",  # an agent changed a container
    "gc",  # an agent's timer removed containers or images
    "rollout",  # a rolling change moved nodes to a cluster's new generation
    "prune",  # the registry deleted the images of generations no longer retained
)


def event_key(now: float, writer: str) -> str:
    return f"{keys.events_prefix(writer)}{int(now * 1e9):020d}"


def _when(key: str) -> str:
    """The time part of an event key: the last name of ``<writer>/<ns>`` keys, the head of the
    ``<ns>-<source>`` keys a pool wrote before events had a folder per writer."""
    return key.rsplit("/", 1)[-1][:20]


def make_event(kind: str, message: str, source: str, now: float, **fields: object) -> dict:
    event = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "kind": kind,
             "source": source, "message": message}
    event.update({key: value for key, value in fields.items() if value is not None})
    return event


class EventLog:
    """Appends events under ``/dcm/events/<writer>/`` and keeps the newest ``keep`` there.

    ``source`` is who the events say did it (an agent's host name); ``writer`` names the folder (the
    source itself unless given). ``sweep_legacy`` also deletes, when pruning, the events a pool wrote
    before events had a folder per writer (the masters do: they may write every event).
    """

    def __init__(self, client: EtcdClient, source: str, keep: int = 500, log: logging.Logger | None = None,
                 clock: Callable[[], float] = time.time, writer: str = "", sweep_legacy: bool = False) -> None:
        self.client = client
        self.source = source
        self.writer = writer or source
        self.prefix = keys.events_prefix(self.writer)
        self.keep = keep
        self.log = log or logging.getLogger("dcm-events")
        self.clock = clock
        self.sweep_legacy = sweep_legacy
        self.written = 0

    def record(self, kind: str, message: str, **fields: object) -> dict:
        now = self.clock()
        event = make_event(kind, message, self.source, now, **fields)
        self.log.info("event %s: %s", kind, message)
        try:
            self.client.put(event_key(now, self.writer), json.dumps(event, sort_keys=True))
            self.written += 1
            if self.written % 50 == 1:
                self.prune()
        except StoreError as exc:
            self.log.warning("could not record the event in etcd (%s)", exc)
        return event

    def prune(self) -> int:
        """Delete all but the newest ``keep`` events of this writer; returns how many went."""
        gone = 0
        kvs, _revision = self.client.get_prefix(self.prefix, keys_only=True)
        if len(kvs) > self.keep:
            first_kept = sorted(kv.key for kv in kvs)[len(kvs) - self.keep]
            gone += self.client.delete(self.prefix, first_kept)
        if self.sweep_legacy:
            # those keys begin with their time's digits; every writer's folder name begins with a letter
            gone += self.client.delete(keys.EVENTS + "0", keys.EVENTS + ":")
        return gone


def read_events(client: EtcdClient, limit: int = 20, cluster: str | None = None, revision: int = 0) -> list:
    """The newest ``limit`` events of every writer, oldest first; only ``cluster``'s when given."""
    kvs, _rev = client.get_prefix(keys.EVENTS, revision=revision)
    events = []
    for kv in sorted(kvs, key=lambda kv: (_when(kv.key), kv.key)):
        event = load(kv)
        if cluster is None or event.get("cluster") == cluster:
            events.append(event)
    return events[-limit:] if limit else events
