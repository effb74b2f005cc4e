"""Names of a cluster's nodes, containers and master URL: the one place they are spelled."""

from __future__ import annotations

MASTER_PORT = 7077  # the Spark master's RPC port inside every cluster
MASTER_UI_PORT = 8080  # its web UI (the images' entrypoint starts the master with it)


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


def master_url(cluster: str) -> str:
    """The Spark master URL every node of ``cluster`` uses: ``spark://spark-master-face:7077``."""
    return f"spark://{container_name(cluster, 'master')}:{MASTER_PORT}"


def placed_nodes(record: dict) -> list:
    """``[(node, host)]`` of a cluster record's placement (``worker-i`` is ``workers[i-1]``)."""
    placement = record.get("placement") or {}
    workers = list(placement.get("workers") or [])
    hosts = [placement.get("master"), placement.get("driver")] + workers
    return list(zip(node_names(len(workers)), hosts))
