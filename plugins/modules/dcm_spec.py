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
  - With O(check_index=true), also asks the Python package index the image build installs from whether
    C(pyspark==<runtime.spark_version>) is a release there, whether every C(runtime.pip_packages) pin
    (C(name==version)) names a version there, and whether some version satisfies every other requirement
    (C(name>=1.2,<2), a bare C(name); checked with the C(packaging) library when the module's Python has it,
    else only the project's existence). It reads one simple-API page (PEP 503/691) per project and downloads
    no wheel, so a wrong version fails in about a second instead of minutes into an image build.
  - "That is not a full resolution: transitive dependencies are not resolved, and whether a file fits the
    image's Python version or platform is not checked; pip may still fail on those during the build."
  - "Errors name the JSON path, e.g. C(runtime.spark_version: 4.0.9 is not a release of pyspark on
    https://pypi.org/simple (newest: ...)) or C(runtime.pip_packages[1]: numpy==9.9.9: no such version on
    https://pypi.org/simple (newest: ...)). An index that cannot be reached is an error, never a pass; the
    message says how to skip the check (O(check_index=false))."
  - Changes nothing anywhere; the first step of C(deploy_cluster.yml) and of C(plan.yml).
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
  check_index:
    description:
      - Ask the package index about C(runtime.spark_version) and C(runtime.pip_packages) (see above).
      - The playbooks turn it on, with the image build's index settings (C(spark_images_pip_index_url),
        C(spark_images_pip_extra_index_url), C(spark_images_ca_bundle), C(spark_images_https_proxy),
        C(spark_images_no_proxy)); C(-e dcm_check_index=false) turns it off, e.g. in an air-gapped pool
        whose build host reaches a mirror the control node cannot.
      - Ignored with O(name).
    type: bool
    default: false
  index_url:
    description:
      - The index's simple API, as pip's C(--index-url). Empty or unset, PyPI (C(https://pypi.org/simple)), as
        the image build.
    type: str
  extra_index_url:
    description:
      - More indexes, as pip's C(--extra-index-url) (space-separated URLs). A version on any of the indexes counts.
    type: str
  index_ca:
    description:
      - A CA bundle on the control node that replaces the default trust for the index (as
        C(spark_images_ca_bundle) does for the build). Unset, the system's trust (and C(SSL_CERT_FILE)).
    type: path
  index_proxy:
    description:
      - An HTTP proxy URL for the index. Unset or empty, the control node's C(https_proxy), C(http_proxy) and
        C(no_proxy) environment.
    type: str
  index_no_proxy:
    description:
      - Hosts reached without O(index_proxy), comma-separated as C(no_proxy).
    type: str
  index_timeout:
    description:
      - Seconds one request to the index may take.
    type: float
    default: 10.0
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

- name: Check the spec and ask PyPI about its Spark version and pip packages
  dcspark.dcm.dcm_spec:
    spec: specs/face.json
    check_index: true
    index_url: "{{ spark_images_pip_index_url | default(omit, true) }}"
    index_ca: "{{ spark_images_ca_bundle | default(omit, true) }}"

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
index:
  description:
    - What the package index check found, in C(indexes) the indexes asked, in C(resolved) per requirement
      (pyspark first) the newest version that satisfies it (null when it cannot be told without C(packaging)),
      in C(packaging) whether that library was used, in C(seconds) how long it took.
  returned: when O(spec) is given and O(check_index=true)
  type: dict
  sample:
    indexes: ["https://pypi.org/simple"]
    resolved:
      - {"path": "runtime.spark_version", "requirement": "pyspark==4.0.1", "version": "4.0.1"}
      - {"path": "runtime.pip_packages[0]", "requirement": "numpy==2.1.3", "version": "2.1.3"}
    packaging: true
    seconds: 0.41
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError, SpecError
from ansible_collections.dcspark.dcm.plugins.module_utils.host.package_index import (
    IndexUnreachable, PackageIndex, check_runtime)
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.loading import escaping_links, spec_from_param
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
    leaving = escaping_links(base_dir, relative)
    if leaving:
        raise DcmError(f"runtime.app_dir: {', '.join(leaving)} leads out of the spec's folder {base_dir} through a "
                       "symlink; the images may only take files that are inside it: copy them there instead")
    main = (spec.get("app") or {}).get("main")
    if main and not os.path.isfile(os.path.join(folder, main)):
        raise DcmError(f"app.main: {main} is not a file in {folder} (runtime.app_dir {relative}, relative to the "
                       "spec file's folder): add it there or fix app.main")
    return folder


def check_name(name: str) -> str:
    """``name`` when the spec schema's rule for a cluster name accepts it, else its problems as the spec
    validator words them."""
    problems = validate_schema(name, SCHEMA["properties"]["name"], "name")
    if problems:
        raise DcmError("; ".join(problems))
    return name


SKIP_INDEX = ("runtime.spark_version and runtime.pip_packages could not be checked against the index the image "
              "build installs from. Fix the network, the proxy (index_proxy; the playbooks pass "
              "spark_images_https_proxy) or the CA bundle (index_ca; spark_images_ca_bundle), or skip the check: "
              "-e dcm_check_index=false (module option check_index: false)")


def check_index(spec: dict, params: dict, source: str | None) -> dict:
    """What the package index says about the spec's Spark version and pip packages; fails on any problem."""
    urls = [params["index_url"] or ""] + (params["extra_index_url"] or "").split()
    index = PackageIndex(urls, ca=params["index_ca"], timeout=params["index_timeout"],
                         proxy=params["index_proxy"], no_proxy=params["index_no_proxy"])
    try:
        found = check_runtime(spec["runtime"], index)
    except IndexUnreachable as exc:
        raise DcmError(f"{exc}: {SKIP_INDEX}") from None
    if found["problems"]:
        raise SpecError(found["problems"], source)
    return {key: value for key, value in found.items() if key != "problems"}


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
    if m.params["check_index"]:
        m.result["index"] = check_index(spec, m.params, value if isinstance(value, str) else "(inline spec)")
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
        argument_spec={
            "spec": {"type": "raw"},
            "name": {"type": "str"},
            "base_dir": {"type": "path"},
            "check_index": {"type": "bool", "default": False},
            "index_url": {"type": "str"},
            "extra_index_url": {"type": "str"},
            "index_ca": {"type": "path"},
            "index_proxy": {"type": "str"},
            "index_no_proxy": {"type": "str"},
            "index_timeout": {"type": "float", "default": 10.0},
        },
        etcd=None,
        mutually_exclusive=[("spec", "name")],
        required_one_of=[("spec", "name")],
        supports_check_mode=True,
    )
    m.run(validate)


if __name__ == "__main__":
    main()
