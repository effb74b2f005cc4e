"""The pool as an operator reads it (``dcm_pool_info``, ``status.yml``): pure views of records and reports."""

from __future__ import annotations

import datetime
import re

from ..core import naming
from .gateway import ui_url
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


JOB_FIELDS = ("id", "app", "state", "exit_code", "duration_s", "app_id", "submitted_by", "submitted_at")


def jobs_view(jobs: list, limit: int = 5) -> list:
    """The newest ``limit`` job records of a cluster, newest first, without their output."""
    return [{key: job.get(key) for key in JOB_FIELDS} for job in list(jobs)[::-1][:limit]]


def gateway_ui(snap: Snapshot, cluster: str) -> str | None:
    """``https://<gateway host>:<port>/clusters/<name>/``: the cluster's UIs at the pool's gateway (a live host
    whose agent serves it), or None when no host does."""
    for name in sorted(snap.hosts):
        record = snap.hosts[name] or {}
        if record.get("gateway_port") and record.get("address"):
            return ui_url(str(record["address"]), int(record["gateway_port"]), cluster)
    return None


def pool_view(snap: Snapshot, status: dict, cluster: str | None = None, events: list | None = None,
              leader: dict | None = None, histories: dict | None = None, jobs: dict | None = None) -> dict:
    """Hosts, clusters, placements and node health as an operator reads them (``dcm_pool_info``, status.yml).

    ``status`` maps ``(cluster, node)`` to the agents' reports under ``/dcm/status/``; ``events`` are the
    newest entries of ``/dcm/events/``, ``leader`` the DCM master in charge and ``histories`` each
    cluster's retained generations (``{name: {generation: entry}}``) and ``jobs`` each cluster's job
    records, oldest first (``{name: [record]}``).
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
                "since": report.get("since"),
                "address": report.get("address"),
            })
        master_report = status.get((name, "master")) or {}
        ui_local = (f"http://127.0.0.1:{master_report['ui_port']} on {placement.get('master')}"
                    if master_report.get("ui_port") else None)  # the spec's ui.publish, for an SSH tunnel
        jupyter = None
        driver_report = (status.get((name, "driver")) or {}).get("jupyter") or {}
        if driver_report.get("port"):
            driver_host = snap.hosts.get(placement.get("driver") or "") or {}
            address = driver_report.get("address") or "0.0.0.0"
            shown = driver_host.get("address") if address == "0.0.0.0" else address
            jupyter = {"url": f"http://{shown}:{driver_report['port']}/lab", "host": placement.get("driver"),
                       "token": f"docker exec {naming.container_name(name, 'driver')} dcspark-node jupyter-token"}
        running = [n for n in nodes if n["state"] == "running" and n["generation"] == record.get("generation")]
        ui = gateway_ui(snap, name)
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
            "history_ui": f"{ui}history/" if ui and "history" in (record.get("spec") or {}) else None,
            "ui_local": ui_local,
            "jupyter": jupyter,
            "nodes": nodes,
            "running": len(running),
            "converged": len(running) == len(nodes),
            "health": "degraded" if record.get("degraded") else "ok",
            "degraded": record.get("degraded"),
            "repairs": record.get("repairs", []),
            "rollout": rollout_view(record),
            "generations": generations_view(record, (histories or {}).get(name) or {}),
            "jobs": jobs_view((jobs or {}).get(name) or []),
        })
    return {"revision": snap.revision, "hosts": hosts, "clusters": clusters, "leader": leader,
            "events": list(events or [])}


# -- the status view as text (status.yml, through the dcspark.dcm.status_lines filter) ---------------
GIB = 1 << 30
SECTIONS = ("hosts", "clusters", "events")
_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _cell(value: object) -> str:
    """One table cell: ``None`` and empty strings are ``-``, and no cell breaks its line."""
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())


def table(rows: list, headers: list, right: set | None = None, indent: str = "") -> list:
    """Lines of a table whose columns line up, the header first; two spaces between columns.

    A column is right-aligned when its index is in ``right``; without ``right``, every column whose
    cells are all numbers (or ``-``) is. ``None`` cells read ``-``. No line ends with a space.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    heads = [str(head) for head in headers]
    if any(len(row) != len(heads) for row in cells):
        raise ValueError(f"every row needs {len(heads)} cells ({', '.join(heads)})")
    widths = [max([len(head)] + [len(row[i]) for row in cells]) for i, head in enumerate(heads)]
    if right is None:
        right = {i for i in range(len(heads))
                 if cells and all(row[i] == "-" or _NUMBER.fullmatch(row[i]) for row in cells)
                 and any(row[i] != "-" for row in cells)}
    lines = []
    for row in [heads] + cells:
        padded = [value.rjust(widths[i]) if i in right else value.ljust(widths[i]) for i, value in enumerate(row)]
        lines.append((indent + "  ".join(padded)).rstrip())
    return lines


def parse_time(value: object) -> float | None:
    """Seconds since the epoch of a UTC timestamp like ``2025-12-05T03:15:00Z`` (Docker's nanoseconds
    allowed) or a number; ``None`` for anything else, Docker's zero time included."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    match = _STAMP.fullmatch(str(value or "").strip())
    if not match:
        return None
    stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    offset = match.group(2) or "Z"
    if offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[-2:])
        stamp -= sign * datetime.timedelta(hours=hours, minutes=minutes)
    if stamp.year < 1971:
        return None
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def span(seconds: object, tenths: bool = False) -> str:
    """A length of time in its two largest units: ``45s``, ``12m05s``, ``3h07m``, ``2d04h`` (``4.2s`` with
    ``tenths``, below 10 s)."""
    if seconds is None or isinstance(seconds, bool):
        return "-"
    seconds = max(float(seconds), 0.0)
    if tenths and seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def age(stamp: object, now: float) -> str:
    """How long ago ``stamp`` was (``-`` when it is no timestamp)."""
    when = parse_time(stamp)
    return "-" if when is None else span(now - when)


def cpus_text(cpus: object) -> str:
    """CPUs as the view gives them (``4.0``, ``0.25``), without trailing zeros: ``4``, ``0.25``."""
    if cpus is None or isinstance(cpus, bool):
        return "-"
    return f"{round(float(cpus), 3) + 0.0:.3f}".rstrip("0").rstrip(".")  # + 0.0: no "-0"


def gib_text(size: object) -> str:
    """Bytes in GiB with one decimal: ``8053063680`` -> ``7.5``."""
    if size is None or isinstance(size, bool):
        return "-"
    return f"{float(size) / GIB:.1f}"


def host_state(host: dict) -> str:
    """``live`` or ``LOST`` (no agent lease), then ``cordoned`` or ``drained`` (cordoned, nodes moved away)."""
    state = ["live" if host.get("live") else "LOST"]
    if host.get("drained"):
        state.append("drained")
    elif host.get("cordoned"):
        state.append("cordoned")
    return ",".join(state)


def hosts_text(view: dict) -> list:
    """The hosts table: state, CPUs and memory (GiB) requested / allocatable / free, clusters."""
    hosts = view.get("hosts") or []
    title = f"pool at etcd revision {view.get('revision', '?')}: "
    if not hosts:
        return [title + "no hosts (no dcm-agent has registered one)"]
    rows = []
    for host in hosts:
        cpus, memory = host.get("cpus") or 0, host.get("memory") or 0
        wanted_cpus, wanted_memory = host.get("requested_cpus") or 0, host.get("requested_memory") or 0
        rows.append([host.get("name"), host.get("address"), host_state(host),
                     cpus_text(wanted_cpus), cpus_text(cpus), cpus_text(cpus - wanted_cpus),
                     gib_text(wanted_memory), gib_text(memory), gib_text(memory - wanted_memory),
                     ", ".join(host.get("clusters") or [])])
    lines = [title + f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}; CPUs and memory (GiB) "
             "requested, allocatable and free"]
    return lines + table(rows, ["HOST", "ADDRESS", "STATE", "CPU-REQ", "CPU-ALLOC", "CPU-FREE",
                                "MEM-REQ", "MEM-ALLOC", "MEM-FREE", "CLUSTERS"],
                         right={3, 4, 5, 6, 7, 8})


def cluster_heading(cluster: dict) -> str:
    """``face gen 3: Spark 4.0.1, health ok, 4/4 nodes running, no rollout``."""
    nodes = cluster.get("nodes") or []
    parts = [f"Spark {cluster.get('spark_version') or '?'}"]
    if cluster.get("health") == "ok" and not cluster.get("degraded"):
        parts.append("health ok")
    else:
        degraded = cluster.get("degraded") or {}
        since = f" since {degraded['since']}" if degraded.get("since") else ""
        parts.append(f"health DEGRADED{since}: {degraded.get('reason') or 'no reason recorded'}")
    parts.append(f"{cluster.get('running', 0)}/{len(nodes)} nodes running")
    rollout = cluster.get("rollout")
    if rollout:
        waiting = ", ".join(rollout.get("pending") or []) or "nothing"
        parts.append(f"rolling from gen {rollout.get('from')} to {rollout.get('to')} "
                     f"({len(rollout.get('done') or [])} moved, waiting: {waiting})")
    else:
        parts.append("no rollout")
    if cluster.get("desired_state") not in (None, "running"):
        parts.append(f"desired {cluster['desired_state']}")
    return f"{cluster.get('name')} gen {cluster.get('generation')}: " + ", ".join(parts)


def nodes_text(cluster: dict, now: float, indent: str = "  ") -> list:
    """The table of a cluster's nodes, then each node's error on a line of its own.

    AGE is how long the container has been in its state (the agent's ``since``), REPORTED how old the
    agent's report is (``observed_at``), ADDRESS the container's address on the cluster's network.
    """
    nodes = cluster.get("nodes") or []
    if not nodes:
        return [indent + "no nodes placed"]
    headers = ["NODE", "HOST", "GEN", "STATE", "HEALTH", "RESTARTS", "AGE", "REPORTED", "ADDRESS", "CONTAINER"]
    rows = []
    for node in nodes:
        reported = age(node.get("observed_at"), now)
        rows.append([node.get("node"), node.get("host"), node.get("generation"), node.get("state"),
                     node.get("health"), node.get("restarts"), age(node.get("since"), now),
                     reported if reported == "-" else f"{reported} ago", node.get("address"), node.get("container")])
    lines = table(rows, headers, right={2, 5}, indent=indent)
    for node in nodes:
        if node.get("error"):
            lines.append(f"{indent}{node.get('node')} error: {_cell(node['error'])}")
    return lines


def jobs_text(cluster: dict, indent: str = "  ") -> list:
    """The cluster's recent jobs, newest first, as a table (or that there is none yet)."""
    jobs = cluster.get("jobs") or []
    if not jobs:
        return [indent + "jobs: none yet"]
    rows = [[job.get("id"), job.get("app"), job.get("state"), job.get("exit_code"), span(job.get("duration_s"), tenths=True),
             job.get("app_id"), job.get("submitted_by"), job.get("submitted_at")] for job in jobs]
    return [f"{indent}jobs, newest first (logs.yml -e cluster={cluster.get('name')} -e job=ID shows one):"] + \
        table(rows, ["JOB", "APP", "STATE", "EXIT", "DURATION", "SPARK-APP", "BY", "SUBMITTED"], right={3, 4},
              indent=indent)


def clusters_text(view: dict, now: float) -> list:
    """One block per cluster: its heading line, UI and Jupyter, nodes, recent jobs, retained generations."""
    clusters = view.get("clusters") or []
    if not clusters:
        return ["no clusters deployed"]
    lines = []
    for cluster in clusters:
        if lines:
            lines.append("")
        lines.append(cluster_heading(cluster))
        where = [f"UI {cluster.get('ui') or '- (no gateway host registered)'}"]
        if cluster.get("history_ui"):
            where.append(f"history {cluster['history_ui']}")
        if cluster.get("ui_local"):
            where.append(f"master UI {cluster['ui_local']}")
        jupyter = cluster.get("jupyter")
        if jupyter:
            where.append(f"Jupyter {jupyter.get('url')} (its token: {jupyter.get('token')} on {jupyter.get('host')})")
        lines.append("  " + ", ".join(where))
        lines += nodes_text(cluster, now)
        lines += jobs_text(cluster)
        generations = cluster.get("generations") or []
        if generations:
            lines.append(f"  retained generations (rollback_cluster.yml -e cluster={cluster.get('name')} "
                         "-e generation=N returns to one):")
            lines += [f"  {_cell(generation.get('line'))}" for generation in generations]
    return lines


def events_text(view: dict) -> list:
    """The DCM master in charge, then the newest events, oldest first."""
    leader = view.get("leader")
    if leader:
        since = f" (leading since {leader['since']})" if leader.get("since") else ""
        lines = [f"leader: {leader.get('name')}{since}"]
    else:
        lines = ["leader: none (is dcm-master running?)"]
    events = view.get("events") or []
    if not events:
        return lines + ["events: none"]
    lines.append(f"the newest {len(events)} events, oldest first:" if len(events) > 1 else "the newest event:")
    rows = [[event.get("time"), event.get("source"), event.get("kind"), event.get("message")] for event in events]
    return lines + table(rows, ["TIME", "SOURCE", "KIND", "MESSAGE"], right=set())


def status_text(view: dict, section: str | None, now: float) -> list:
    """status.yml's text of a pool view (``pool_view``, ``dcm_pool_info``), one string per line.

    ``section`` is one of :data:`SECTIONS` (hosts, clusters, events); ``None`` is all three with a
    blank line between them. ``now`` (seconds since the epoch) is what ages are counted from.
    """
    if section is not None and section not in SECTIONS:
        raise ValueError(f"section must be one of {', '.join(SECTIONS)}, got {section!r}")
    texts = {"hosts": lambda: hosts_text(view), "clusters": lambda: clusters_text(view, now),
             "events": lambda: events_text(view)}
    if section is not None:
        return texts[section]()
    lines: list = []
    for name in SECTIONS:
        lines += ([""] if lines else []) + texts[name]()
    return lines
