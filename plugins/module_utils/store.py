"""DCM state in etcd: the pool, cluster records and atomic reservations.

Pure helpers (``pool_hosts``, ``cluster_record``) turn records into scheduler
input and back; :class:`DcmStore` is the only code that reads and writes the
``/dcm/`` keyspace.

Reservation is optimistic: read hosts and clusters at one revision R, plan,
then write the cluster record in one transaction guarded by "no key under
``/dcm/clusters/`` or ``/dcm/cordon/`` was modified after R". If another deploy committed in
between, the transaction fails and we re-read and re-plan. Deletions free
capacity, so they cannot make a plan overcommit and need no guard.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Iterable

from . import keys
from .errors import ReservationConflict, StoreError
from .etcd import EtcdClient, cmp_mod_revision, cmp_mod_revision_below, op_delete, op_put
from .rollout import DEFAULT_KEEP, STRATEGIES, history_entry, node_views, pending, rolling_possible, start_rollout
from .scheduler import Host, Plan, Request, schedule
from .spec import canonical_json, node_requests, spec_hash
from .units import parse_cpus, parse_memory


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
    return {role: Request(*value) for role, value in node_requests(spec).items()}


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


def plan_cluster(spec: dict, hosts: list) -> Plan:
    return schedule(spec["name"], requests_of(spec), spec["worker"]["count"], hosts)


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


def public_record(record: dict | None) -> dict | None:
    """A cluster record fit for output and logs: the secret and the Jupyter token hidden."""
    if not record:
        return record
    shown = dict(record)
    for key in ("secret", "jupyter_token"):
        if key in shown:
            shown[key] = HIDDEN
    return shown


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
        "name": spec["name"],
        "spec": spec,
        "spec_hash": spec_hash(spec),
        "images": dict(images or {}),
        "network": dict(network or (previous or {}).get("network") or default_network(spec["name"])),
        "secret": cluster_secret(previous),
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

    @property
    def drained(self) -> set:
        """Cordoned hosts whose nodes the DCM master moves away."""
        return {host for host, cordon in self.cordons.items() if cordon.get("drain")}

    def pool(self, exclude_cluster: str | None = None) -> list:
        return pool_hosts(self.hosts, self.clusters.values(), self.cordoned, exclude_cluster)


@dataclass
class Reservation:
    record: dict
    changed: bool
    attempts: int
    plan: Plan | None = None
    previous: dict | None = None
    pruned: list = field(default_factory=list)  # generations that left the history
    rolling: str = ""  # "" (no rollout) or why the change is not rolling when it was asked to be


def history_from(kvs) -> dict:
    """``{generation: entry}`` from the key-values of ``/dcm/generations/<name>/``."""
    history = {}
    for kv in kvs:
        entry = _load(kv.key, kv.value)
        history[int(entry["generation"])] = entry
    return history


def prune_entry(cluster: str, entry: dict, now: float) -> str:
    """The prune-queue value for a generation that left the history: its images and when."""
    return canonical_json({
        "cluster": cluster, "generation": entry.get("generation"), "images": entry.get("images") or {},
        "queued_at": now,
    })


class DcmStore:
    """Reads and writes the ``/dcm/`` keyspace."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client

    def snapshot(self) -> Snapshot:
        host_kvs, revision = self.client.get_prefix(keys.HOSTS)
        cordon_kvs, _rev = self.client.get_prefix(keys.CORDON, revision=revision)
        cluster_kvs, _rev = self.client.get_prefix(keys.CLUSTERS, revision=revision)
        snap = Snapshot(revision=revision)
        for kv in host_kvs:
            snap.hosts[keys.name_from_key(keys.HOSTS, kv.key)] = _load(kv.key, kv.value)
        for kv in cordon_kvs:
            try:
                cordon = json.loads(kv.value)
            except ValueError:
                cordon = {}
            snap.cordons[keys.name_from_key(keys.CORDON, kv.key)] = cordon if isinstance(cordon, dict) else {}
        snap.cordoned = set(snap.cordons)
        for kv in cluster_kvs:
            snap.clusters[keys.name_from_key(keys.CLUSTERS, kv.key)] = _load(kv.key, kv.value)
        return snap

    def get_cluster(self, name: str) -> dict | None:
        return self.read_cluster(name)[0]

    def read_cluster(self, name: str) -> tuple:
        """``(record or None, its mod revision)``, for a write guarded on it."""
        kv = self.client.get(keys.cluster_key(name))
        return (_load(kv.key, kv.value), kv.mod_revision) if kv else (None, 0)

    def history(self, name: str, revision: int = 0) -> dict:
        """The retained generations of cluster ``name``: ``{generation: entry}``."""
        kvs, _rev = self.client.get_prefix(keys.generations_prefix(name), revision=revision)
        return history_from(kvs)

    def reserve(
        self,
        spec: dict,
        images: dict | None = None,
        deployed_by: str | None = None,
        attempts: int = 20,
        check_mode: bool = False,
        network: dict | None = None,
        keep: int = DEFAULT_KEEP,
        strategy: str = "rolling",
        origin: str = "deploy",
        rollback_of: int | None = None,
    ) -> Reservation:
        """Plan ``spec`` against the live pool and commit its record atomically.

        A change is a new generation: the record, its history entry and, for a running cluster with
        ``strategy`` rolling, a rollout from the previous generation, in one transaction that also
        drops the history beyond the newest ``keep`` generations (their images go to the registry's
        prune queue). Re-reads and re-plans when another writer got in first; raises
        :class:`ScheduleError` when the cluster does not fit (nothing written),
        :class:`ReservationConflict` after ``attempts`` lost races.
        """
        name = spec["name"]
        if keep < 1:
            raise StoreError(f"keep must be at least 1 generation, got {keep}")
        if strategy not in STRATEGIES:
            raise StoreError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        for attempt in range(1, attempts + 1):
            snap = self.snapshot()
            previous = snap.clusters.get(name)
            if record_unchanged(previous, spec, images, network):
                return Reservation(record=previous, changed=False, attempts=attempt, previous=previous)
            if previous and previous.get("spec_hash") == spec_hash(spec):
                # Same spec, new images: the same resources stay where they are reserved.
                plan = None
                placement = previous["placement"]
            else:
                plan = plan_cluster(spec, snap.pool(exclude_cluster=name))
                placement = plan.placement
            now = time.time()
            record = cluster_record(spec, placement, images, previous, deployed_by, now, network)
            history = self.history(name, revision=snap.revision)
            # a cluster deployed again after an undeploy goes on from the generations it retained
            record["generation"] = max(record["generation"], max(history, default=0) + 1)
            rolling = ""
            if strategy == "rolling" and previous:
                possible, rolling = rolling_possible(previous, record)
                if possible:
                    record = start_rollout(previous, record, now)
            ops = [op_put(keys.cluster_key(name), canonical_json(record))]
            if previous and int(previous.get("generation", 0)) not in history:
                # a generation recorded before histories were kept
                recorded = history_entry(previous, origin="recorded")
                history[int(previous.get("generation", 0))] = recorded
                ops.append(op_put(keys.generation_key(name, previous.get("generation", 0)), canonical_json(recorded)))
            entry = history_entry(record, origin, rollback_of)
            history[record["generation"]] = entry
            ops.append(op_put(keys.generation_key(name, record["generation"]), canonical_json(entry)))
            pruned = [history[g] for g in sorted(history)[:-keep]]
            for old in pruned:
                ops.append(op_delete(keys.generation_key(name, old["generation"])))
                ops.append(op_put(keys.prune_key(name, old["generation"]), prune_entry(name, old, now)))
            reservation = Reservation(record=record, changed=True, attempts=attempt, plan=plan, previous=previous,
                                      pruned=pruned, rolling=rolling)
            if check_mode:
                return reservation
            # Another reservation, or a host cordoned since the read, invalidates the plan.
            guards = [cmp_mod_revision_below(prefix, snap.revision + 1, keys.prefix_end(prefix))
                      for prefix in (keys.CLUSTERS, keys.CORDON)]
            ok, _responses, _rev = self.client.txn(guards, ops)
            if ok:
                return reservation
            time.sleep(min(0.01 * attempt, 0.2))
        raise ReservationConflict(
            f"cluster {name}: the pool's allocations kept changing during {attempts} attempts to reserve; "
            "nothing was reserved, run the deploy again"
        )

    def remove_cluster(self, name: str, check_mode: bool = False, purge: bool = False) -> tuple:
        """Delete a cluster's record and status keys in one transaction: ``(removed record or None, purged)``.

        Its retained generations stay (their images stay in the registry for a quick redeploy, which
        goes on numbering from them) unless ``purge``: then the history goes too, even of a cluster
        without a record, and the images of every generation (the current one included) go to the
        registry's prune queue; ``purged`` lists those generations.
        """
        kv = self.client.get(keys.cluster_key(name))
        record = _load(kv.key, kv.value) if kv else None
        history = self.history(name) if purge else {}
        if purge and record is not None:
            history.setdefault(int(record.get("generation", 0)), history_entry(record, "recorded"))
            if record.get("rollout"):
                old = record["rollout"]["from"]
                history.setdefault(int(old.get("generation", 0)), history_entry(old, "recorded"))
        if check_mode or (record is None and not history):
            return record, sorted(history)
        ops = []
        guards = []
        if record is not None:
            status = keys.status_prefix(name)
            guards.append(cmp_mod_revision(kv.key, kv.mod_revision))
            ops += [op_delete(kv.key), op_delete(status, keys.prefix_end(status))]
        if purge:
            now = time.time()
            generations = keys.generations_prefix(name)
            ops.append(op_delete(generations, keys.prefix_end(generations)))
            ops += [op_put(keys.prune_key(name, g), prune_entry(name, entry, now)) for g, entry in history.items()]
        ok, _r, _rev = self.client.txn(guards, ops)
        if not ok:
            raise StoreError(f"cluster {name} changed while it was being removed; run the removal again")
        return record, sorted(history)

    # -- hosts (used by the agent and by tests) ---------------------------
    def register_host(self, record: dict, ttl: int = 30) -> int:
        lease = self.client.lease_grant(ttl)
        self.client.put(keys.host_key(record["name"]), canonical_json(record), lease=lease)
        return lease

    def set_cordon(self, host: str, cordoned: bool, reason: str = "", drain: bool = False,
                   check_mode: bool = False) -> bool:
        """Cordon (no new nodes), drain (cordon and move its nodes away) or release ``host``; True if changed."""
        key = keys.cordon_key(host)
        kv = self.client.get(key)
        current = _load(kv.key, kv.value) if kv else None
        if not cordoned:
            if current is None:
                return False
            if not check_mode:
                self.client.delete(key)
            return True
        if current is not None and bool(current.get("drain")) == drain and current.get("reason", "") == reason:
            return False
        if not check_mode:
            self.client.put(key, json.dumps({"reason": reason, "since": time.time(), "drain": drain}, sort_keys=True))
        return True


def _load(key: str, value: str) -> dict:
    try:
        return json.loads(value)
    except ValueError:
        raise StoreError(f"etcd key {key} does not hold JSON; was it written by something other than DCM?") from None


def generations_view(record: dict, history: dict) -> list:
    """The retained generations of a cluster, newest first, as the status view lists them."""
    shown = []
    for generation in sorted(history, reverse=True):
        entry = history[generation]
        shown.append({
            "generation": generation,
            "current": generation == record.get("generation"),
            "origin": entry.get("origin"),
            "rollback_of": entry.get("rollback_of"),
            "deployed_by": entry.get("deployed_by"),
            "updated_at": entry.get("updated_at"),
            "spec_hash": entry.get("spec_hash"),
            "spark_version": ((entry.get("spec") or {}).get("runtime") or {}).get("spark_version"),
            "pip_packages": list(((entry.get("spec") or {}).get("runtime") or {}).get("pip_packages") or []),
            "images": entry.get("images") or {},
            "placement": entry.get("placement"),
        })
        line = shown[-1]
        origin = (f"rollback to {line['rollback_of']}" if line["origin"] == "rollback" else line["origin"] or "deploy")
        line["line"] = (f"generation {generation}{' (current)' if line['current'] else ''}: {origin} by "
                        f"{line['deployed_by'] or '?'} at {line['updated_at'] or '?'}; Spark {line['spark_version']}"
                        + (f", pip {' '.join(line['pip_packages'])}" if line["pip_packages"] else ""))
    return shown


def rollout_view(record: dict) -> dict | None:
    """Where a rolling change stands: the generation it replaces, the nodes moved and still waiting."""
    rollout = record.get("rollout")
    if not rollout:
        return None
    return {"from": (rollout.get("from") or {}).get("generation"), "to": record.get("generation"),
            "done": list(rollout.get("done") or []), "pending": pending(record),
            "started_at": rollout.get("started_at")}


def pool_view(snap: Snapshot, status: dict, cluster: str | None = None, events: list | None = None,
              leader: dict | None = None, histories: dict | None = None) -> dict:
    """Hosts, clusters, placements and node health as an operator reads them (``dcm_pool_info``, status.yml).

    ``status`` maps ``(cluster, node)`` to the agents' reports under ``/dcm/status/``; ``events`` are the
    newest entries of ``/dcm/events/``, ``leader`` the DCM master in charge and ``histories`` each
    cluster's retained generations (``{name: {generation: entry}}``).
    """
    hosts = []
    for host in snap.pool():
        record = snap.hosts.get(host.name) or {}
        hosts.append({
            "name": host.name,
            "address": record.get("address"),
            "live": host.live,
            "cordoned": host.cordoned,
            "drained": host.name in snap.drained,
            "cpus": host.cpus / 1000,
            "memory": host.memory,
            "requested_cpus": host.requested_cpus / 1000,
            "requested_memory": host.requested_memory,
            "clusters": sorted(host.clusters),
            "agent_version": record.get("agent_version"),
        })
    clusters = []
    for name in sorted(snap.clusters):
        if cluster is not None and name != cluster:
            continue
        record = snap.clusters[name]
        placement = record.get("placement") or {}
        nodes = []
        for node, host, _view in node_views(record):
            report = status.get((name, node)) or {}
            nodes.append({
                "node": node,
                "host": host,
                "container": keys.container_name(name, node),
                "state": report.get("state", "unreported"),
                "health": report.get("health", "unknown"),
                "restarts": report.get("restarts", 0),
                "generation": report.get("generation"),
                "ui_port": report.get("ui_port"),
                "error": report.get("error"),
                "observed_at": report.get("observed_at"),
            })
        master_host = snap.hosts.get(placement.get("master") or "") or {}
        master_report = status.get((name, "master")) or {}
        ui = (f"http://{master_host['address']}:{master_report['ui_port']}"
              if master_host.get("address") and master_report.get("ui_port") else None)
        jupyter = None
        driver_report = (status.get((name, "driver")) or {}).get("jupyter") or {}
        if driver_report.get("port"):
            driver_host = snap.hosts.get(placement.get("driver") or "") or {}
            address = driver_report.get("address") or "0.0.0.0"
            shown = driver_host.get("address") if address == "0.0.0.0" else address
            jupyter = {"url": f"http://{shown}:{driver_report['port']}/lab", "host": placement.get("driver"),
                       "token": f"docker exec {keys.container_name(name, 'driver')} dcspark-node jupyter-token"}
        running = [n for n in nodes if n["state"] == "running" and n["generation"] == record.get("generation")]
        clusters.append({
            "name": name,
            "generation": record.get("generation"),
            "desired_state": record.get("desired_state"),
            "spec_hash": record.get("spec_hash"),
            "spark_version": (record.get("spec") or {}).get("runtime", {}).get("spark_version"),
            "placement": placement,
            "images": record.get("images", {}),
            "network": record.get("network"),
            "master_url": keys.master_url(name),
            "ui": ui,
            "jupyter": jupyter,
            "nodes": nodes,
            "running": len(running),
            "converged": len(running) == len(nodes),
            "health": "degraded" if record.get("degraded") else "ok",
            "degraded": record.get("degraded"),
            "repairs": record.get("repairs", []),
            "rollout": rollout_view(record),
            "generations": generations_view(record, (histories or {}).get(name) or {}),
        })
    return {"revision": snap.revision, "hosts": hosts, "clusters": clusters, "leader": leader,
            "events": list(events or [])}


def read_status(client: EtcdClient, revision: int = 0) -> dict:
    """Every agent report under ``/dcm/status/``: ``{(cluster, node): report}``."""
    kvs, _rev = client.get_prefix(keys.STATUS, revision=revision)
    reports = {}
    for kv in kvs:
        cluster, _sep, node = keys.name_from_key(keys.STATUS, kv.key).partition("/")
        try:
            reports[(cluster, node)] = json.loads(kv.value)
        except ValueError:
            reports[(cluster, node)] = {"state": "unreadable", "error": f"{kv.key} is not JSON"}
    return reports


def read_histories(client: EtcdClient, revision: int = 0, cluster: str | None = None) -> dict:
    """Retained generations under ``/dcm/generations/``: ``{cluster: {generation: entry}}``."""
    prefix = keys.generations_prefix(cluster) if cluster else keys.GENERATIONS
    kvs, _rev = client.get_prefix(prefix, revision=revision)
    histories: dict = {}
    for kv in kvs:
        name = keys.name_from_key(keys.GENERATIONS, kv.key).rsplit("/", 1)[0]
        entry = _load(kv.key, kv.value)
        histories.setdefault(name, {})[int(entry["generation"])] = entry
    return histories
