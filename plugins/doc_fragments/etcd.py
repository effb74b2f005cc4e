# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  etcd_endpoints:
    description:
      - etcd client URLs of the pool's state store, for example V(https://10.0.0.11:2379).
      - Members are tried in order; one that does not answer is skipped.
      - Every module of the collection accepts the etcd options, so that one C(module_defaults) entry for the
        action group C(dcspark.dcm.dcm) serves a whole play; a module that keeps no state in etcd ignores them.
    type: list
    elements: str
    default: []
  etcd_ca_cert:
    description:
      - CA bundle that signed the etcd server certificates.
    type: path
  etcd_client_cert:
    description:
      - Client certificate presented to etcd (etcd runs with client certificate authentication).
    type: path
  etcd_client_key:
    description:
      - Private key of O(etcd_client_cert).
    type: path
  etcd_timeout:
    description:
      - Seconds to wait for one etcd request before trying the next endpoint.
    type: float
    default: 5.0
"""
