#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_image_record
short_description: Record, or check, the digests the pool's own build pushed for a cluster's image tag
version_added: 0.3.0
description:
  - Image tags are a hash of a cluster's build inputs, which anyone holding the spec can compute, so the image
    that sits under a tag in the registry is not necessarily one the pool built. The spark_images role records
    in etcd (C(/dcm/images/<cluster>/<tag>)) the digests its build pushed, and reuses a tag later only when the
    registry still serves exactly those digests.
  - V(present) writes the record of O(images) (the newest O(keep) tags of the cluster are kept).
  - V(query) compares O(images), the digests the registry serves now, with the record and says whether they
    may be reused (RV(trusted)) and why (RV(reason)). It never changes anything.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: V(present) reports whether the record would change and writes nothing.
  diff_mode:
    support: none
    description: No diff is reported.
  idempotent:
    support: full
    description: Recording the same digests again changes nothing.
options:
  cluster:
    description: The cluster the images are built for.
    type: str
    required: true
  tag:
    description: The content tag of the images.
    type: str
    required: true
  images:
    description:
      - A digest (C(sha256:...)) for each of V(runtime), V(master), V(worker) and V(driver), by role.
      - With V(present), what this build pushed; with V(query), what the registry serves under the tag.
    type: dict
    required: true
  state:
    description: Record the digests, or check them against the record.
    type: str
    choices: [present, query]
    default: query
  keep:
    description: How many image records of the cluster etcd keeps (the newest).
    type: int
    default: 20
seealso:
  - module: dcspark.dcm.dcm_registry_image
"""

EXAMPLES = r"""
- name: May the images the registry serves under the tag be reused?
  dcspark.dcm.dcm_image_record:
    cluster: face
    tag: 3f2a9c0d1e2f3a4b5c6d
    images: "{{ digests }}"
  register: provenance

- name: Record what this build pushed
  dcspark.dcm.dcm_image_record:
    cluster: face
    tag: 3f2a9c0d1e2f3a4b5c6d
    images: "{{ pushed }}"
    state: present
"""

RETURN = r"""
trusted:
  description: With V(query), whether the registry's images are the ones the pool's build recorded.
  returned: success
  type: bool
reason:
  description: Why (or why not) they may be reused.
  returned: success
  type: str
recorded:
  description: The record etcd held before the run (C(images), C(built_at), C(built_by)), or null.
  returned: success
  type: dict
"""

import getpass
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.registry import provenance

ROLES = ("runtime", "master", "worker", "driver")


def image_record(m: DcmModule) -> None:
    params = m.params
    images = {str(role): str(digest) for role, digest in params["images"].items()}
    wrong = sorted(role for role in images if role not in ROLES)
    bad = sorted(role for role, digest in images.items() if not digest.startswith("sha256:"))
    if wrong or bad:
        m.fail(f"images must map {', '.join(ROLES)} to sha256: digests; got unknown roles {wrong} and "
               f"digests that are not sha256 for {bad}")
    store = m.store()
    recorded = store.image_record(params["cluster"], params["tag"])
    m.result.update(recorded=recorded)
    if params["state"] == "query":
        trusted, why = provenance(recorded, images)
        m.result.update(trusted=trusted, reason=why)
        return
    record = {"cluster": params["cluster"], "tag": params["tag"], "images": images,
              "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "built_by": getpass.getuser()}
    if m.check_mode:
        changed = (recorded or {}).get("images") != images
    else:
        changed = store.record_images(record, keep=params["keep"])
    m.result.update(changed=changed, trusted=True, reason="recorded the digests this build pushed")


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "tag": {"type": "str", "required": True},
            "images": {"type": "dict", "required": True},
            "state": {"type": "str", "choices": ["present", "query"], "default": "query"},
            "keep": {"type": "int", "default": 20},
        },
        supports_check_mode=True,
    ).run(image_record)


if __name__ == "__main__":
    main()
