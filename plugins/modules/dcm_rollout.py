#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_rollout
short_description: Move a DCSpark cluster to its new generation a few nodes at a time
version_added: 0.2.0
description:
  - Carries out the rolling change M(dcspark.dcm.dcm_cluster) started (the C(rollout) of the record
    C(/dcm/clusters/<name>)). Nodes not moved yet keep running as the previous generation; each step marks
    the next nodes as moved in one guarded etcd transaction, and the agents replace exactly those containers.
  - Order, workers O(batch) at a time (by number), then the driver, the master last. A step starts only when
    every node moved before runs at the new generation and its health check passes, so a running Spark
    application loses a few executors at a time and never its master until the end.
  - When the last node is moved the rollout ends (the record no longer carries it); the cluster then
    converges like any deploy (M(dcspark.dcm.dcm_pool_info) says C(converged)).
  - A record without a rollout is left alone (C(changed=false)). When a step does not become ready within
    O(step_timeout) seconds the module fails naming the nodes and what their agents report; the rollout stays
    where it is, so running the deploy again continues it, and a rollback replaces it.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Returns the steps it would take; writes nothing.
  diff_mode:
    support: none
    description: Nothing to compare; the result lists what was done.
  idempotent:
    support: full
    description: A cluster whose rollout is over is left unchanged.
seealso:
  - module: dcspark.dcm.dcm_cluster
  - module: dcspark.dcm.dcm_pool_info
options:
  name:
    description: Name of the cluster.
    type: str
    required: true
  batch:
    description: How many workers move in one step; at least 1.
    type: int
    default: 2
  step_timeout:
    description: Seconds the nodes of one step may take to run healthy at the new generation.
    type: int
    default: 600
  poll:
    description: Seconds between two reads of the agents' reports.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
- name: Move face to its new generation, two workers at a time
  dcspark.dcm.dcm_rollout:
    name: face
    batch: 2
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
  register: face_rollout
"""

RETURN = r"""
generation:
  description: The generation the cluster moved to.
  returned: success
  type: int
from_generation:
  description: The generation it replaced; null when there was no rollout.
  returned: success
  type: int
steps:
  description:
    - Each step in order, with the C(nodes) moved and C(seconds) since the module started. In check mode the
      steps it would take.
  returned: success
  type: list
  elements: dict
  sample: [{"nodes": ["worker-1", "worker-2"], "seconds": 0.1}, {"nodes": ["worker-3"], "seconds": 14.2}]
waiting:
  description: On a step timeout, each node still waited for and what its agent reports.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.rollout import planned_steps, roll


def run_rollout(m: DcmModule) -> None:
    params, result = m.params, m.result
    result.update(steps=[], generation=None, from_generation=None)
    if params["batch"] < 1 or params["step_timeout"] < 1 or params["poll"] <= 0:
        raise DcmError(f"batch and step_timeout must be at least 1 and poll above 0, got batch {params['batch']}, "
                       f"step_timeout {params['step_timeout']}, poll {params['poll']}")
    store = m.store()
    if m.check_mode:
        record = store.get_cluster(params["name"]) or {}
        result["generation"] = record.get("generation")
        result["from_generation"] = ((record.get("rollout") or {}).get("from") or {}).get("generation")
        result["steps"] = planned_steps(record, params["batch"])
        result["changed"] = bool(result["steps"])
    else:
        result["changed"] = roll(store, params["name"], params["batch"], params["step_timeout"], params["poll"], result)


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "name": {"type": "str", "required": True},
            "batch": {"type": "int", "default": 2},
            "step_timeout": {"type": "int", "default": 600},
            "poll": {"type": "float", "default": 1.0},
        },
        supports_check_mode=True,
    ).run(run_rollout)


if __name__ == "__main__":
    main()
