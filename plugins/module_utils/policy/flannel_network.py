"""flannel's network configuration, validated as flanneld validates it (pure: no I/O).

The configuration every flanneld of the pool reads from ``<prefix>/config`` is the JSON object flannel
documents (Documentation/configuration.md): ``Network``, ``SubnetLen``, optionally ``SubnetMin`` and
``SubnetMax``, and ``Backend``. :func:`desired_config` builds it from the parameters of
``dcm_flannel_config`` (and the flannel role's variables), refusing what flanneld's CheckNetworkConfig
would refuse; :func:`stranding_changes` says which differences from a stored configuration strand every
host's subnet lease. Reading and writing the key is :mod:`..state.flannel_network`'s business.
"""

from __future__ import annotations

import ipaddress
import json

from ..core.errors import DcmError

# Keys whose change strands every host's subnet lease (flannel's Documentation/running.md, "Making changes at
# runtime": the network range and the backend type cannot be changed without downtime).
GUARDED = ("Network", "SubnetLen", "Backend")
VNI_MAX = (1 << 24) - 1  # a VXLAN network identifier has 24 bits


class ConfigError(DcmError, ValueError):
    """A parameter flannel would refuse; the message starts with the parameter's name."""


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
