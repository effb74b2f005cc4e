"""The pool as an operator reads it (``dcm_pool_info``, ``status.yml``): pure views of records and reports."""

from __future__ import annotations

from ..core import naming
from .placement import Snapshot
from .rollout import pending, node_views


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
                "container": naming.container_name(name, node),
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
                       "token": f"docker exec {naming.container_name(name, 'driver')} dcspark-node jupyter-token"}
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
            "master_url": naming.master_url(name),
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
