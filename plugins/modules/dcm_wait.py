#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_wait
short_description: Wait until a DCSpark cluster runs every node and its Spark master reports every worker ALIVE
version_added: 0.3.0
description:
  - Waits until the agents run every node of the cluster's current generation (as they report it under
    C(/dcm/status/)) and the cluster's Spark master lists as many ALIVE workers as the spec asks for, printing one
    progress line whenever it changes (for example C(face - 4/5 nodes running, 1/3 workers ALIVE)) instead of
    a retry line per poll.
  - Stops at once, failing with the DCM master's reason, when the cluster is degraded (a node fits nowhere).
  - On timeout, fails naming the nodes not running yet and what their agents report.
  - The waiting and printing happen on the control node (an action plugin); each poll runs this module once on
    the target host, which reads etcd and the master's C(/json/) page.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  action:
    support: full
    description: The polling loop and its progress lines run on the control node.
  check_mode:
    support: none
    description: In check mode nothing was deployed to wait for; skip the task there.
  diff_mode:
    support: none
    description: Reads only.
  idempotent:
    support: full
    description: Reads only.
options:
  cluster:
    description: Name of the cluster.
    type: str
    required: true
  alive:
    description:
      - Also wait until the Spark master reports every worker ALIVE. The master's page is read through the
        pool's UI gateway with the cluster's own credentials (TLS checked with O(etcd_ca_cert), the pool's CA),
        so a wait that ends also means the gateway serves the cluster.
    type: bool
    default: true
  generation:
    description:
      - The generation the waiting run reserved or found (M(dcspark.dcm.dcm_cluster)'s result). When the record
        is gone while the run waits, the wait then fails saying the cluster was undeployed meanwhile (a concurrent
        undeploy won), not that it was never deployed.
    type: int
  timeout:
    description: Seconds to wait in all.
    type: int
    default: 900
  poll:
    description: Seconds between two looks.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
- name: Wait until face runs
  dcspark.dcm.dcm_wait:
    cluster: face
    timeout: 600
  register: face_status
"""

RETURN = r"""
clusters:
  description: The cluster as M(dcspark.dcm.dcm_pool_info) shows it (a list of one), when the wait ended.
  returned: always
  type: list
  elements: dict
alive:
  description: How many workers the Spark master reports ALIVE.
  returned: always
  type: int
progress:
  description: The last progress line.
  returned: always
  type: str
done:
  description: Every node runs at the current generation and (with O(alive)) every worker is ALIVE.
  returned: always
  type: bool
seconds:
  description: How long the wait took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.wait import observe


def look(m: DcmModule) -> None:
    m.result.update(observe(m.store(), m.params["cluster"], m.params["alive"], cafile=m.params.get("etcd_ca_cert"),
                            generation=m.params.get("generation")))


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "alive": {"type": "bool", "default": True},
            "generation": {"type": "int"},
            "timeout": {"type": "int", "default": 900},
            "poll": {"type": "float", "default": 1.0},
        },
        supports_check_mode=False,
    ).run(look)


if __name__ == "__main__":
    main()
