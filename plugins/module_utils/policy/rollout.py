"""Generations of a cluster and the rolling change between two of them.

A cluster record is one generation. Every generation also goes to its own history key
(``/dcm/generations/<name>/<N>``, :func:`history_entry`): spec, images, placement, network, who and
when. The newest ``keep`` entries stay; older ones leave the history and their images go to the
registry's prune queue (``/dcm/registry/prune/``), which :mod:`registry` empties.

A rolling change is a record that carries ``rollout``: the generation it replaces (``from``:
spec, images, placement, network, generation) and the nodes already moved (``done``). Until a node
is done it keeps running as ``from`` says; workers move a batch at a time, then the driver, the
master last (:func:`rollout_order`), so a running application loses executors, not its cluster.
:func:`node_views` is the one place that says which generation a node runs while a rollout is
under way: the agents' convergence, the reserved capacity and the status view all go through it.
"""

from __future__ import annotations

import time

from ..core import naming
from ..core.errors import DcmError

GENERATION_FIELDS = ("generation", "spec", "spec_hash", "images", "placement", "network")
HISTORY_FIELDS = GENERATION_FIELDS + ("deployed_by", "updated_at", "origin", "rollback_of")
STRATEGIES = ("rolling", "all-at-once")
DEFAULT_KEEP = 5


def history_entry(record: dict, origin: str = "deploy", rollback_of: int | None = None) -> dict:
    """What ``/dcm/generations/<name>/<N>`` keeps of the generation ``record`` is (no secret)."""
    entry = {key: record.get(key) for key in HISTORY_FIELDS if key not in ("origin", "rollback_of")}
    entry["origin"] = origin
    if rollback_of is not None:
        entry["rollback_of"] = int(rollback_of)
    return entry


def same_content(a: dict, b: dict) -> bool:
    """True when two generations run the same spec with the same images (what a rollback restores)."""
    return a.get("spec_hash") == b.get("spec_hash") and dict(a.get("images") or {}) == dict(b.get("images") or {})


def rolling_possible(previous: dict | None, record: dict) -> tuple:
    """``(True, "")`` when ``record`` may replace ``previous`` node by node, else ``(False, why not)``."""
    if not previous or previous.get("desired_state", "running") != "running":
        return False, "the cluster is new"
    if previous.get("rollout"):
        return False, f"generation {previous.get('generation')} was still rolling out"
    old_spark = ((previous.get("spec") or {}).get("runtime") or {}).get("spark_version")
    new_spark = ((record.get("spec") or {}).get("runtime") or {}).get("spark_version")
    if old_spark != new_spark:
        return False, f"Spark {old_spark} and {new_spark} cannot serve one cluster"
    if dict(previous.get("network") or {}) != dict(record.get("network") or {}):
        return False, "the cluster's network changes"
    return True, ""


def start_rollout(previous: dict, record: dict, now: float) -> dict:
    """``record`` with a rollout from ``previous`` (nothing moved yet)."""
    new = dict(record)
    new["rollout"] = {
        "from": {key: previous.get(key) for key in GENERATION_FIELDS},
        "done": [],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }
    return new


def from_view(record: dict) -> dict | None:
    """The generation a rollout replaces, as a record of its own (same name, secret and token)."""
    rollout = record.get("rollout")
    if not rollout:
        return None
    view = dict(record)
    view.pop("rollout", None)
    view.update({key: rollout["from"].get(key) for key in GENERATION_FIELDS})
    return view


def _index(node: str) -> int:
    return int(node.split("-", 1)[1]) if node.startswith("worker-") else 0


def rollout_order(record: dict) -> list:
    """The order nodes move in: every worker (old or new) by number, then the driver, its history server,
    the master last."""
    old = from_view(record)
    nodes = {node for node, _host in naming.placed_nodes(record)}
    if old:
        nodes |= {node for node, _host in naming.placed_nodes(old)}
    workers = sorted((n for n in nodes if n.startswith("worker-")), key=_index)
    return workers + [n for n in ("driver", "history", "master") if n in nodes]


def node_views(record: dict) -> list:
    """``[(node, host, view)]``: where each node of ``record`` runs and which generation's record says how.

    Without a rollout every node runs as ``record`` says. During one, a node not yet done runs as the
    old generation (a node the old generation lacks starts new at once); a done node runs new, or not
    at all when the new generation dropped it.
    """
    old = from_view(record)
    if old is None:
        return [(node, host, record) for node, host in naming.placed_nodes(record)]
    new_hosts = dict(naming.placed_nodes(record))
    old_hosts = dict(naming.placed_nodes(old))
    done = set(record["rollout"].get("done") or ())
    views = []
    for node in rollout_order(record):
        if node in done or node not in old_hosts:
            if node in new_hosts:
                views.append((node, new_hosts[node], record))
        else:
            views.append((node, old_hosts[node], old))
    return views


def pending(record: dict) -> list:
    """Nodes of the rollout not moved yet, in order."""
    if not record.get("rollout"):
        return []
    done = set(record["rollout"].get("done") or ())
    return [node for node in rollout_order(record) if node not in done]


def next_batch(record: dict, batch: int) -> list:
    """The nodes that move next: up to ``batch`` workers, else the driver alone, else the master alone."""
    if batch < 1:
        raise DcmError(f"rollout batch must be at least 1, got {batch}")
    waiting = pending(record)
    if not waiting:
        return []
    if waiting[0].startswith("worker-"):
        return [node for node in waiting if node.startswith("worker-")][:batch]
    return waiting[:1]


def advance(record: dict, nodes: list) -> dict:
    """``record`` with ``nodes`` moved; the rollout ends (the field goes) when nothing is left."""
    new = dict(record)
    rollout = dict(new["rollout"])
    rollout["done"] = [n for n in rollout_order(record) if n in set(rollout.get("done") or ()) | set(nodes)]
    new["rollout"] = rollout
    if not pending(new):
        new.pop("rollout")
    return new


def moved_ready(record: dict, status: dict) -> tuple:
    """``(ready, waiting)``: are the moved nodes running at the record's generation, and healthy?

    ``status`` maps ``(cluster, node)`` to the agents' reports; ``waiting`` describes each node that is
    not there yet.
    """
    name = record["name"]
    generation = record.get("generation")
    done = set((record.get("rollout") or {}).get("done") or ())
    new_nodes = {node for node, _host in naming.placed_nodes(record)}
    waiting = []
    for node in sorted(done & new_nodes, key=lambda n: (not n.startswith("worker-"), _index(n), n)):
        report = status.get((name, node)) or {}
        if report.get("generation") != generation or report.get("state") != "running":
            why = report.get("error") or f"{report.get('state', 'unreported')} at generation {report.get('generation')}"
            waiting.append(f"{node}: {why}")
        elif report.get("health") not in ("healthy", "none", None):
            waiting.append(f"{node}: health {report.get('health')}")
    return not waiting, waiting


def pick_generation(current: dict, history: dict, wanted: int | None) -> dict:
    """The history entry a rollback returns to: ``wanted``, or the newest older one that differs.

    ``history`` maps generation numbers to entries. Raises :class:`DcmError` naming what is retained
    when ``wanted`` is gone or there is nothing to return to.
    """
    retained = ", ".join(str(g) for g in sorted(history)) or "none"
    name = current.get("name")
    if wanted is not None:
        if wanted == current.get("generation"):
            raise DcmError(f"cluster {name} runs generation {wanted} already; nothing to roll back")
        if wanted not in history:
            raise DcmError(f"cluster {name} has no generation {wanted} any more (retained: {retained}); "
                           "pick one of those, or deploy its spec again")
        return history[wanted]
    for generation in sorted(history, reverse=True):
        if generation < current.get("generation", 0) and not same_content(history[generation], current):
            return history[generation]
    raise DcmError(f"cluster {name} has no earlier generation that differs from generation "
                   f"{current.get('generation')} (retained: {retained}); nothing to roll back to")
