"""Error types of the DCM core.

Every error carries a message a person can act on: what was wrong, where
(JSON path, host, node) and, when we know it, what would fix it.
"""

from __future__ import annotations


class DcmError(Exception):
    """Base class of every error the DCM core raises on purpose."""

    def details(self) -> dict:
        """Fields a module returns beside the message when it fails with this error."""
        return {}


class SpecError(DcmError):
    """A cluster spec failed validation; ``problems`` lists every finding."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" {source}" if source else ""
        if len(self.problems) == 1:
            text = f"invalid cluster spec{where}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"invalid cluster spec{where}, {len(self.problems)} problems:\n{lines}"
        super().__init__(text)


class ScheduleError(DcmError):
    """No placement exists for a node; nothing was reserved."""

    def __init__(self, message: str, node: str | None = None, plan: object | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.plan = plan

    def details(self) -> dict:
        return {"node": self.node, "hosts": self.plan or []}


class UnitError(DcmError, ValueError):
    """A CPU or memory quantity could not be parsed."""


class StoreError(DcmError):
    """The etcd state store could not be read or written."""


class AccessDenied(StoreError):
    """etcd refused a request to this client's identity (role-based access), or refused the identity itself."""


class CorruptRecord(StoreError):
    """A key under the pool prefix holds a value DCM cannot read: never taken for an absent one."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"etcd key {key} {problem}; DCM keeps everything that depends on it as it is. Deploy the "
                         "cluster again (or remove the key with etcdctl del) once you know what wrote it")
        self.key = key

    def details(self) -> dict:
        return {"key": self.key}


class ReservationConflict(StoreError):
    """The allocations changed between read and commit (retry: re-read and re-plan)."""


class UndeployedMeanwhile(DcmError):
    """A cluster's record left etcd while a run moved or waited for it: an undeploy landed after the run's
    reservation and won (``during`` says what the run was doing)."""

    def __init__(self, cluster: str, during: str) -> None:
        super().__init__(f"cluster {cluster} was undeployed {during} (its record left etcd, e.g. by an "
                         "undeploy_cluster.yml that landed after this run's reservation): nothing of it runs now; "
                         "deploy it again to run it")
