"""flannel's own keys in the pool's etcd: its network configuration and its hosts' subnet leases.

flanneld keeps its state under its ``--etcd-prefix`` (default ``/coreos.com/network``), not under
``/dcm/``: ``<prefix>/config`` holds the network configuration every flanneld reads
(Documentation/configuration.md) and ``<prefix>/subnets/<ip>-<len>`` one lease per host
(Documentation/reservations.md). This is the only code of the collection that spells those keys or
writes to them; :mod:`..policy.flannel_network` decides what the configuration is. Writes are guarded
as :class:`..state.store.DcmStore`'s are: one transaction that fails when the key changed since it was read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..core.errors import StoreError
from ..policy.flannel_network import ConfigError
from .etcd import EtcdClient, cmp_absent, cmp_mod_revision, op_put

DEFAULT_PREFIX = "/coreos.com/network"


def config_key(prefix: str) -> str:
    """``<prefix>/config`` the way flanneld builds it (Go's path.Join: one slash, none trailing)."""
    if not prefix.startswith("/"):
        raise ConfigError(f"prefix: must start with / (flanneld's --etcd-prefix), got {prefix!r}")
    cleaned = "/" + "/".join(part for part in prefix.split("/") if part)
    return cleaned.rstrip("/") + "/config"


def subnets_prefix(prefix: str) -> str:
    return config_key(prefix)[: -len("config")] + "subnets/"


@dataclass(frozen=True)
class StoredConfig:
    """What ``<prefix>/config`` held when it was read."""

    value: object  # the JSON configuration, its raw text when it is not JSON, or None when absent
    mod_revision: int  # 0 when absent

    @property
    def exists(self) -> bool:
        return self.mod_revision > 0


class FlannelNetwork:
    """flannel's configuration key and subnet leases under ``prefix``, on the etcd behind ``client``."""

    def __init__(self, client: EtcdClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.key = config_key(prefix)
        self.leases_prefix = subnets_prefix(prefix)

    def read(self) -> StoredConfig:
        """The stored configuration (a value that is not JSON is returned as its text, never as absent)."""
        kv = self.client.get(self.key)
        if kv is None:
            return StoredConfig(None, 0)
        try:
            value: object = json.loads(kv.value)
        except ValueError:
            value = kv.value
        return StoredConfig(value, kv.mod_revision)

    def leases(self) -> list:
        """The hosts' subnet leases, by key below ``<prefix>/subnets/`` (such as ``10.40.3.0-24``), sorted."""
        kvs, _revision = self.client.get_prefix(self.leases_prefix, keys_only=True)
        return sorted(kv.key[len(self.leases_prefix):] for kv in kvs)

    def write(self, config: dict, read: StoredConfig) -> None:
        """Store ``config`` unless the key changed since ``read`` (then :class:`StoreError`, nothing written)."""
        guard = cmp_mod_revision(self.key, read.mod_revision) if read.exists else cmp_absent(self.key)
        succeeded, _responses, _rev = self.client.txn([guard], [op_put(self.key, json.dumps(config))])
        if not succeeded:
            raise StoreError(f"{self.key} changed while this module was writing it (another writer); run again")
