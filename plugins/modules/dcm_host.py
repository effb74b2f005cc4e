#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_host
short_description: Cordon, drain or release a host of the DCSpark pool
version_added: 0.1.0
description:
  - Writes or removes the host's cordon under C(/dcm/cordon/<host>) in etcd.
  - C(cordoned) - the scheduler places no new node on the host; the nodes it holds stay.
  - C(drained) - cordoned, and the leading DCM master moves the nodes it holds to other hosts at its next
    check (the same scheduler; a cluster whose nodes fit nowhere is marked degraded and keeps running here).
  - C(active) - the cordon is removed; the host takes new nodes again (nodes moved away do not come back).
  - The host must be known to the pool - registered by its agent, or holding nodes of a cluster.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Reports whether the cordon would change; writes nothing.
  diff_mode:
    support: full
    description: The host's cordon before and after.
  idempotent:
    support: full
    description: The same state and reason again changes nothing.
options:
  name:
    description: The host, as named in the pool (its inventory name).
    type: str
    required: true
  state:
    description: What the host should be.
    type: str
    choices: [active, cordoned, drained]
    default: cordoned
  reason:
    description: Why, for the status view and the next operator.
    type: str
    default: ""
seealso:
  - module: dcspark.dcm.dcm_pool_info
"""

EXAMPLES = r"""
- name: Move every DCSpark node away from sandbox3 before its disk is replaced
  dcspark.dcm.dcm_host:
    name: sandbox3
    state: drained
    reason: disk replacement
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
    etcd_ca_cert: "{{ dcm_etcd_ca_cert }}"
    etcd_client_cert: "{{ dcm_etcd_client_cert }}"
    etcd_client_key: "{{ dcm_etcd_client_key }}"

- name: Give it back to the scheduler
  dcspark.dcm.dcm_host:
    name: sandbox3
    state: active
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
"""

RETURN = r"""
name:
  description: The host.
  returned: success
  type: str
state:
  description: The host's state after the run (before it, in check mode when it would change).
  returned: success
  type: str
previous:
  description: The cordon the host had before (C(reason), C(since), C(drain)), or null.
  returned: success
  type: dict
nodes:
  description: The nodes placed on the host when the module ran, as C(cluster/node) (a drain moves them).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core import naming
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule


def _state(cordon: dict | None) -> str:
    if cordon is None:
        return "active"
    return "drained" if cordon.get("drain") else "cordoned"


def set_host(m: DcmModule) -> None:
    name, state, reason = m.params["name"], m.params["state"], m.params["reason"]
    store = m.store()
    snap = store.snapshot()
    nodes = sorted(f"{cluster}/{node}" for cluster, record in snap.clusters.items()
                   for node, host in naming.placed_nodes(record) if host == name)
    if name not in snap.hosts and not nodes and name not in snap.cordons:
        m.fail(f"host {name} is not in the pool: no agent registered it and no cluster places a "
               f"node on it (hosts: {', '.join(sorted(snap.hosts)) or 'none'}); check the name")
    previous = snap.cordons.get(name)
    changed = store.set_cordon(name, state != "active", reason=reason, drain=state == "drained",
                               check_mode=m.check_mode)
    m.result.update(changed=changed, name=name, state=state, previous=previous, nodes=nodes,
                    diff={"before": {"state": _state(previous), "reason": (previous or {}).get("reason", "")},
                          "after": {"state": state, "reason": reason if state != "active" else ""}})


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["active", "cordoned", "drained"], "default": "cordoned"},
            "reason": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    ).run(set_host)


if __name__ == "__main__":
    main()
