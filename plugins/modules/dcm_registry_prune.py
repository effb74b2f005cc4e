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

import json
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.dcspark.dcm.plugins.module_utils import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.etcd import EtcdClient, cmp_mod_revision, op_delete
from ansible_collections.dcspark.dcm.plugins.module_utils.events import EventLog
from ansible_collections.dcspark.dcm.plugins.module_utils.options import ETCD_OPTIONS, etcd_config
from ansible_collections.dcspark.dcm.plugins.module_utils.registry import images_in_use, parse_reference, prune_plan
from ansible_collections.dcspark.dcm.plugins.module_utils.store import DcmStore, read_histories

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def delete_manifest(reference: str, ca: str, timeout: int) -> None:
    """Delete the manifest ``reference`` names; a manifest already gone is fine."""
    registry, repository, tag, digest = parse_reference(reference)
    base = f"https://{registry}/v2/{repository}/manifests/"
    try:
        if digest is None:  # by tag: the registry deletes by digest only
            answer = open_url(base + tag, method="HEAD", ca_path=ca, timeout=timeout, headers={"Accept": MANIFEST_TYPES})
            digest = answer.headers.get("Docker-Content-Digest")
        open_url(base + digest, method="DELETE", ca_path=ca, timeout=timeout, headers={"Accept": MANIFEST_TYPES})
    except HTTPError as exc:
        if exc.code == 404:
            return
        if exc.code == 405:
            raise DcmError(f"{registry} refuses to delete manifests (HTTP 405): enable storage.delete in its "
                           "configuration (the dcspark.dcm.registry role does)") from None
        raise DcmError(f"deleting {reference}: HTTP {exc.code} from {registry}") from None
    except (URLError, OSError) as exc:
        raise DcmError(f"deleting {reference}: cannot reach {registry} ({exc})") from None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "registry": {"type": "str", "required": True},
            "registry_ca": {"type": "path", "required": True},
            "grace": {"type": "int", "default": 600},
            "timeout": {"type": "int", "default": 30},
            **ETCD_OPTIONS,
        },
        supports_check_mode=True,
    )
    params = module.params
    result: dict = {"changed": False, "deleted": [], "kept": [], "waiting": [], "foreign": []}
    config = etcd_config(params)
    if config is None:
        module.fail_json(msg="etcd_endpoints is empty: give the pool's etcd client URLs, e.g. ['https://10.0.0.11:2379']",
                         **result)
    if params["grace"] < 0:
        module.fail_json(msg=f"grace must be 0 or more seconds, got {params['grace']}", **result)
    try:
        client = EtcdClient(config)
        snap = DcmStore(client).snapshot()
        queue_kvs, _rev = client.get_prefix(keys.REGISTRY_PRUNE, revision=snap.revision)
        queue = {kv.key: json.loads(kv.value) for kv in queue_kvs}
        revisions = {kv.key: kv.mod_revision for kv in queue_kvs}
        used = images_in_use(snap.clusters.values(), read_histories(client, snap.revision))
        plan = prune_plan(queue, used, params["registry"], time.time(), params["grace"])
        result.update(kept=plan.kept, waiting=plan.waiting, foreign=plan.foreign)
        if module.check_mode:
            result.update(deleted=plan.delete, changed=bool(plan.delete or plan.done))
            module.exit_json(**result)
        for reference in plan.delete:
            delete_manifest(reference, params["registry_ca"], params["timeout"])
            result["deleted"].append(reference)
            result["changed"] = True
        if result["deleted"]:
            EventLog(client, source="dcm_registry_prune").record(
                "prune", f"{params['registry']}: deleted {len(result['deleted'])} image(s) of generations no longer "
                         f"retained ({', '.join(sorted({parse_reference(r)[1] for r in result['deleted']}))})")
        for key in plan.done:
            # a queue entry rewritten meanwhile (the same generation queued again) stays for the next run
            ok, _responses, _rev = client.txn([cmp_mod_revision(key, revisions[key])], [op_delete(key)])
            result["changed"] = result["changed"] or ok
    except ValueError as exc:
        module.fail_json(msg=f"a prune-queue entry under {keys.REGISTRY_PRUNE} is not JSON: {exc}", **result)
    except DcmError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
