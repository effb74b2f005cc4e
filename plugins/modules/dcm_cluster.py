#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_cluster
short_description: Reserve or remove a DCSpark cluster in the pool's etcd state
version_added: 0.1.0
description:
  - Manages the desired state of one DCSpark cluster, the record C(/dcm/clusters/<name>) in etcd that the
    DCM agents converge their hosts to.
  - With O(state=present) the module schedules the spec on the live pool (hosts whose agent holds a lease
    and that are not cordoned, minus what the other clusters reserve) with the same scheduler as
    M(dcspark.dcm.dcm_schedule), and writes the record with its placement in one etcd transaction. The
    transaction fails if any cluster record changed since the pool was read; the module then re-reads the
    pool and plans again, up to O(attempts) times. Concurrent deploys therefore never overcommit a host.
  - A new cluster gets generation 1. The same spec with the same O(images) changes nothing. A changed spec
    is planned again (the cluster's own current reservation is not counted) and gets the next generation.
    New O(images) for an unchanged spec keep the placement and get the next generation.
  - All or nothing. When a node does not fit, the module fails with the scheduler's message naming the node
    and what the best host had left, and writes nothing.
  - Every new generation is also kept in the cluster's history, C(/dcm/generations/<name>/<N>) (spec, images,
    placement, network, who deployed it and when), written in the same transaction. The newest O(keep)
    generations stay; the images of older ones go to the registry's prune queue
    (M(dcspark.dcm.dcm_registry_prune) deletes them from the registry).
  - With O(strategy=rolling) (the default) a running cluster moves to the new generation node by node. The
    record carries a C(rollout) from the previous generation and M(dcspark.dcm.dcm_rollout) moves the workers a
    few at a time, the driver, then the master. A change of Spark version or of network, or a previous rollout
    that had not finished, cannot roll. The whole cluster is then replaced at once and C(rolling) says why.
  - With O(rollback=true) the module returns the cluster to a retained generation (O(generation), or the newest
    earlier one whose spec or images differ). Its spec, images and network become the next generation,
    planned like any deploy. It fails, writing nothing, when that generation is no longer retained or no
    longer fits the pool.
  - With O(workers) the module resizes the deployed cluster O(name) to that many workers without a build. The
    recorded spec with the new count, the same images and network, becomes the next generation. The master,
    the driver and the workers that stay keep their hosts. Added workers are placed by the scheduler's packing
    score on what the pool has left; the highest-numbered workers go first. When an added worker does not fit,
    the module fails with the scheduler's reason and writes nothing.
  - With O(state=absent) the module deletes the cluster record and its nodes' C(/dcm/status/) keys in one
    transaction. The agents then remove the cluster's containers. Its retained generations stay, so their
    images stay in the registry for a quick redeploy, which goes on numbering from them; with O(purge=true)
    the history goes too and the images of every generation are queued for the registry's prune.
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Plans against the live pool and returns the record that would be written; writes nothing.
  diff_mode:
    support: full
    description: Returns the cluster record before and after as C(diff.before) and C(diff.after).
  idempotent:
    support: full
    description: The same spec and images leave the record, its placement and its generation unchanged.
notes:
  - O(etcd_endpoints) is required in practice. The module fails when it is empty.
  - Placing containers is the agents' job. This module only commits the desired state.
seealso:
  - module: dcspark.dcm.dcm_schedule
options:
  state:
    description:
      - V(present) reserves the cluster (or updates its record), V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - Name of the cluster. Required with O(state=absent).
      - With O(state=present) the name comes from O(spec); when both are given they must match.
    type: str
  spec:
    description:
      - The cluster spec, as a path to its JSON file on the host that runs the module, or as a dict.
      - Validated against the collection's JSON Schema before anything is read or written.
      - Required with O(state=present).
    type: raw
  network:
    description:
      - The cluster's own Docker network, which the agents attach its containers to. It must exist before
        the record is written (M(community.docker.docker_network) on a swarm manager for V(overlay)); with
        V(flannel) it is Docker's default network C(bridge), which every host has.
      - "Defaults to C({name: dcm-<cluster>, driver: overlay}), or what the record already has."
    type: dict
    suboptions:
      name:
        description: Network name.
        type: str
        required: true
      driver:
        description:
          - V(overlay) (a pool-wide attachable overlay network), V(bridge) (one host, local mode) or V(flannel)
            (Docker's default network C(bridge), which the flannel role puts on each host's flannel subnet; the
            agents give the cluster's containers a hosts file with every node's address).
        type: str
        choices: [overlay, bridge, flannel]
        default: overlay
  images:
    description:
      - Image reference of each role (V(master), V(worker), V(driver)), preferably by digest; V(runtime), the
        image they are built on, may be given too so that the registry's prune deletes it with them.
      - When omitted, the images already recorded are kept for an unchanged spec.
    type: dict
  deployed_by:
    description:
      - Who or what deploys the cluster (a user, an AWX job), recorded for operators.
    type: str
  keep:
    description:
      - How many generations the cluster's history retains (the new one included); at least 1.
    type: int
    default: 5
  strategy:
    description:
      - How a running cluster moves to a new generation. V(rolling) moves the nodes in batches (see
        M(dcspark.dcm.dcm_rollout)), V(all-at-once) replaces every node at the same time.
    type: str
    choices: [rolling, all-at-once]
    default: rolling
  origin:
    description:
      - Why the generation is made, recorded in the history. V(refresh) marks a rebuild of an unchanged spec.
    type: str
    choices: [deploy, refresh]
    default: deploy
  purge:
    description:
      - With O(state=absent), also drop the cluster's retained generations (even when it has no record any
        more) and queue their images for deletion from the registry.
    type: bool
    default: false
  rollback:
    description:
      - Return the cluster O(name) to a retained generation instead of deploying O(spec).
    type: bool
    default: false
  workers:
    description:
      - Resize the deployed cluster O(name) to this many workers (the spec's rule, 1 to 10000), keeping its
        images, network and the hosts of every node that stays. Takes no O(spec), O(images) or O(rollback).
    type: int
  generation:
    description:
      - With O(rollback), the generation to return to. Default, the newest earlier generation whose spec or
        images differ from the current one.
    type: int
  attempts:
    description:
      - How many times to read, plan and commit before giving up when other deploys keep changing the
        pool's allocations between the read and the commit.
    type: int
    default: 20
"""

EXAMPLES = r"""
- name: Reserve the face cluster on the live pool
  dcspark.dcm.dcm_cluster:
    spec: specs/face.json
    images:
      master: registry.dcm.lan:5000/dcspark-master@sha256:0b1c...
      worker: registry.dcm.lan:5000/dcspark-worker@sha256:6e2f...
      driver: registry.dcm.lan:5000/dcspark-driver@sha256:9a7d...
    deployed_by: "{{ lookup('ansible.builtin.env', 'USER') }}"
    etcd_endpoints: ["https://10.0.0.11:2379", "https://10.0.0.12:2379"]
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
  register: face

- name: Show where the workers go
  ansible.builtin.debug:
    msg: "generation {{ face.generation }}: workers on {{ face.placement.workers }}"

- name: Remove the face cluster
  dcspark.dcm.dcm_cluster:
    state: absent
    name: face
    etcd_endpoints: ["https://10.0.0.11:2379"]
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
"""

RETURN = r"""
name:
  description: Name of the cluster.
  returned: always
  type: str
  sample: face
record:
  description:
    - The cluster record as stored (or, in check mode, as it would be stored) under
      C(/dcm/clusters/<name>) - normalized spec, C(spec_hash), C(images), C(network), C(placement),
      C(generation), C(desired_state), C(deployed_by), C(updated_at).
    - C(secret), the cluster's random C(spark.authenticate) secret (kept across generations, handed to its
      containers by the agents), is stored in etcd but always shown as C(********).
    - With O(state=absent), the record that was removed.
  returned: when the cluster is present, or was removed
  type: dict
placement:
  description: Host of each node; the i-th entry of C(workers) (counting from 0) is the host of node C(worker-<i+1>).
  returned: with O(state=present), on success
  type: dict
  sample: {"master": "node1", "driver": "node3", "workers": ["node1", "node1", "node3"]}
rollout:
  description:
    - Where the rolling change to this generation stands (C(from), C(to), C(done), C(pending)); null when the
      change is not rolling or is over. Move it on with M(dcspark.dcm.dcm_rollout).
  returned: with O(state=present), on success
  type: dict
rolling:
  description: Why a change asked to roll replaces every node at once instead; empty otherwise.
  returned: with O(state=present), on success
  type: str
pruned:
  description: Generations that left the history (C(generation), C(images)); their images are queued for the registry's prune.
  returned: with O(state=present), on success
  type: list
  elements: dict
purged:
  description: With O(state=absent) and O(purge=true), the generations dropped from the history.
  returned: with O(state=absent)
  type: list
  elements: int
scaled:
  description:
    - With O(workers), how the cluster is resized. C(from_workers) and C(to_workers), C(from_generation),
      C(added) (each added worker and its host) and C(removed) (the workers that go).
  returned: with O(workers)
  type: dict
  sample:
    from_workers: 3
    to_workers: 5
    from_generation: 4
    added: {worker-4: sandbox2, worker-5: sandbox3}
    removed: []
rollback_of:
  description: With O(rollback), the generation the cluster returned to.
  returned: with O(rollback=true), when a generation was found
  type: int
generation:
  description: Generation of the record; 1 for a new cluster, one more for each change.
  returned: with O(state=present), on success
  type: int
  sample: 1
spec_hash:
  description: Content hash (sha256) of the normalized spec.
  returned: with O(state=present), on success
  type: str
attempts:
  description: Read-plan-commit rounds it took; more than 1 means another deploy committed in between.
  returned: with O(state=present), on success and when every attempt lost the race
  type: int
  sample: 1
hosts_used:
  description: Names of the hosts that receive at least one node, sorted.
  returned: when a placement was planned
  type: list
  elements: str
  sample: ["node1", "node3"]
hosts:
  description:
    - The scheduler's view of every host of the pool in the last plan, as in M(dcspark.dcm.dcm_schedule)
      (C(status), capacity, what was requested, Eq. 2 C(rates), Eq. 3 C(worker_slots), C(placed),
      C(reasons)).
    - Only when a placement was planned (a new cluster or a changed spec), and when scheduling fails.
  returned: when a placement was planned, and on scheduling failure
  type: list
  elements: dict
node:
  description: The node that did not fit, when scheduling fails.
  returned: failure
  type: str
  sample: worker-5
diff:
  description: The record before and after, in diff mode.
  returned: in diff mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError, ReservationConflict, ScheduleError
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import public_record
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.rollout import pick_generation
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.scheduler import ROLES
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.views import rollout_view
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.loading import spec_from_param
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore, Reservation


IMAGE_KEYS = tuple(ROLES) + ("runtime",)


def _images(value: dict | None) -> dict | None:
    """Validate ``images`` (role -> reference); returns it with string values, or None."""
    if value is None:
        return None
    problems = []
    for role, reference in value.items():
        if role not in IMAGE_KEYS:
            problems.append(f"images.{role}: not a role; use {', '.join(IMAGE_KEYS)}")
        elif not isinstance(reference, str) or not reference.strip():
            problems.append(f"images.{role}: must be a non-empty image reference, got {reference!r}")
    if problems:
        raise DcmError("; ".join(problems))
    return {role: reference.strip() for role, reference in value.items()}


def _rollback_target(params: dict, store: DcmStore) -> dict:
    """The history entry ``rollback`` returns to (fails naming what is retained)."""
    name = params["name"]
    if not name:
        raise DcmError("rollback needs name, the cluster to roll back")
    current = store.get_cluster(name)
    if current is None:
        raise DcmError(f"cluster {name} has no record in etcd: nothing to roll back (deploy it with deploy_cluster.yml)")
    return pick_generation(current, store.history(name), params["generation"])


def _present(m: DcmModule) -> None:
    params, store, result = m.params, m.store(), m.result
    if params["attempts"] < 1:
        raise DcmError(f"attempts must be >= 1, got {params['attempts']}")
    if params["keep"] < 1:
        raise DcmError(f"keep must be at least 1 generation, got {params['keep']}")
    target = None
    if params["workers"] is not None:
        if params["spec"] is not None or params["images"] is not None or params["rollback"]:
            raise DcmError("workers resizes the recorded spec with its recorded images: drop spec, images and rollback")
        reservation = store.scale(params["name"], params["workers"], deployed_by=params["deployed_by"],
                                  attempts=params["attempts"], check_mode=m.check_mode, keep=params["keep"],
                                  strategy=params["strategy"])
        _reserved(m, reservation)
        before = list(((reservation.previous or {}).get("placement") or {}).get("workers") or [])
        after = list(reservation.record["placement"]["workers"])
        result["scaled"] = {
            "from_workers": len(before), "to_workers": len(after),
            "from_generation": (reservation.previous or {}).get("generation"),
            "added": {f"worker-{i}": host for i, host in enumerate(after, start=1) if i > len(before)},
            "removed": [f"worker-{i}" for i in range(len(after) + 1, len(before) + 1)],
        }
        return
    if params["rollback"]:
        if params["spec"] is not None or params["images"] is not None:
            raise DcmError("rollback takes its spec and images from the generation it returns to: drop spec and images")
        result["name"] = params["name"]
        target = _rollback_target(params, store)
        spec, images, network = target["spec"], target["images"], target["network"]
        result["rollback_of"] = target["generation"]
    else:
        if params["spec"] is None:
            raise DcmError("spec is required with state=present (or rollback=true with name)")
        spec = spec_from_param(params["spec"])
        if params["name"] and params["name"] != spec["name"]:
            raise DcmError(f"name {params['name']!r} does not match the spec's name {spec['name']!r}")
        images, network = _images(params["images"]), params["network"]
    result["name"] = spec["name"]
    _reserved(m, store.reserve(
        spec,
        images=images,
        deployed_by=params["deployed_by"],
        attempts=params["attempts"],
        check_mode=m.check_mode,
        network=network,
        keep=params["keep"],
        strategy=params["strategy"],
        origin="rollback" if target else params["origin"],
        rollback_of=target["generation"] if target else None,
    ))


def _reserved(m: DcmModule, reservation: Reservation) -> None:
    """The module's result for a reservation made (or previewed, or found unchanged)."""
    result = m.result
    record = public_record(reservation.record)
    result["name"] = record["name"]
    result.update(
        changed=reservation.changed,
        record=record,
        placement=record["placement"],
        generation=record["generation"],
        spec_hash=record["spec_hash"],
        attempts=reservation.attempts,
        rollout=rollout_view(reservation.record),
        rolling=reservation.rolling,
        pruned=[{"generation": entry.get("generation"), "images": entry.get("images") or {}}
                for entry in reservation.pruned],
    )
    if reservation.plan is not None:
        summary = reservation.plan.to_dict()
        result.update(hosts_used=summary["hosts_used"], hosts=summary["hosts"])
    if m.module._diff:
        result["diff"] = {"before": public_record(reservation.previous) or {}, "after": record}


def _absent(m: DcmModule) -> None:
    name, result = m.params["name"], m.result
    result["name"] = name
    removed, purged = m.store().remove_cluster(name, check_mode=m.check_mode, purge=m.params["purge"])
    result["changed"] = removed is not None or bool(purged)
    result["purged"] = purged
    if removed is not None:
        result["record"] = public_record(removed)
    if m.module._diff:
        result["diff"] = {"before": public_record(removed) or {}, "after": {}}


def apply(m: DcmModule) -> None:
    try:
        if m.params["state"] == "present":
            _present(m)
        else:
            _absent(m)
    except ScheduleError as exc:
        if "rollback_of" not in m.result:
            raise
        m.fail(f"cluster {m.result['name']}: generation {m.result['rollback_of']} no longer fits the pool, nothing "
               f"was changed: {exc}", **exc.details())
    except ReservationConflict as exc:
        m.fail(str(exc), attempts=m.params["attempts"])


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "name": {"type": "str"},
            "spec": {"type": "raw"},
            "images": {"type": "dict"},
            "network": {
                "type": "dict",
                "options": {
                    "name": {"type": "str", "required": True},
                    "driver": {"type": "str", "choices": ["overlay", "bridge", "flannel"], "default": "overlay"},
                },
            },
            "deployed_by": {"type": "str"},
            "attempts": {"type": "int", "default": 20},
            "keep": {"type": "int", "default": 5},
            "strategy": {"type": "str", "choices": ["rolling", "all-at-once"], "default": "rolling"},
            "origin": {"type": "str", "choices": ["deploy", "refresh"], "default": "deploy"},
            "rollback": {"type": "bool", "default": False},
            "generation": {"type": "int"},
            "workers": {"type": "int"},
            "purge": {"type": "bool", "default": False},
        },
        required_if=[("state", "absent", ("name",)), ("rollback", True, ("name",))],
        required_by={"workers": ("name",)},
        supports_check_mode=True,
    ).run(apply)


if __name__ == "__main__":
    main()
