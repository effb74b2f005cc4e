#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_registry_lock
short_description: Take or give back the pool registry's lock (builds push shared, garbage collection exclusive)
version_added: 0.3.0
description:
  - The registry's garbage collection deletes every blob no manifest references, and a push uploads its blobs
    before its manifest, so a collection that overlaps a push can delete the blobs of the image being pushed (and
    its restart of the registry breaks the push). Builds hold this lock V(shared) while they push, the garbage
    collection (C(gc.yml)) V(exclusive)ly, so the two never overlap; pushes run side by side.
  - The lock lives in etcd (C(/dcm/registry/lock/)), each hold on its own lease of O(ttl) seconds, so a holder
    that dies frees it when its lease ends. An V(exclusive) taker first bars new pushes, then waits until the
    pushes in progress end; a taker that runs out of O(timeout) leaves nothing behind and names who held the
    lock, where and since when.
  - V(absent) gives back the hold on O(lease) (the RV(lease) a V(shared) or V(exclusive) run returned).
  - The lock is transient, so taking or giving it back is never reported as a change.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Takes nothing; says who holds the lock now.
  diff_mode:
    support: none
    description: No diff is reported.
  idempotent:
    support: full
    description: Giving back a hold that is gone already does nothing.
options:
  state:
    description: Hold the lock V(shared) (a push), V(exclusive) (a garbage collection), or give it back (V(absent)).
    type: str
    choices: [shared, exclusive, absent]
    required: true
  purpose:
    description: What the hold is for, shown to whoever waits for it (with this host and user and the time).
    type: str
    default: ""
  ttl:
    description:
      - Seconds the hold lives unless given back; a holder that dies frees the lock after this. Cover the longest
        the holder may legitimately take (a cold build and its push).
    type: int
    default: 3600
  timeout:
    description: Seconds to wait for the lock before failing.
    type: int
    default: 600
  poll:
    description: Seconds between two looks while waiting.
    type: float
    default: 2.0
  lease:
    description: With V(absent), the lease of the hold to give back.
    type: int
seealso:
  - module: dcspark.dcm.dcm_registry_prune
"""

EXAMPLES = r"""
- name: Hold the registry while pushing
  dcspark.dcm.dcm_registry_lock:
    state: shared
    purpose: build of face, tag 3f2a9c0d1e2f3a4b5c6d
    ttl: 7200
  register: lock

- name: Give it back
  dcspark.dcm.dcm_registry_lock:
    state: absent
    lease: "{{ lock.lease }}"
"""

RETURN = r"""
lease:
  description: The lease the hold lives on (give it to O(lease) with V(absent)); 0 in check mode and with V(absent).
  returned: success
  type: int
waited:
  description: Seconds spent waiting for others to give the lock back.
  returned: success
  type: float
waited_for:
  description: Who was in the way while waiting (what, by whom, where, since when), once each.
  returned: success
  type: list
  elements: str
holders:
  description: In check mode and on a timeout, who holds the lock (C(exclusive), a holder or null; C(shared), a list).
  returned: when the lock was not taken
  type: dict
released:
  description: With V(absent), whether a hold was given back (false when its lease had ended already).
  returned: with O(state=absent)
  type: bool
"""

import getpass
import socket
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.registry_lock import LockTimeout, hold, release


def registry_lock(m: DcmModule) -> None:
    params = m.params
    store = m.store()
    if params["state"] == "absent":
        if not params.get("lease"):
            m.fail("state=absent gives back a hold: pass the lease that state=shared or exclusive returned, "
                   "e.g. lease: \"{{ lock.lease }}\"")
        released = False if m.check_mode else release(store, params["lease"])
        m.result.update(lease=0, waited=0.0, waited_for=[], released=released)
        return
    if params["ttl"] < 10 or params["ttl"] < 3 * params["poll"]:
        m.fail(f"ttl must be at least 10 s and three polls ({3 * params['poll']:g} s), got {params['ttl']}")
    if params["timeout"] < 0:
        m.fail(f"timeout must be 0 or more seconds, got {params['timeout']}")
    if m.check_mode:
        m.result.update(lease=0, waited=0.0, waited_for=[], holders=store.registry_lock_holders())
        return
    holder = {"purpose": params["purpose"] or f"{params['state']} hold", "host": socket.gethostname(),
              "by": getpass.getuser(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        m.result.update(hold(store, params["state"] == "exclusive", holder, params["ttl"], params["timeout"],
                             params["poll"]))
    except LockTimeout:
        m.result.update(holders=store.registry_lock_holders())
        raise


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "state": {"type": "str", "choices": ["shared", "exclusive", "absent"], "required": True},
            "purpose": {"type": "str", "default": ""},
            "ttl": {"type": "int", "default": 3600},
            "timeout": {"type": "int", "default": 600},
            "poll": {"type": "float", "default": 2.0},
            "lease": {"type": "int"},
        },
        supports_check_mode=True,
    ).run(registry_lock)


if __name__ == "__main__":
    main()
