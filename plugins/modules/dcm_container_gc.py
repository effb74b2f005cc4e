#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_container_gc
short_description: Remove exited DCSpark containers that no desired cluster still needs
version_added: 0.1.0
description:
  - Runs the container garbage collector of the DCSpark paper on the Docker engine of the host it runs on
    (the DCM agent does the same every 5 minutes).
  - Considers only containers with the DCSpark label C(org.dcspark.managed=true); a container without it
    is never listed, let alone removed.
  - Removes the DCSpark containers that are C(exited) or C(dead) unless a desired cluster still places
    their node on this host with the same spec hash (labels C(org.dcspark.cluster),
    C(org.dcspark.node), C(org.dcspark.spec-hash)); the agent restarts such a container rather than
    recreating it. Running, paused, restarting and created containers are kept.
  - The desired state comes from etcd, from O(desired), or from both combined. Without either the
    module fails and removes nothing.
  - Removal is never forced, so a container started since the plan was made is refused by Docker and
    reported in RV(not_removed). Anonymous volumes go with their container; named volumes stay.
author:
  - DCSpark developers (@dcspark)
requirements:
  - The Docker SDK for Python (C(docker) on PyPI, C(python3-docker) on Debian) on the managed host.
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Plans only; RV(plan) lists the containers that would go.
  diff_mode:
    support: full
    description: The names of the DCSpark containers in scope before and after the run.
  idempotent:
    support: full
    description: A second run with the same desired state finds nothing more to remove.
options:
  host_name:
    description:
      - Name of this host in the DCSpark pool, as it appears in cluster placements.
      - Defaults to the short host name of the machine the module runs on.
    type: str
  desired:
    description:
      - Cluster records (as stored under C(/dcm/clusters/) in etcd) whose nodes are kept, for running
        without etcd. A record needs C(name), C(placement) (C(master), C(driver), C(workers[]) to host
        names) and C(spec_hash).
      - Give V([]) to say explicitly that no cluster is desired. Combined with etcd's records when
        O(etcd_endpoints) is also set.
    type: list
    elements: dict
  scope_labels:
    description:
      - "Only DCSpark containers carrying all these labels (with these values) are considered, for example
        C({org.dcspark.cluster: face})."
    type: dict
  docker_host:
    description:
      - Docker engine to use, as a Docker SDK base URL.
    type: str
    default: unix://var/run/docker.sock
"""

EXAMPLES = r"""
- name: Remove exited DCSpark containers that no cluster in etcd still needs
  dcspark.dcm.dcm_container_gc:
    etcd_endpoints: ["https://10.0.0.11:2379", "https://10.0.0.12:2379"]
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
  register: container_gc

- name: List what would go
  dcspark.dcm.dcm_container_gc:
    etcd_endpoints: ["https://10.0.0.11:2379"]
  check_mode: true
  register: preview

- name: Show their names
  ansible.builtin.debug:
    msg: "{{ preview.plan.selected | map(attribute='name') | list }}"

- name: Clean up the exited containers of a cluster that was removed, on a host without etcd access
  dcspark.dcm.dcm_container_gc:
    desired: []
    scope_labels:
      org.dcspark.cluster: face
"""

RETURN = r"""
plan:
  description:
    - C(selected) lists the containers chosen (C(id), C(name), C(cluster), C(node), C(state));
      C(kept) maps the id of every other DCSpark container in scope to why it stays (its state, or
      V(needed by a desired cluster)).
  returned: success
  type: dict
  sample:
    selected: [{"id": "4f3a...", "name": "spark-worker-face-2", "cluster": "face", "node": "worker-2", "state": "exited"}]
    kept: {"9c1d...": "running", "77ab...": "needed by a desired cluster"}
    host_name: node1
removed:
  description: Ids of the containers removed (empty in check mode).
  returned: success
  type: list
  elements: str
  sample: ["4f3a..."]
kept:
  description: Ids of the DCSpark containers in scope that stay, with the reason (same as C(plan.kept)).
  returned: success
  type: dict
  sample: {"9c1d...": "running"}
not_removed:
  description: Selected containers Docker refused to remove, by id, with Docker's message.
  returned: success
  type: dict
  sample: {"4f3a...": "Docker refused: You cannot remove a running container 4f3a..."}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.host.docker import DEFAULT_DOCKER_HOST, short_hostname
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.gc_pass import CONTAINERS, gc_pass


def collect(m: DcmModule) -> None:
    params = m.params
    done = gc_pass(CONTAINERS, params["host_name"] or short_hostname(), store=m.store(), desired=params["desired"],
                   docker_url=params["docker_host"], scope=params["scope_labels"], check_mode=m.check_mode)
    m.result.update(
        changed=bool(done.gone),
        plan=done.plan,
        removed=done.removed,
        kept=done.kept,
        not_removed=done.not_removed,
        diff=done.diff(),
    )


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={
            "host_name": {"type": "str"},
            "desired": {"type": "list", "elements": "dict"},
            "scope_labels": {"type": "dict"},
            "docker_host": {"type": "str", "default": DEFAULT_DOCKER_HOST},
        },
        etcd="optional",
        supports_check_mode=True,
    )
    m.run(collect)


if __name__ == "__main__":
    main()
