#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_registry_image
short_description: Find which images the pool registry serves, and their digests
version_added: 0.2.0
description:
  - Looks each image of O(images) up in the pool registry with the registry API v2
    (C(HEAD /v2/<repository>/manifests/<tag or digest>)), its TLS certificate checked against O(registry_ca).
  - Returns the digest the registry serves for each image it has (C(Docker-Content-Digest), the digest Docker
    pulls by) in RV(present), and the images it does not have in RV(missing).
  - Asks for every manifest media type DCM uses (Docker v2 and OCI images, manifest lists and indexes), so an
    image pushed in any of these formats is found.
  - Read only; the C(spark_images) role uses it to decide what to build, and a rollback to check that the
    images of a retained generation are still there.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Only reads; check mode looks the images up exactly the same way.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: The module never changes anything.
options:
  registry:
    description:
      - The pool registry, C(host:port). Every image of O(images) must be in it.
    type: str
    required: true
  registry_ca:
    description:
      - CA certificate the registry's TLS certificate is checked against (the pool CA).
      - Unset - the trust store of the host the module runs on.
    type: path
  registry_auth_file:
    description:
      - JSON file on the host the module runs on with the registry identity to use, an object with C(username) and
        C(password) (the registry role's C(/etc/dcm/registry/builder.json) on master hosts). Its password is never shown.
      - Unset - anonymous requests (the pool's registry refuses them).
    type: path
    version_added: 0.3.0
  images:
    description:
      - Image references, C(<registry>/<repository>:<tag>) or C(<registry>/<repository>@sha256:<digest>)
        (a reference with neither means the tag V(latest)).
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds one registry request may take.
    type: int
    default: 30
seealso:
  - module: dcspark.dcm.dcm_registry_prune
"""

EXAMPLES = r"""
- name: Which images of the tag does the registry have?
  dcspark.dcm.dcm_registry_image:
    registry: registry.pool:5000
    registry_ca: /etc/dcm/pki/ca.crt
    images:
      - registry.pool:5000/dcspark-master:3f2a9c
      - registry.pool:5000/dcspark-worker:3f2a9c
  register: lookup

- name: Pull by digest what is there
  ansible.builtin.debug:
    msg: "{{ lookup.present }}"

- name: Refuse when an image of a generation is gone
  ansible.builtin.assert:
    that: lookup.missing | length == 0
    fail_msg: "the registry no longer has {{ lookup.missing | join(', ') }}"
"""

RETURN = r"""
present:
  description: The images the registry serves, each with the digest of its manifest.
  returned: success
  type: dict
  sample: {"registry.pool:5000/dcspark-master:3f2a9c": "sha256:5f1c0b9e4a7d..."}
missing:
  description: The images the registry does not have (HTTP 404), in the order of O(images).
  returned: success
  type: list
  elements: str
  sample: ["registry.pool:5000/dcspark-worker:3f2a9c"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.host.registry import registry_client
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule


def look_up(m: DcmModule) -> None:
    params = m.params
    registry = registry_client(params["registry"], params["registry_ca"], params["timeout"], params["registry_auth_file"])
    present: dict = {}
    missing: list = []
    for reference in params["images"]:
        if reference in present or reference in missing:
            continue
        digest = registry.digest(reference)
        if digest is None:
            missing.append(reference)
        else:
            present[reference] = digest
    m.result.update(present=present, missing=missing)


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={
            "registry": {"type": "str", "required": True},
            "registry_auth_file": {"type": "path"},
            "registry_ca": {"type": "path"},
            "images": {"type": "list", "elements": "str", "required": True},
            "timeout": {"type": "int", "default": 30},
        },
        etcd=None,
        supports_check_mode=True,
    )
    m.run(look_up)


if __name__ == "__main__":
    main()
