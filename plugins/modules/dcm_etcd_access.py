#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_etcd_access
short_description: Make etcd's users and roles those of the pool's identities, then turn authentication on
version_added: 0.3.0
description:
  - Each DCM identity is an etcd user holding the role of its name. V(root) is the operator (everything);
    V(dcm-master) is the DCM master daemon (reads the pool's state, writes cluster records, the leader key and
    events); V(dcm-agent-<host>) is the agent of one host (reads cluster records, host records and status, writes
    its own host record, node status and events). The permissions are written once, in the collection's state
    layer (C(plugins/module_utils/state/access.py)), and listed in C(docs/security.md).
  - The module adds missing users and roles, grants what is missing, revokes what is extra, removes the DCM users
    and roles of hosts that left the pool, sets passwords that no longer work, and turns etcd's authentication on
    when it is off. Users and roles it does not name are left alone.
  - It acts as V(root), so give it O(etcd_user=root) and O(etcd_password_file), and the root password in O(passwords).
    While authentication is still off, the root password file is only read, not needed by etcd.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Reports every change it would make (RV(changes)) and changes nothing.
  diff_mode:
    support: none
    description: No diff is reported.
  idempotent:
    support: full
    description: A second run with the same hosts and passwords changes nothing.
options:
  hosts:
    description: The pool's hosts; each gets its agent's user and role.
    type: list
    elements: str
    required: true
  masters:
    description: Whether the pool runs the DCM master daemon (its user and role).
    type: bool
    default: true
  enable:
    description:
      - Turn authentication on when it is off. V(false) makes the users, roles and passwords only, and leaves
        authentication as it is - site.yml does that before the agents and masters restart with new passwords
        (a rotated password, a new host), and turns authentication on at its end.
    type: bool
    default: true
  flannel_prefix:
    description:
      - On a flannel pool, flannel's etcd prefix. Each host's flanneld, which speaks gRPC and is known by its
        client certificate's common name (the host's name), gets a user of that name without a password, holding
        the role V(dcm-flannel) (read and write under this prefix, nothing else).
    type: str
  passwords:
    description:
      - The password of every user, by user name (V(root), V(dcm-master), V(dcm-agent-<host>) for each host).
      - At least 16 characters each; the dcm role makes 40-character ones on the control node.
    type: dict
    required: true
seealso:
  - module: dcspark.dcm.dcm_cluster
"""

EXAMPLES = r"""
- name: Give every DCM identity its etcd user and role, then turn authentication on
  dcspark.dcm.dcm_etcd_access:
    hosts: "{{ groups['dcm_pool'] }}"
    passwords: "{{ etcd_passwords }}"
    etcd_user: root
    etcd_password_file: /etc/dcm/etcd/root
  no_log: true
"""

RETURN = r"""
changes:
  description: What changed (or would change in check mode), one line each; never a password.
  returned: success
  type: list
  elements: str
  sample: ["role dcm-agent-h1: added", "user dcm-agent-h1: added", "authentication: turned on"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.state import access


def etcd_access(m: DcmModule) -> None:
    params = m.params
    hosts = [str(host) for host in params["hosts"]]
    prefix = params["flannel_prefix"] or ""
    try:
        roles = access.pool_roles(hosts, masters=params["masters"], flannel_prefix=prefix)
        cert_users = access.certificate_users(hosts, prefix)
    except ValueError as exc:
        m.fail(str(exc))
    passwords = {str(user): str(password) for user, password in params["passwords"].items()}
    wanted = {access.ROOT} | (set(roles) - {access.FLANNEL})
    missing, unknown = sorted(wanted - set(passwords)), sorted(set(passwords) - wanted)
    if missing or unknown:
        m.fail(f"passwords must name exactly the users {', '.join(sorted(wanted))}; missing: {missing or 'none'}, "
               f"not a user of this pool: {unknown or 'none'}")
    if params.get("etcd_user") != access.ROOT:
        m.fail("dcm_etcd_access changes etcd's users and roles: it runs as etcd_user root, with "
               "etcd_password_file holding the root password")
    control = access.AccessControl(m.store().client)
    changes = control.apply(passwords, roles, check_mode=m.check_mode, cert_users=cert_users,
                            enable=params["enable"])
    m.result.update(changed=bool(changes), changes=changes)


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "hosts": {"type": "list", "elements": "str", "required": True},
            "masters": {"type": "bool", "default": True},
            "flannel_prefix": {"type": "str"},
            "enable": {"type": "bool", "default": True},
            "passwords": {"type": "dict", "required": True, "no_log": True},
        },
        supports_check_mode=True,
    ).run(etcd_access)


if __name__ == "__main__":
    main()
