"""What a host can give to DCSpark: CPUs, memory, disk, address, Docker usage.

Readers take a ``root`` directory (default ``/``) so tests can point them at a
fake ``/proc`` and ``/sys/fs/cgroup`` tree. CPUs and memory are the smallest of
what the kernel reports and what the cgroup of this process allows: when the
host is itself a container (the sandbox, a VM image run under Docker), its
cgroup limits win over ``/proc``.

CPUs are integer millicpus and memory bytes, as everywhere in the DCM core.
Nothing here opens a network connection; the address is read from the routing
table and an ``ioctl`` on an unconnected socket.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Callable

# Source names reported as cpu_source / memory_source.
PROC = "proc"
CGROUP_QUOTA = "cgroup-quota"
CPUSET = "cpuset"
CGROUP = "cgroup"

# cgroup v1 reports "no limit" as a huge page-aligned number (2^63 - 4096 on x86_64).
UNLIMITED_FLOOR = 1 << 60

SIOCGIFADDR = 0x8915
RTF_UP = 0x1


@dataclass
class Limited:
    """A quantity and the limit that decided it; ``limits`` holds every limit that was found."""

    value: int
    source: str
    limits: dict = field(default_factory=dict)


# -- small file helpers -------------------------------------------------------
def _path(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# -- cgroup discovery -----------------------------------------------------------
@dataclass(frozen=True)
class _Mount:
    fstype: str  # cgroup or cgroup2
    root: str  # the part of the hierarchy this mount shows (field 4 of mountinfo)
    point: str  # mount point, absolute inside ``root``
    controllers: frozenset


def _mounts(root: str) -> list:
    """cgroup mounts from ``/proc/self/mountinfo`` (empty when it cannot be read)."""
    text = _read(_path(root, "/proc/self/mountinfo")) or ""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if len(after) < 3 or after[0] not in ("cgroup", "cgroup2"):
            continue
        controllers = frozenset(after[2].split(",")) if after[0] == "cgroup" else frozenset()
        mounts.append(_Mount(after[0], fields[3], _unescape(fields[4]), controllers))
    return mounts


def _unescape(text: str) -> str:
    # mountinfo escapes blanks and backslashes as octal (\040).
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _proc_cgroups(root: str) -> dict:
    """``{controller: path}`` of this process; v2's unified entry is under the key ``""``."""
    text = _read(_path(root, "/proc/self/cgroup")) or ""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2] or "/"
    return paths


def _chain(leaf: str, top: str) -> list:
    """``leaf`` and its parents up to and including ``top`` (the mount point)."""
    dirs = [leaf]
    while os.path.normpath(leaf) != os.path.normpath(top):
        parent = os.path.dirname(leaf.rstrip("/"))
        if parent == leaf or len(parent) < len(top.rstrip("/")):
            break
        dirs.append(parent)
        leaf = parent
    return dirs


def _resolve(root: str, point: str, mount_root: str | None, path: str | None) -> list:
    """Directories of this process's cgroup under one hierarchy, innermost first.

    With mountinfo, the mount's root tells which part of the hierarchy the mount
    shows (a container sees its own cgroup at the mount point). Without it,
    the process's path is tried under the mount point, then the mount point
    itself (a Docker container with a private view of the hierarchy).
    """
    top = _path(root, point)
    if not os.path.isdir(top):
        return []
    path = path or "/"
    if mount_root is not None:
        if mount_root == "/" or path == mount_root or path.startswith(mount_root.rstrip("/") + "/"):
            rel = path[len(mount_root.rstrip("/")):] if mount_root != "/" else path
            leaf = os.path.join(top, rel.lstrip("/"))
            if os.path.isdir(leaf):
                return _chain(os.path.normpath(leaf), os.path.normpath(top))
        return [top]
    leaf = os.path.join(top, path.lstrip("/"))
    if path != "/" and os.path.isdir(leaf):
        return _chain(os.path.normpath(leaf), os.path.normpath(top))
    return [top]


def cgroup_dirs(root: str = "/") -> dict:
    """Where this process's cgroup lives, innermost first, per use: ``cpu``, ``cpuset``, ``memory``.

    Returns ``{"version": 1 | 2 | None, "cpu": [...], "cpuset": [...], "memory": [...]}``.
    """
    base = _path(root, "/sys/fs/cgroup")
    mounts = _mounts(root)
    paths = _proc_cgroups(root)
    if os.path.isfile(os.path.join(base, "cgroup.controllers")):
        mount = next((m for m in mounts if m.fstype == "cgroup2" and m.point == "/sys/fs/cgroup"), None)
        dirs = _resolve(root, "/sys/fs/cgroup", mount.root if mount else None, paths.get(""))
        return {"version": 2, "cpu": dirs, "cpuset": dirs, "memory": dirs}
    found: dict = {"version": None}
    for use, controller, fallbacks in (
        ("cpu", "cpu", ("cpu", "cpu,cpuacct", "cpuacct,cpu")),
        ("cpuset", "cpuset", ("cpuset",)),
        ("memory", "memory", ("memory",)),
    ):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.controllers), None)
        if mount is not None:
            dirs = _resolve(root, mount.point, mount.root, paths.get(controller))
        else:
            point = next((f"/sys/fs/cgroup/{name}" for name in fallbacks
                          if os.path.isdir(os.path.join(base, name))), None)
            dirs = _resolve(root, point, None, paths.get(controller)) if point else []
        found[use] = dirs
        if dirs:
            found["version"] = 1
    return found


# -- CPUs ---------------------------------------------------------------------------
def parse_cpu_list(text: str) -> set:
    """CPU numbers of a kernel list like ``0-3,6`` (empty set for an empty list)."""
    cpus: set = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            first, last = part.split("-", 1)
            cpus.update(range(int(first), int(last) + 1))
        else:
            cpus.add(int(part))
    return cpus


def _quota_milli(directory: str, version: int) -> int | None:
    if version == 2:
        text = _read(os.path.join(directory, "cpu.max"))
        if not text:
            return None
        fields = text.split()
        if fields[0] == "max":
            return None
        try:
            quota, period = int(fields[0]), int(fields[1]) if len(fields) > 1 else 100000
        except ValueError:
            return None
    else:
        quota = _read_int(os.path.join(directory, "cpu.cfs_quota_us"))
        period = _read_int(os.path.join(directory, "cpu.cfs_period_us"))
        if quota is None or quota <= 0 or not period:
            return None
    if quota <= 0 or period <= 0:
        return None
    return quota * 1000 // period


def _cpuset_count(directory: str, version: int) -> int | None:
    names = ("cpuset.cpus.effective", "cpuset.cpus") if version == 2 else ("cpuset.effective_cpus", "cpuset.cpus")
    for name in names:
        text = _read(os.path.join(directory, name))
        if text:
            try:
                return len(parse_cpu_list(text)) or None
            except ValueError:
                return None
    return None


def cpus(root: str = "/", cpu_count: int | None = None) -> Limited:
    """Millicpus this host (or container) can use: the smallest of the CPU count, quota and cpuset.

    ``cpu_count`` defaults to :func:`os.cpu_count`; a cgroup quota applies at
    every level of the hierarchy above this process, the cpuset where it is.
    """
    count = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    result = Limited(count * 1000, PROC, {PROC: count * 1000})
    dirs = cgroup_dirs(root)
    version = dirs["version"]
    if version is None:
        return result
    quotas = [q for q in (_quota_milli(d, version) for d in dirs["cpu"]) if q is not None]
    if quotas:
        result.limits[CGROUP_QUOTA] = min(quotas)
    if dirs["cpuset"]:
        count = _cpuset_count(dirs["cpuset"][0], version)
        if count is not None:
            result.limits[CPUSET] = count * 1000
    for source in (CPUSET, CGROUP_QUOTA):  # ties go to the earlier, wider limit
        if source in result.limits and result.limits[source] < result.value:
            result.value, result.source = result.limits[source], source
    return result


# -- memory ---------------------------------------------------------------------------
def mem_total(root: str = "/") -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes."""
    for line in (_read(_path(root, "/proc/meminfo")) or "").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            value = int(fields[1])
            return value * 1024 if len(fields) > 2 and fields[2].lower() == "kb" else value
    return None


def _memory_limit(directory: str, version: int) -> int | None:
    if version == 2:
        text = _read(os.path.join(directory, "memory.max"))
        if not text or text == "max":
            return None
        try:
            return int(text)
        except ValueError:
            return None
    return _read_int(os.path.join(directory, "memory.limit_in_bytes"))


def memory(root: str = "/") -> Limited:
    """Bytes of memory this host (or container) can use: ``MemTotal`` or a smaller cgroup limit."""
    total = mem_total(root)
    if total is None:
        raise OSError(f"cannot read MemTotal from {_path(root, '/proc/meminfo')}")
    result = Limited(total, PROC, {PROC: total})
    dirs = cgroup_dirs(root)
    if dirs["version"] is None:
        return result
    limits = [
        limit for limit in (_memory_limit(d, dirs["version"]) for d in dirs["memory"])
        # v1 writes "unlimited" as ~2^63; a limit above the RAM is no limit either.
        if limit is not None and 0 < limit < UNLIMITED_FLOOR and limit <= total
    ]
    if limits:
        result.limits[CGROUP] = min(limits)
        if result.limits[CGROUP] < total:
            result.value, result.source = result.limits[CGROUP], CGROUP
    return result


def allocatable(total_cpus_milli: int, total_memory: int, reserve_cpus_milli: int, reserve_memory: int) -> tuple:
    """What DCSpark nodes may request: the total minus the host's reserve, never below 0."""
    return max(total_cpus_milli - reserve_cpus_milli, 0), max(total_memory - reserve_memory, 0)


# -- disk, address, names -------------------------------------------------------------
def disk(path: str = "/") -> dict:
    """Size of the filesystem holding ``path``: total, used, free (root's view) and available (users')."""
    stat = os.statvfs(path)
    total = stat.f_blocks * stat.f_frsize
    free = stat.f_bfree * stat.f_frsize
    return {
        "path": path,
        "total": total,
        "used": total - free,
        "free": free,
        "available": stat.f_bavail * stat.f_frsize,
    }


def default_route_interface(root: str = "/") -> str | None:
    """Interface of the IPv4 default route with the lowest metric, from ``/proc/net/route``."""
    best = None
    for line in (_read(_path(root, "/proc/net/route")) or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, flags, metric, mask = int(fields[1], 16), int(fields[3], 16), int(fields[6]), int(fields[7], 16)
        except ValueError:
            continue
        if destination == 0 and mask == 0 and flags & RTF_UP:
            if best is None or metric < best[0]:
                best = (metric, fields[0])
    return best[1] if best else None


def interface_ipv4(interface: str) -> str | None:
    """IPv4 address of ``interface`` (``SIOCGIFADDR``; the socket is never connected)."""
    import fcntl  # Linux only; imported here so the rest of this module imports anywhere

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", interface[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def address(root: str = "/", lookup: Callable[[str], str | None] = interface_ipv4) -> tuple:
    """``(address, interface, reason)``: the IPv4 of the default-route interface, or None and why."""
    interface = default_route_interface(root)
    if interface is None:
        return None, None, f"no IPv4 default route in {_path(root, '/proc/net/route')}"
    ip = lookup(interface)
    if ip is None:
        return None, interface, f"interface {interface} holds the default route but has no IPv4 address"
    return ip, interface, None


def hostname(root: str = "/") -> str:
    return _read(_path(root, "/proc/sys/kernel/hostname")) or socket.gethostname()


def kernel(root: str = "/") -> str:
    return _read(_path(root, "/proc/sys/kernel/osrelease")) or os.uname().release


# -- Docker ----------------------------------------------------------------------------
def docker_usage(client, statvfs_path: Callable[[str], dict] = disk) -> dict:
    """Docker's data root, the size of its filesystem and what images use, from a Docker SDK client.

    ``images_size`` is ``LayersSize`` of ``docker system df`` (shared layers
    counted once): the ``U`` of the image GC's Eq. 1, ``filesystem.total`` its ``C``.
    """
    info = client.info()
    usage = client.df()
    data_root = info.get("DockerRootDir")
    result = {
        "data_root": data_root,
        "server_version": info.get("ServerVersion"),
        "storage_driver": info.get("Driver"),
        "images_size": int(usage.get("LayersSize") or 0),
        "images": len(usage.get("Images") or []),
        "containers": len(usage.get("Containers") or []),
        "containers_running": int(info.get("ContainersRunning") or 0),
        "filesystem": None,
    }
    if data_root:
        try:
            result["filesystem"] = statvfs_path(data_root)
        except OSError as exc:
            # The engine may be remote (docker_host over ssh) or its root not visible here.
            result["filesystem_error"] = f"cannot stat Docker's data root {data_root} here: {exc.strerror or exc}"
    return result


def docker_facts(base_url: str = "unix://var/run/docker.sock", timeout: float = 10.0) -> tuple:
    """``(facts, None)`` from the engine at ``base_url``, or ``(None, reason)`` when it cannot be read."""
    try:
        import docker  # the Docker SDK for Python
    except ImportError:
        return None, "the Docker SDK for Python (docker) is not installed for this interpreter"
    client = None
    try:
        # The client asks the engine for its API version, so an absent engine fails here already.
        client = docker.APIClient(base_url=base_url, version="auto", timeout=int(timeout))
        return docker_usage(client), None
    except Exception as exc:  # connection refused, permission denied, bad URL, API errors
        return None, f"cannot read the Docker engine at {base_url}: {exc}"
    finally:
        if client is not None:
            client.close()
