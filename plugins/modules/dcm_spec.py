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
extends_documentation_fragment:
  - dcspark.dcm.etcd
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
    description:
      - The cluster spec, as a path to its JSON file on the host that runs the module, or as a dict.
      - Exactly one of O(spec) and O(name) is required.
    type: raw
  name:
    description:
      - A bare cluster name to check against the spec's rule for C(name) (a DNS label of at most 40 characters),
        for playbooks that act on a cluster by name (undeploy, rollback, status) without its spec.
      - 'The error is the spec validator''s own, for example C(name: must be a DNS label: ..., got "Bad_Name").'
      - Only RV(name) is returned.
      - Exactly one of O(spec) and O(name) is required.
    type: str
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

- name: Check a cluster name given on the command line (-e cluster=face)
  dcspark.dcm.dcm_spec:
    name: "{{ cluster }}"
"""

RETURN = r"""
spec:
  description: The normalized spec.
  returned: when O(spec) is given
  type: dict
spec_hash:
  description: Hash of the normalized spec (what decides whether a cluster record changes).
  returned: when O(spec) is given
  type: str
name:
  description: The cluster's name (the spec's, or O(name) once it is valid).
  returned: success
  type: str
app_dir:
  description: Absolute path of the application folder, or an empty string when the spec has none.
  returned: when O(spec) is given
  type: str
requests:
  description: CPU (millicpus) and memory (bytes) of one master, driver and worker, and the worker count.
  returned: when O(spec) is given
  type: dict
  sample: {"master": [500, 805306368], "driver": [1000, 1073741824], "worker": [1000, 1610612736], "workers": 3}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.loading import spec_from_param
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import node_requests, spec_hash, validate_schema
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.schema import SCHEMA


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


def check_name(name: str) -> str:
    """``name`` when the spec schema's rule for a cluster name accepts it, else its problems as the spec
    validator words them."""
    problems = validate_schema(name, SCHEMA["properties"]["name"], "name")
    if problems:
        raise DcmError("; ".join(problems))
    return name


def validate(m: DcmModule) -> None:
    if m.params["name"] is not None:
        m.result["name"] = check_name(m.params["name"])
        return
    value = m.params["spec"]
    base_dir = m.params["base_dir"]
    if base_dir is None and isinstance(value, str) and value:
        base_dir = os.path.dirname(os.path.abspath(value))
    spec = spec_from_param(value)
    app_dir = resolve_app_dir(spec, base_dir)
    requests = node_requests(spec)
    m.result.update(
        spec=spec,
        name=spec["name"],
        spec_hash=spec_hash(spec),
        app_dir=app_dir,
        requests={**{role: list(request) for role, request in requests.items()}, "workers": spec["worker"]["count"]},
    )


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={"spec": {"type": "raw"}, "name": {"type": "str"}, "base_dir": {"type": "path"}},
        etcd=None,
        mutually_exclusive=[("spec", "name")],
        required_one_of=[("spec", "name")],
        supports_check_mode=True,
    )
    m.run(validate)


if __name__ == "__main__":
    main()
