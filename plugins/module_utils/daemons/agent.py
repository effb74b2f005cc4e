"""The DCM agent: registers its host in etcd and keeps the registration alive.

Every host runs one agent (systemd unit ``dcm-agent``). It writes
``/dcm/hosts/<host>`` — resources, allocatable capacity, address, labels,
agent version — on a lease of ``lease_ttl`` seconds and refreshes the lease
every ``heartbeat`` seconds, so a host whose agent stops disappears from the
pool within the TTL. When the lease is lost (etcd was unreachable for longer
than the TTL) it registers again. On SIGTERM it revokes its lease, so a clean
stop removes the host at once.

A second thread converges the host to the desired state (:mod:`converge`):
every ``converge_interval`` seconds it reads ``/dcm/clusters/``, creates,
starts and removes this host's DCSpark containers, and reports each node's
container under ``/dcm/status/<cluster>/<node>`` on the host's lease (so a
dead host's reports vanish with it). It runs apart from the heartbeat so a
long image pull never lets the lease expire.

A third thread runs the garbage-collection timers (:mod:`gc_timers`): every
``container_gc_interval`` seconds the exited DCSpark containers no desired
cluster needs go, every ``image_gc_interval`` seconds the least recently used
DCSpark images go until Eq. 1's target (at ``image_gc_threshold``) is freed.

Every container the converger creates, starts or removes, and every GC pass
that removed something, is recorded as an event under ``/dcm/events/`` (source:
the host name) for the status view. No Ansible import: this runs as a daemon
from a copy of ``module_utils`` installed by the ``dcm_agent`` role.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import converge, daemon
from .converge import CONTAINER_UID

from ..host import flannel, hostinfo
from ..host.gateway import Gateway
from ..policy import gateway as gateway_policy


from ..core import labels
from ..core.errors import DcmError, StoreError
from ..host.docker import DEFAULT_LAST_USED_FILE
from ..state.etcd import EtcdClient, EtcdConfig, etcd_config_from
from ..state.store import DcmStore
from ..state.events import EventLog
from ..policy.gc import DEFAULT_THRESHOLD
from ..policy.placement import MALFORMED, doubt_changes, malformed_reason, record_format_problem, with_secrets
from .gc_timers import DEFAULT_INTERVAL, GcSettings, GcTimers
from ..core.units import format_cpus, parse_cpus, parse_memory

LOG = logging.getLogger("dcm-agent")

DEFAULT_CONFIG_PATH = "/etc/dcm/agent.json"


@dataclass
class AgentConfig:
    """What ``/etc/dcm/agent.json`` holds (written by the dcm_agent role)."""

    host_name: str
    etcd: EtcdConfig
    reserve_cpus: int = 500  # millicpus kept for the host's own daemons
    reserve_memory: int = 512 << 20
    advertise_cpus: int | None = None  # override the detected total (millicpus)
    advertise_memory: int | None = None  # override the detected total (bytes)
    address: str | None = None  # override the detected address
    labels: dict = field(default_factory=dict)
    lease_ttl: int = 30
    heartbeat: float = 10.0
    refresh_every: int = 6  # rewrite the record every N heartbeats (resources may change)
    version: str = "0"
    converge: bool = True  # run this host's DCSpark containers (False: registration only)
    converge_interval: float = 2.0
    docker_url: str = "unix:///var/run/docker.sock"
    last_used_file: str = DEFAULT_LAST_USED_FILE
    container_gc_interval: float = DEFAULT_INTERVAL  # seconds; 0 turns the container GC off
    image_gc_interval: float = DEFAULT_INTERVAL  # seconds; 0 turns the image GC off
    image_gc_threshold: float = DEFAULT_THRESHOLD  # T of Eq. 1, a fraction of the disk under Docker's data root
    hosts_dir: str = flannel.DEFAULT_HOSTS_DIR  # flannel clusters' hosts files
    flannel_subnet_file: str = flannel.DEFAULT_SUBNET_FILE
    container_uid: int = CONTAINER_UID  # the numeric user every DCSpark container runs as
    registry_auth_file: str = ""  # the registry's read-only identity (JSON) images are pulled with; "": anonymous
    gateway_port: int = 0  # the pool's UI gateway runs on this host on that port (0: not here)
    gateway_container: str = "dcm-gateway"
    gateway_dir: str = "/var/lib/dcm/gateway"  # its locations and password files, kept by this agent

    def gc_settings(self) -> GcSettings:
        return GcSettings(container_interval=self.container_gc_interval, image_interval=self.image_gc_interval,
                          image_threshold=self.image_gc_threshold, last_used_file=self.last_used_file,
                          docker_url=self.docker_url)


def load_config(path: str = DEFAULT_CONFIG_PATH) -> AgentConfig:
    """Read and check the agent's JSON configuration; errors name the key and the fix."""
    raw = daemon.read_config(path, "agent")
    etcd = etcd_config_from(raw.get("etcd"), path)
    known = {"host_name", "etcd", "reserve_cpus", "reserve_memory", "advertise_cpus", "advertise_memory",
             "address", "labels", "lease_ttl", "heartbeat", "refresh_every", "version",
             "converge", "converge_interval", "docker_url", "last_used_file",
             "container_gc_interval", "image_gc_interval", "image_gc_threshold", "hosts_dir", "flannel_subnet_file",
             "container_uid", "registry_auth_file", "gateway_port", "gateway_container", "gateway_dir"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DcmError(f"{path}: unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    ttl = int(raw.get("lease_ttl", 30))
    heartbeat = float(raw.get("heartbeat", 10))
    if not 0 < heartbeat < ttl:
        raise DcmError(f"{path}: heartbeat ({heartbeat} s) must be positive and shorter than lease_ttl ({ttl} s)")
    uid = raw.get("container_uid", CONTAINER_UID)
    if isinstance(uid, bool) or not str(uid).isdigit() or int(uid) <= 0:
        raise DcmError(f"{path}: container_uid must be a non-root numeric user id (> 0), got {uid!r}")
    return AgentConfig(
        host_name=str(raw.get("host_name") or socket.gethostname().split(".")[0]),
        etcd=etcd,
        reserve_cpus=parse_cpus(raw.get("reserve_cpus", 0.5)),
        reserve_memory=parse_memory(raw.get("reserve_memory", "512m")),
        advertise_cpus=parse_cpus(raw["advertise_cpus"]) if raw.get("advertise_cpus") is not None else None,
        advertise_memory=parse_memory(raw["advertise_memory"]) if raw.get("advertise_memory") is not None else None,
        address=raw.get("address"),
        labels=dict(raw.get("labels") or {}),
        lease_ttl=ttl,
        heartbeat=heartbeat,
        refresh_every=int(raw.get("refresh_every", 6)),
        version=str(raw.get("version", "0")),
        converge=bool(raw.get("converge", True)),
        converge_interval=daemon.positive_seconds(path, "converge_interval", raw.get("converge_interval", 2.0)),
        docker_url=str(raw.get("docker_url", "unix:///var/run/docker.sock")),
        last_used_file=str(raw.get("last_used_file", DEFAULT_LAST_USED_FILE)),
        container_gc_interval=_seconds_or_off(path, "container_gc_interval",
                                              raw.get("container_gc_interval", DEFAULT_INTERVAL)),
        image_gc_interval=_seconds_or_off(path, "image_gc_interval", raw.get("image_gc_interval", DEFAULT_INTERVAL)),
        image_gc_threshold=_fraction(path, "image_gc_threshold", raw.get("image_gc_threshold", DEFAULT_THRESHOLD)),
        hosts_dir=str(raw.get("hosts_dir", flannel.DEFAULT_HOSTS_DIR)),
        flannel_subnet_file=str(raw.get("flannel_subnet_file", flannel.DEFAULT_SUBNET_FILE)),
        container_uid=int(uid),
        registry_auth_file=str(raw.get("registry_auth_file") or ""),
        gateway_port=_port_or_off(path, "gateway_port", raw.get("gateway_port", 0)),
        gateway_container=str(raw.get("gateway_container") or "dcm-gateway"),
        gateway_dir=str(raw.get("gateway_dir") or "/var/lib/dcm/gateway"),
    )


def _port_or_off(path: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not str(value).isdigit() or not (int(value) == 0 or 1 <= int(value) <= 65535):
        raise DcmError(f"{path}: {key} must be a TCP port (1-65535) or 0 for none, got {value!r}")
    return int(value)


def _number(value: object) -> float | None:
    """``value`` as a finite float, or None (JSON true/false are not numbers here)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _seconds_or_off(path: str, key: str, value: object) -> float:
    number = _number(value)
    if number is None or number < 0:
        raise DcmError(f"{path}: {key} must be a number of seconds >= 0 (0 turns that timer off), got {value!r}")
    return number


def _fraction(path: str, key: str, value: object) -> float:
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise DcmError(f"{path}: {key} must be a fraction of the disk between 0 and 1 (0.8: collect images when "
                       f"they use more than 80 % of it), got {value!r}")
    return number


@dataclass(frozen=True)
class HostFacts:
    cpus: int  # millicpus
    memory: int  # bytes
    address: str | None
    disk: dict


def read_facts(root: str = "/") -> HostFacts:
    """What this host has, cgroup limits included (see :mod:`hostinfo`)."""
    address, _interface, _error = hostinfo.address(root)
    return HostFacts(cpus=hostinfo.cpus(root).value, memory=hostinfo.memory(root).value,
                     address=address, disk=hostinfo.disk("/"))


def host_record(config: AgentConfig, facts: HostFacts, now: float) -> dict:
    """The record ``/dcm/hosts/<host>`` holds: pure, so it is tested without a host."""
    cpus = config.advertise_cpus if config.advertise_cpus is not None else facts.cpus
    memory = config.advertise_memory if config.advertise_memory is not None else facts.memory
    alloc_cpus, alloc_memory = hostinfo.allocatable(cpus, memory, config.reserve_cpus, config.reserve_memory)
    return {
        "name": config.host_name,
        "address": config.address or facts.address,
        "cpus": format_cpus(cpus),
        "memory": memory,
        "allocatable": {"cpus": format_cpus(alloc_cpus), "memory": alloc_memory},
        "reserved": {"cpus": format_cpus(config.reserve_cpus), "memory": config.reserve_memory},
        "advertised": config.advertise_cpus is not None or config.advertise_memory is not None,
        "disk": facts.disk,
        "labels": dict(config.labels),
        "agent_version": config.version,
        **({"gateway_port": config.gateway_port} if config.gateway_port else {}),
        "registered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }


class Agent:
    """The registration loop. ``facts`` and ``clock`` are injectable for tests."""

    def __init__(self, config: AgentConfig, client: EtcdClient,
                 facts: Callable[[], HostFacts] = read_facts, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = DcmStore(client)
        self.facts = facts
        self.clock = clock
        self.lease = 0
        self.beats = 0
        self.stopping = threading.Event()

    def register(self) -> None:
        """Write the host record on a new lease."""
        record = host_record(self.config, self.facts(), self.clock())
        lease = self.store.register_host(record, self.config.lease_ttl)
        self.lease = lease
        self.beats = 0
        LOG.info("registered %s (lease %x, ttl %ss): %s CPUs, %s bytes allocatable", self.config.host_name,
                 lease, self.config.lease_ttl, record["allocatable"]["cpus"], record["allocatable"]["memory"])

    def beat(self) -> None:
        """Refresh the lease; register again if it is gone; rewrite the record now and then."""
        if not self.lease or self.store.keepalive(self.lease) <= 0:
            if self.lease:
                LOG.warning("lease %x expired; registering %s again", self.lease, self.config.host_name)
            self.register()
            return
        self.beats += 1
        if self.beats % max(self.config.refresh_every, 1) == 0:
            self.store.put_host(host_record(self.config, self.facts(), self.clock()), self.lease)

    def deregister(self) -> None:
        if self.lease:
            try:
                self.store.revoke(self.lease)
                LOG.info("revoked lease %x: %s left the pool", self.lease, self.config.host_name)
            except StoreError as exc:
                LOG.warning("could not revoke lease %x (%s); the host leaves when it expires", self.lease, exc)
            self.lease = 0

    def run(self, ready: Callable[[], None] = lambda: None, converger: "Converger | None" = None,
            gc_timers: GcTimers | None = None) -> None:
        """Beat until :meth:`stop`; etcd outages are logged and retried, never fatal."""
        if converger is not None:
            threading.Thread(target=converger.run, args=(self,), name="converge", daemon=True).start()
        if gc_timers is not None:
            threading.Thread(target=gc_timers.run, args=(self.stopping,), name="gc", daemon=True).start()
        notified = False
        delay = self.config.heartbeat
        while not self.stopping.is_set():
            try:
                self.beat()
                delay = self.config.heartbeat
                if not notified:
                    ready()
                    notified = True
            except StoreError as exc:
                delay = min(max(delay / 2, 1.0), self.config.heartbeat)
                LOG.warning("etcd: %s (retrying in %.0f s)", exc, delay)
            self.stopping.wait(delay)
        self.deregister()

    def stop(self, *_args: object) -> None:
        self.stopping.set()


class Converger:
    """The convergence loop: desired state from etcd, containers through Docker, status to etcd."""

    def __init__(self, config: AgentConfig, client: EtcdClient, nodes, events: EventLog | None = None,
                 gateway: Gateway | None = None) -> None:
        self.config = config
        self.store = DcmStore(client)  # its own client: the heartbeat thread uses the agent's
        self.nodes = nodes  # converge.DockerNodes
        self.events = events
        self.gateway = gateway  # the pool's UI gateway, on its host only
        self.records: dict = {}  # the cluster records of the last pass
        self.reported: dict = {}  # (cluster, node) -> (value without time, when written, lease)
        self.addresses: dict = {}  # container name -> address, of this host's nodes at the last pass
        self.in_doubt: dict = {}  # cluster -> why its record cannot be acted on (its containers are held)

    def wanted(self) -> dict:
        """Every node the cluster records place on this host.

        A record this agent cannot read (not JSON), whose layout is newer than it understands, or that
        lacks what a node needs puts its cluster *in doubt*: nothing of that cluster here is removed,
        started or replaced while it is (:attr:`in_doubt`, said in the log and an event once per change),
        and the other clusters converge as usual. A cluster's secrets come from this host's own copies
        (``/dcm/host-secrets/<host>/``), not from its record.
        """
        wanted: dict = {}
        records, secrets, unreadable = self.store.host_view(self.config.host_name)
        in_doubt = dict(unreadable)
        for name, record in records.items():
            problem = record_format_problem(record)
            if problem:
                in_doubt[name] = f"cluster record {name} {problem}"
                continue
            try:
                wanted.update(converge.desired_nodes([with_secrets(record, secrets.get(name, {}))],
                                                     self.config.host_name))
            except MALFORMED as exc:
                in_doubt[name] = malformed_reason(name, exc)
        # the gateway keeps serving a cluster in doubt as the last understood record said
        before = self.records
        self.records = {name: record for name, record in records.items() if name not in in_doubt}
        self.records.update({name: before[name] for name in in_doubt if name in before})
        self.say_doubts(in_doubt, set(records))
        return wanted

    def say_doubts(self, in_doubt: dict, present: set) -> None:
        """Log and record an event when a cluster comes into doubt, changes why, or leaves it (its record
        understood again, or deleted: ``present`` are the clusters that have a record)."""
        host = self.config.host_name
        new, understood, gone = doubt_changes(self.in_doubt, in_doubt, present)
        said = [("record-in-doubt", name, f"{why}; its containers on {host} are kept as they run, none removed, "
                 "until the record is understood again") for name, why in new.items()]
        said += [("record-understood", name, f"cluster record {name} is understood again; {host} converges its "
                  "nodes") for name in understood]
        said += [("record-gone", name, f"cluster record {name} was deleted; {host} removes its nodes as "
                  "undeployed") for name in gone]
        for kind, name, message in said:
            LOG.log(logging.WARNING if kind == "record-in-doubt" else logging.INFO, "%s", message)
            if self.events is not None:
                self.events.record(kind, message, cluster=name, host=host)
        self.in_doubt = in_doubt

    def once(self, lease: int) -> converge.Actions:
        """One pass: converge the containers, then report every wanted node's status."""
        wanted = self.wanted()
        self.hosts_files(wanted)  # a flannel container mounts its cluster's file: it must exist first
        actions = converge.plan_actions(wanted, self.nodes.observed(), self.in_doubt)
        done = self.nodes.apply(actions)
        if self.events is not None:
            record_actions(self.events, done, wanted, self.config.host_name)
        reports = {name: self.nodes.status(node, self.config.host_name) for name, node in wanted.items()}
        self.addresses = {name: report["address"] for name, report in reports.items() if report.get("address")}
        status = self.hosts_files(wanted)
        self.report(wanted, reports, lease)
        self.serve_gateway(status)
        return actions

    def serve_gateway(self, status: dict | None = None) -> None:
        """On the gateway host: serve every deployed cluster's UIs with its own credentials (``status``: every
        host's reports when this pass has read them already)."""
        if self.gateway is None:
            return
        status = self.store.status() if status is None else status
        self.gateway.sync(gateway_policy.routes(self.records, self.store.gateway_entries(), status))

    def hosts_files(self, wanted: dict) -> dict | None:
        """Write the hosts file of every flannel cluster with a node here; remove those of the others.
        Returns every host's reports when it read them (a flannel cluster has a node here), else None."""
        files = self.nodes.hosts_files
        clusters = {node.cluster for node in wanted.values() if node.network_driver == flannel.DRIVER}
        # every host's reports, read once for all the clusters (they are keyed by host, not by cluster)
        status = self.store.status() if clusters else None
        for cluster in sorted(clusters):
            local = {name: address for name, address in self.addresses.items()
                     if name in wanted and wanted[name].cluster == cluster}
            reports = [report for (owner, _node), report in (status or {}).items() if owner == cluster]
            if files.write(cluster, flannel.cluster_addresses(reports, local)):
                LOG.info("hosts file of cluster %s updated (%s)", cluster, files.path(cluster))
        files.prune(clusters | set(self.in_doubt))  # a held container keeps the file it mounts
        return status

    def report(self, wanted: dict, reports: dict, lease: int) -> None:
        if not lease:
            return  # not registered yet: reports go on the host's lease
        now = time.time()
        current = set()
        for name, node in wanted.items():
            key = (node.cluster, node.node)
            current.add(key)
            report = reports[name]
            value = converge.status_value(report)
            last = self.reported.get(key)
            # unchanged reports are refreshed now and then, so observed_at tells a stale agent
            if last and last[0] == value and now - last[1] < 30 and last[2] == lease:
                continue
            self.store.put_status(self.config.host_name, node.cluster, node.node,
                                  converge.status_value(converge.stamp(report, now)), lease)
            self.reported[key] = (value, now, lease)
        for key in sorted(set(self.reported) - current):
            if key[0] in self.in_doubt:
                continue  # held as it runs: its last report stays until the record is understood again
            self.store.delete_status(self.config.host_name, *key)
            del self.reported[key]

    def run(self, agent: "Agent") -> None:
        while not agent.stopping.is_set():
            try:
                actions = self.once(agent.lease)
                if not actions.empty:
                    LOG.info("converged: %d created, %d started, %d removed", len(actions.create),
                             len(actions.start), len(actions.remove))
            except (DcmError, OSError) as exc:
                LOG.warning("converge: %s", exc)
            except Exception as exc:  # pylint: disable=broad-except  # Docker SDK errors: retry next pass
                LOG.warning("converge: %s: %s", type(exc).__name__, exc)
            agent.stopping.wait(self.config.converge_interval)


def record_actions(events: EventLog, done: converge.Actions, wanted: dict, host: str) -> None:
    """One event per container the converger removed, started or created (in that order, as done)."""
    for container in done.remove:
        why = "its configuration changed" if container.name in wanted else "no desired cluster places it here"
        events.record("remove", f"removed {container.name} from {host}: {why}",
                      cluster=container.labels.get(labels.CLUSTER), node=container.labels.get(labels.NODE),
                      host=host, container=container.name)
    for node, container in done.start:
        events.record("start", f"started {node.name} on {host} again (it was {container.state})",
                      cluster=node.cluster, node=node.node, host=host, container=node.name)
    for node in done.create:
        events.record("create", f"created {node.name} on {host}", cluster=node.cluster, node=node.node,
                      host=host, container=node.name, image=node.image)


def make_converger(config: AgentConfig) -> Converger | None:
    """The converger, or None (logged) when convergence is off or Docker cannot be used."""
    if not config.converge:
        return None
    try:
        import docker  # pylint: disable=import-outside-toplevel
    except ImportError:
        LOG.error("the Docker SDK for Python is missing (apt install python3-docker): this host registers "
                  "but runs no DCSpark containers")
        return None
    client = docker.DockerClient(base_url=config.docker_url, version="auto", timeout=600)
    etcd = EtcdClient(config.etcd)
    nodes = converge.DockerNodes(client, last_used_file=config.last_used_file, log=LOG,
                                 hosts_files=flannel.HostsFiles(config.hosts_dir),
                                 subnet_file=config.flannel_subnet_file, container_uid=config.container_uid,
                                 registry_auth_file=config.registry_auth_file)
    gateway = Gateway(client, config.gateway_container, config.gateway_dir, LOG) if config.gateway_port else None
    return Converger(config, etcd, nodes, events=DcmStore(etcd).agent_event_log(config.host_name, log=LOG),
                     gateway=gateway)


def make_gc_timers(config: AgentConfig) -> GcTimers | None:
    """The GC timers, or None (logged) when both are off or the agent has no Docker access."""
    if not (config.container_gc_interval or config.image_gc_interval):
        LOG.info("garbage collection is off (container_gc_interval and image_gc_interval are 0)")
        return None
    if not config.converge:
        LOG.info("garbage collection is off: convergence is off, so this agent does not use Docker")
        return None
    etcd = EtcdClient(config.etcd)
    containers = f"every {config.container_gc_interval:g} s" if config.container_gc_interval else "off"
    images = (f"every {config.image_gc_interval:g} s, above {config.image_gc_threshold:.0%} disk use"
              if config.image_gc_interval else "off")
    LOG.info("container GC %s; image GC %s", containers, images)
    return GcTimers(config.host_name, config.gc_settings(), etcd, events=DcmStore(etcd).agent_event_log(config.host_name, log=LOG))


def show_registration(config: AgentConfig) -> int:
    """``dcm-agent --show``: print this host's record from etcd (exit 1 when it is not registered)."""
    return daemon.show(DcmStore(EtcdClient(config.etcd)).raw_host(config.host_name),
                       f"{config.host_name} is not registered in etcd (no host record)")


def main(argv: list | None = None) -> int:
    path, show = daemon.command_line(argv, "DCM_AGENT_CONFIG", DEFAULT_CONFIG_PATH)
    daemon.start_logging()
    try:
        config = load_config(path)
        if show:
            return show_registration(config)
        agent = Agent(config, EtcdClient(config.etcd))
    except DcmError as exc:
        LOG.error("%s", exc)
        return 2
    daemon.stop_on_signals(agent.stop)
    try:
        converger = make_converger(config)
    except Exception as exc:  # pylint: disable=broad-except  # a Docker engine that does not answer yet
        LOG.error("cannot use the Docker engine at %s (%s): registering only; restart the agent once Docker runs",
                  config.docker_url, exc)
        converger = None
    agent.run(ready=lambda: daemon.notify_systemd("READY=1\nSTATUS=registered"), converger=converger,
              gc_timers=make_gc_timers(config))
    return 0
