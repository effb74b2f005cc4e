"""Converging one host to the desired state: the DCM agent's second loop.

The desired state is the set of cluster records under ``/dcm/clusters/``. For
the host the agent runs on, :func:`desired_nodes` derives every container it
must run (image by digest, CPU and memory limits, network, host name, labels,
environment) — pure, so it is tested without Docker. :func:`plan_actions`
compares that with the DCSpark containers the engine has and says what to
create, start and remove. :class:`DockerNodes` applies the plan through the
Docker SDK and reads back what each node's container is doing, which the
agent reports under ``/dcm/status/<cluster>/<node>``.

With the flannel network backend (:mod:`flannel`) a node runs on docker0, which the flannel
role put on the host's flannel subnet, with its cluster's hosts file mounted on ``/etc/hosts``.

Every container DCM starts has a memory limit (no swap), a CPU quota, a PID
limit, no capabilities, ``no-new-privileges`` and the pool's numeric non-root
user (``container_uid``, 185), whatever the image says (an image built for
root or for another user is refused, not started).

Secrets never enter a container's environment (``docker inspect`` shows it to
anyone with Docker access): the cluster's Spark secret and the driver's Jupyter
token are copied into the created container, before it starts, as files of
:data:`SECRETS_DIR` (folder 0500, files 0400, owned by the container user),
where the images' ``dcspark-node`` reads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
import time
from dataclasses import dataclass, field
from typing import Iterable

from ..host import flannel

from ..core import naming

from ..core import labels
from ..host.docker import _docker_errors, record_image_use
from ..host.registry import read_credentials
from ..core.errors import DcmError
from ..policy.rollout import node_views
from ..core.units import format_memory, parse_cpus, parse_memory

MIB = 1 << 20
MASTER_UI_PORT = naming.MASTER_UI_PORT
CONFIG_LABEL = "org.dcspark.config"  # hash of everything a node's container is created from
GENERATION_LABEL = "org.dcspark.generation"
PIDS_LIMIT = 4096
CONTAINER_UID = 185  # the user every node runs as (the images' spark user, as in Apache Spark's images)
SECRETS_DIR = "/run/dcspark"  # in the container: one file per secret (the contract of dcspark-node)
AUTH_SECRET_FILE = "auth"  # the cluster's spark.authenticate secret
JUPYTER_TOKEN_FILE = "jupyter-token"  # the driver's Jupyter token
EVENT_LOG_DIR = "/opt/dcspark/events"  # the history volume in the driver and the history server (the images' folder)
HISTORY_UI_PORT = naming.HISTORY_UI_PORT
# The history server runs from the master image, whose own health check asks the master's UI.
HISTORY_HEALTHCHECK = {
    "test": ["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{HISTORY_UI_PORT}/api/v1/version"],
    "interval": 10_000_000_000, "timeout": 5_000_000_000, "start_period": 60_000_000_000, "retries": 3,
}


def _mib(value: int) -> int:
    return value // MIB


def daemon_memory(role: str, memory: int) -> int:
    """Heap of the Spark daemon JVM (master, worker, history server) inside a container of ``memory`` bytes."""
    if role in ("master", "history"):
        return max(128 * MIB, min(1024 * MIB, memory // 2)) // MIB * MIB
    return (256 if memory >= 1024 * MIB else 128) * MIB


def worker_offer(cpus_milli: int, memory: int) -> tuple:
    """(cores, memory) a worker offers its executors: whole cores, memory minus its daemon and slack."""
    cores = max(1, math.ceil(cpus_milli / 1000))
    offered = memory - daemon_memory("worker", memory) - 128 * MIB
    return cores, max(256 * MIB, offered) // MIB * MIB


def driver_heap(memory: int) -> int:
    """spark.driver.memory for a driver container: 5/8 of it, the rest for Python and JVM overhead."""
    return max(256 * MIB, memory * 5 // 8) // MIB * MIB


@dataclass(frozen=True)
class NodeSpec:
    """One container the host must run."""

    cluster: str
    node: str  # master, driver, worker-3
    role: str  # master, driver, worker
    name: str  # container and host name: spark-worker-face-3
    image: str  # by digest
    cpus: int  # millicpus
    memory: int  # bytes
    network: str
    network_driver: str
    generation: int
    spec_hash: str
    env: tuple  # sorted (key, value) pairs
    publish_ui: str = ""  # the host address the master's UI is published on (spec ui.publish), "" for none
    jupyter: tuple = ()  # the driver's Jupyter server: (container port, host address or "none")
    secrets: tuple = field(default=(), repr=False)  # sorted (file name, value) pairs under SECRETS_DIR
    volumes: tuple = ()  # (Docker volume, path in the container, read-only) of the spec's volumes it mounts

    @property
    def config_hash(self) -> str:
        """Hash of everything the container is created from: a change means a new container."""
        data = [self.image, self.cpus, self.memory, self.network, self.env, self.publish_ui, self.name]
        if self.jupyter:
            data.append(list(self.jupyter))
        if self.volumes:
            data.append([list(volume) for volume in self.volumes])
        if self.secrets:  # a new secret means a new container; the label keeps only a hash of a hash
            data.append(hashlib.sha256(json.dumps(list(self.secrets)).encode("utf-8")).hexdigest())
        data = json.dumps(data, sort_keys=True)
        return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]

    def labels(self) -> dict:
        return {
            labels.MANAGED: "true",
            labels.CLUSTER: self.cluster,
            labels.NODE: self.node,
            labels.ROLE: self.role,
            labels.SPEC_HASH: self.spec_hash,
            GENERATION_LABEL: str(self.generation),
            CONFIG_LABEL: self.config_hash,
        }


def master_ui_address(spec: dict) -> str:
    """The host address the master's UI is published on: none ("") unless the spec's ``ui.publish`` names
    one (127.0.0.1 for an SSH tunnel); the pool's gateway is the way to every cluster's UIs."""
    publish = str((spec.get("ui") or {}).get("publish") or "none")
    return "" if publish == "none" else publish


def node_secrets(record: dict, role: str) -> dict:
    """``{file name: value}`` of the secrets a node's container gets under :data:`SECRETS_DIR`."""
    secrets = {AUTH_SECRET_FILE: str(record["secret"])}
    if role == "driver" and "jupyter" in record["spec"]:
        secrets[JUPYTER_TOKEN_FILE] = str(record.get("jupyter_token") or "")
    return secrets


def secrets_archive(secrets: dict, uid: int) -> bytes:
    """A tar of :data:`SECRETS_DIR` (0500) and one 0400 file per secret, owned by ``uid``, to extract at ``/``.

    Only the last folder is in the archive: Docker creates a missing parent (``/run``) and leaves an
    existing one as the image has it.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(SECRETS_DIR.strip("/"))
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o500, uid, uid
        archive.addfile(folder)
        for name, value in sorted(secrets.items()):
            data = value.encode("utf-8")
            entry = tarfile.TarInfo(f"{folder.name}/{name}")
            entry.size, entry.mode, entry.uid, entry.gid = len(data), 0o400, uid, uid
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def node_env(record: dict, role: str, cpus: int, memory: int) -> dict:
    """The environment of a node's container (the contract of the images' ``dcspark-node``; no secret)."""
    spec = record["spec"]
    name = record["name"]
    env = {str(k): str(v) for k, v in (spec.get("runtime", {}).get("env") or {}).items()}
    env.update({
        "DCSPARK_CLUSTER": name,
        "SPARK_MASTER_URL": naming.master_url(name),
        "DCSPARK_SPARK_CONF": json.dumps(spec.get("spark_conf") or {}, sort_keys=True),
    })
    if role in ("master", "worker", "history"):
        env["SPARK_DAEMON_MEMORY"] = f"{_mib(daemon_memory(role, memory))}m"
    if "history" in spec and role in ("driver", "history"):  # the driver writes event logs, the server reads them
        env["DCSPARK_EVENT_LOG_DIR"] = EVENT_LOG_DIR
    if role == "history":
        env["DCSPARK_HISTORY_MAX_AGE"] = str(spec["history"]["max_age"])
    if role == "worker":
        cores, offered = worker_offer(cpus, memory)
        env["SPARK_WORKER_CORES"] = str(cores)
        env["SPARK_WORKER_MEMORY"] = f"{_mib(offered)}m"
    if role == "driver" and "jupyter" in spec:
        env["DCSPARK_JUPYTER_PORT"] = str(spec["jupyter"]["port"])
    if role == "driver":
        app = spec.get("app") or {}
        env["DCSPARK_DRIVER_MEMORY"] = f"{_mib(driver_heap(memory))}m"
        env["DCSPARK_APP_MAIN"] = str(app.get("main") or "")
        env["DCSPARK_APP_ARGS"] = json.dumps([str(a) for a in app.get("args") or []])
    return env


def node_volumes(cluster: str, spec: dict, role: str) -> tuple:
    """``(Docker volume, path, read-only)`` of each of the spec's volumes a node of ``role`` mounts, and of
    the history volume (the event logs) in the driver and the history server of a spec that has one."""
    found = tuple((naming.volume_name(cluster, volume["name"]), volume["path"], bool(volume.get("read_only")))
                  for volume in spec.get("volumes") or () if role in (volume.get("nodes") or ("driver", "worker")))
    if "history" in spec and role in ("driver", "history"):  # the server's cleaner deletes old logs: rw
        found += ((naming.history_volume(cluster), EVENT_LOG_DIR, False),)
    return found


def desired_nodes(records: Iterable[dict], host: str) -> dict:
    """``{container name: NodeSpec}`` of every node that running clusters place on ``host``."""
    wanted = {}
    for record in records:
        if record.get("desired_state", "running") != "running":
            continue
        missing = [key for key in ("name", "spec", "placement", "images", "network") if not record.get(key)]
        if missing:
            raise DcmError(f"cluster record {record.get('name', '?')}: lacks {', '.join(missing)}; "
                           "deploy it again with deploy_cluster.yml")
        # during a rolling change, a node not moved yet runs as the generation the rollout replaces
        here = [(node, view) for node, node_host, view in node_views(record) if node_host == host]
        if here and not record.get("secret"):  # a host gets the secret of the clusters it runs nodes of only
            raise DcmError(f"cluster record {record['name']}: lacks secret for {host}; "
                           "deploy it again with deploy_cluster.yml")
        for node, view in here:
            spec = view["spec"]
            role = node.split("-", 1)[0]
            # the history server has no image of its own: the master's has the same Spark
            image = (view.get("images") or {}).get("master" if role == "history" else role)
            if not image:
                raise DcmError(f"cluster {record['name']}: no {role} image in generation {view.get('generation')}")
            request = spec[role]
            cpus, memory = parse_cpus(request["cpus"]), parse_memory(request["memory"])
            driver = view["network"].get("driver", "overlay")
            env = node_env(view, role, cpus, memory)
            if driver == flannel.DRIVER:
                env[flannel.NAME_WAIT_ENV] = str(flannel.NAME_WAIT_SECONDS)
            spec_node = NodeSpec(
                cluster=record["name"], node=node, role=role, name=naming.container_name(record["name"], node),
                image=image, cpus=cpus, memory=memory,
                network=flannel.DOCKER_NETWORK if driver == flannel.DRIVER else view["network"]["name"],
                network_driver=driver,
                generation=int(view.get("generation", 0)), spec_hash=view.get("spec_hash", ""),
                env=tuple(sorted(env.items())),
                publish_ui=master_ui_address(spec) if role == "master" else "",
                jupyter=((int(spec["jupyter"]["port"]), str(spec["jupyter"]["publish"]))
                         if role == "driver" and "jupyter" in spec else ()),
                secrets=tuple(sorted(node_secrets(view, role).items())),
                volumes=node_volumes(record["name"], spec, role),
            )
            wanted[spec_node.name] = spec_node
    return wanted


@dataclass(frozen=True)
class Observed:
    """A DCSpark container as the engine lists it."""

    id: str
    name: str
    state: str  # running, exited, created, restarting...
    labels: dict
    image_id: str = ""

    @property
    def config_hash(self) -> str:
        return self.labels.get(CONFIG_LABEL, "")


@dataclass
class Actions:
    create: list = field(default_factory=list)  # NodeSpec
    start: list = field(default_factory=list)  # (NodeSpec, Observed)
    remove: list = field(default_factory=list)  # Observed
    keep: list = field(default_factory=list)  # (NodeSpec, Observed)
    held: list = field(default_factory=list)  # Observed, of a cluster whose record is in doubt: left as it is

    @property
    def empty(self) -> bool:
        return not (self.create or self.start or self.remove)


def plan_actions(wanted: dict, observed: Iterable[Observed], in_doubt: Iterable[str] = ()) -> Actions:
    """What turns ``observed`` into ``wanted``: a changed node is removed and created again.

    A container of a cluster in ``in_doubt`` (its record could not be read or understood) is held: not
    removed, started or replaced, whatever the records say, until its record is understood again.
    """
    actions = Actions()
    seen = set()
    in_doubt = set(in_doubt)
    for container in sorted(observed, key=lambda c: c.name):
        if container.labels.get(labels.CLUSTER) in in_doubt:
            actions.held.append(container)
            continue
        node = wanted.get(container.name)
        if node is None or container.config_hash != node.config_hash or container.name in seen:
            actions.remove.append(container)
            continue
        seen.add(container.name)
        if container.state in ("running", "restarting"):
            actions.keep.append((node, container))
        else:
            actions.start.append((node, container))
    for name in sorted(set(wanted) - seen):
        actions.create.append(wanted[name])
    return actions


class NodeError(DcmError):
    """A node that cannot run on this host (reported in its status, retried next pass)."""


class DockerNodes:
    """Applies :class:`Actions` through the Docker SDK (``client`` from ``docker_host.connect``)."""

    def __init__(self, client, last_used_file: str | None = None, log=None,
                 hosts_files: flannel.HostsFiles | None = None, subnet_file: str = flannel.DEFAULT_SUBNET_FILE,
                 container_uid: int = CONTAINER_UID, registry_auth_file: str = "") -> None:
        if int(container_uid) <= 0:
            raise DcmError(f"container_uid must be a non-root user id (> 0), got {container_uid}")
        self.client = client
        self.container_uid = int(container_uid)
        self.registry_auth_file = registry_auth_file
        self.last_used_file = last_used_file
        self.log = log
        self.hosts_files = hosts_files or flannel.HostsFiles()
        self.subnet_file = subnet_file
        self.errors: dict = {}  # container name -> last error
        self.recorded: dict = {}  # image id -> when its use was last written to last_used_file

    def observed(self) -> list:
        found = self.client.containers.list(all=True, filters={"label": labels.MANAGED_FILTER})
        result = []
        for container in found:
            container_labels = container.labels or {}
            # Only containers this converger created are nodes: they alone carry the node and
            # configuration labels. Every other container of a DCSpark image - an image build's
            # intermediate container, one an operator started by hand - inherits the image's
            # managed/cluster labels and must never be touched.
            if not (container_labels.get(labels.CLUSTER) and container_labels.get(labels.NODE)
                    and container_labels.get(CONFIG_LABEL)):
                continue
            result.append(Observed(id=container.id, name=container.name, state=container.status,
                                   labels=container_labels, image_id=container.attrs.get("ImageID", "")))
        return result

    def _say(self, message: str, *args) -> None:
        if self.log is not None:
            self.log.info(message, *args)

    def _image(self, node: NodeSpec):
        try:
            image = self.client.images.get(node.image)
        except _docker_errors().DockerException:
            self._say("pulling %s for %s", node.image, node.name)
            try:  # the registry's read-only identity, read at each pull (site.yml may have renewed it)
                auth = read_credentials(self.registry_auth_file) if self.registry_auth_file else None
            except DcmError as exc:
                raise NodeError(str(exc)) from None
            image = self.client.images.pull(node.image, auth_config=auth)
        user = (image.attrs.get("Config") or {}).get("User") or ""
        if user.split(":")[0] in ("", "0", "root"):
            raise NodeError(f"{node.image} runs as root (its USER is {user or 'unset'}); DCSpark starts only "
                            "non-root images: rebuild it with the spark_images role")
        if user.split(":")[0] != str(self.container_uid):
            raise NodeError(f"{node.image} was built for user {user}, but this pool runs every container as "
                            f"{self.container_uid}: build with spark_images_uid={self.container_uid} (or set "
                            "dcm_agent_container_uid to the images' uid on every host)")
        return image

    def create(self, node: NodeSpec) -> None:
        image = self._image(node)
        kwargs = {
            "name": node.name,
            "hostname": node.name,
            "detach": True,
            "user": f"{self.container_uid}:{self.container_uid}",
            "environment": dict(node.env),
            "labels": node.labels(),
            "network": node.network,
            "nano_cpus": node.cpus * 1_000_000,
            "mem_limit": node.memory,
            "memswap_limit": node.memory,
            "pids_limit": PIDS_LIMIT,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "restart_policy": {"Name": "unless-stopped"},
            "log_config": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "3"}},
        }
        if node.role == "history":  # the master's image, told to run the history server instead
            kwargs["command"] = ["history"]
            kwargs["healthcheck"] = HISTORY_HEALTHCHECK
        if node.publish_ui:  # an ephemeral port on the address the spec asks for, reported in status
            kwargs["ports"] = {f"{MASTER_UI_PORT}/tcp": (node.publish_ui, None)}
        if node.jupyter and node.jupyter[1] != "none":
            port, address = node.jupyter  # an ephemeral port on the chosen host address, reported in status
            kwargs.setdefault("ports", {})[f"{port}/tcp"] = (address, None)
        if node.network_driver == flannel.DRIVER:
            self._check_flannel()
            hosts = self.hosts_files.path(node.cluster)
            if not os.path.isfile(hosts):
                raise NodeError(f"{hosts} is missing: the agent writes it before it creates the cluster's containers")
            kwargs["volumes"] = {hosts: {"bind": flannel.HOSTS_MOUNT, "mode": "ro"}}
        for volume, path, read_only in node.volumes:
            self._volume(node.cluster, volume)
            kwargs.setdefault("volumes", {})[volume] = {"bind": path, "mode": "ro" if read_only else "rw"}
        self._say("creating %s (%s, %s CPUs, %s)", node.name, node.image, node.cpus / 1000, format_memory(node.memory))
        container = self.client.containers.create(image.id, **kwargs)
        try:
            if node.secrets and not container.put_archive("/", secrets_archive(dict(node.secrets), self.container_uid)):
                raise NodeError(f"Docker refused to copy the secrets into {node.name}")
            container.start()
        except (DcmError, _docker_errors().DockerException):
            container.remove(force=True)
            raise
        self._used(image.id)

    def _volume(self, cluster: str, volume: str) -> None:
        """The cluster's Docker volume on this host, made with DCSpark's labels the first time a node mounts it
        (kept when containers go: only an undeploy with purge removes it). An empty volume takes the image's
        folder, owned by the container user, at its first mount."""
        try:
            found = self.client.volumes.get(volume)
        except _docker_errors().NotFound:
            self._say("creating volume %s", volume)
            self.client.volumes.create(name=volume, driver="local", labels={
                labels.MANAGED: "true", labels.CLUSTER: cluster, labels.VOLUME: volume})
            return
        owner = (found.attrs.get("Labels") or {}).get(labels.CLUSTER)
        if owner != cluster:
            raise NodeError(f"volume {volume} on this host is not cluster {cluster}'s (its label says "
                            f"{owner or 'nothing'}): remove or rename it (docker volume rm {volume})")

    def _check_flannel(self) -> None:
        """Refuse when docker0 is not on the subnet flanneld leased this host (see :mod:`flannel`)."""
        subnet_env = flannel.read_subnet_env(self.subnet_file)
        ipam = (self.client.networks.get(flannel.DOCKER_NETWORK).attrs.get("IPAM") or {}).get("Config") or []
        try:
            flannel.check_bridge([entry.get("Subnet", "") for entry in ipam], subnet_env, self.subnet_file)
        except DcmError as exc:
            raise NodeError(str(exc)) from None

    def start(self, node: NodeSpec, container: Observed) -> None:
        self._say("starting %s again (was %s)", node.name, container.state)
        self.client.containers.get(container.id).start()

    def remove(self, container: Observed) -> None:
        self._say("removing %s (%s)", container.name, container.id[:12])
        self.client.containers.get(container.id).remove(force=True)

    def _used(self, image_id: str, every: float = 0.0) -> None:
        """Record that ``image_id`` is in use (for the image GC's LRU), at most once per ``every`` seconds."""
        now = time.time()
        if not image_id or now - self.recorded.get(image_id, 0.0) < every:
            return
        self.recorded[image_id] = now
        if self.last_used_file:
            try:
                record_image_use(self.last_used_file, image_id)
            except OSError as exc:
                self._say("cannot record the use of %s in %s: %s", image_id[:19], self.last_used_file, exc)

    def apply(self, actions: Actions) -> Actions:
        """Carry out ``actions``; a node that fails is remembered in :attr:`errors`, the others go on.

        Returns the actions that succeeded, which the agent records as events.
        """
        done = Actions(keep=list(actions.keep), held=list(actions.held))
        for container in actions.remove:
            if self._guard(container.name, self.remove, container):
                done.remove.append(container)
        for node, container in actions.start:
            if self._guard(node.name, self.start, node, container):
                done.start.append((node, container))
        for node in actions.create:
            if self._guard(node.name, self.create, node):
                done.create.append(node)
        for node, container in actions.keep:
            self.errors.pop(node.name, None)
            self._used(container.image_id, every=300.0)
        return done

    def _guard(self, name: str, call, *args) -> bool:
        try:
            call(*args)
            self.errors.pop(name, None)
            return True
        except (DcmError, _docker_errors().DockerException) as exc:
            self.errors[name] = str(exc)
            if self.log is not None:
                self.log.warning("%s: %s", name, exc)
            return False

    def status(self, node: NodeSpec, host: str) -> dict:
        """What ``/dcm/status/<cluster>/<node>`` says about ``node`` on this host."""
        report = {"host": host, "container": node.name, "generation": node.generation, "image": node.image}
        try:
            container = self.client.containers.get(node.name)
        except _docker_errors().DockerException:
            report.update(state="missing", error=self.errors.get(node.name, "container not created yet"))
            return report
        attrs = container.attrs
        state = attrs.get("State") or {}
        report.update(
            container_id=container.id,
            state=state.get("Status", container.status),
            health=(state.get("Health") or {}).get("Status", "none"),
            restarts=int(attrs.get("RestartCount") or 0),
            since=state.get("StartedAt"),
            exit_code=state.get("ExitCode"),
        )
        if state.get("OOMKilled"):
            report["oom_killed"] = True
        address = (((attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(node.network) or {}).get("IPAddress")
        if address:
            report["address"] = address
        ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        if node.publish_ui:
            bindings = ports.get(f"{MASTER_UI_PORT}/tcp") or []
            if bindings:
                report["ui_port"] = int(bindings[0]["HostPort"])
        if node.jupyter:
            bindings = ports.get(f"{node.jupyter[0]}/tcp") or []
            if bindings:
                report["jupyter"] = {"address": bindings[0]["HostIp"], "port": int(bindings[0]["HostPort"])}
        if node.name in self.errors:
            report["error"] = self.errors[node.name]
        return report


def status_value(report: dict) -> str:
    """The JSON written to etcd for a status report (stable, so unchanged reports are not rewritten)."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"))


def stamp(report: dict, now: float | None = None) -> dict:
    stamped = dict(report)
    stamped["observed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return stamped
