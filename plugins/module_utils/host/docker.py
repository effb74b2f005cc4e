"""The I/O edge of garbage collection on one Docker host (DCSpark paper, section 4.3).

The policy lives in :mod:`..policy.gc` and takes values; this module reads them
from a Docker engine through the Docker SDK for Python, removes what a plan
selected, and turns cluster records into what desired clusters place on one
host. Where the records come from (etcd, or a module's ``desired``) is the
business of :mod:`..ops.gc_pass`, which runs a whole pass: nothing here reads
the pool's state.

Reading is split from parsing: ``images_from_df`` and ``containers_from_list``
are pure (they take the SDK's raw dicts), so they are unit tested without an
engine. Removal never forces: a Docker conflict (a container created in the
meantime, dependent child images) is reported as skipped with Docker's own
message, and the next image is tried.

The Docker SDK is imported only when a client is created, so the rest of the
module imports anywhere.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..core import labels
from ..core.errors import DcmError
from ..policy.gc import ContainerInfo, ImageInfo
from ..policy.rollout import node_views
from .files import atomic_write

DEFAULT_DOCKER_HOST = "unix://var/run/docker.sock"
DEFAULT_LAST_USED_FILE = "/var/lib/dcm/image-last-used.json"
SDK_MISSING = "install the docker Python SDK (pip install docker, or Debian python3-docker)"

_NONE_TAG = "<none>:<none>"
_NONE_DIGEST = "<none>@<none>"


class DockerHostError(DcmError):
    """The Docker engine or a file GC depends on could not be used."""


# -- connecting -------------------------------------------------------------------------
def connect(base_url: str = DEFAULT_DOCKER_HOST, timeout: float = 60.0):
    """A low-level Docker SDK client (``docker.APIClient``) that has answered a ping."""
    try:
        import docker  # the Docker SDK for Python; optional for the rest of the collection
    except ImportError:
        raise DockerHostError(f"the Docker SDK for Python is missing: {SDK_MISSING}") from None
    try:
        client = docker.APIClient(base_url=base_url, version="auto", timeout=int(timeout))
    except Exception as exc:  # the SDK raises DockerException, and plain errors for bad URLs
        raise DockerHostError(f"cannot reach the Docker engine at {base_url}: {exc}") from None
    try:
        client.ping()
    except Exception as exc:  # connection refused, permission denied on the socket
        client.close()
        raise DockerHostError(f"the Docker engine at {base_url} does not answer: {exc}") from None
    return client


def _docker_errors():
    import docker.errors

    return docker.errors


def _ask(client, call: str, **kwargs):
    """One read from the engine; any failure becomes a :class:`DockerHostError` naming the call."""
    try:
        return getattr(client, call)(**kwargs)
    except Exception as exc:  # APIError, connection and timeout errors of requests
        raise DockerHostError(f"reading {call} from the Docker engine failed: {_explain(exc)}") from None


def _explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


# -- last use of images --------------------------------------------------------------------
def read_last_used(path: str) -> dict:
    """``{image_id: epoch_seconds}`` recorded by the agent on container starts; ``{}`` if absent."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DockerHostError(
            f"{path}: cannot read the image last-use record ({exc}); fix or delete it "
            "(GC then falls back to image creation times)"
        ) from None
    if not isinstance(data, dict):
        raise DockerHostError(f"{path}: expected a JSON object of image id -> epoch seconds, got {type(data).__name__}")
    result = {}
    for image_id, when in data.items():
        if isinstance(when, bool) or not isinstance(when, (int, float)):
            raise DockerHostError(f"{path}: last use of {image_id} is {when!r}, expected epoch seconds")
        result[str(image_id)] = float(when)
    return result


def record_image_use(path: str, image_id: str, when: float | None = None) -> None:
    """Record that a container of ``image_id`` started at ``when`` (default: now).

    Atomic (a temporary file in the same directory, then rename), and never
    moves a last use back in time. An unreadable file is started afresh: a
    lost history only makes GC fall back to creation times.
    """
    when = time.time() if when is None else float(when)
    try:
        entries = read_last_used(path)
    except DockerHostError:
        entries = {}
    entries[image_id] = max(when, entries.get(image_id, when))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    atomic_write(path, json.dumps(entries, sort_keys=True, indent=0), 0o644)


def _last_use(last_used: dict, image_id: str) -> float | None:
    if image_id in last_used:
        return last_used[image_id]
    return last_used.get(image_id.split(":", 1)[-1])  # also accept ids without "sha256:"


# -- images ------------------------------------------------------------------------------------
def labels_match(image_labels: dict | None, scope: dict | None) -> bool:
    """True when ``image_labels`` carry every ``label: value`` of ``scope`` (values compared as text)."""
    present = image_labels or {}
    return all(present.get(name) == str(value) for name, value in (scope or {}).items())


@dataclass
class ImageInventory:
    """What the image GC reads from one engine."""

    data_root: str
    capacity: int  # C: bytes of the filesystem under the data root
    used: int  # U: bytes used by all images, shared layers counted once (LayersSize)
    images: list = field(default_factory=list)  # ImageInfo of the images in scope
    out_of_scope: int = 0  # images the scope labels left out


def images_from_df(df: dict, last_used: dict | None = None, scope: dict | None = None) -> tuple:
    """``(images, out_of_scope)`` from the ``/system/df`` answer (pure).

    Unique size is ``Size - SharedSize`` (the bytes removing this image alone
    frees). An image is in use when any container, whatever its state, runs it.
    Last use is the recorded one, else the image's creation time.
    """
    last_used = last_used or {}
    used_by = {container.get("ImageID") for container in df.get("Containers") or []}
    images = []
    left_out = 0
    for raw in df.get("Images") or []:
        image_labels = raw.get("Labels") or {}
        if not labels_match(image_labels, scope):
            left_out += 1
            continue
        image_id = raw["Id"]
        size = int(raw.get("Size") or 0)
        shared = int(raw.get("SharedSize") or 0)
        unique = size - shared if shared >= 0 else size  # -1: the engine did not compute it
        recorded = _last_use(last_used, image_id)
        images.append(ImageInfo(
            id=image_id,
            unique_size=max(unique, 0),
            last_used=recorded if recorded is not None else float(raw.get("Created") or 0),
            dcspark=labels.is_managed(image_labels),
            in_use=image_id in used_by,
            tags=tuple(tag for tag in raw.get("RepoTags") or () if tag != _NONE_TAG),
            digests=tuple(digest for digest in raw.get("RepoDigests") or () if digest != _NONE_DIGEST),
        ))
    return images, left_out


def filesystem_capacity(path: str, statvfs: Callable = os.statvfs) -> int:
    """Total bytes of the filesystem holding ``path``."""
    stat = statvfs(path)
    return int(stat.f_blocks) * int(stat.f_frsize)


def gather_images(
    client,
    last_used: dict | None = None,
    scope: dict | None = None,
    statvfs: Callable = os.statvfs,
) -> ImageInventory:
    """Read C, U and the images in scope from the engine behind ``client`` (one ``df`` call)."""
    info = _ask(client, "info")
    data_root = info.get("DockerRootDir") or ""
    df = _ask(client, "df")
    try:
        capacity = filesystem_capacity(data_root, statvfs)
    except (OSError, ValueError) as exc:
        raise DockerHostError(
            f"cannot measure the filesystem under Docker's data root {data_root!r} from this machine "
            f"({getattr(exc, 'strerror', None) or exc}); Eq. 1 needs its capacity, so run the image GC "
            "on the Docker host itself (is the engine remote?)"
        ) from None
    if capacity <= 0:
        raise DockerHostError(f"the filesystem under Docker's data root {data_root!r} reports a size of 0 bytes")
    images, out_of_scope = images_from_df(df, last_used, scope)
    return ImageInventory(
        data_root=data_root,
        capacity=capacity,
        used=int(df.get("LayersSize") or 0),
        images=images,
        out_of_scope=out_of_scope,
    )


def remove_image(client, image: ImageInfo) -> str | None:
    """Remove one image without forcing; returns None when it is gone, else why it was kept.

    An image with one reference is removed by id, which lets Docker check for
    containers and child images atomically. Docker refuses that (unless forced)
    for an image with several references, so those are first untagged down to
    one, after checking that no container uses it and no image builds on it.
    Untagged parent images that only this image kept go with it, as with
    ``docker rmi``: ``df`` counts their layers in this image's unique size.
    """
    errors = _docker_errors()
    untagged = []
    try:
        if not single_reference(image.tags, image.digests):
            blocker = _removal_blocker(client, image.id)
            if blocker:
                return blocker
            keep = (list(image.tags) + list(image.digests))[0]
            for reference in list(image.tags) + list(image.digests):
                if reference != keep:
                    client.remove_image(reference, force=False)
                    untagged.append(reference)
        answer = client.remove_image(image.id, force=False)
    except errors.APIError as exc:
        if _status(exc) == 404 and not untagged:
            return "no longer exists"
        note = f" (after untagging {', '.join(untagged)})" if untagged else ""
        return f"Docker refused: {_explain(exc)}{note}"
    except Exception as exc:  # the engine went away mid-run: report it, try the next image
        return f"Docker did not answer: {exc}"
    deleted = {entry.get("Deleted") for entry in answer or () if isinstance(entry, dict)}
    if image.id not in deleted:
        return "Docker untagged the image but kept it (another image builds on it)"
    return None


def repository(reference: str) -> str:
    """``reg:5000/spark`` of ``reg:5000/spark:4`` or ``reg:5000/spark@sha256:..``."""
    name = reference.partition("@")[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name


def single_reference(tags: Iterable[str], digests: Iterable[str]) -> bool:
    """Whether Docker removes the image by id without force: at most one tag, one repository."""
    tags = list(tags)
    if len(tags) > 1:
        return False
    return len({repository(ref) for ref in tags + list(digests)}) <= 1


def _removal_blocker(client, image_id: str) -> str | None:
    """Why removing ``image_id`` would conflict now (containers using it, child images), if it would."""
    users = client.containers(all=True, filters={"ancestor": image_id})
    direct = [c for c in users if c.get("ImageID") == image_id]
    if direct:
        names = ", ".join((c.get("Names") or [c["Id"][:12]])[0].lstrip("/") for c in direct)
        return f"used by container {names} (created after the plan was made)"
    children = [i["Id"] for i in client.images(all=True) if i.get("ParentId") == image_id]
    if children:
        return f"image has dependent child images: {', '.join(c[:19] for c in children)}"
    return None


def remove_images(client, images: Iterable[ImageInfo]) -> tuple:
    """``(removed_ids, {id: reason})``: each image is tried in turn; a refusal never stops the rest."""
    removed, skipped = [], {}
    for image in images:
        reason = remove_image(client, image)
        if reason is None:
            removed.append(image.id)
        else:
            skipped[image.id] = reason
    return removed, skipped


# -- containers -------------------------------------------------------------------------------
def containers_from_list(raw_containers: Iterable[dict]) -> list:
    """``ContainerInfo`` of DCSpark containers from ``/containers/json`` entries (pure)."""
    found = []
    for raw in raw_containers:
        container_labels = raw.get("Labels") or {}
        if not labels.is_managed(container_labels):
            continue  # never consider a container without the DCSpark label, whatever the filter did
        names = raw.get("Names") or []
        found.append(ContainerInfo(
            id=raw["Id"],
            name=names[0].lstrip("/") if names else raw["Id"][:12],
            state=raw.get("State") or "unknown",
            cluster=container_labels.get(labels.CLUSTER),
            node=container_labels.get(labels.NODE),
            spec_hash=container_labels.get(labels.SPEC_HASH),
        ))
    return found


def gather_containers(client, scope: dict | None = None) -> list:
    """DCSpark containers of every state carrying all ``scope`` labels."""
    filters = [labels.MANAGED_FILTER] + [f"{name}={value}" for name, value in (scope or {}).items()]
    return containers_from_list(_ask(client, "containers", all=True, filters={"label": filters}))


def remove_containers(client, containers: Iterable[ContainerInfo]) -> tuple:
    """``(removed_ids, {id: reason})``; never forced, so Docker refuses a container started meanwhile.

    Anonymous volumes go with their container; named volumes stay.
    """
    errors = _docker_errors()
    removed, skipped = [], {}
    for container in containers:
        try:
            client.remove_container(container.id, v=True, force=False)
        except errors.APIError as exc:
            skipped[container.id] = "no longer exists" if _status(exc) == 404 else f"Docker refused: {_explain(exc)}"
        except Exception as exc:  # the engine went away mid-run
            skipped[container.id] = f"Docker did not answer: {exc}"
        else:
            removed.append(container.id)
    return removed, skipped


# -- desired state -------------------------------------------------------------------------------
def short_hostname() -> str:
    return socket.gethostname().split(".", 1)[0]


def normalize_reference(reference: str) -> str:
    """An image reference spelled as Docker lists it in RepoTags / RepoDigests.

    ``debian`` -> ``debian:latest``; ``docker.io/library/debian:12`` -> ``debian:12``;
    ``reg:5000/spark:4@sha256:..`` -> ``reg:5000/spark@sha256:..``; ids are unchanged.
    """
    name, _at, digest = reference.partition("@")
    if name.startswith("sha256:") and not digest:
        return reference
    slash = name.rfind("/")
    colon = name.rfind(":")
    has_tag = colon > slash
    repository = name[:colon] if has_tag else name
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if repository.startswith(prefix):
            repository = repository[len(prefix):]
            break
    if digest:
        return f"{repository}@{digest}"
    return f"{repository}:{name[colon + 1:] if has_tag else 'latest'}"


@dataclass(frozen=True)
class DesiredOnHost:
    """What desired clusters place on one host."""

    image_refs: frozenset  # image references (as recorded and normalized) of nodes placed here
    nodes: frozenset  # (cluster, node, spec_hash) of nodes placed here


def _role(node: str) -> str:
    return node.split("-", 1)[0]  # worker-3 -> worker


def desired_on_host(records: Iterable[dict], host: str) -> DesiredOnHost:
    """Image references and nodes that ``records`` place on ``host``.

    Every record counts, whatever its ``desired_state``: GC keeps what any
    recorded cluster may still need.
    """
    refs, nodes = set(), set()
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not record.get("name"):
            raise DcmError(f"desired[{index}]: a cluster record needs at least 'name' and 'placement'")
        for node, node_host, view in node_views(record):
            if node_host != host:
                continue
            nodes.add((record["name"], node, view.get("spec_hash")))
            reference = (view.get("images") or {}).get(_role(node))
            if reference:
                refs.update((reference, normalize_reference(reference)))
    return DesiredOnHost(image_refs=frozenset(refs), nodes=frozenset(nodes))
