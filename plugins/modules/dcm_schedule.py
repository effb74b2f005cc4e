#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_schedule
short_description: Plan where the nodes of a DCSpark cluster go
version_added: 0.1.0
description:
  - Runs the DCM scheduler of the DCSpark paper on a cluster spec and returns the placement of its
    master, driver and workers, with every host's scores and the reasons it was chosen or excluded.
  - "Preselection keeps the hosts with enough free CPU and memory. The master, then the driver, go to
    the feasible host with the lowest least-requested rate C(Σc/C + Σm/M) (Eq. 2; ties: fewer DCSpark
    nodes, then the host name). Workers fill hosts in descending order of C(floor(min(Cr/Cw, Mr/Mw)))
    (Eq. 3; ties: hosts already holding the cluster, then the name), so the cluster spans as few hosts
    as possible."
  - All or nothing. When a node does not fit, the module fails with a message naming the node and what
    the best host had left.
  - The module only plans. It never reserves anything, so it reports C(changed=false) and behaves the
    same in check mode. M(dcspark.dcm.dcm_cluster) commits a plan atomically.
  - Plans against the hosts given in O(hosts) (what-if planning) or, when O(hosts) is omitted, against
    the live pool in etcd (hosts whose agent holds a lease and that are not cordoned, minus what other
    clusters reserve; the cluster's own current reservation is not counted, as for a re-plan).
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: The module never changes anything; check mode returns the same plan.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Planning the same spec on the same pool returns the same placement.
options:
  spec:
    description:
      - The cluster spec, as a path to its JSON file on the host that runs the module, or as a dict.
      - Validated against the collection's JSON Schema before anything else.
    type: raw
    required: true
  hosts:
    description:
      - Hosts to plan on instead of the live pool (what-if planning).
      - O(hosts[].cpus) and O(hosts[].memory) are the allocatable capacity C and M (total minus the
        reserve for the host's own daemons).
    type: list
    elements: dict
    suboptions:
      name:
        description: Host name.
        type: str
        required: true
      cpus:
        description: Allocatable CPUs (fractions allowed).
        type: float
        required: true
      memory:
        description: Allocatable memory, in bytes or with a k/m/g/t suffix (binary units).
        type: str
        required: true
      requested_cpus:
        description: CPUs already requested by DCSpark nodes on the host.
        type: float
        default: 0
      requested_memory:
        description: Memory already requested by DCSpark nodes on the host.
        type: str
        default: '0'
      nodes:
        description: Number of DCSpark nodes already on the host (tie-break of Eq. 2).
        type: int
        default: 0
      cordoned:
        description: Whether the host is cordoned (never a candidate).
        type: bool
        default: false
"""

EXAMPLES = r"""
- name: What-if plan of the face cluster on three hosts, one of them half used
  dcspark.dcm.dcm_schedule:
    spec: specs/face.json
    hosts:
      - {name: node1, cpus: 16, memory: 64g}
      - {name: node2, cpus: 16, memory: 64g, requested_cpus: 8, requested_memory: 32g, nodes: 3}
      - {name: node3, cpus: 8, memory: 32g}
  register: plan

- name: Plan against the live pool in etcd
  dcspark.dcm.dcm_schedule:
    spec: "{{ lookup('ansible.builtin.file', 'specs/face.json') | from_json }}"
    etcd_endpoints: ["https://10.0.0.11:2379", "https://10.0.0.12:2379"]
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
  register: plan

- name: Show where the workers go
  ansible.builtin.debug:
    var: plan.placement.workers
"""

RETURN = r"""
placement:
  description: Host of each node; the i-th entry of C(workers) (counting from 0) is the host of node C(worker-<i+1>).
  returned: success
  type: dict
  sample: {"master": "node1", "driver": "node3", "workers": ["node1", "node1", "node3"]}
hosts_used:
  description: Names of the hosts that receive at least one node, sorted.
  returned: success
  type: list
  elements: str
  sample: ["node1", "node3"]
hosts:
  description:
    - Every host considered, in input order, with C(status) (V(chosen), V(candidate) or V(excluded)),
      its capacity and what was already requested, the Eq. 2 C(rates) computed for the master and the
      driver, the Eq. 3 C(worker_slots), the nodes C(placed) there and the C(reasons) it was excluded
      or could not take a role.
    - Also returned when planning fails.
  returned: always
  type: list
  elements: dict
  sample:
    - {"name": "node2", "status": "candidate", "cpus": 16, "memory": 68719476736, "requested_cpus": 8,
       "requested_memory": 34359738368, "rates": {"master": 1.0, "driver": 1.0}, "worker_slots": 4,
       "placed": [], "reasons": []}
node:
  description: The node that did not fit, when planning fails.
  returned: failure
  type: str
  sample: worker-5
spec_hash:
  description: Content hash (sha256) of the normalized spec.
  returned: success
  type: str
revision:
  description: etcd revision the live pool was read at (only when planning against etcd).
  returned: when O(hosts) is omitted
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import plan_cluster, what_if_hosts
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.loading import spec_from_param
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import spec_hash

HOST_OPTIONS = {
    "name": {"type": "str", "required": True},
    "cpus": {"type": "float", "required": True},
    "memory": {"type": "str", "required": True},
    "requested_cpus": {"type": "float", "default": 0},
    "requested_memory": {"type": "str", "default": "0"},
    "nodes": {"type": "int", "default": 0},
    "cordoned": {"type": "bool", "default": False},
}


def schedule(m: DcmModule) -> None:
    spec = spec_from_param(m.params["spec"])
    if m.params["hosts"] is not None:
        hosts = what_if_hosts(m.params["hosts"])
    else:
        store = m.store()
        if store is None:
            m.fail("give either hosts (what-if planning) or etcd_endpoints (plan on the live pool)")
        snapshot = store.snapshot()
        m.result["revision"] = snapshot.revision
        hosts = snapshot.pool(exclude_cluster=spec["name"])
    summary = plan_cluster(spec, hosts).to_dict()  # a ScheduleError fails with its node and hosts
    m.result.update(
        placement=summary["placement"],
        hosts_used=summary["hosts_used"],
        hosts=summary["hosts"],
        spec_hash=spec_hash(spec),
    )


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={
            "spec": {"type": "raw", "required": True},
            "hosts": {"type": "list", "elements": "dict", "options": HOST_OPTIONS},
        },
        etcd="optional",
        supports_check_mode=True,
    )
    m.run(schedule)


if __name__ == "__main__":
    main()
