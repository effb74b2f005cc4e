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

import ipaddress
import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.etcd import (
    EtcdClient, cmp_absent, cmp_mod_revision, op_put,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.options import ETCD_OPTIONS, etcd_config

# Keys whose change strands every host's subnet lease (flannel's Documentation/running.md, "Making changes at
# runtime": the network range and the backend type cannot be changed without downtime).
GUARDED = ("Network", "SubnetLen", "Backend")
VNI_MAX = (1 << 24) - 1  # a VXLAN network identifier has 24 bits


class ConfigError(ValueError):
    """A parameter flannel would refuse; the message starts with the parameter's name."""


def config_key(prefix: str) -> str:
    """``<prefix>/config`` the way flanneld builds it (Go's path.Join: one slash, none trailing)."""
    if not prefix.startswith("/"):
        raise ConfigError(f"prefix: must start with / (flanneld's --etcd-prefix), got {prefix!r}")
    cleaned = "/" + "/".join(part for part in prefix.split("/") if part)
    return cleaned.rstrip("/") + "/config"


def subnets_prefix(prefix: str) -> str:
    return config_key(prefix)[: -len("config")] + "subnets/"


def _address(name: str, value: str, network: ipaddress.IPv4Network, subnet_len: int) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not an IPv4 address") from None
    if address not in network:
        raise ConfigError(f"{name}: {address} is not in network {network}")
    if int(address) % (1 << (32 - subnet_len)):
        raise ConfigError(f"{name}: {address} is not on a /{subnet_len} boundary (subnet_len)")
    return str(address)


def desired_config(network: str, subnet_len: int = 24, subnet_min: str | None = None,
                   subnet_max: str | None = None, backend: dict | None = None) -> dict:
    """flannel's configuration JSON for these parameters, validated as flanneld's CheckNetworkConfig does."""
    try:
        net = ipaddress.IPv4Network(network, strict=True)
    except ValueError as exc:
        hint = ""
        try:
            hint = f"; did you mean {ipaddress.IPv4Network(network, strict=False)}?"
        except ValueError:
            pass
        raise ConfigError(f"network: {network!r} is not an IPv4 network in CIDR form ({exc}){hint}") from None
    if net.prefixlen > 28:
        raise ConfigError(f"network: {net} is too small for flannel (at most /28)")
    low = net.prefixlen + 2
    if not low <= subnet_len <= 30:
        raise ConfigError(f"subnet_len: must be between {low} and 30 for network {net} (room for at least four "
                          f"host subnets, at most /30), got {subnet_len}")
    config: dict = {"Network": str(net), "SubnetLen": subnet_len}
    if subnet_min:
        config["SubnetMin"] = _address("subnet_min", subnet_min, net, subnet_len)
    if subnet_max:
        config["SubnetMax"] = _address("subnet_max", subnet_max, net, subnet_len)
    if subnet_min and subnet_max and ipaddress.IPv4Address(subnet_min) > ipaddress.IPv4Address(subnet_max):
        raise ConfigError(f"subnet_min: {subnet_min} is above subnet_max {subnet_max}")

    backend = dict(backend or {})
    kind = backend.get("type") or "vxlan"
    if kind not in ("vxlan", "host-gw"):
        raise ConfigError(f"backend.type: must be vxlan or host-gw, got {kind!r}")
    config["Backend"] = {"Type": kind}
    for option, key in (("vni", "VNI"), ("port", "Port"), ("direct_routing", "DirectRouting")):
        value = backend.get(option)
        if value is None:
            continue
        if kind != "vxlan":
            raise ConfigError(f"backend.{option}: only the vxlan backend takes {key}; remove it for {kind}")
        if option == "vni" and not 1 <= value <= VNI_MAX:
            raise ConfigError(f"backend.vni: must be between 1 and {VNI_MAX}, got {value}")
        if option == "port" and not 1 <= value <= 65535:
            raise ConfigError(f"backend.port: must be a UDP port (1-65535), got {value}")
        config["Backend"][key] = value
    return config


def effective(config: dict) -> dict:
    """The guarded values as flanneld reads them: SubnetLen and Backend filled with flannel's defaults."""
    result = {key: config.get(key) for key in GUARDED}
    try:
        prefixlen = ipaddress.IPv4Network(str(config.get("Network")), strict=False).prefixlen
    except ValueError:
        prefixlen = None
    if not result["SubnetLen"] and prefixlen is not None:
        result["SubnetLen"] = 24 if prefixlen <= 22 else prefixlen + 2  # flannel's pkg/subnet/config.go
    if not result["Backend"]:
        result["Backend"] = {"Type": "udp"}  # configuration.md: "Defaults to udp backend"
    return result


def stranding_changes(previous: object, desired: dict) -> list:
    """``["Network 10.40.0.0/16 -> 10.50.0.0/16", ...]``: the guarded differences (all of them if not JSON)."""
    if not isinstance(previous, dict):
        return ["the stored value is not a JSON object"]
    old, new = effective(previous), effective(desired)
    return [f"{key} {json.dumps(old[key], sort_keys=True)} -> {json.dumps(new[key], sort_keys=True)}"
            for key in GUARDED if old[key] != new[key]]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prefix": {"type": "str", "default": "/coreos.com/network"},
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
            **ETCD_OPTIONS,
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        key = config_key(params["prefix"])
        desired = desired_config(params["network"], params["subnet_len"], params["subnet_min"],
                                 params["subnet_max"], params["backend"])
    except ConfigError as exc:
        module.fail_json(msg=str(exc))
    config = etcd_config(params)
    if config is None:
        module.fail_json(msg="etcd_endpoints is empty: give the pool's etcd client URLs, e.g. ['https://10.0.0.11:2379']",
                         key=key)

    try:
        client = EtcdClient(config)
        current = client.get(key)
        leases_prefix = subnets_prefix(params["prefix"])
        lease_kvs, _revision = client.get_prefix(leases_prefix, keys_only=True)
        leases = sorted(kv.key[len(leases_prefix):] for kv in lease_kvs)
        previous: object = None
        if current is not None:
            try:
                previous = json.loads(current.value)
            except ValueError:
                previous = current.value
        changed = previous != desired
        if changed and current is not None:
            stranded = stranding_changes(previous, desired)
            if stranded and not params["force"]:
                module.fail_json(
                    msg=f"{key} already holds a different flannel network ({'; '.join(stranded)}). Changing Network, "
                        f"SubnetLen or Backend strands every host's subnet ({len(leases)} lease(s) under "
                        f"{leases_prefix}) and the containers on them. Keep the stored values, or stop flanneld on "
                        f"every host, set force=true (flannel_config_force in the flannel role) and restart flanneld "
                        f"and Docker everywhere.",
                    key=key, previous=previous, config=desired, leases=leases)
        if changed and not module.check_mode:
            guard = cmp_absent(key) if current is None else cmp_mod_revision(key, current.mod_revision)
            succeeded, _responses, _rev = client.txn([guard], [op_put(key, json.dumps(desired))])
            if not succeeded:
                module.fail_json(msg=f"{key} changed while this module was writing it (another writer); run again",
                                 key=key)
    except DcmError as exc:
        module.fail_json(msg=str(exc), key=key)

    def text(value: object) -> str:
        if value is None:
            return ""
        return (json.dumps(value, indent=2, sort_keys=True) if isinstance(value, dict) else str(value)) + "\n"

    module.exit_json(changed=changed, key=key, config=desired, previous=previous, leases=leases,
                     diff={"before": text(previous), "after": text(desired),
                           "before_header": key, "after_header": key})


if __name__ == "__main__":
    main()
