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
  etcd_user:
    description:
      - etcd user this client acts as once etcd's role-based access is on (the identities are in
        C(docs/security.md)); requires O(etcd_password_file).
      - etcd's JSON gateway, which the modules speak, takes no user from a certificate's common name, and refuses
        a certificate that has one once access control is on. So, with a user, present a client certificate
        without a common name.
    type: str
  etcd_password_file:
    description:
      - File holding the password of O(etcd_user) (the file alone, on the host the module runs on; the password
        is never a module parameter).
    type: path
  etcd_identity_file:
    description:
      - JSON file on the host the module runs on naming the etcd identity modules act as there, an object with the
        keys C(user) and C(password_file). site.yml writes C(/etc/dcm/etcd/modules.json) on every host (etcd's
        root on a master, the host's agent identity elsewhere), so one C(module_defaults) entry fits a module
        wherever it runs, delegated tasks included.
      - Read only when neither O(etcd_user) nor O(etcd_password_file) is given. A missing file means no user
        (a pool whose etcd has no access control yet).
    type: path
  etcd_timeout:
    description:
      - Seconds to wait for one etcd request before trying the next endpoint.
    type: float
    default: 5.0
"""
