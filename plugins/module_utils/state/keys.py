"""The etcd key layout of DCM (v3 API): the one place keys are spelled.

``/dcm/hosts/<host>``        host record, written by its agent on a lease
``/dcm/cordon/<host>``       present while the operator keeps the host cordoned
``/dcm/clusters/<name>``     desired state of one cluster (spec, images, placement)
``/dcm/status/<host>/<name>/<node>`` what the agent of ``host`` observes of one node it runs (keyed by
                             host first, so etcd can let an agent write its own reports and no other's)
``/dcm/generations/<name>/<N>`` one retained generation of a cluster (spec, images, placement, who, when)
``/dcm/registry/prune/<name>/<N>`` images of a generation no longer retained, for the registry to delete
``/dcm/registry/lock/shared/<lease>`` one build pushing to the registry (on its own lease)
``/dcm/registry/lock/exclusive`` the registry's garbage collection, running or waiting for the pushes to end
``/dcm/leader``              the DCM master in charge (on its lease)
``/dcm/events/<writer>/<time>`` what the masters and agents did (each writer keeps its newest): an
                             agent writes under ``agent-<host>``, a master under ``master-<name>``
``/dcm/jobs/<name>/<id>``    one job submitted to a cluster (ids sort by submission time; newest kept)
``/dcm/images/<name>/<tag>`` the digests the pool's own build pushed for a content tag (provenance)
``/dcm/secrets/<name>``      a cluster's secrets (Spark's, the Jupyter token) and the hosts holding a copy
``/dcm/host-secrets/<host>/<name>`` the copy of a cluster's secrets the agent of a host running its nodes reads
"""

from __future__ import annotations

PREFIX = "/dcm/"
HOSTS = PREFIX + "hosts/"
CORDON = PREFIX + "cordon/"
CLUSTERS = PREFIX + "clusters/"
STATUS = PREFIX + "status/"
LEADER = PREFIX + "leader"
EVENTS = PREFIX + "events/"
GENERATIONS = PREFIX + "generations/"
REGISTRY_PRUNE = PREFIX + "registry/prune/"
REGISTRY_LOCK_SHARED = PREFIX + "registry/lock/shared/"
REGISTRY_LOCK_EXCLUSIVE = PREFIX + "registry/lock/exclusive"
JOBS = PREFIX + "jobs/"
IMAGES = PREFIX + "images/"
SECRETS = PREFIX + "secrets/"
HOST_SECRETS = PREFIX + "host-secrets/"
GATEWAY = PREFIX + "gateway/"


def host_key(host: str) -> str:
    return HOSTS + host


def cordon_key(host: str) -> str:
    return CORDON + host


def cluster_key(name: str) -> str:
    return CLUSTERS + name


def host_status_prefix(host: str) -> str:
    """Every status report of the agent on ``host``."""
    return f"{STATUS}{host}/"


def status_key(host: str, cluster: str, node: str) -> str:
    return f"{host_status_prefix(host)}{cluster}/{node}"


def status_parts(key: str) -> tuple | None:
    """``(host, cluster, node)`` of a status key; None for a key of another shape (a pool's reports from
    before status was keyed by host: they go with the leases they were written on)."""
    parts = name_from_key(STATUS, key).split("/")
    return tuple(parts) if len(parts) == 3 and all(parts) else None


def events_prefix(writer: str) -> str:
    """The events of one writer (``agent-<host>``, ``master-<name>``, a module's name)."""
    if not writer[:1].isalpha() or "/" in writer:  # digits begin the keys of the old flat layout
        raise ValueError(f"{writer!r} is not an event writer's name")
    return f"{EVENTS}{writer}/"


def agent_writer(host: str) -> str:
    """The event writer of the agent on ``host``."""
    return f"agent-{host}"


def generations_prefix(cluster: str) -> str:
    return f"{GENERATIONS}{cluster}/"


def generation_key(cluster: str, generation: int) -> str:
    """``/dcm/generations/face/0000000007``: zero-padded, so keys sort by generation."""
    return f"{generations_prefix(cluster)}{int(generation):010d}"


def jobs_prefix(cluster: str) -> str:
    return f"{JOBS}{cluster}/"


def job_key(cluster: str, job_id: str) -> str:
    return jobs_prefix(cluster) + job_id


def images_prefix(cluster: str) -> str:
    return f"{IMAGES}{cluster}/"


def images_key(cluster: str, tag: str) -> str:
    return images_prefix(cluster) + tag


def secrets_key(cluster: str) -> str:
    return SECRETS + cluster


def host_secrets_prefix(host: str) -> str:
    return f"{HOST_SECRETS}{host}/"


def host_secrets_key(host: str, cluster: str) -> str:
    return host_secrets_prefix(host) + cluster


def gateway_key(cluster: str) -> str:
    """What the pool's UI gateway needs of ``cluster``: its user and password hash (never the password)."""
    return GATEWAY + cluster


def prune_key(cluster: str, generation: int) -> str:
    return f"{REGISTRY_PRUNE}{cluster}/{int(generation):010d}"


def registry_shared_key(lease: int) -> str:
    """The key of one build's shared hold on the registry, named by the lease it lives on."""
    return f"{REGISTRY_LOCK_SHARED}{int(lease):x}"


def name_from_key(prefix: str, key: str) -> str:
    """``/dcm/hosts/h1`` -> ``h1`` for ``prefix`` ``/dcm/hosts/``."""
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} is not under {prefix!r}")
    return key[len(prefix):]


def prefix_end(prefix: str) -> str:
    """The etcd range end that covers every key starting with ``prefix``."""
    data = prefix.encode("utf-8")
    return (data[:-1] + bytes([data[-1] + 1])).decode("utf-8")
