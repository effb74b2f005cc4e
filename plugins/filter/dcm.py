# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)
"""Jinja filters for CPU and memory quantities, the scheduler's Eq. 2 and the status text (docs: the .yml files here)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import UnitError
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.scheduler import least_requested_rate as _rate
from ansible_collections.dcspark.dcm.plugins.module_utils.core.units import format_memory, parse_cpus, parse_memory
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.views import SECTIONS, status_text


def _memory(value: object, what: str) -> int:
    # Jinja arithmetic ("a / 2") gives floats; a whole float is still a byte count.
    if isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
        value = int(value)
    try:
        return parse_memory(value)
    except UnitError as exc:
        raise AnsibleFilterError(f"{what}: {exc}") from None


def _cpus(value: object, what: str) -> int:
    try:
        return parse_cpus(value)
    except UnitError as exc:
        raise AnsibleFilterError(f"{what}: {exc}") from None


def memory_bytes(value: object) -> int:
    """``"4g"`` -> ``4294967296`` (binary units; an int passes through)."""
    return _memory(value, "memory_bytes")


def memory_human(value: object) -> str:
    """Bytes (or any size memory_bytes accepts) -> the shortest exact form: ``4294967296`` -> ``"4g"``."""
    return format_memory(_memory(value, "memory_human"))


def cpus_milli(value: object) -> int:
    """CPUs -> millicpus: ``2`` -> ``2000``, ``0.5`` -> ``500``, ``"1500m"`` -> ``1500``."""
    return _cpus(value, "cpus_milli")


def least_requested_rate(host: object) -> float:
    """Eq. 2 of the DCSpark paper for a host dict: ``requested_cpus/cpus + requested_memory/memory``."""
    if not isinstance(host, Mapping):
        raise AnsibleFilterError(
            "least_requested_rate: expects a host dict with cpus, memory, requested_cpus and requested_memory, "
            f"got {type(host).__name__}"
        )
    missing = [key for key in ("cpus", "memory") if key not in host]
    if missing:
        raise AnsibleFilterError(f"least_requested_rate: the host dict lacks {' and '.join(missing)} (its capacity)")
    cpus = _cpus(host["cpus"], "least_requested_rate: cpus")
    memory = _memory(host["memory"], "least_requested_rate: memory")
    if cpus == 0 or memory == 0:
        raise AnsibleFilterError(
            f"least_requested_rate: the host has no capacity (cpus={host['cpus']!r}, memory={host['memory']!r}); "
            "Eq. 2 divides by both"
        )
    requested_cpus = _cpus(host.get("requested_cpus", 0), "least_requested_rate: requested_cpus")
    requested_memory = _memory(host.get("requested_memory", 0), "least_requested_rate: requested_memory")
    return _rate(cpus, memory, requested_cpus, requested_memory)


def pool_address(host: object) -> str:
    """The address other pool hosts reach a host on, from its hostvars.

    The first that is set of ``dcm_address`` (inventory), ``ansible_default_ipv4.address`` (gathered
    facts), ``ansible_host``, ``inventory_hostname``. Role defaults are not visible through another
    host's hostvars, so every cross-host address (etcd peers, registry) goes through here.
    """
    if not isinstance(host, Mapping):
        raise AnsibleFilterError(
            "pool_address: expects a host's variables, e.g. groups.dcm_masters | map('extract', hostvars), "
            f"got {type(host).__name__}"
        )
    explicit = host.get("dcm_address")
    if explicit:
        return str(explicit)
    ipv4 = host.get("ansible_default_ipv4") or {}
    if isinstance(ipv4, Mapping) and ipv4.get("address"):
        return str(ipv4["address"])
    for key in ("ansible_host", "inventory_hostname"):
        if host.get(key):
            return str(host[key])
    raise AnsibleFilterError("pool_address: the host has neither dcm_address, gathered facts, ansible_host "
                             "nor inventory_hostname")


def status_lines(view: object, section: object = None, now: object = None) -> list:
    """The pool view of dcm_pool_info (its registered result) as status.yml prints it: aligned lines.

    ``section`` is hosts, clusters or events (all three when omitted); ``now`` (seconds since the
    epoch) is what ages are counted from, the current time when omitted.
    """
    if not isinstance(view, Mapping) or not isinstance(view.get("hosts"), list) \
            or not isinstance(view.get("clusters"), list):
        raise AnsibleFilterError("status_lines: expects the result of dcspark.dcm.dcm_pool_info (a dict with hosts "
                                 f"and clusters), got {type(view).__name__}")
    if section is not None and section not in SECTIONS:
        raise AnsibleFilterError(f"status_lines: section must be one of {', '.join(SECTIONS)}, got {section!r}")
    if now is not None and (isinstance(now, bool) or not isinstance(now, (int, float))):
        raise AnsibleFilterError(f"status_lines: now is seconds since the epoch, got {now!r}")
    try:
        return status_text(view, None if section is None else str(section), time.time() if now is None else now)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise AnsibleFilterError(f"status_lines: the view does not read as dcm_pool_info's ({exc})") from None


class FilterModule:
    """DCSpark quantity filters and the status text."""

    def filters(self) -> dict:
        return {
            "memory_bytes": memory_bytes,
            "memory_human": memory_human,
            "cpus_milli": cpus_milli,
            "least_requested_rate": least_requested_rate,
            "pool_address": pool_address,
            "status_lines": status_lines,
        }
