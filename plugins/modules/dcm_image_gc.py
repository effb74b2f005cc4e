#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_image_gc
short_description: Remove least recently used DCSpark images when Docker's disk fills up
version_added: 0.1.0
description:
  - Runs the image garbage collector of the DCSpark paper on the Docker engine of the host it runs on.
  - "Eq. 1: with C the capacity of the filesystem under Docker's data root, U the bytes used by images
    (C(LayersSize) of C(docker system df), shared layers counted once) and T the O(threshold),
    the bytes to free are C(F = U/2) when C(U/C > T), else C(F = 0)."
  - DCSpark images (label C(org.dcspark.managed=true)) are removed least recently used first until the
    bytes freed reach F. Each image counts with its unique size (C(Size - SharedSize)), never its shared
    layers. Last use is what the DCM agent records on container starts in O(last_used_file), else the
    image's creation time (Docker does not keep it).
  - Never removes an image that a container uses (in any state) or that a desired cluster places on this
    host (the image of each node placed on O(host_name)). The desired state comes from etcd, from
    O(desired), or from both combined. Without either the module fails and removes nothing, since
    guessing an empty desired state could remove what a cluster still needs.
  - Removal is never forced. When Docker refuses (dependent child images, a container created since the
    plan was made), the image is reported in RV(not_removed) with Docker's message and the next one is tried.
    An image with several tags is untagged down to one first, after checking that nothing uses it.
  - Must run on the Docker host itself, because C is measured with C(statvfs) on Docker's data root.
author:
  - DCSpark developers (@dcspark)
requirements:
  - The Docker SDK for Python (C(docker) on PyPI, C(python3-docker) on Debian) on the managed host.
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Plans only; RV(plan) lists what would go and RV(freed_bytes) what it would free.
  diff_mode:
    support: full
    description: The ids of the images in scope before and after the run.
  idempotent:
    support: partial
    description:
      - Once usage is at or below the threshold, another run removes nothing. While it stays above (a
        threshold below the usage that halving U cannot reach), every run frees half of U again.
options:
  threshold:
    description:
      - The threshold T of Eq. 1, as a fraction of the filesystem's capacity, between 0 and 1.
      - With V(0), every run frees half of what images use (useful for tests and for manual clean-ups).
    type: float
    default: 0.8
  include_foreign:
    description:
      - Also consider images without the DCSpark label (never those in use or placed by a desired cluster).
    type: bool
    default: false
  host_name:
    description:
      - Name of this host in the DCSpark pool, as it appears in cluster placements.
      - Defaults to the short host name of the machine the module runs on.
    type: str
  desired:
    description:
      - Cluster records (as stored under C(/dcm/clusters/) in etcd) to protect, for running without etcd.
      - A record needs C(name) and C(placement) (C(master), C(driver), C(workers[]) to host names);
        C(images) maps the roles C(master), C(worker) and C(driver) to image references (tags,
        C(name@sha256:) digests or image ids).
      - Give V([]) to say explicitly that no cluster is desired. Combined with etcd's records when
        O(etcd_endpoints) is also set.
    type: list
    elements: dict
  last_used_file:
    description:
      - "JSON file of C({image_id: epoch_seconds}) that the DCM agent updates on every container start."
      - A missing file means no recorded use (creation times are used); an unreadable one fails the module.
    type: path
    default: /var/lib/dcm/image-last-used.json
  scope_labels:
    description:
      - "Only images carrying all these labels (with these values) are considered, for example
        C({org.dcspark.cluster: face}) to collect the images of one cluster. U and C are still those of
        the whole engine."
    type: dict
  docker_host:
    description:
      - Docker engine to use, as a Docker SDK base URL.
    type: str
    default: unix://var/run/docker.sock
"""

EXAMPLES = r"""
- name: Collect images with the desired state from etcd (what the gc.yml playbook runs)
  dcspark.dcm.dcm_image_gc:
    etcd_endpoints: ["https://10.0.0.11:2379", "https://10.0.0.12:2379"]
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
  register: image_gc

- name: Preview what would go at a 60% threshold
  dcspark.dcm.dcm_image_gc:
    threshold: 0.6
    etcd_endpoints: ["https://10.0.0.11:2379"]
  check_mode: true
  register: preview

- name: Show the images that would be removed and the bytes they free
  ansible.builtin.debug:
    msg: "{{ preview.plan.selected | map(attribute='tags') | list }}: {{ preview.freed_bytes }} bytes"

- name: Free half of what the face cluster's images use, on a host without etcd access
  dcspark.dcm.dcm_image_gc:
    threshold: 0.0
    scope_labels:
      org.dcspark.cluster: face
    desired: []
"""

RETURN = r"""
plan:
  description:
    - The garbage-collection plan of Eq. 1 for this host.
    - C(selected) lists the images chosen, in removal order (least recently used first), with their
      unique size and last use (epoch seconds); C(kept) gives the reason each protected image stays.
  returned: success
  type: dict
  contains:
    capacity_bytes:
      description: C, the size of the filesystem under Docker's data root.
      type: int
    used_bytes:
      description: U, the bytes used by all images of the engine (shared layers once).
      type: int
    usage_ratio:
      description: U/C.
      type: float
    threshold:
      description: T.
      type: float
    target_bytes:
      description: F, the bytes to free.
      type: int
    freed_bytes:
      description: Sum of the unique sizes of the selected images.
      type: int
    target_reached:
      description: Whether the selected images free at least F (false when too few candidates exist).
      type: bool
    selected:
      description: The images chosen, with C(id), C(tags), C(unique_size) and C(last_used).
      type: list
      elements: dict
    kept:
      description: Image id to the reason it is protected.
      type: dict
    data_root:
      description: Docker's data root, whose filesystem gives C.
      type: str
    host_name:
      description: The name of this host that placements were matched against.
      type: str
    out_of_scope:
      description: Number of images O(scope_labels) left out.
      type: int
  sample:
    capacity_bytes: 107374182400
    used_bytes: 96636764160
    usage_ratio: 0.9
    threshold: 0.8
    target_bytes: 48318382080
    freed_bytes: 49392123904
    target_reached: true
    selected: [{"id": "sha256:5f1c...", "tags": ["registry:5000/dcspark/face-worker:3"],
                "unique_size": 49392123904, "last_used": 1718000000.0}]
    kept: {"sha256:9a0e...": "used by a container"}
    data_root: /var/lib/docker
    host_name: node1
    out_of_scope: 0
removed:
  description: Ids of the images removed (empty in check mode).
  returned: success
  type: list
  elements: str
  sample: ["sha256:5f1c..."]
not_removed:
  description:
    - Selected images that were not removed, by id, with the reason (Docker's message when it refused).
    - Not named C(skipped), which Ansible reads as a skipped task.
  returned: success
  type: dict
  sample: {"sha256:77b1...": "Docker refused: conflict: unable to delete 77b1ff29beaa (cannot be forced) - image has dependent child images"}
freed_bytes:
  description: Sum of the unique sizes of the removed images; in check mode, of the images that would go.
  returned: success
  type: int
  sample: 49392123904
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.host.docker import (
    DEFAULT_DOCKER_HOST,
    DEFAULT_LAST_USED_FILE,
    short_hostname,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.gc_pass import IMAGES, gc_pass
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gc import DEFAULT_THRESHOLD


def collect(m: DcmModule) -> None:
    params = m.params
    threshold = params["threshold"]
    if not 0.0 <= threshold <= 1.0:
        m.fail(f"threshold must be between 0 and 1 (a fraction of the disk), got {threshold}")
    done = gc_pass(IMAGES, params["host_name"] or short_hostname(), store=m.store(), desired=params["desired"],
                   docker_url=params["docker_host"], scope=params["scope_labels"], threshold=threshold,
                   include_foreign=params["include_foreign"], last_used_file=params["last_used_file"],
                   check_mode=m.check_mode)
    m.result.update(
        changed=bool(done.gone),
        plan=done.plan,
        removed=done.removed,
        not_removed=done.not_removed,
        freed_bytes=done.freed_bytes,
        diff=done.diff(),
    )


def main() -> None:
    m = DcmModule(
        AnsibleModule,
        argument_spec={
            "threshold": {"type": "float", "default": DEFAULT_THRESHOLD},
            "include_foreign": {"type": "bool", "default": False},
            "host_name": {"type": "str"},
            "desired": {"type": "list", "elements": "dict"},
            "last_used_file": {"type": "path", "default": DEFAULT_LAST_USED_FILE},
            "scope_labels": {"type": "dict"},
            "docker_host": {"type": "str", "default": DEFAULT_DOCKER_HOST},
        },
        etcd="optional",
        supports_check_mode=True,
    )
    m.run(collect)


if __name__ == "__main__":
    main()
