#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_flannel_config
short_description: Write flannel's network configuration to etcd
version_added: 0.1.0
description:
  - Writes the network configuration every flanneld of the pool reads, under flannel's documented etcd v3 key
    C(<prefix>/config) (default C(/coreos.com/network/config)), as the JSON object flannel documents - C(Network),
    C(SubnetLen), optionally C(SubnetMin) and C(SubnetMax), and C(Backend) (C(Type) V(vxlan) with optional C(VNI),
    C(Port), C(DirectRouting), or V(host-gw)).
  - Validates the configuration as flanneld does before anything is written - O(network) is an IPv4 network in CIDR
    form of at most /28, O(subnet_len) leaves room for at least four host subnets and is at most /30, O(subnet_min)
    and O(subnet_max) lie in the network on a subnet boundary.
  - Refuses to change C(Network), C(SubnetLen) or C(Backend) of an existing configuration unless O(force=true) -
    every host holds a subnet lease (C(<prefix>/subnets/<ip>-<len>)) cut from the old values, so such a change
    strands every host's subnet and its containers until flanneld restarts on all hosts (and Docker with it).
    C(SubnetMin), C(SubnetMax) and other keys may change without O(force).
  - The write is a transaction that fails if the key changed since it was read (nothing is lost to a concurrent
    writer).
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Reports whether the configuration would be created or changed, and refuses the same changes; writes nothing.
  diff_mode:
    support: full
    description: The configuration JSON before and after.
  idempotent:
    support: full
    description: The same configuration again changes nothing (values are compared, not text).
options:
  prefix:
    description:
      - flannel's etcd prefix, the value of flanneld's C(--etcd-prefix). The configuration is C(<prefix>/config).
    type: str
    default: /coreos.com/network
  network:
    description:
      - The IPv4 network of the whole flannel network in CIDR form (C(Network)), for example V(10.40.0.0/16).
    type: str
    required: true
  subnet_len:
    description:
      - Prefix length of each host's subnet (C(SubnetLen)). At least the network's prefix length + 2 (flannel needs
        room for four subnets) and at most 30.
    type: int
    default: 24
  subnet_min:
    description:
      - First subnet flannel may lease (C(SubnetMin)), an address in O(network) on a O(subnet_len) boundary.
        Unset - flannel's default, the second subnet of the network.
    type: str
  subnet_max:
    description:
      - Last subnet flannel may lease (C(SubnetMax)), an address in O(network) on a O(subnet_len) boundary.
        Unset - flannel's default, the last subnet of the network.
    type: str
  backend:
    description:
      - The backend (C(Backend)).
    type: dict
    default: {}
    suboptions:
      type:
        description:
          - C(Type). V(vxlan) encapsulates in the kernel's VXLAN and works across routed networks; V(host-gw) adds
            routes to the other hosts' subnets via their addresses and needs direct layer 2 connectivity between hosts.
        type: str
        choices: [vxlan, host-gw]
        default: vxlan
      vni:
        description: C(VNI) of the vxlan backend (flannel's default is 1). vxlan only.
        type: int
      port:
        description: C(Port), the UDP port of the vxlan backend (flannel's default is the kernel's, 8472). vxlan only.
        type: int
      direct_routing:
        description: C(DirectRouting) of the vxlan backend - routes like host-gw to hosts on the same subnet. vxlan only.
        type: bool
  force:
    description:
      - Replace an existing configuration whose C(Network), C(SubnetLen) or C(Backend) differ. Stop flanneld on every
        host first and restart it (and Docker) everywhere afterwards; every host gets a new subnet.
    type: bool
    default: false
notes:
  - Current flannel reads its configuration with the etcd v3 API; a configuration written with the v2 API
    (C(etcdctl set)) is invisible to it. This module writes through the v3 API.
seealso:
  - name: flannel configuration
    description: The keys of the configuration and flanneld's flags.
    link: https://github.com/flannel-io/flannel/blob/master/Documentation/configuration.md
  - name: flannel backends
    description: The options of each backend.
    link: https://github.com/flannel-io/flannel/blob/master/Documentation/backends.md
"""

EXAMPLES = r"""
- name: The pool's flannel network, once per pool
  dcspark.dcm.dcm_flannel_config:
    network: 10.40.0.0/16
    subnet_len: 24
    backend:
      type: vxlan
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
    etcd_ca_cert: "{{ dcm_etcd_ca_cert }}"
    etcd_client_cert: "{{ dcm_etcd_client_cert }}"
    etcd_client_key: "{{ dcm_etcd_client_key }}"
  run_once: true

- name: host-gw on a flat layer 2 network, under another prefix
  dcspark.dcm.dcm_flannel_config:
    prefix: /dcspark/network
    network: 10.41.0.0/16
    backend:
      type: host-gw
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
"""

RETURN = r"""
key:
  description: The etcd key of the configuration.
  returned: always
  type: str
  sample: /coreos.com/network/config
config:
  description: The configuration the key holds after the run (what it would hold, in check mode).
  returned: success
  type: dict
  sample: {"Network": "10.40.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}
previous:
  description: The configuration the key held before the run (its raw text if it was not JSON), or null.
  returned: success
  type: raw
leases:
  description: The host subnet leases under C(<prefix>/subnets/) when the module ran (keys such as C(10.40.3.0-24)).
  returned: success
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.flannel_network import desired_config, stranding_changes
from ansible_collections.dcspark.dcm.plugins.module_utils.state.flannel_network import (
    DEFAULT_PREFIX, FlannelNetwork, config_key,
)


def text(value: object) -> str:
    """A configuration as the diff shows it (empty when absent)."""
    if value is None:
        return ""
    return (json.dumps(value, indent=2, sort_keys=True) if isinstance(value, dict) else str(value)) + "\n"


def configure(m: DcmModule) -> None:
    params = m.params
    key = config_key(params["prefix"])
    desired = desired_config(params["network"], params["subnet_len"], params["subnet_min"],
                             params["subnet_max"], params["backend"])
    m.result["key"] = key
    network = FlannelNetwork(m.store().client, params["prefix"])
    current = network.read()
    leases = network.leases()
    previous = current.value
    changed = previous != desired
    if changed and current.exists:
        stranded = stranding_changes(previous, desired)
        if stranded and not params["force"]:
            m.fail(f"{key} already holds a different flannel network ({'; '.join(stranded)}). Changing Network, "
                   f"SubnetLen or Backend strands every host's subnet ({len(leases)} lease(s) under "
                   f"{network.leases_prefix}) and the containers on them. Keep the stored values, or stop flanneld on "
                   f"every host, set force=true (flannel_config_force in the flannel role) and restart flanneld "
                   f"and Docker everywhere.",
                   previous=previous, config=desired, leases=leases)
    if changed and not m.check_mode:
        network.write(desired, current)
    m.result.update(changed=changed, config=desired, previous=previous, leases=leases,
                    diff={"before": text(previous), "after": text(desired), "before_header": key, "after_header": key})


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={
            "prefix": {"type": "str", "default": DEFAULT_PREFIX},
            "network": {"type": "str", "required": True},
            "subnet_len": {"type": "int", "default": 24},
            "subnet_min": {"type": "str"},
            "subnet_max": {"type": "str"},
            "backend": {
                "type": "dict",
                "default": {},
                "options": {
                    "type": {"type": "str", "choices": ["vxlan", "host-gw"], "default": "vxlan"},
                    "vni": {"type": "int"},
                    "port": {"type": "int"},
                    "direct_routing": {"type": "bool"},
                },
            },
            "force": {"type": "bool", "default": False},
        },
        etcd="required",
        supports_check_mode=True,
    )
    m.run(configure)


if __name__ == "__main__":
    main()
