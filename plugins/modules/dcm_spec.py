#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_spec
short_description: Validate and normalize a DCSpark cluster spec
version_added: 0.1.0
description:
  - Reads a cluster spec (a JSON file or a dict), validates it against the collection's JSON Schema and the
    semantic rules, and returns the normalized spec (memory in bytes, defaults filled in) with its hash.
  - "Errors name the JSON path and the rule, e.g. C(worker.count: must be >= 1, got 0). Unknown keys are errors."
  - When the spec has C(runtime.app_dir), the folder is resolved relative to the spec file's folder (or
    O(base_dir)) and must exist and hold C(app.main).
  - Changes nothing anywhere; the first step of C(deploy_cluster.yml).
author:
  - DCSpark developers (@dcspark)
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only; there is nothing to compare.
  idempotent:
    support: full
    description: Reads only.
options:
  spec:
    description: The cluster spec, as a path to its JSON file on the host that runs the module, or as a dict.
    type: raw
    required: true
  base_dir:
    description:
      - Folder C(runtime.app_dir) is relative to. Defaults to the spec file's folder; required for a dict
        spec with an app.
    type: path
seealso:
  - module: dcspark.dcm.dcm_schedule
"""

EXAMPLES = r"""
- name: Check the spec before anything is built
  dcspark.dcm.dcm_spec:
    spec: specs/face.json
  register: face

- name: Show where its application comes from
  ansible.builtin.debug:
    msg: "{{ face.spec.name }} ({{ face.spec_hash }}): app from {{ face.app_dir }}"
"""

RETURN = r"""
spec:
  description: The normalized spec.
  returned: success
  type: dict
spec_hash:
  description: Hash of the normalized spec (what decides whether a cluster record changes).
  returned: success
  type: str
name:
  description: The cluster's name.
  returned: success
  type: str
app_dir:
  description: Absolute path of the application folder, or an empty string when the spec has none.
  returned: success
  type: str
requests:
  description: CPU (millicpus) and memory (bytes) of one master, driver and worker, and the worker count.
  returned: success
  type: dict
  sample: {"master": [500, 805306368], "driver": [1000, 1073741824], "worker": [1000, 1610612736], "workers": 3}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.spec import node_requests, spec_hash
from ansible_collections.dcspark.dcm.plugins.module_utils.spec_loading import spec_from_param


def resolve_app_dir(spec: dict, base_dir: str | None) -> str:
    """Absolute app folder of ``spec`` (empty when it has none); fails when it or app.main is missing."""
    relative = (spec.get("runtime") or {}).get("app_dir")
    if not relative:
        return ""
    if base_dir is None:
        raise DcmError("runtime.app_dir is relative to the spec file's folder; give base_dir for an inline spec")
    folder = os.path.normpath(os.path.join(base_dir, relative))
    if not os.path.isdir(folder):
        raise DcmError(f"runtime.app_dir: {relative} is not a folder (looked for {folder}); "
                       "app_dir is relative to the spec file's folder")
    main = (spec.get("app") or {}).get("main")
    if main and not os.path.isfile(os.path.join(folder, main)):
        raise DcmError(f"app.main: {main} is not in {folder}")
    return folder


def main() -> None:
    module = AnsibleModule(
        argument_spec={"spec": {"type": "raw", "required": True}, "base_dir": {"type": "path"}},
        supports_check_mode=True,
    )
    value = module.params["spec"]
    base_dir = module.params["base_dir"]
    if base_dir is None and isinstance(value, str) and value:
        base_dir = os.path.dirname(os.path.abspath(value))
    try:
        spec = spec_from_param(value)
        app_dir = resolve_app_dir(spec, base_dir)
    except DcmError as exc:
        module.fail_json(msg=str(exc))
    requests = node_requests(spec)
    module.exit_json(
        changed=False,
        spec=spec,
        name=spec["name"],
        spec_hash=spec_hash(spec),
        app_dir=app_dir,
        requests={**{role: list(request) for role, request in requests.items()}, "workers": spec["worker"]["count"]},
    )


if __name__ == "__main__":
    main()
