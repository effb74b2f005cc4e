"""The pool's UI gateway: what it serves, as pure functions (the agent of the gateway host applies it).

One nginx per pool, on the first master, serves every cluster's Spark UIs over HTTPS at
``/clusters/<name>/``: the master's UI, and through Spark's own reverse proxy (``spark.ui.reverseProxy``
with ``spark.ui.reverseProxyUrl=/clusters/<name>``, set in every node's conf by the images' entrypoint)
its workers' UIs and the UI of every running application, at ``/clusters/<name>/proxy/<id>/``. nginx
strips the prefix and passes the request to the master's UI port on the cluster's network. A cluster
with a history server has it at ``/clusters/<name>/history/`` (its pages link there through
``spark.ui.proxyBase``, set by the entrypoint), with the same credentials.

Every cluster has its own credentials: user ``<name>``, a random password kept with the cluster's
secrets. The gateway has only a salted hash of it (``{SSHA}``, one of the schemes nginx's
``auth_basic_user_file`` reads), in a password file of that cluster alone, so one cluster's password
never opens another's.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

from ..core.errors import DcmError
from ..core.naming import HISTORY_UI_PORT, MASTER_UI_PORT
from ..spec.schema import SCHEMA

PATH_PREFIX = "/clusters/"
CONF_MOUNT = "/etc/dcm-gateway"  # where the gateway container sees the files the agent writes
# the spec's rule for a cluster name: nothing else from etcd reaches nginx's configuration
_NAME = re.compile(SCHEMA["properties"]["name"]["pattern"])


def ui_path(cluster: str) -> str:
    """The cluster's UIs at the gateway: ``/clusters/face/``."""
    return f"{PATH_PREFIX}{cluster}/"


def history_path(cluster: str) -> str:
    """The cluster's history server at the gateway: ``/clusters/face/history/``."""
    return f"{ui_path(cluster)}history/"


def ui_url(address: str, port: int, cluster: str) -> str:
    """``https://<gateway host>:<port>/clusters/<name>/``."""
    return f"https://{address}:{int(port)}{ui_path(cluster)}"


def htpasswd_line(user: str, password: str) -> str:
    """``user:{SSHA}...``: the salted SHA-1 of a random password, as nginx and OpenLDAP read it.

    The salt is derived from the user and password so the line is the same at every write (the gateway
    reloads only when something changed); a password of 192 random bits needs no per-write salt to
    resist guessing, and the salt still keeps equal passwords' hashes apart across clusters."""
    if not user or ":" in user or not password:
        raise DcmError("a gateway user needs a name without ':' and a password")
    salt = hashlib.sha256(f"dcm-gateway:{user}:{password}".encode("utf-8")).digest()[:8]
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()  # noqa: S324  # the scheme nginx reads
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode('ascii')}"


def verify_htpasswd(line: str, user: str, password: str) -> bool:
    """True when ``line`` (from :func:`htpasswd_line`) accepts ``user`` with ``password``."""
    name, _sep, hashed = line.partition(":")
    if name != user or not hashed.startswith("{SSHA}"):
        return False
    raw = base64.b64decode(hashed[len("{SSHA}"):])
    digest, salt = raw[:20], raw[20:]
    return hashlib.sha1(password.encode("utf-8") + salt).digest() == digest  # noqa: S324


def gateway_entry(cluster: str, password: str) -> dict:
    """``/dcm/gateway/<name>``: what the gateway needs of a cluster (never its password)."""
    return {"cluster": cluster, "user": cluster, "htpasswd": htpasswd_line(cluster, password)}


def _address(report: dict, host: str | None) -> str | None:
    """The IPv4 address a node's report gives, when it runs on ``host`` (where the record places it)."""
    address = report.get("address")
    if report.get("host") != host or report.get("state") != "running":
        return None  # the node moved and its new host has not reported it yet
    try:
        return str(ipaddress.IPv4Address(address)) if address else None
    except ValueError:
        return None


def routes(records: dict, entries: dict, status: dict) -> dict:
    """``{cluster: {"network", "driver", "address" or None, "history", "htpasswd"}}``: what the gateway serves now.

    ``records`` are the cluster records, ``entries`` the gateway entries (``{cluster: entry}``) and
    ``status`` every host's reports (``{(cluster, node): report}``). A cluster without an entry is not
    served (no credentials, no route); one whose master has not reported an address yet answers 503.
    ``history`` is ``None`` for a cluster without a history server, else ``{"address": ...}`` (None
    while the server has not reported one: 503)."""
    found = {}
    for name, record in sorted(records.items()):
        entry = entries.get(name)
        if not _NAME.match(name) or not isinstance(entry, dict) or not str(entry.get("htpasswd", "")).startswith(
                f"{name}:"):
            continue
        network = record.get("network") or {}
        placement = record.get("placement") or {}
        history = None
        if "history" in (record.get("spec") or {}):
            history = {"address": _address(status.get((name, "history")) or {}, placement.get("driver"))}
        found[name] = {"network": str(network.get("name") or ""), "driver": str(network.get("driver") or ""),
                       "address": _address(status.get((name, "master")) or {}, placement.get("master")),
                       "history": history, "htpasswd": str(entry["htpasswd"])}
    return found


def _location(name: str, prefix: str, upstream: str | None) -> list:
    """One authenticated ``location`` for ``prefix``, passed to ``upstream`` (None: 503)."""
    lines = [
        f"location {prefix} {{\n",
        f'    auth_basic "DCSpark cluster {name}";\n',
        f"    auth_basic_user_file {CONF_MOUNT}/htpasswd/{name};\n",
    ]
    if upstream:
        # Spark's redirects (a worker's or an application's proxied page) name the master or the
        # gateway as Spark saw it, with or without the prefix: all of them go back under the prefix
        lines += [
            f"    proxy_pass {upstream};\n",
            f"    proxy_redirect ~^https?://[^/]+({prefix}.*)$ $1;\n",
            f"    proxy_redirect ~^https?://[^/]+/(.*)$ {prefix}$1;\n",
            "    proxy_set_header Host $http_host;\n",
            "    proxy_set_header X-Forwarded-Proto https;\n",
            "    proxy_set_header Authorization \"\";\n",  # the cluster's password stays at the gateway
        ]
    else:
        # 503 after the credentials are checked (try_files runs after access; return would run before
        # it and tell anyone that the cluster exists)
        lines.append("    try_files /dcm-gateway-no-master =503;\n")
    lines.append("}\n")
    return lines


def render_locations(served: dict) -> str:
    """The nginx ``location`` blocks of the clusters in ``served`` (from :func:`routes`)."""
    lines = ["# Written by the DCM agent of the gateway host: one location per deployed cluster.\n"]
    for name, route in sorted(served.items()):
        prefix = ui_path(name)
        lines.append(f"location = {prefix[:-1]} {{ return 301 {prefix}; }}\n")
        lines += _location(name, prefix, f"http://{route['address']}:{MASTER_UI_PORT}/" if route["address"] else None)
        history = route.get("history")
        if history is not None:  # the longer prefix wins in nginx: the history server's pages
            address = history.get("address")
            lines.append(f"location = {history_path(name)[:-1]} {{ return 301 {history_path(name)}; }}\n")
            lines += _location(name, history_path(name),
                               f"http://{address}:{HISTORY_UI_PORT}/" if address else None)
    return "".join(lines)
