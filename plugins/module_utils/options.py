"""Option sets shared by modules, agent and master (plain dicts: no Ansible import here)."""

from __future__ import annotations

from .etcd import EtcdConfig

ETCD_OPTIONS = {
    "etcd_endpoints": {"type": "list", "elements": "str", "default": []},
    "etcd_ca_cert": {"type": "path"},
    "etcd_client_cert": {"type": "path"},
    "etcd_client_key": {"type": "path", "no_log": False},
    "etcd_timeout": {"type": "float", "default": 5.0},
}


def etcd_config(params: dict) -> EtcdConfig | None:
    """The etcd connection the parameters ask for, or None when no endpoint is given."""
    endpoints = tuple(params.get("etcd_endpoints") or ())
    if not endpoints:
        return None
    return EtcdConfig(
        endpoints=endpoints,
        ca_cert=params.get("etcd_ca_cert"),
        client_cert=params.get("etcd_client_cert"),
        client_key=params.get("etcd_client_key"),
        timeout=float(params.get("etcd_timeout") or 5.0),
    )
