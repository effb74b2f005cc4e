"""The pool's state API: the one owner of every key under ``/dcm/`` (layout in :mod:`.keys`).

Agents, the DCM master and the modules read and write the pool only through :class:`DcmStore`;
nothing else builds a key or a transaction. Two rules hold for every method:

- a value that does not parse raises :class:`CorruptRecord` naming the key, and is never treated as
  absent (a loop that took a broken record for a missing one would remove what it describes);
- every write of a record is one transaction guarded on what was read (its mod revision, or "nothing
  under the allocation prefixes changed since revision R"), so two writers never overwrite each other.

Reservation is optimistic: read hosts and clusters at one revision R, plan, then write the cluster
record in one transaction guarded by "no key under ``/dcm/clusters/`` or ``/dcm/cordon/`` was modified
after R". If another deploy committed in between, the transaction fails and we re-read and re-plan.
Deletions free capacity, so they cannot make a plan overcommit and need no guard.

A cluster's secrets (Spark's shared secret, the Jupyter token) are not in its record, which every
agent reads: every write of a record also writes ``/dcm/secrets/<name>`` (the secrets and the hosts
holding a copy) and ``/dcm/host-secrets/<host>/<name>`` for each host with a node of the cluster,
and deletes the copies of hosts that no longer have one, in the same transaction. With etcd's
role-based access an agent reads only its own host's copies (:mod:`.access`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from ..core.errors import CorruptRecord, ReservationConflict, StoreError
from ..policy.gateway import gateway_entry
from ..policy.placement import (NODE_SECRET_FIELDS, SECRET_FIELDS, Snapshot, cluster_record, plan_cluster, plan_scale,
                                prune_entry, record_unchanged, split_secrets, ui_password, volume_pins, with_secrets)
from ..policy.rollout import DEFAULT_KEEP, STRATEGIES, history_entry, node_views, rolling_possible, start_rollout
from ..policy.scheduler import Plan
from ..spec.model import canonical_json, scaled_spec, spec_hash
from . import keys
from .etcd import (EtcdClient, cmp_absent, cmp_mod_revision, cmp_mod_revision_below, cmp_value,
                   op_delete, op_put)
from .etcd import load
from .events import EventLog, read_events


@dataclass
class Reservation:
    record: dict
    changed: bool
    attempts: int
    plan: Plan | None = None
    previous: dict | None = None
    pruned: list = field(default_factory=list)  # generations that left the history
    rolling: str = ""  # "" (no rollout) or why the change is not rolling when it was asked to be


def _allocation_guards(revision: int) -> list:
    """Nothing under the prefixes a placement depends on changed after ``revision``."""
    return [cmp_mod_revision_below(prefix, revision + 1, keys.prefix_end(prefix))
            for prefix in (keys.CLUSTERS, keys.CORDON)]


class DcmStore:
    """Reads and writes the ``/dcm/`` keyspace; ``client`` is an :class:`EtcdClient`."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client

    # -- reads -------------------------------------------------------------------------------
    def _objects(self, prefix: str, revision: int = 0) -> tuple:
        """``({key: object}, revision)`` of every key under ``prefix``."""
        kvs, header = self.client.get_prefix(prefix, revision=revision)
        return {kv.key: load(kv) for kv in kvs}, header

    def snapshot(self, revision: int = 0, lenient: bool = False) -> Snapshot:
        """Hosts, cordons and cluster records read at one revision.

        A record that does not load raises :class:`CorruptRecord`, unless ``lenient`` (the DCM master's
        checks): then it is left out of ``clusters`` and named in ``unreadable``, so one bad record does
        not stop the checks of the others."""
        hosts, revision = self._objects(keys.HOSTS, revision)
        cordons, _rev = self._objects(keys.CORDON, revision)
        snap = Snapshot(revision=revision)
        snap.hosts = {keys.name_from_key(keys.HOSTS, key): value for key, value in hosts.items()}
        snap.cordons = {keys.name_from_key(keys.CORDON, key): value for key, value in cordons.items()}
        snap.cordoned = set(snap.cordons)
        if lenient:
            snap.clusters, snap.unreadable = self._clusters_leniently(revision)
        else:
            clusters, _rev = self._objects(keys.CLUSTERS, revision)
            snap.clusters = {keys.name_from_key(keys.CLUSTERS, key): value for key, value in clusters.items()}
        return snap

    def _clusters_leniently(self, revision: int) -> tuple:
        """``({name: record}, {name: why})``: the records that load, and why each other one does not."""
        kvs, _header = self.client.get_prefix(keys.CLUSTERS, revision=revision)
        records: dict = {}
        unreadable: dict = {}
        for kv in kvs:
            name = keys.name_from_key(keys.CLUSTERS, kv.key)
            try:
                records[name] = load(kv)
            except CorruptRecord as exc:
                unreadable[name] = str(exc)
        return records, unreadable

    def clusters(self, revision: int = 0) -> dict:
        """Every cluster record: ``{name: record}``."""
        records, _rev = self._objects(keys.CLUSTERS, revision)
        return {keys.name_from_key(keys.CLUSTERS, key): value for key, value in records.items()}

    def get_cluster(self, name: str) -> dict | None:
        return self.read_cluster(name)[0]

    def read_cluster(self, name: str) -> tuple:
        """``(record or None, its mod revision)``, for a write guarded on it."""
        kv = self.client.get(keys.cluster_key(name))
        return (load(kv), kv.mod_revision) if kv else (None, 0)

    def held_secrets(self, name: str) -> dict:
        """``/dcm/secrets/<name>``: ``{"secrets": {field: value}, "hosts": [hosts holding a copy]}`` or {}."""
        kv = self.client.get(keys.secrets_key(name))
        return load(kv) if kv else {}

    def host_secrets(self, host: str, revision: int = 0) -> dict:
        """The secrets of every cluster with a node on ``host`` (what its agent may read): ``{cluster: secrets}``."""
        return self._host_secrets(host, revision)[0]

    def _host_secrets(self, host: str, revision: int = 0) -> tuple:
        prefix = keys.host_secrets_prefix(host)
        copies, header = self._objects(prefix, revision)
        return {keys.name_from_key(prefix, key): {field: value for field, value in copy.items()
                                                  if field in SECRET_FIELDS}
                for key, copy in copies.items()}, header

    def gateway_entries(self, revision: int = 0) -> dict:
        """``/dcm/gateway/``: ``{cluster: {"cluster", "user", "htpasswd"}}`` (password hashes, no password)."""
        entries, _rev = self._objects(keys.GATEWAY, revision)
        return {keys.name_from_key(keys.GATEWAY, key): value for key, value in entries.items()}

    def host_view(self, host: str) -> tuple:
        """``(records, secrets, unreadable)``: every cluster record and the copies of ``host``'s secrets,
        read at one revision (a record and its copies are written in one transaction, so a node placed
        here always comes with its secret), and ``{cluster: why}`` of the records that do not load: an
        agent keeps those clusters' containers as they run instead of taking them for undeployed."""
        secrets, revision = self._host_secrets(host)
        records, unreadable = self._clusters_leniently(revision)
        return records, secrets, unreadable

    def history(self, name: str, revision: int = 0) -> dict:
        """The retained generations of cluster ``name``: ``{generation: entry}``."""
        return self.histories(revision, name).get(name, {})

    def histories(self, revision: int = 0, cluster: str | None = None) -> dict:
        """Retained generations under ``/dcm/generations/``: ``{cluster: {generation: entry}}``."""
        prefix = keys.generations_prefix(cluster) if cluster else keys.GENERATIONS
        entries, _rev = self._objects(prefix, revision)
        histories: dict = {}
        for key, entry in entries.items():
            name = keys.name_from_key(keys.GENERATIONS, key).rsplit("/", 1)[0]
            try:
                generation = int(entry["generation"])
            except (KeyError, TypeError, ValueError):
                raise CorruptRecord(key, "has no generation number") from None
            histories.setdefault(name, {})[generation] = entry
        return histories

    def status(self, revision: int = 0, cluster: str | None = None) -> dict:
        """The agents' reports under ``/dcm/status/<host>/``: ``{(cluster, node): report}``.

        While a node moves, the agents of two hosts may both report it for a moment: the newer
        report (``observed_at``, then the host's name) is the node's."""
        reports, _rev = self._objects(keys.STATUS, revision)
        view: dict = {}
        for key in sorted(reports):
            parts = keys.status_parts(key)
            if parts is None or (cluster and parts[1] != cluster):
                continue
            report = reports[key]
            seen = view.get(parts[1:])
            if seen is None or str(report.get("observed_at", "")) >= str(seen.get("observed_at", "")):
                view[parts[1:]] = report
        return view

    def events(self, limit: int = 20, cluster: str | None = None, revision: int = 0) -> list:
        """The newest ``limit`` events, oldest first; only ``cluster``'s when given."""
        return read_events(self.client, limit, cluster, revision)

    def event_log(self, source: str, **kwargs: object) -> EventLog:
        """An event writer for ``source`` (a master, a module), in a folder of that name."""
        return EventLog(self.client, source, **kwargs)

    def agent_event_log(self, host: str, **kwargs: object) -> EventLog:
        """The event writer of the agent on ``host``: its events say ``host`` did it, in the one folder
        of events that agent may write."""
        return EventLog(self.client, host, writer=keys.agent_writer(host), **kwargs)

    def leader(self, revision: int = 0) -> dict | None:
        """The DCM master in charge, or None when nobody leads."""
        kv = self.client.get(keys.LEADER, revision=revision)
        return load(kv) if kv else None

    def hosts(self, revision: int = 0) -> dict:
        """The hosts registered now: ``{name: host record}``."""
        records, _rev = self._objects(keys.HOSTS, revision)
        return {keys.name_from_key(keys.HOSTS, key): value for key, value in records.items()}

    def host_names(self) -> frozenset:
        """The hosts registered now (one keys-only read: cheap enough for every campaign tick)."""
        kvs, _revision = self.client.get_prefix(keys.HOSTS, keys_only=True)
        return frozenset(keys.name_from_key(keys.HOSTS, kv.key) for kv in kvs)

    def raw_host(self, name: str) -> str | None:
        """The record of host ``name`` as stored (``dcm-agent --show``)."""
        kv = self.client.get(keys.host_key(name))
        return kv.value if kv else None

    def raw_leader(self) -> str | None:
        """The leader record as stored (``dcm-master --show``)."""
        kv = self.client.get(keys.LEADER)
        return kv.value if kv else None

    def prune_queue(self, revision: int = 0) -> dict:
        """The registry's prune queue: ``{queue key: (entry, mod revision)}``."""
        kvs, _rev = self.client.get_prefix(keys.REGISTRY_PRUNE, revision=revision)
        return {kv.key: (load(kv), kv.mod_revision) for kv in kvs}

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
        def place(_spec: dict, previous: dict | None, snap: Snapshot, history: dict) -> tuple:
            if previous and previous.get("spec_hash") == spec_hash(spec):
                return None, previous["placement"]  # same spec, new images: resources stay where they are
            # nodes with volumes stay with their data: where the current generation placed them, or after an
            # undeploy, the newest retained one
            last = previous or (history[max(history)] if history else None)
            plan = plan_cluster(spec, snap.pool(exclude_cluster=spec["name"]), volume_pins(last, spec))
            return plan, plan.placement

        return self._reserve(spec["name"], lambda previous: (spec, images, network), place, deployed_by=deployed_by,
                             attempts=attempts, check_mode=check_mode, keep=keep, strategy=strategy, origin=origin,
                             rollback_of=rollback_of)

    def scale(self, name: str, workers: int, deployed_by: str | None = None, attempts: int = 20,
              check_mode: bool = False, keep: int = DEFAULT_KEEP, strategy: str = "rolling") -> Reservation:
        """A new generation of the deployed cluster ``name`` with ``workers`` workers: the same images,
        network and settings, and every node that stays on its host (:func:`~..policy.scheduler.scale`).

        Re-read at each attempt, so a deploy that lands meanwhile is scaled, never undone. Raises
        :class:`StoreError` when the cluster has no record, :class:`SpecError` for a count the spec's rule
        refuses, :class:`ScheduleError` when the added workers do not fit (nothing written)."""
        def target(previous: dict | None) -> tuple:
            if previous is None:
                raise StoreError(f"cluster {name} has no record in etcd: deploy it first with deploy_cluster.yml")
            return scaled_spec(previous["spec"], workers), previous.get("images"), previous.get("network")

        def place(spec: dict, previous: dict, snap: Snapshot, _history: dict) -> tuple:
            plan = plan_scale(spec, previous["placement"], snap.pool(exclude_cluster=name))
            return plan, plan.placement

        return self._reserve(name, target, place, deployed_by=deployed_by, attempts=attempts, check_mode=check_mode,
                             keep=keep, strategy=strategy, origin="scale")

    def _reserve(self, name: str, target, place, deployed_by: str | None, attempts: int, check_mode: bool,
                 keep: int, strategy: str, origin: str, rollback_of: int | None = None) -> Reservation:
        """The reservation loop: ``target(previous)`` gives ``(spec, images, network)``, ``place(spec,
        previous, snap, history)`` gives ``(plan or None, placement)``, planning on ``snap.pool(exclude_cluster=
        name)`` only when it plans; all read at one revision."""
        if keep < 1:
            raise StoreError(f"keep must be at least 1 generation, got {keep}")
        if strategy not in STRATEGIES:
            raise StoreError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        for attempt in range(1, attempts + 1):
            snap = self.snapshot()
            previous = snap.clusters.get(name)
            if previous is not None:  # a new generation keeps the cluster's secret and token
                previous = with_secrets(previous, self.held_secrets(name).get("secrets") or {})
            spec, images, network = target(previous)
            if record_unchanged(previous, spec, images, network):
                return Reservation(record=previous, changed=False, attempts=attempt, previous=previous)
            history = self.history(name, revision=snap.revision)
            plan, placement = place(spec, previous, snap, history)
            now = time.time()
            record = cluster_record(spec, placement, images, previous, deployed_by, now, network)
            # a cluster deployed again after an undeploy goes on from the generations it retained
            record["generation"] = max(record["generation"], max(history, default=0) + 1)
            rolling = ""
            if strategy == "rolling" and previous:
                possible, rolling = rolling_possible(previous, record)
                if possible:
                    record = start_rollout(previous, record, now)
            ops = self._record_ops(name, record)
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
            ok, _responses, _rev = self.client.txn(_allocation_guards(snap.revision), ops)
            if ok:
                return reservation
            time.sleep(min(0.01 * attempt, 0.2))
        raise ReservationConflict(
            f"cluster {name}: the pool's allocations kept changing during {attempts} attempts to reserve; "
            "nothing was reserved, run the deploy again"
        )

    def remove_cluster(self, name: str, check_mode: bool = False, purge: bool = False,
                       attempts: int = 10) -> tuple:
        """Delete a cluster's record and status keys in one transaction: ``(removed record or None, purged)``.

        Its retained generations stay (their images stay in the registry for a quick redeploy, which
        goes on numbering from them), and so do its job records, unless ``purge``: then the history, the
        job records and the image provenance records go too, even of a cluster
        without a record, and the images of every generation (the current one included) go to the
        registry's prune queue; ``purged`` lists those generations.

        The transaction is guarded on the record it read. When another writer got there first (a
        concurrent undeploy removed it, the master moved a node, a deploy reserved again), the removal
        reads again and removes what is there now: an undeploy removes the cluster as it stands when it
        lands. :class:`StoreError` after ``attempts`` lost races.
        """
        for _attempt in range(attempts):
            kv = self.client.get(keys.cluster_key(name))
            record = load(kv) if kv else None
            history = self.history(name) if purge else {}
            if purge and record is not None:
                history.setdefault(int(record.get("generation", 0)), history_entry(record, "recorded"))
                if record.get("rollout"):
                    old = record["rollout"]["from"]
                    history.setdefault(int(old.get("generation", 0)), history_entry(old, "recorded"))
            if check_mode or (record is None and not history):
                return record, sorted(history)
            guards = [cmp_mod_revision(kv.key, kv.mod_revision) if kv else cmp_absent(keys.cluster_key(name))]
            ops = []
            if record is not None:
                ops += [op_delete(kv.key), op_delete(keys.secrets_key(name)), op_delete(keys.gateway_key(name))]
                ops += [op_delete(key) for key in self._status_keys(name)]
                ops += [op_delete(keys.host_secrets_key(host, name))
                        for host in self.held_secrets(name).get("hosts") or ()]
            if purge:
                now = time.time()
                for prefix in (keys.generations_prefix(name), keys.jobs_prefix(name), keys.images_prefix(name)):
                    ops.append(op_delete(prefix, keys.prefix_end(prefix)))
                ops += [op_put(keys.prune_key(name, g), prune_entry(name, entry, now)) for g, entry in history.items()]
            ok, _r, _rev = self.client.txn(guards, ops)
            if ok:
                return record, sorted(history)
        raise StoreError(f"cluster {name} kept changing while it was being removed ({attempts} attempts); "
                         "run the removal again")

    # -- hosts ---------------------------------------------------------------------------------
    def register_host(self, record: dict, ttl: int = 30) -> int:
        """Write a host record on a new lease of ``ttl`` seconds; returns the lease."""
        lease = self.grant(ttl)
        self.put_host(record, lease)
        return lease

    def set_cordon(self, host: str, cordoned: bool, reason: str = "", drain: bool = False,
                   check_mode: bool = False) -> bool:
        """Cordon (no new nodes), drain (cordon and move its nodes away) or release ``host``; True if changed."""
        key = keys.cordon_key(host)
        kv = self.client.get(key)
        current = load(kv) if kv else None
        guard = cmp_mod_revision(key, kv.mod_revision) if kv else cmp_absent(key)
        if not cordoned:
            if current is None:
                return False
            ops = [op_delete(key)]
        elif current is not None and bool(current.get("drain")) == drain and current.get("reason", "") == reason:
            return False
        else:
            ops = [op_put(key, json.dumps({"reason": reason, "since": time.time(), "drain": drain}, sort_keys=True))]
        if not check_mode:
            self._commit(key, [guard], ops)
        return True

    def _commit(self, what: str, guards: list, ops: list) -> None:
        ok, _responses, _rev = self.client.txn(guards, ops)
        if not ok:
            raise StoreError(f"{what} changed while it was being written (another writer); run again")

    def _record_ops(self, name: str, record: dict) -> list:
        """The writes of one cluster record: the record without its secrets, the secrets, and a copy of them
        for each host with a node of the cluster (copies of hosts that have none any more go)."""
        public, secrets = split_secrets(record)
        held = self.held_secrets(name)
        secrets = secrets or dict(held.get("secrets") or {})
        if not secrets.get("secret"):
            raise StoreError(f"cluster {name}: its secret is neither in the record nor in {keys.secrets_key(name)}; "
                             "deploy the cluster again (deploy_cluster.yml) to give it a new one")
        if not secrets.get("ui_password"):  # kept from before; a cluster deployed before the gateway gets one now
            secrets = dict(secrets, ui_password=(held.get("secrets") or {}).get("ui_password") or ui_password(None))
        hosts = sorted({host for _node, host, _view in node_views(record)})
        ops = [op_put(keys.cluster_key(name), canonical_json(public)),
               op_put(keys.secrets_key(name), canonical_json({"cluster": name, "secrets": secrets, "hosts": hosts}))]
        copy = {field: value for field, value in secrets.items() if field in NODE_SECRET_FIELDS}
        ops += [op_put(keys.host_secrets_key(host, name), canonical_json(dict(copy, cluster=name)))
                for host in hosts]
        ops.append(op_put(keys.gateway_key(name), canonical_json(gateway_entry(name, secrets["ui_password"]))))
        ops += [op_delete(keys.host_secrets_key(host, name))
                for host in sorted(set(held.get("hosts") or ()) - set(hosts))]
        return ops

    # -- the DCM master ------------------------------------------------------------------------
    def commit_repair(self, name: str, record: dict, since_revision: int, fence: dict) -> tuple:
        """Write a repaired cluster record: ``(committed, revision)``.

        Guarded by the leader's ``fence`` and by "nothing under the allocation prefixes changed
        after ``since_revision``" (the repair was planned at that revision).
        """
        ok, _responses, revision = self.client.txn(
            [fence] + _allocation_guards(since_revision), self._record_ops(name, record))
        return ok, revision

    def campaign(self, value: str, lease: int) -> bool:
        """Take the lead with ``value`` on ``lease`` when nobody holds it; True when won."""
        won, _responses, _rev = self.client.txn([cmp_absent(keys.LEADER)], [op_put(keys.LEADER, value, lease)])
        return won

    def leads(self, value: str) -> bool:
        """True while the leader key holds exactly ``value``."""
        return self.raw_leader() == value

    def leader_present(self) -> bool:
        return self.raw_leader() is not None

    @staticmethod
    def fence(value: str) -> dict:
        """The transaction compare that holds only while the leader key still holds ``value``."""
        return cmp_value(keys.LEADER, value)

    # -- rolling changes -------------------------------------------------------------------------
    def advance_rollout(self, name: str, record: dict, mod_revision: int) -> bool:
        """Write the record after a rollout step, guarded on the revision it was read at; True if written."""
        ok, _responses, _rev = self.client.txn([cmp_mod_revision(keys.cluster_key(name), mod_revision)],
                                               self._record_ops(name, record))
        return ok

    # -- the registry's prune queue -----------------------------------------------------------
    def settle_prune(self, key: str, mod_revision: int) -> bool:
        """Remove a settled prune-queue entry unless it changed since read; True when removed."""
        if not key.startswith(keys.REGISTRY_PRUNE):
            raise StoreError(f"{key} is not a prune-queue key")
        ok, _responses, _rev = self.client.txn([cmp_mod_revision(key, mod_revision)], [op_delete(key)])
        return ok

    # -- the registry's lock (builds push shared, the garbage collection runs exclusive) -----------
    def take_registry_lock(self, exclusive: bool, holder: dict, lease: int) -> dict | None:
        """One try at the registry's lock on ``lease``: None when taken, else who holds it exclusively.

        Shared and exclusive alike are refused while the exclusive key exists, atomically; the exclusive
        taker then waits for the shared holders to go (:func:`..ops.registry_lock.hold`), and no new
        shared holder can come meanwhile."""
        key = keys.REGISTRY_LOCK_EXCLUSIVE if exclusive else keys.registry_shared_key(lease)
        ok, _responses, _rev = self.client.txn([cmp_absent(keys.REGISTRY_LOCK_EXCLUSIVE)],
                                               [op_put(key, canonical_json(holder), lease=lease)])
        if ok:
            return None
        current = self.client.get(keys.REGISTRY_LOCK_EXCLUSIVE)
        return self._lock_holder(current) if current is not None else {}

    def registry_lock_holders(self) -> dict:
        """``{"exclusive": holder or None, "shared": [holder, ...]}``, each with its ``lease``."""
        current = self.client.get(keys.REGISTRY_LOCK_EXCLUSIVE)
        kvs, _rev = self.client.get_prefix(keys.REGISTRY_LOCK_SHARED)
        return {"exclusive": self._lock_holder(current) if current is not None else None,
                "shared": [self._lock_holder(kv) for kv in kvs]}

    def lease_ttl(self, lease: int) -> int:
        """Seconds ``lease`` has left (-1: it is gone)."""
        return self.client.lease_ttl(lease)

    @staticmethod
    def _lock_holder(kv) -> dict:
        try:
            holder = load(kv)
        except StoreError:  # not DCM's: named by its key, still in the way
            holder = {"purpose": f"an unreadable value at {kv.key}"}
        return dict(holder, lease=kv.lease)

    # -- jobs ------------------------------------------------------------------------------------
    def put_job(self, job: dict, keep: int = 50) -> None:
        """Write the record of one job of ``job["cluster"]`` (its start, then its end), keeping the newest ``keep``.

        A job's record has one writer, the submission that runs it; the oldest records go in one
        transaction guarded on the revisions read (a record rewritten meanwhile stays until the next write).
        """
        if keep < 1:
            raise StoreError(f"keep must be at least 1 job record, got {keep}")
        cluster, job_id = job["cluster"], job["id"]
        key = keys.job_key(cluster, job_id)
        self.client.put(key, canonical_json(job))
        self._keep_newest(keys.jobs_prefix(cluster), key, keep, order=lambda kv: kv.key)  # job ids sort by time

    def jobs(self, cluster: str | None = None, limit: int = 0, revision: int = 0) -> list:
        """Job records, oldest first (the newest ``limit`` when given); one cluster's when ``cluster`` is given."""
        records, _rev = self._objects(keys.jobs_prefix(cluster) if cluster else keys.JOBS, revision)
        found = [records[key] for key in sorted(records, key=lambda k: k.rsplit("/", 1)[1])]
        return found[-limit:] if limit else found

    def job(self, cluster: str, job_id: str) -> dict | None:
        kv = self.client.get(keys.job_key(cluster, job_id))
        return load(kv) if kv else None

    # -- image provenance --------------------------------------------------------------------------
    def image_record(self, cluster: str, tag: str) -> dict | None:
        """What the pool's own build recorded for ``cluster``'s images of content tag ``tag``, or None."""
        kv = self.client.get(keys.images_key(cluster, tag))
        return load(kv) if kv else None

    def record_images(self, record: dict, keep: int = 20) -> bool:
        """Write the provenance ``record`` (``cluster``, ``tag``, ``images``...) of a build; keeps the ``keep``
        newest tags of the cluster. False when etcd already held exactly these images for the tag."""
        if keep < 1:
            raise StoreError(f"keep must be at least 1 image record, got {keep}")
        cluster, tag = record["cluster"], record["tag"]
        key = keys.images_key(cluster, tag)
        current = self.client.get(key)
        if current is not None and load(current).get("images") == record["images"]:
            return False
        guard = cmp_mod_revision(key, current.mod_revision) if current is not None else cmp_absent(key)
        ok, _responses, _rev = self.client.txn([guard], [op_put(key, canonical_json(record))])
        if not ok:
            raise StoreError(f"{key} changed while this build recorded its images: deploy again")
        self._keep_newest(keys.images_prefix(cluster), key, keep, order=lambda kv: kv.mod_revision)
        return True

    def _keep_newest(self, prefix: str, written: str, keep: int, order) -> None:
        """Delete the oldest keys under ``prefix`` (by ``order``) beyond ``keep``, never ``written``, in one
        transaction guarded on the revisions read (a key rewritten meanwhile stays until the next write)."""
        kvs, _rev = self.client.get_prefix(prefix, keys_only=True)
        old = sorted((kv for kv in kvs if kv.key != written), key=order)[:max(len(kvs) - keep, 0)]
        if old:
            self.client.txn([cmp_mod_revision(kv.key, kv.mod_revision) for kv in old],
                            [op_delete(kv.key) for kv in old])

    # -- leases (hosts, status reports, the lead) -----------------------------------------------
    def grant(self, ttl: int) -> int:
        return self.client.lease_grant(ttl)

    def keepalive(self, lease: int) -> int:
        """Refresh ``lease``; the remaining TTL (0 or less: the lease is gone)."""
        return self.client.lease_keepalive(lease)

    def revoke(self, lease: int) -> None:
        self.client.lease_revoke(lease)

    # -- the agents ------------------------------------------------------------------------------
    def put_host(self, record: dict, lease: int) -> None:
        """Write this host's record on its agent's lease (the agent is the only writer of its key)."""
        self.client.put(keys.host_key(record["name"]), canonical_json(record), lease=lease)

    def _status_keys(self, cluster: str) -> list:
        """The status keys of ``cluster``'s nodes, on every host."""
        kvs, _revision = self.client.get_prefix(keys.STATUS, keys_only=True)
        return [kv.key for kv in kvs if (parts := keys.status_parts(kv.key)) and parts[1] == cluster]

    def put_status(self, host: str, cluster: str, node: str, value: str, lease: int) -> None:
        """The report of the agent on ``host`` about one of its nodes, on its lease."""
        self.client.put(keys.status_key(host, cluster, node), value, lease=lease)

    def delete_status(self, host: str, cluster: str, node: str) -> None:
        self.client.delete(keys.status_key(host, cluster, node))
