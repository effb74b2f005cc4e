"""Carrying out a rolling change: the loop ``dcm_rollout`` runs (order and readiness are in :mod:`..policy.rollout`).

Each step marks the next nodes as moved in one transaction guarded on the record's revision
(:meth:`DcmStore.advance_rollout`), and starts only when every node moved before runs at the new
generation and passes its health check, as the agents report it.
"""

from __future__ import annotations

import time
from typing import Callable

from ..core.errors import DcmError, UndeployedMeanwhile
from ..policy.rollout import advance, moved_ready, next_batch
from ..state.store import DcmStore


class StepTimeout(DcmError):
    """The nodes of a step did not run healthy in time; ``waiting`` says what each one's agent reports."""

    def __init__(self, message: str, waiting: list) -> None:
        super().__init__(message)
        self.waiting = waiting

    def details(self) -> dict:
        return {"waiting": self.waiting}


def planned_steps(record: dict, batch: int) -> list:
    """Every step the rollout of ``record`` would still take, without waiting (check mode)."""
    steps = []
    while record.get("rollout"):
        nodes = next_batch(record, batch)
        steps.append({"nodes": nodes, "seconds": 0.0})
        record = advance(record, nodes)
    return steps


def roll(store: DcmStore, name: str, batch: int, step_timeout: float, poll: float, result: dict,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Move ``name`` through its rollout, filling ``result`` (generation, from_generation, steps); True if written."""
    events = store.event_log("dcm_rollout")
    started = clock()
    step_deadline = started + step_timeout
    changed = False
    while True:
        record, revision = store.read_cluster(name)
        if record is None:
            raise UndeployedMeanwhile(name, "during this rollout")
        result["generation"] = record.get("generation")
        if not record.get("rollout"):
            return changed
        result["from_generation"] = record["rollout"]["from"].get("generation")
        ready, waiting = moved_ready(record, store.status(cluster=name))
        if not ready:
            if clock() > step_deadline:
                raise StepTimeout(
                    f"cluster {name}: the nodes moved to generation {record.get('generation')} did not run healthy "
                    f"within {step_timeout:g} s ({'; '.join(waiting)}). The rollout stays where it is: fix the "
                    "cause and deploy again to continue, or roll back", waiting)
            sleep(poll)
            continue
        nodes = next_batch(record, batch)
        moved = advance(record, nodes)
        if store.advance_rollout(name, moved, revision):
            changed = True
            result["steps"].append({"nodes": nodes, "seconds": round(clock() - started, 1)})
            events.record("rollout", f"cluster {name}: {', '.join(nodes)} moved from generation "
                                     f"{result['from_generation']} to {record.get('generation')}"
                                     + ("" if moved.get("rollout") else " (the rollout is complete)"), cluster=name)
            step_deadline = clock() + step_timeout
