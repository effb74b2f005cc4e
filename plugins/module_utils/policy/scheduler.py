"""The DCM scheduler (DCSpark paper, section 4.4): pure policy, no I/O.

Capacity ``C``/``M`` of a host is what it can give to DCSpark nodes (its total
minus the reserve for its own daemons); ``Σc``/``Σm`` is what DCSpark nodes
already placed there request. CPUs are integer millicpus, memory bytes.

1. Preselection: host h may take node n iff ``C - Σc >= c_n`` and ``M - Σm >= m_n``.
2. Master, then driver: the feasible host with the lowest least-requested rate
   (Eq. 2) ``Σc/C + Σm/M`` wins; ties go to fewer DCSpark nodes, then the name.
   Usage is updated after each placement.
3. Workers: ``v = floor(min(Cr/Cw, Mr/Mw))`` per host (Eq. 3); hosts sorted by
   ``v`` descending (ties: hosts already holding this cluster first, then the
   name) are filled one after another, so the cluster spans as few hosts as
   possible.
4. All or nothing: when a node does not fit, :class:`ScheduleError` says which
   node and what the best host had left; the caller reserves nothing.
5. Repair (:func:`reschedule`, used by the DCM master): the nodes that stay keep
   their hosts and count against them; the nodes that must move (their host lost
   its lease or is drained) are placed by the same rules, master and driver by
   Eq. 2, workers by Eq. 3 packing, all or nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from ..core.errors import ScheduleError
from ..core.units import format_cpus, format_memory, human_bytes

ROLES = ("master", "driver", "worker")


@dataclass(frozen=True)
class Host:
    """One host as the scheduler sees it."""

    name: str
    cpus: int  # allocatable millicpus, C
    memory: int  # allocatable bytes, M
    requested_cpus: int = 0  # Σc of DCSpark nodes already there, millicpus
    requested_memory: int = 0  # Σm, bytes
    nodes: int = 0  # number of DCSpark nodes already there
    clusters: frozenset = frozenset()  # names of clusters with a node there
    live: bool = True  # the agent's lease is present
    cordoned: bool = False


@dataclass(frozen=True)
class Request:
    """What one node of a role asks for."""

    cpus: int  # millicpus
    memory: int  # bytes
    note: str = ""  # what else the request holds, said in messages ("with its history server")

    def describe(self) -> str:
        return f"{_cpus_text(self.cpus)}, {format_memory(self.memory)}" + (f" {self.note}" if self.note else "")


@dataclass(slots=True)
class HostScore:
    """The scheduler's view of one host in a plan: scores and why it was chosen or excluded."""

    name: str
    cpus: int
    memory: int
    requested_cpus: int
    requested_memory: int
    excluded: str | None = None  # why the host was not a candidate at all
    rates: dict = field(default_factory=dict)  # role -> Eq. 2 rate when that role was placed
    infeasible: dict = field(default_factory=dict)  # role -> what it lacked (preselection)
    worker_slots: int | None = None  # Eq. 3 v, after master and driver were placed
    placed: list = field(default_factory=list)  # node names placed here by this plan

    def to_dict(self) -> dict:
        if self.excluded:
            status = "excluded"
        elif self.placed:
            status = "chosen"
        else:
            status = "candidate"
        reasons = []
        if self.excluded:
            reasons.append(self.excluded)
        for role, lack in self.infeasible.items():
            reasons.append(f"{role} does not fit: {lack}")
        return {
            "name": self.name,
            "status": status,
            "cpus": format_cpus(self.cpus),
            "memory": self.memory,
            "requested_cpus": format_cpus(self.requested_cpus),
            "requested_memory": self.requested_memory,
            "rates": {role: round(rate, 6) for role, rate in self.rates.items()},
            "worker_slots": self.worker_slots,
            "placed": list(self.placed),
            "reasons": reasons,
        }


@dataclass
class Plan:
    """A complete placement of one cluster."""

    cluster: str
    master: str
    driver: str
    workers: list
    hosts: list  # HostScore, in input order

    @property
    def placement(self) -> dict:
        return {"master": self.master, "driver": self.driver, "workers": list(self.workers)}

    def usage(self, requests: dict) -> dict:
        """Resources this plan reserves per host: ``{host: (millicpus, bytes, nodes)}``."""
        totals: dict = {}
        for role, host in (("master", self.master), ("driver", self.driver)):
            _add_usage(totals, host, requests[role])
        for host in self.workers:
            _add_usage(totals, host, requests["worker"])
        return totals

    def to_dict(self) -> dict:
        return {
            "cluster": self.cluster,
            "placement": self.placement,
            "hosts_used": sorted(set([self.master, self.driver, *self.workers])),
            "hosts": [score.to_dict() for score in self.hosts],
        }


def _add_usage(totals: dict, host: str, request: Request) -> None:
    cpus, memory, nodes = totals.get(host, (0, 0, 0))
    totals[host] = (cpus + request.cpus, memory + request.memory, nodes + 1)


def least_requested_rate(cpus: int, memory: int, requested_cpus: int, requested_memory: int) -> float:
    """Eq. 2 of the paper: ``Σc/C + Σm/M`` (lower is better)."""
    return requested_cpus / cpus + requested_memory / memory


def worker_slots(free_cpus: int, free_memory: int, request: Request) -> int:
    """Eq. 3 of the paper, floored: how many workers of ``request`` fit in what is left."""
    if free_cpus <= 0 or free_memory <= 0:
        return 0
    return min(free_cpus // request.cpus, free_memory // request.memory)


def _cpus_text(millicpus: int) -> str:
    cpus = format_cpus(millicpus)
    return f"{cpus} CPU{'' if cpus == 1 else 's'}"


def _free(cpus: int, memory: int) -> str:
    return f"{_cpus_text(cpus)} and {human_bytes(memory)} free"


def _lack(free_cpus: int, free_memory: int, request: Request) -> str:
    parts = []
    if free_cpus < request.cpus:
        parts.append(f"CPU {format_cpus(max(free_cpus, 0))} free < {format_cpus(request.cpus)} requested")
    if free_memory < request.memory:
        parts.append(f"memory {human_bytes(max(free_memory, 0))} free < {human_bytes(request.memory)} requested")
    return ", ".join(parts)


class _State:
    """Mutable usage of every candidate host while one plan is computed."""

    def __init__(self, cluster: str, hosts: Sequence[Host]) -> None:
        self.cluster = cluster
        self.scores: list[HostScore] = []
        self.candidates: list[int] = []
        self.used_cpus: list[int] = []
        self.used_memory: list[int] = []
        self.nodes: list[int] = []
        self.holds_cluster: list[bool] = []
        seen: set = set()
        for host in hosts:
            if host.name in seen:
                raise ScheduleError(f"host {host.name!r} is listed twice; host names must be unique")
            seen.add(host.name)
            score = HostScore(host.name, host.cpus, host.memory, host.requested_cpus, host.requested_memory)
            if not host.live:
                score.excluded = "not live: its DCM agent holds no lease"
            elif host.cordoned:
                score.excluded = "cordoned"
            elif host.cpus <= 0 or host.memory <= 0:
                score.excluded = "no allocatable CPU or memory"
            else:
                self.candidates.append(len(self.scores))
            self.scores.append(score)
            self.used_cpus.append(host.requested_cpus)
            self.used_memory.append(host.requested_memory)
            self.nodes.append(host.nodes)
            self.holds_cluster.append(cluster in host.clusters)

    def free(self, index: int) -> tuple:
        score = self.scores[index]
        return score.cpus - self.used_cpus[index], score.memory - self.used_memory[index]

    def index_of(self, name: str) -> int:
        for index, score in enumerate(self.scores):
            if score.name == name:
                return index
        raise ScheduleError(f"cluster {self.cluster}: host {name!r} of the current placement is not in the pool")

    def hold(self, index: int, request: Request) -> None:
        """Count a node that stays where it is (it is not part of what this plan places)."""
        self.used_cpus[index] += request.cpus
        self.used_memory[index] += request.memory
        self.nodes[index] += 1
        self.holds_cluster[index] = True

    def place(self, index: int, node: str, request: Request) -> None:
        self.used_cpus[index] += request.cpus
        self.used_memory[index] += request.memory
        self.nodes[index] += 1
        self.holds_cluster[index] = True
        self.scores[index].placed.append(node)

    def best_left(self, request: Request) -> str:
        """The candidate that comes closest to fitting ``request``, and what it has left."""
        if not self.candidates:
            excluded = [s for s in self.scores if s.excluded]
            if not self.scores:
                return "the pool has no hosts"
            summary = ", ".join(f"{s.name}: {s.excluded}" for s in excluded[:5])
            more = f" and {len(excluded) - 5} more" if len(excluded) > 5 else ""
            return f"no host is a candidate ({summary}{more})"

        def closeness(index: int) -> tuple:
            free_cpus, free_memory = self.free(index)
            fraction = min(free_cpus / request.cpus if request.cpus else 1.0,
                           free_memory / request.memory if request.memory else 1.0)
            return (fraction, free_cpus, free_memory)

        best = max(self.candidates, key=closeness)
        free_cpus, free_memory = self.free(best)
        text = f"the best host, {self.scores[best].name}, has {_free(max(free_cpus, 0), max(free_memory, 0))}"
        excluded = sum(1 for s in self.scores if s.excluded)
        if excluded:
            text += f" ({excluded} host{'s' if excluded != 1 else ''} excluded: not live or cordoned)"
        return text


def _place_one(state: _State, role: str, request: Request) -> int:
    """Preselection then Eq. 2 for a single master or driver node."""
    best_index = -1
    best_key: tuple | None = None
    scores, used_cpus, used_memory, nodes = state.scores, state.used_cpus, state.used_memory, state.nodes
    need_cpus, need_memory = request.cpus, request.memory
    for index in state.candidates:
        score = scores[index]
        free_cpus = score.cpus - used_cpus[index]
        free_memory = score.memory - used_memory[index]
        if free_cpus < need_cpus or free_memory < need_memory:
            score.infeasible[role] = _lack(free_cpus, free_memory, request)
            continue
        rate = used_cpus[index] / score.cpus + used_memory[index] / score.memory  # Eq. 2
        score.rates[role] = rate
        key = (rate, nodes[index], score.name)
        if best_key is None or key < best_key:
            best_key, best_index = key, index
    if best_index < 0:
        raise ScheduleError(
            f"cluster {state.cluster}: the {role} ({request.describe()}) fits on no host: {state.best_left(request)}",
            node=role,
        )
    state.place(best_index, role, request)
    return best_index


def _place_workers(state: _State, count: int, request: Request, names: Sequence[str] | None = None,
                   purpose: str = "to move") -> list:
    slots = []
    scores, used_cpus, used_memory, holds = state.scores, state.used_cpus, state.used_memory, state.holds_cluster
    for index in state.candidates:
        score = scores[index]
        free_cpus = score.cpus - used_cpus[index]
        free_memory = score.memory - used_memory[index]
        v = worker_slots(free_cpus, free_memory, request)
        score.worker_slots = v
        if v == 0:
            score.infeasible["worker"] = _lack(free_cpus, free_memory, request)
        else:
            slots.append((-v, not holds[index], score.name, index, v))
    slots.sort()
    placed: list = []
    for _neg_v, _new, _name, index, v in slots:
        take = min(v, count - len(placed))
        for _slot in range(take):
            placed.append(index)
            state.place(index, names[len(placed) - 1] if names else f"worker-{len(placed)}", request)
        if len(placed) == count:
            break
    if len(placed) < count:
        fitted = len(placed)
        if names:
            raise ScheduleError(
                f"cluster {state.cluster}: {names[fitted]} ({request.describe()}) fits on no host; "
                f"{fitted} of the {count} workers {purpose} fit, and {state.best_left(request)}",
                node=names[fitted],
            )
        raise ScheduleError(
            f"cluster {state.cluster}: worker {fitted + 1} of {count} ({request.describe()}) fits on no host; "
            f"{fitted} worker{'s' if fitted != 1 else ''} fit after the master and driver, and "
            f"{state.best_left(request)}",
            node=f"worker-{fitted + 1}",
        )
    return [state.scores[index].name for index in placed]


def _check_request(cluster: str, requests: dict, count: int) -> None:
    """A plan needs at least one worker and some CPU and memory for every role."""
    if count < 1:
        raise ScheduleError(f"cluster {cluster}: worker count must be >= 1, got {count}", node="worker")
    for role in ROLES:
        if requests[role].cpus <= 0 or requests[role].memory <= 0:
            raise ScheduleError(f"cluster {cluster}: the {role} must request some CPU and memory, "
                                f"got {requests[role].describe()}", node=role)


@contextmanager
def _scores_on_error(state: _State) -> Iterator[None]:
    """A :class:`ScheduleError` raised inside carries every host's scores, which say why."""
    try:
        yield
    except ScheduleError as exc:
        exc.plan = [score.to_dict() for score in state.scores]
        raise


def schedule(cluster: str, requests: dict, count: int, hosts: Iterable[Host]) -> Plan:
    """Place ``cluster``'s master, driver and ``count`` workers on ``hosts``, or raise :class:`ScheduleError`.

    ``requests`` maps each role of :data:`ROLES` to a :class:`Request`. Nothing
    here reserves anything: the caller commits the returned plan (atomically).
    """
    _check_request(cluster, requests, count)
    state = _State(cluster, list(hosts))
    with _scores_on_error(state):
        master = _place_one(state, "master", requests["master"])
        driver = _place_one(state, "driver", requests["driver"])
        workers = _place_workers(state, count, requests["worker"])
    return Plan(cluster, state.scores[master].name, state.scores[driver].name, workers, state.scores)


def schedule_pinned(cluster: str, requests: dict, count: int, hosts: Iterable[Host], pins: dict) -> Plan:
    """:func:`schedule`, with the nodes of ``pins`` (``{node: host}``) kept on their hosts: the nodes whose
    data (a host-local volume) lives there. A pinned host that is gone (not in the pool, not live,
    cordoned) frees its node, which is placed afresh; a pinned node that no longer fits on its host is
    refused, naming the node, the host and what it has left (its data is not moved behind anyone's back).
    """
    _check_request(cluster, requests, count)
    state = _State(cluster, list(hosts))
    placed: dict = {}
    with _scores_on_error(state):
        for node, host in pins.items():
            index = next((i for i in state.candidates if state.scores[i].name == host), None)
            if index is None:
                continue  # gone: its data stays there, the node starts afresh elsewhere
            request = requests[_role(node)]
            free_cpus, free_memory = state.free(index)
            if request.cpus > free_cpus or request.memory > free_memory:
                raise ScheduleError(
                    f"cluster {cluster}: {node} ({request.describe()}) keeps its volumes on {host}, which has "
                    f"{_free(max(free_cpus, 0), max(free_memory, 0))}; lower its request, free {host}, or "
                    "undeploy the cluster with purge=true to start its volumes afresh", node=node)
            state.place(index, node, request)
            placed[node] = host
        for role in ("master", "driver"):
            if role not in placed:
                placed[role] = state.scores[_place_one(state, role, requests[role])].name
        names = [f"worker-{i}" for i in range(1, count + 1) if f"worker-{i}" not in placed]
        if names:
            placed.update(zip(names, _place_workers(state, len(names), requests["worker"], names=names,
                                                    purpose="to place")))
    return Plan(cluster, placed["master"], placed["driver"], [placed[f"worker-{i}"] for i in range(1, count + 1)],
                state.scores)


def reschedule(cluster: str, requests: dict, placement: dict, moving: Iterable[str], hosts: Iterable[Host]) -> Plan:
    """Move the nodes named in ``moving`` (``master``, ``driver``, ``worker-i``); the others stay.

    ``hosts`` must not count this cluster's own nodes (``pool_hosts(exclude_cluster=...)``):
    the nodes that stay are counted here, on their hosts, before anything is placed.
    Raises :class:`ScheduleError` naming the first node that fits nowhere; nothing is half-moved.
    """
    workers = list(placement.get("workers") or [])
    current = {"master": placement.get("master"), "driver": placement.get("driver")}
    current.update({f"worker-{i}": host for i, host in enumerate(workers, start=1)})
    wanted = set(moving)
    unknown = sorted(wanted - set(current))
    if unknown:
        raise ScheduleError(f"cluster {cluster}: no node named {', '.join(unknown)} in its placement")
    moving = [node for node in current if node in wanted]
    state = _State(cluster, list(hosts))
    for node, host in current.items():
        if node not in moving:
            state.hold(state.index_of(host), requests[_role(node)])
    new = dict(current)
    with _scores_on_error(state):
        for role in ("master", "driver"):
            if role in moving:
                new[role] = state.scores[_place_one(state, role, requests[role])].name
        moved_workers = [node for node in moving if node.startswith("worker-")]
        if moved_workers:
            hosts_of = _place_workers(state, len(moved_workers), requests["worker"], names=moved_workers)
            new.update(zip(moved_workers, hosts_of))
    return Plan(cluster, new["master"], new["driver"], [new[f"worker-{i}"] for i in range(1, len(workers) + 1)],
                state.scores)


def scale(cluster: str, requests: dict, placement: dict, count: int, hosts: Iterable[Host]) -> Plan:
    """Grow or shrink the placed ``cluster`` to ``count`` workers; nothing that stays moves.

    The master, the driver and workers 1..min(current, ``count``) keep their hosts and are counted
    there first; the workers added are placed by the packing score, like any worker; the workers
    removed are the highest-numbered. ``hosts`` must not count this cluster's own nodes
    (``pool_hosts(exclude_cluster=...)``). Raises :class:`ScheduleError` naming the first added
    worker that fits nowhere (nothing is half-placed).
    """
    _check_request(cluster, requests, count)
    workers = list(placement.get("workers") or [])
    kept = workers[:count]
    state = _State(cluster, list(hosts))
    staying = [("master", placement.get("master")), ("driver", placement.get("driver"))]
    staying += [("worker", host) for host in kept]
    for role, host in staying:
        state.hold(state.index_of(str(host)), requests[role])
    added = [f"worker-{index}" for index in range(len(kept) + 1, count + 1)]
    with _scores_on_error(state):
        hosts_of = _place_workers(state, len(added), requests["worker"], names=added, purpose="to add") if added else []
    return Plan(cluster, str(placement.get("master")), str(placement.get("driver")), kept + hosts_of, state.scores)


def _role(node: str) -> str:
    return node.partition("-")[0]
