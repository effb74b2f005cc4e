"""The pool's UI gateway on its host: the nginx container's networks, locations and password files.

The gateway role creates the container (``dcm-gateway``: Debian's nginx, non-root, TLS with the pool's
CA, published on ``dcm_gateway_port``) and its static configuration; the agent of that host keeps the
rest in step with etcd at every pass (:meth:`Gateway.sync`): the container is attached to the network
of every overlay or bridge cluster (a flannel cluster's addresses are routed from docker0, where the
container already is), the locations (:func:`..policy.gateway.render_locations`) and one password file
per cluster are written in the folder the container reads, and nginx reloads (SIGHUP) when a file
changed. nginx keeps serving its previous configuration if a new one does not load.
"""

from __future__ import annotations

import os

from ..policy import gateway as policy
from .files import atomic_write

LOCATIONS_FILE = "locations.conf"
HTPASSWD_DIR = "htpasswd"
NETWORK_PREFIX = "dcm-"  # the clusters' own networks (placement.default_network); others are left alone


def write_if_changed(path: str, text: str, mode: int = 0o640) -> bool:
    """Replace ``path`` atomically with ``text`` when it differs; True when it was written."""
    try:
        with open(path, encoding="utf-8") as stream:
            if stream.read() == text:
                return False
    except FileNotFoundError:
        pass
    atomic_write(path, text, mode)
    return True


class Gateway:
    """The gateway container of this host and the folder it reads its locations from."""

    def __init__(self, client, container: str, conf_dir: str, log) -> None:
        self.client = client  # docker.DockerClient
        self.container = container
        self.conf_dir = conf_dir
        self.log = log
        self.missing_said = False

    def sync(self, served: dict) -> bool:
        """Make the container serve ``served`` (:func:`..policy.gateway.routes`); True when nginx reloaded."""
        try:
            container = self.client.containers.get(self.container)
        except Exception as exc:  # pylint: disable=broad-except  # docker.errors.NotFound and the API's errors
            if not self.missing_said:
                self.log.warning("gateway: no container %s (%s); site.yml creates it", self.container, exc)
                self.missing_said = True
            return False
        self.missing_said = False
        served = self._attach(container, served)
        changed = self._files(served)
        if changed:
            container.kill(signal="SIGHUP")
            self.log.info("gateway: serving %s", ", ".join(sorted(served)) or "no cluster")
        return changed

    def _attach(self, container, served: dict) -> dict:
        """Connect the container to the served clusters' networks, disconnect it from the others'.

        A cluster whose network is not on this host (a bridge cluster placed elsewhere) keeps its
        credentials and answers 503 until it is."""
        attached = set(((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}))
        wanted = {route["network"] for route in served.values() if route["driver"] in ("overlay", "bridge")}
        result = dict(served)
        for name, route in served.items():
            network = route["network"]
            if network not in wanted or network in attached:
                continue
            try:
                self.client.networks.get(network).connect(container)
                attached.add(network)
                self.log.info("gateway: attached to %s (cluster %s)", network, name)
            except Exception as exc:  # pylint: disable=broad-except  # missing here, or the API refused
                self.log.warning("gateway: cannot attach to %s of cluster %s: %s", network, name, exc)
                result[name] = dict(route, address=None)
        for network in sorted(attached - wanted):
            if not network.startswith(NETWORK_PREFIX):
                continue
            try:
                self.client.networks.get(network).disconnect(container)
                self.log.info("gateway: detached from %s (no cluster served on it)", network)
            except Exception as exc:  # pylint: disable=broad-except
                self.log.warning("gateway: cannot detach from %s: %s", network, exc)
        if attached != set(((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})):
            container.reload()
        return result

    def _files(self, served: dict) -> bool:
        folder = os.path.join(self.conf_dir, HTPASSWD_DIR)
        os.makedirs(folder, mode=0o750, exist_ok=True)
        changed = False
        for name, route in served.items():
            changed |= write_if_changed(os.path.join(folder, name), route["htpasswd"] + "\n", 0o640)
        for name in sorted(set(os.listdir(folder)) - set(served)):
            if not name.startswith("."):
                os.unlink(os.path.join(folder, name))
                changed = True
        changed |= write_if_changed(os.path.join(self.conf_dir, LOCATIONS_FILE), policy.render_locations(served), 0o644)
        return changed
