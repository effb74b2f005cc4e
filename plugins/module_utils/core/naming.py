"""Names of a cluster's nodes, containers and master URL: the one place they are spelled."""

from __future__ import annotations

MASTER_PORT = 7077  # the Spark master's RPC port inside every cluster
MASTER_UI_PORT = 8080  # its web UI (the images' entrypoint starts the master with it)
HISTORY_UI_PORT = 18080  # the history server's web UI (Spark's default, set by the entrypoint)


def node_names(worker_count: int) -> list:
    """Node names of a cluster: ``master``, ``driver``, ``worker-1`` ... (placement.workers[i] is ``worker-{i+1}``)."""
    return ["master", "driver"] + [f"worker-{i}" for i in range(1, worker_count + 1)]


def container_name(cluster: str, node: str) -> str:
    """Container and host name of a node: ``spark-master-face``, ``spark-worker-face-3``."""
    role, _sep, index = node.partition("-")
    return f"spark-{role}-{cluster}" + (f"-{index}" if index else "")


def volume_name(cluster: str, volume: str) -> str:
    """The Docker volume of a cluster's volume on each host that mounts it: ``dcm-face-data``."""
    return f"dcm-{cluster}-{volume}"


def history_volume(cluster: str) -> str:
    """The Docker volume of a cluster's event logs on its driver's host: ``dcm-face.history`` (the dot keeps
    it apart from the spec's volumes, whose names are DNS labels)."""
    return f"dcm-{cluster}.history"


def master_url(cluster: str) -> str:
    """The Spark master URL every node of ``cluster`` uses: ``spark://spark-master-face:7077``."""
    return f"spark://{container_name(cluster, 'master')}:{MASTER_PORT}"


def placed_nodes(record: dict) -> list:
    """``[(node, host)]`` of a cluster record's placement (``worker-i`` is ``workers[i-1]``); the history
    server of a spec that has one runs on the driver's host."""
    placement = record.get("placement") or {}
    workers = list(placement.get("workers") or [])
    hosts = [placement.get("master"), placement.get("driver")] + workers
    nodes = list(zip(node_names(len(workers)), hosts))
    if "history" in (record.get("spec") or {}):
        nodes.insert(2, ("history", placement.get("driver")))  # beside the driver, on the volume it writes to
    return nodes
