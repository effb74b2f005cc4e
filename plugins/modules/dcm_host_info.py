#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_host_info
short_description: Gather what a host can give to DCSpark clusters
version_added: 0.1.0
description:
  - Returns the resources of the host the module runs on, as the DCM agent registers them in etcd and
    as the scheduler and the image garbage collector use them.
  - C(cpus) is the CPU count limited by the CFS quota and the cpuset of the module's cgroup (cgroup v1
    and v2, every level of the hierarchy above the process for the quota); C(memory) is C(MemTotal) of
    C(/proc/meminfo) limited by the cgroup's memory limit. The smallest wins, so when the host is itself
    a container (the sandbox) its cgroup limits win over C(/proc). C(cpu_source) and C(memory_source)
    say which limit decided.
  - C(allocatable) is what DCSpark nodes may request on the host, its capacity C and M in the
    scheduler's Eq. 2 and 3; the total minus O(reserve_cpus) and O(reserve_memory), never below 0.
  - C(docker) reports Docker's data root, the size of its filesystem and the bytes used by images (the
    C and U of the image garbage collector's Eq. 1). When the Docker SDK for Python is missing or the
    engine cannot be reached, C(docker) is null and C(docker_error) says why; the module does not fail.
  - C(address) is the IPv4 address of the interface that holds the default route, read from
    C(/proc/net/route) and the interface itself; the module never opens a connection to another host.
  - Read only. Use C(register) to keep the result; the module sets no C(ansible_facts), as befits an
    C(_info) module.
author:
  - DCSpark developers (@dcspark)
requirements:
  - Linux (C(/proc), C(/sys/fs/cgroup)).
  - The Docker SDK for Python (C(docker)) on the managed host for the C(docker) part only.
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode returns the same facts.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: The module never changes anything.
options:
  reserve_cpus:
    description:
      - CPUs kept for the host's own daemons (Docker, etcd, the DCM agent), subtracted from C(cpus) to
        give C(allocatable.cpus). Fractions down to millicpus are allowed.
    type: float
    default: 0.5
  reserve_memory:
    description:
      - Memory kept for the host's own daemons, in bytes or with a k/m/g/t suffix (binary units),
        subtracted from C(memory) to give C(allocatable.memory).
    type: str
    default: 512m
  gather_docker:
    description:
      - Whether to ask the Docker engine for its data root and disk usage.
    type: bool
    default: true
  docker_host:
    description:
      - Docker engine to ask, as a Docker SDK base URL.
    type: str
    default: unix://var/run/docker.sock
"""

EXAMPLES = r"""
- name: Gather the resources of every pool host
  dcspark.dcm.dcm_host_info:
  register: host

- name: Keep 2 CPUs and 4 GiB for an etcd member and skip Docker
  dcspark.dcm.dcm_host_info:
    reserve_cpus: 2
    reserve_memory: 4g
    gather_docker: false
  register: host

- name: Show what DCSpark nodes may request here
  ansible.builtin.debug:
    msg: "{{ host.allocatable.cpus }} CPUs, {{ host.allocatable.memory | dcspark.dcm.memory_human }}"

- name: Warn when images fill Docker's filesystem beyond the GC threshold
  ansible.builtin.debug:
    msg: "images use {{ (100 * host.docker.images_size / host.docker.filesystem.total) | round(1) }}%"
  when: host.docker is not none and host.docker.filesystem is not none
"""

RETURN = r"""
cpus:
  description: CPUs the host can use (the smallest of the CPU count, the cgroup quota and the cpuset).
  returned: always
  type: float
  sample: 16
cpu_source:
  description: Which limit decided C(cpus).
  returned: always
  type: str
  choices: [proc, cgroup-quota, cpuset]
  sample: proc
memory:
  description: Memory the host can use, in bytes (C(MemTotal), or a smaller cgroup limit).
  returned: always
  type: int
  sample: 67430219776
memory_source:
  description: Which limit decided C(memory).
  returned: always
  type: str
  choices: [proc, cgroup]
  sample: cgroup
limits:
  description:
    - Every limit that was found, by source, so an operator can see why C(cpus) or C(memory) is smaller
      than expected. C(limits.cpus) in CPUs, C(limits.memory) in bytes.
  returned: always
  type: dict
  sample: {"cpus": {"proc": 16, "cpuset": 8, "cgroup-quota": 4.5}, "memory": {"proc": 67430219776, "cgroup": 8589934592}}
reserved:
  description: The reserve that was subtracted (O(reserve_cpus) in CPUs and O(reserve_memory) in bytes).
  returned: always
  type: dict
  sample: {"cpus": 0.5, "memory": 536870912}
allocatable:
  description:
    - What DCSpark nodes may request on the host, C(cpus) in CPUs and C(memory) in bytes; the total
      minus the reserve, never below 0. This is what the DCM agent registers as the host's capacity.
  returned: always
  type: dict
  sample: {"cpus": 15.5, "memory": 66893348864}
disk:
  description: Size in bytes of the filesystem holding C(/).
  returned: always
  type: dict
  contains:
    path:
      description: The path that was measured.
      type: str
      sample: /
    total:
      description: Size of the filesystem.
      type: int
    used:
      description: Bytes in use.
      type: int
    free:
      description: Free bytes (as root sees them).
      type: int
    available:
      description: Free bytes available to unprivileged users.
      type: int
address:
  description: IPv4 address of the interface holding the default route; null when there is none.
  returned: always
  type: str
  sample: 10.0.0.21
interface:
  description: Interface holding the default route; null when there is none.
  returned: always
  type: str
  sample: eth0
address_error:
  description: Why C(address) is null.
  returned: when RV(address) is null
  type: str
  sample: no IPv4 default route in /proc/net/route
hostname:
  description: The kernel's host name.
  returned: always
  type: str
  sample: node1
kernel:
  description: The kernel release.
  returned: always
  type: str
  sample: 6.1.0-26-amd64
docker:
  description:
    - Docker's view of the host; null when O(gather_docker=false) or the engine could not be read
      (see RV(docker_error)).
  returned: always
  type: dict
  contains:
    data_root:
      description: Docker's data root directory.
      type: str
      sample: /var/lib/docker
    filesystem:
      description:
        - Size of the filesystem under the data root (same keys as RV(disk)); C(filesystem.total) is the
          C of the image GC's Eq. 1. Null when the data root is not visible to the module (a remote
          O(docker_host)), with C(filesystem_error) saying why.
      type: dict
    images_size:
      description: Bytes used by images, shared layers counted once (C(LayersSize) of C(docker system df)); the U of Eq. 1.
      type: int
      sample: 3221225472
    images:
      description: Number of images.
      type: int
    containers:
      description: Number of containers, running or not.
      type: int
    containers_running:
      description: Number of running containers.
      type: int
    server_version:
      description: Version of the Docker engine.
      type: str
      sample: 20.10.24+dfsg1
    storage_driver:
      description: Docker's storage driver.
      type: str
      sample: overlay2
  sample:
    data_root: /var/lib/docker
    filesystem: {"path": "/var/lib/docker", "total": 270553174016, "used": 24307994624,
                 "free": 246245179392, "available": 232437342208}
    images_size: 1181116006
    images: 4
    containers: 3
    containers_running: 3
    server_version: 20.10.24+dfsg1
    storage_driver: overlay2
docker_error:
  description: Why RV(docker) is null although O(gather_docker=true).
  returned: when the Docker engine could not be read
  type: str
  sample: "the Docker SDK for Python (docker) is not installed for this interpreter"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError, UnitError
from ansible_collections.dcspark.dcm.plugins.module_utils.core.units import format_cpus, parse_cpus, parse_memory
from ansible_collections.dcspark.dcm.plugins.module_utils.host import hostinfo
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule


def _parsed(name: str, parse, value: object):
    """``parse(value)``; a bad quantity fails naming the option."""
    try:
        return parse(value)
    except UnitError as exc:
        raise DcmError(f"{name}: {exc}") from None


def gather(m: DcmModule) -> None:
    params = m.params
    reserve_cpus = _parsed("reserve_cpus", parse_cpus, params["reserve_cpus"])
    reserve_memory = _parsed("reserve_memory", parse_memory, params["reserve_memory"])
    try:
        cpus = hostinfo.cpus()
        memory = hostinfo.memory()
        disk = hostinfo.disk("/")
    except OSError as exc:
        raise DcmError(f"cannot read the host's resources: {exc}") from None
    alloc_cpus, alloc_memory = hostinfo.allocatable(cpus.value, memory.value, reserve_cpus, reserve_memory)
    address, interface, address_error = hostinfo.address()

    result = m.result
    result.update({
        "cpus": format_cpus(cpus.value),
        "cpu_source": cpus.source,
        "memory": memory.value,
        "memory_source": memory.source,
        "limits": {
            "cpus": {source: format_cpus(value) for source, value in cpus.limits.items()},
            "memory": dict(memory.limits),
        },
        "reserved": {"cpus": format_cpus(reserve_cpus), "memory": reserve_memory},
        "allocatable": {"cpus": format_cpus(alloc_cpus), "memory": alloc_memory},
        "disk": disk,
        "address": address,
        "interface": interface,
        "hostname": hostinfo.hostname(),
        "kernel": hostinfo.kernel(),
        "docker": None,
    })
    if address_error:
        result["address_error"] = address_error
    if params["gather_docker"]:
        result["docker"], docker_error = hostinfo.docker_facts(params["docker_host"])
        if docker_error:
            result["docker_error"] = docker_error


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={
            "reserve_cpus": {"type": "float", "default": 0.5},
            "reserve_memory": {"type": "str", "default": "512m"},
            "gather_docker": {"type": "bool", "default": True},
            "docker_host": {"type": "str", "default": "unix://var/run/docker.sock"},
        },
        etcd=None,
        supports_check_mode=True,
    )
    m.run(gather)


if __name__ == "__main__":
    main()
