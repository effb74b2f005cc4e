#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_registry_prune
short_description: Delete from the pool registry the images of generations no longer retained
version_added: 0.2.0
description:
  - Empties the prune queue C(/dcm/registry/prune/) that M(dcspark.dcm.dcm_cluster) fills when generations leave
    a cluster's history or a cluster is removed. Each queued image whose manifest is in O(registry) is deleted
    through the registry API (C(DELETE /v2/<repository>/manifests/<digest>)).
  - Never deleted, whatever the queue says, an image that a cluster record names (the generation a rolling
    change replaces included) or that any cluster's retained generation names; the queue entry is dropped and
    the image is queued again when that generation goes.
  - Queue entries younger than O(grace) seconds wait for a later run, so a deploy that found the images in the
    registry a moment ago can reserve them first.
  - Deleting manifests frees no disk by itself; the registry's garbage collection (C(gc.yml) runs it on the
    registry host) then removes the blobs no manifest references.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Returns what would be deleted and kept; deletes nothing and leaves the queue as it is.
  diff_mode:
    support: none
    description: Nothing to compare; the result lists what was done.
  idempotent:
    support: full
    description: A second run finds the queue empty (or only entries inside the grace period).
options:
  registry:
    description: The pool registry, C(host:port); only images of this registry are deleted.
    type: str
    required: true
  registry_ca:
    description: CA certificate the registry's TLS certificate is checked against (the pool CA).
    type: path
    required: true
  registry_auth_file:
    description:
      - JSON file on the host the module runs on with the registry identity to use, an object with C(username) and
        C(password) (the registry role's C(/etc/dcm/registry/builder.json) on master hosts). Its password is never shown.
      - Unset - anonymous requests (the pool's registry refuses them).
    type: path
    version_added: 0.3.0
  grace:
    description: Seconds a queue entry waits before its images may be deleted.
    type: int
    default: 600
  timeout:
    description: Seconds one registry request may take.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Delete the images of generations no longer retained
  dcspark.dcm.dcm_registry_prune:
    registry: "{{ dcm_registry_address }}"
    registry_ca: /etc/dcm/pki/ca.crt
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
"""

RETURN = r"""
deleted:
  description: Images whose manifests were deleted (or were already gone), by reference.
  returned: success
  type: list
  elements: str
kept:
  description: Queued images kept, each with C(image) and C(why) (which cluster or generation still needs it).
  returned: success
  type: list
  elements: dict
waiting:
  description: Queue entries (etcd keys) inside the grace period, left for a later run.
  returned: success
  type: list
  elements: str
foreign:
  description: Queued images of another registry, left alone.
  returned: success
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.host.registry import registry_client
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.registry import images_in_use, parse_reference, prune_plan


def prune(m: DcmModule) -> None:
    params = m.params
    result = m.result
    if params["grace"] < 0:
        m.fail(f"grace must be 0 or more seconds, got {params['grace']}")
    store = m.store()
    snap = store.snapshot()
    queued = store.prune_queue(snap.revision)
    used = images_in_use(snap.clusters.values(), store.histories(snap.revision))
    plan = prune_plan({key: entry for key, (entry, _rev) in queued.items()}, used, params["registry"], time.time(),
                      params["grace"])
    result.update(kept=plan.kept, waiting=plan.waiting, foreign=plan.foreign)
    if m.check_mode:
        result.update(deleted=plan.delete, changed=bool(plan.delete or plan.done))
        return
    registry = registry_client(params["registry"], params["registry_ca"], params["timeout"], params["registry_auth_file"]) if plan.delete else None
    for reference in plan.delete:
        registry.delete(reference)
        result["deleted"].append(reference)
        result["changed"] = True
    if result["deleted"]:
        store.event_log("dcm_registry_prune").record(
            "prune", f"{params['registry']}: deleted {len(result['deleted'])} image(s) of generations no longer "
                     f"retained ({', '.join(sorted({parse_reference(r)[1] for r in result['deleted']}))})")
    for key in plan.done:
        # a queue entry rewritten meanwhile (the same generation queued again) stays for the next run
        result["changed"] = store.settle_prune(key, queued[key][1]) or result["changed"]


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={
            "registry": {"type": "str", "required": True},
            "registry_auth_file": {"type": "path"},
            "registry_ca": {"type": "path", "required": True},
            "grace": {"type": "int", "default": 600},
            "timeout": {"type": "int", "default": 30},
        },
        etcd="required",
        supports_check_mode=True,
    )
    m.result.update(deleted=[], kept=[], waiting=[], foreign=[])
    m.run(prune)


if __name__ == "__main__":
    main()
