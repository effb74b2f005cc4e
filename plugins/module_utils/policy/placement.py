"""Cluster records and the pool's capacity, as values: what a reservation and a repair are planned from.

Pure: records in, scheduler input and new records out. The state API (:mod:`..state.store`) reads the
records from etcd and commits what these functions compute; the DCM master plans its repairs with them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Iterable

from ..core.errors import DcmError
from ..core.naming import container_name, placed_nodes
from ..core.units import parse_cpus, parse_memory
from ..spec.model import canonical_json, node_requests, spec_hash
from .rollout import node_views
from .scheduler import Host, Plan, Request, scale, schedule, schedule_pinned


def cluster_usage(record: dict) -> dict:
    """Resources a cluster record reserves per host: ``{host: (millicpus, bytes, nodes)}``.

    During a rolling change a node not moved yet still holds what the old generation asked for, on
    its old host (:func:`rollout.node_views`).
    """
    totals: dict = {}
    requests: dict = {}
    for node, host, view in node_views(record):
        if not host:
            continue
        key = id(view)
        if key not in requests:
            requests[key] = node_requests(view["spec"])
        _add(totals, host, requests[key][node.split("-", 1)[0]])
    return totals


def _add(totals: dict, host: str, request: tuple) -> None:
    cpus, memory, nodes = totals.get(host, (0, 0, 0))
    totals[host] = (cpus + request[0], memory + request[1], nodes + 1)


def requests_of(spec: dict) -> dict:
    """What the scheduler places per role (:data:`..policy.scheduler.ROLES`): a history server is placed as
    part of the driver (it runs beside it, on the volume the driver writes the event logs to), so the
    driver's request counts both."""
    found = {role: Request(*value) for role, value in node_requests(spec).items()}
    history = found.pop("history", None)
    if history:
        driver = found["driver"]
        found["driver"] = Request(driver.cpus + history.cpus, driver.memory + history.memory,
                                  note="with its history server")
    return found


def host_capacity(record: dict) -> tuple:
    """Allocatable ``(millicpus, bytes)`` of a host record (total minus the agent's reserve)."""
    allocatable = record.get("allocatable") or record
    return parse_cpus(allocatable["cpus"]), parse_memory(allocatable["memory"])


def pool_hosts(
    host_records: dict,
    cluster_records: Iterable[dict],
    cordoned: Iterable[str] = (),
    exclude_cluster: str | None = None,
) -> list:
    """Scheduler input from etcd records; ``exclude_cluster``'s own reservation is not counted.

    Hosts that only appear in a placement (their agent lost its lease) are
    listed as not live, so the plan says why they were not used.
    """
    cordoned = set(cordoned)
    usage: dict = {}
    members: dict = {}
    for record in cluster_records:
        if record["name"] == exclude_cluster:
            continue
        for host, (cpus, memory, nodes) in cluster_usage(record).items():
            total = usage.get(host, (0, 0, 0))
            usage[host] = (total[0] + cpus, total[1] + memory, total[2] + nodes)
            members.setdefault(host, set()).add(record["name"])
    hosts = []
    for name in sorted(set(host_records) | set(usage)):
        cpus, memory, nodes = usage.get(name, (0, 0, 0))
        record = host_records.get(name)
        capacity = host_capacity(record) if record else (0, 0)
        hosts.append(Host(
            name=name, cpus=capacity[0], memory=capacity[1], requested_cpus=cpus, requested_memory=memory,
            nodes=nodes, clusters=frozenset(members.get(name, ())), live=record is not None,
            cordoned=name in cordoned,
        ))
    return hosts


def what_if_hosts(entries: Iterable[dict]) -> list:
    """Scheduler input from ``{name, cpus, memory, requested_cpus, requested_memory}`` dicts."""
    hosts = []
    for entry in entries:
        hosts.append(Host(
            name=str(entry["name"]),
            cpus=parse_cpus(entry["cpus"]),
            memory=parse_memory(entry["memory"]),
            requested_cpus=parse_cpus(entry.get("requested_cpus") or 0),
            requested_memory=parse_memory(entry.get("requested_memory") or 0),
            nodes=int(entry.get("nodes") or 0),
            clusters=frozenset(entry.get("clusters") or ()),
            live=bool(entry.get("live", True)),
            cordoned=bool(entry.get("cordoned", False)),
        ))
    return hosts


def plan_cluster(spec: dict, hosts: list, pins: dict | None = None) -> Plan:
    """``spec`` on ``hosts``; ``pins`` (:func:`volume_pins`) keeps nodes with data on their hosts."""
    if pins:
        return schedule_pinned(spec["name"], requests_of(spec), spec["worker"]["count"], hosts, pins)
    return schedule(spec["name"], requests_of(spec), spec["worker"]["count"], hosts)


def _volume_roles(spec: dict) -> set:
    """The roles that mount a host-local volume: those the spec's volumes name, and the driver of a cluster
    with a history server (the event logs' volume)."""
    roles = {role for volume in spec.get("volumes") or () for role in volume.get("nodes") or ("driver", "worker")}
    return roles | ({"driver"} if "history" in spec else set())


def volume_pins(previous: dict | None, spec: dict) -> dict:
    """``{node: host}`` of the nodes a new generation of ``spec`` keeps where ``previous`` placed them: those
    of a role that mounts a volume in both (host-local volumes do not follow a node; worker-i keeps
    worker-i's host while the cluster has that many workers)."""
    if not previous:
        return {}
    roles = _volume_roles(spec) & _volume_roles(previous.get("spec") or {})
    placement = previous.get("placement") or {}
    pins = {}
    if "driver" in roles and placement.get("driver"):
        pins["driver"] = placement["driver"]
    if "worker" in roles:
        workers = list(placement.get("workers") or [])[:spec["worker"]["count"]]
        pins.update({f"worker-{i}": host for i, host in enumerate(workers, start=1) if host})
    return pins


def plan_scale(spec: dict, placement: dict, hosts: list) -> Plan:
    """``spec``'s worker count, from ``placement``: what stays stays, added workers are scheduled."""
    return scale(spec["name"], requests_of(spec), placement, spec["worker"]["count"], hosts)


NETWORK_DRIVERS = ("overlay", "bridge", "flannel")
HIDDEN = "********"


def default_network(name: str, driver: str = "overlay") -> dict:
    """The cluster's own network: ``dcm-<name>``, created before its containers, removed after them."""
    return {"name": f"dcm-{name}", "driver": driver}


def cluster_secret(previous: dict | None) -> str:
    """The cluster's ``spark.authenticate`` secret: kept across generations, random for a new cluster."""
    kept = (previous or {}).get("secret")
    return kept if isinstance(kept, str) and len(kept) >= 32 else secrets.token_hex(32)


def jupyter_token(previous: dict | None) -> str:
    """The token of the cluster's Jupyter server: kept across generations, random for a new one."""
    kept = (previous or {}).get("jupyter_token")
    return kept if isinstance(kept, str) and len(kept) >= 32 else secrets.token_hex(24)


def ui_password(previous: dict | None) -> str:
    """The password of the cluster's UIs at the pool's gateway: kept across generations, random for a new one."""
    kept = (previous or {}).get("ui_password")
    return kept if isinstance(kept, str) and len(kept) >= 32 else secrets.token_urlsafe(24)


SECRET_FIELDS = ("secret", "jupyter_token", "ui_password")  # what a cluster record holds that its store keeps apart
# what the hosts running a cluster's nodes get a copy of (the UI password stays with the operator; the
# gateway has its hash)
NODE_SECRET_FIELDS = ("secret", "jupyter_token")


def split_secrets(record: dict) -> tuple:
    """``(record without its secrets, {field: value})``: every agent reads records, a secret goes only where
    the cluster runs."""
    public = {key: value for key, value in record.items() if key not in SECRET_FIELDS}
    return public, {key: record[key] for key in SECRET_FIELDS if record.get(key)}


def with_secrets(record: dict, secrets: dict) -> dict:
    """``record`` with ``secrets`` (from :func:`split_secrets`) put back; what the record holds itself stays."""
    merged = {key: value for key, value in secrets.items() if key in SECRET_FIELDS and value}
    merged.update({key: value for key, value in record.items() if key not in SECRET_FIELDS or value})
    return merged


def public_record(record: dict | None) -> dict | None:
    """A cluster record fit for output and logs: the secret and the Jupyter token hidden."""
    if not record:
        return record
    shown = dict(record)
    for key in SECRET_FIELDS:
        if key in shown:
            shown[key] = HIDDEN
    return shown


# The layout of a cluster record this DCM writes and understands. A record without "format" is 1 (the
# layout before the field). A reader that meets a newer format keeps what runs and says so (an older
# agent or master must not act on fields it does not know).
RECORD_FORMAT = 1


def record_format_problem(record: dict) -> str:
    """Why this DCM cannot act on ``record``'s layout, or ``""``."""
    found = record.get("format", 1)
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        return f"has format {found!r}, not a layout number"
    if found > RECORD_FORMAT:
        return (f"has format {found}, newer than the {RECORD_FORMAT} this DCM understands (written by a newer "
                "DCM?): upgrade the agents and the masters with site.yml")
    return ""


# What reading a cluster record of the wrong shape raises (a field missing, or of another type).
MALFORMED = (DcmError, KeyError, TypeError, ValueError, AttributeError)


def malformed_reason(name: str, exc: Exception) -> str:
    """Why cluster record ``name`` cannot be acted on, from what reading it raised (one of :data:`MALFORMED`)."""
    why = str(exc) if isinstance(exc, DcmError) else f"{type(exc).__name__}: {exc}"
    return f"cluster record {name} cannot be understood ({why})"


def doubt_changes(before: dict, now: dict, present: set) -> tuple:
    """What changed in the clusters in doubt (``{cluster: why}``) between two passes of a loop:
    ``(new, understood, gone)``: those that came into doubt or changed why (``{cluster: why}``), and
    the names of those that left it with a record (``present``) or without one (deleted)."""
    new = {name: why for name, why in sorted(now.items()) if before.get(name) != why}
    left = sorted(set(before) - set(now))
    return new, [name for name in left if name in present], [name for name in left if name not in present]


def cluster_record(
    spec: dict,
    placement: dict,
    images: dict | None,
    previous: dict | None,
    deployed_by: str | None,
    now: float,
    network: dict | None = None,
) -> dict:
    """The record ``/dcm/clusters/<name>`` holds for a new generation."""
    record = {
        "format": RECORD_FORMAT,
        "name": spec["name"],
        "spec": spec,
        "spec_hash": spec_hash(spec),
        "images": dict(images or {}),
        "network": dict(network or (previous or {}).get("network") or default_network(spec["name"])),
        "secret": cluster_secret(previous),
        "ui_password": ui_password(previous),
        "placement": placement,
        "generation": (previous or {}).get("generation", 0) + 1,
        "desired_state": "running",
        "deployed_by": deployed_by,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }
    if "jupyter" in spec:
        record["jupyter_token"] = jupyter_token(previous)
    return record


def record_unchanged(previous: dict | None, spec: dict, images: dict | None, network: dict | None = None) -> bool:
    """True when ``previous`` already is this spec with these images and network (no new generation)."""
    if not previous:
        return False
    if previous.get("spec_hash") != spec_hash(spec):
        return False
    if network is not None and dict(network) != previous.get("network"):
        return False
    return images is None or dict(images) == previous.get("images", {})


@dataclass
class Snapshot:
    """Hosts, cordons and clusters read at one etcd revision."""

    revision: int
    hosts: dict = field(default_factory=dict)
    cordoned: set = field(default_factory=set)
    clusters: dict = field(default_factory=dict)
    cordons: dict = field(default_factory=dict)  # host -> {reason, since, drain}
    unreadable: dict = field(default_factory=dict)  # cluster -> why its record does not load (lenient reads)

    @property
    def drained(self) -> set:
        """Cordoned hosts whose nodes the DCM master moves away."""
        return {host for host, cordon in self.cordons.items() if cordon.get("drain")}

    def pool(self, exclude_cluster: str | None = None) -> list:
        return pool_hosts(self.hosts, self.clusters.values(), self.cordoned, exclude_cluster)


def prune_entry(cluster: str, entry: dict, now: float) -> str:
    """The prune-queue value for a generation that left the history: its images and when."""
    return canonical_json({
        "cluster": cluster, "generation": entry.get("generation"), "images": entry.get("images") or {},
        "queued_at": now,
    })


def qfs_host_map(record: dict, hosts: dict) -> str:
    """The cluster's workers by the pool address of their host, as QFS names chunk locations:
    ``10.0.0.11=spark-worker-face-1,spark-worker-face-3;10.0.0.12=spark-worker-face-2``.

    Given to every job (``fs.qfs.dcspark.hostMap``), it lets Spark see a chunk on a host as local to
    that host's workers (docs/qfs.md, "Data locality"). Hosts without a registered address are left out.
    """
    workers: dict = {}
    for node, host in placed_nodes(record):
        address = str((hosts.get(host) or {}).get("address") or "")
        if node.startswith("worker-") and address and not set(address) & set("=;, "):
            workers.setdefault(address, []).append(container_name(record["name"], node))
    return ";".join(f"{address}={','.join(names)}" for address, names in sorted(workers.items()))
