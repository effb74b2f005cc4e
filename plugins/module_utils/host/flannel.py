"""The DCM agent's flannel network backend (the paper's flannel).

With ``dcm_network_backend: flannel`` every host runs flanneld (roles/flannel), which leases the
host a subnet of the pool's flannel network and writes it to ``subnet.env``; the flannel role puts
docker0 on that subnet (``bip``). A cluster's containers then run on Docker's default ``bridge``
network (docker0), so every container has an address that is routable from every other host.

Docker's default bridge has no name service, so the agent gives each flannel cluster a hosts file
of its own, bind-mounted read-only on ``/etc/hosts`` of the cluster's containers on this host. Its
lines are the cluster's nodes and their addresses: those on this host from the engine, the others
from the status the other hosts' agents report in etcd (``/dcm/status/<cluster>/<node>``:
``address``). The file is rewritten in place (a bind-mounted file keeps its inode) whenever a
peer's address changes, and the images' entrypoint waits until its own name is in it.

Before a container is created the agent checks that docker0 really is on the subnet flannel
leased this host: a mismatch (flannel leased another subnet while Docker kept the old ``bip``)
would give containers unroutable addresses, so it is refused with the fix. Pure functions here
are tested without Docker or etcd; :class:`HostsFiles` does the file work.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Iterable

from ..core.errors import DcmError

DRIVER = "flannel"
DOCKER_NETWORK = "bridge"  # Docker's default network: docker0, on the host's flannel subnet
DEFAULT_SUBNET_FILE = "/run/flannel/subnet.env"
DEFAULT_HOSTS_DIR = "/var/lib/dcm/hosts"  # in the agent unit's StateDirectory
HOSTS_MOUNT = "/etc/hosts"
# Seconds the images' entrypoint waits for its own name in the hosts file (dcspark-node).
NAME_WAIT_ENV = "DCSPARK_NAME_WAIT"
NAME_WAIT_SECONDS = 60
LOCAL_LINES = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
)
_LINE = re.compile(r"^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$")


def parse_subnet_env(text: str, path: str = DEFAULT_SUBNET_FILE) -> dict:
    """The variables of flannel's ``subnet.env`` (FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ)."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise DcmError(f"{path}, line {number}: not VARIABLE=value: {line!r}")
        values[match.group(1)] = match.group(2).strip("\"'")
    for name in ("FLANNEL_NETWORK", "FLANNEL_SUBNET"):
        if name not in values:
            raise DcmError(f"{path} has no {name}: flanneld has not leased this host a subnet yet")
    try:
        ipaddress.ip_network(values["FLANNEL_NETWORK"])
        ipaddress.ip_interface(values["FLANNEL_SUBNET"])
    except ValueError as exc:
        raise DcmError(f"{path}: {exc}") from None
    return values


def read_subnet_env(path: str = DEFAULT_SUBNET_FILE) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_subnet_env(handle.read(), path)
    except FileNotFoundError:
        raise DcmError(f"{path} is missing: flanneld does not run on this host or has no subnet yet "
                       "(systemctl status flanneld; roles/flannel installs it)") from None


def check_bridge(docker_subnets: list, subnet_env: dict, path: str = DEFAULT_SUBNET_FILE) -> None:
    """Refuse when docker0 is not on the subnet flannel leased this host (``docker_subnets``: its IPAM)."""
    leased = ipaddress.ip_interface(subnet_env["FLANNEL_SUBNET"]).network
    found = []
    for subnet in docker_subnets:
        try:
            found.append(ipaddress.ip_network(subnet, strict=False))
        except ValueError:
            continue
    if leased not in found:
        shown = ", ".join(str(net) for net in found) or "no subnet"
        raise DcmError(f"docker0 is on {shown} but flannel leased this host {leased} ({path}): containers would "
                       "be unreachable from the other hosts; run site.yml (roles/flannel moves docker0 onto the "
                       "subnet and restarts Docker)")


def hosts_text(addresses: dict) -> str:
    """The hosts file of one cluster: localhost, then ``{container name: address}`` sorted by name."""
    lines = list(LOCAL_LINES)
    for name, address in sorted(addresses.items()):
        if address:
            lines.append(f"{address}\t{name}")
    return "\n".join(lines) + "\n"


def peer_addresses(reports: Iterable[dict]) -> dict:
    """``{container: address}`` from the status reports of one cluster (any host)."""
    found = {}
    for report in reports:
        if report.get("container") and report.get("address"):
            found[str(report["container"])] = str(report["address"])
    return found


class HostsFiles:
    """The per-cluster hosts files under ``directory`` (``<cluster>.hosts``, mode 0644)."""

    def __init__(self, directory: str = DEFAULT_HOSTS_DIR) -> None:
        self.directory = directory

    def path(self, cluster: str) -> str:
        return os.path.join(self.directory, f"{cluster}.hosts")

    def write(self, cluster: str, addresses: dict) -> bool:
        """Write the cluster's file in place (same inode: containers see the change); True when it changed."""
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        path, text = self.path(cluster), hosts_text(addresses)
        try:
            with open(path, "r+", encoding="utf-8") as handle:
                if handle.read() == text:
                    return False
                handle.seek(0)
                handle.write(text)
                handle.truncate()
        except FileNotFoundError:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(path, 0o644)
        return True

    def prune(self, clusters: set) -> list:
        """Remove the files of clusters that no longer have a container here; returns their names."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        removed = []
        for name in sorted(names):
            cluster, suffix = os.path.splitext(name)
            if suffix == ".hosts" and cluster not in clusters:
                os.unlink(os.path.join(self.directory, name))
                removed.append(cluster)
        return removed


def cluster_addresses(reports: Iterable[dict], local: dict) -> dict:
    """Every node's address: the cluster's status reports (all hosts), this host's (fresher) over them."""
    addresses = peer_addresses(reports)
    addresses.update({name: address for name, address in local.items() if address})
    return addresses
