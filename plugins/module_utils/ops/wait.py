"""One look at a cluster on its way to running: what ``dcm_wait`` polls (its action plugin prints the progress).

The cluster is up when the agents report every node running at the record's generation and its Spark
master lists as many ALIVE workers as the spec asks for. A degraded cluster (a node the DCM master cannot
place) will not get there, so a look says so and the wait stops.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.parse

from ..core.errors import DcmError, UndeployedMeanwhile
from ..policy.views import pool_view
from ..state.store import DcmStore


def alive_workers(ui: str | None, timeout: float = 5.0, hosts: set | None = None, auth: tuple | None = None,
                  cafile: str | None = None) -> int | None:
    """How many workers the master's ``/json/`` page lists ALIVE; None when it does not answer yet.

    ``ui`` is the cluster's URL at the pool's gateway (``https://...:8443/clusters/<name>/``, with
    ``auth`` = (user, password) and the pool's CA in ``cafile``) or a plain ``http://`` master UI.
    With ``hosts`` (the worker containers' names, which workers register under), only those count: a
    worker just removed (a scale down, a move) may stay listed ALIVE until the master notices."""
    if not ui:
        return None
    url = urllib.parse.urlsplit(ui)
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=cafile)
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.hostname, url.port or 443, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    headers = {}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode("utf-8")).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request("GET", url.path.rstrip("/") + "/json/", headers=headers)
        answer = connection.getresponse()
        page = json.loads(answer.read().decode("utf-8")) if answer.status == 200 else {}
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return sum(1 for worker in page.get("workers") or []
               if worker.get("state") == "ALIVE" and (hosts is None or worker.get("host") in hosts))


def observe(store: DcmStore, cluster: str, alive: bool = True, cafile: str | None = None,
            generation: int | None = None) -> dict:
    """``{clusters: [view], alive, progress, done, degraded, waiting}`` of ``cluster`` now.

    ``generation`` is the one the waiting run made or found: a record missing then was removed under the
    run (an undeploy that landed after it), which the error says, instead of "never deployed".

    The workers ALIVE are counted on the master's UI through the pool's gateway, with the cluster's own
    credentials (so a deploy also waits until the gateway serves it), else on a UI the spec published."""
    snap = store.snapshot()
    if cluster not in snap.clusters and generation:
        raise UndeployedMeanwhile(cluster, f"while this run waited for its generation {generation}")
    if cluster not in snap.clusters:
        raise DcmError(f"cluster {cluster} has no record in etcd (deployed clusters: "
                       f"{', '.join(sorted(snap.clusters)) or 'none'})")
    view = pool_view(snap, store.status(snap.revision, cluster), cluster,
                     histories=store.histories(snap.revision, cluster))["clusters"][0]
    nodes = view["nodes"]
    names = {node["container"] for node in nodes if node["node"].startswith("worker-")}
    workers = len(names)
    count = None
    if alive and view["converged"]:
        password = (store.held_secrets(cluster).get("secrets") or {}).get("ui_password")
        if view["ui"] and password:
            count = alive_workers(view["ui"], hosts=names, auth=(cluster, password), cafile=cafile)
        else:  # no gateway: the master's UI on its host's loopback, when the spec publishes it there
            port = next((node["ui_port"] for node in nodes if node["node"] == "master"), None)
            count = alive_workers(f"http://127.0.0.1:{port}" if port else None, hosts=names)
    progress = f"{view['running']}/{len(nodes)} nodes running"
    if alive:
        progress += f", {count or 0}/{workers} workers ALIVE"
    waiting = [f"{node['node']} on {node['host']}: {node['state']}"
               + (f" ({node['error']})" if node.get("error") else "")
               for node in nodes if not (node["state"] == "running" and node["generation"] == view["generation"])]
    return {
        "clusters": [view],
        "alive": count or 0,
        "progress": progress,
        "done": view["converged"] and (not alive or (count or 0) >= workers),
        "degraded": view["health"] == "degraded",
        "waiting": waiting,
    }
