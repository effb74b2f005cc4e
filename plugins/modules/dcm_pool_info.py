#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_pool_info
short_description: Hosts, DCSpark clusters, their placements and node health, from the pool's etcd
version_added: 0.1.0
description:
  - Reads the pool's state at one etcd revision - the hosts whose agents hold a lease, cordons, the cluster
    records and the agents' reports under C(/dcm/status/) - and returns it as an operator reads it.
  - For every cluster, every node with its host, container, state, health and restarts as its agent last
    reported them, whether the cluster is C(converged) (every node running at the record's generation), and
    the master's web UI address.
  - Also the DCM master in charge and the newest events under C(/dcm/events/) - what the masters and agents
    did (reschedules, degraded clusters, containers created, started or removed, garbage collection).
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only; there is nothing to compare.
  idempotent:
    support: full
    description: Reads only.
options:
  cluster:
    description: Report only this cluster (hosts are always reported). Fails when O(must_exist) and it is absent.
    type: str
  must_exist:
    description: With O(cluster), fail when the cluster has no record.
    type: bool
    default: false
  events:
    description: How many of the newest events to return (0 for all that are kept).
    type: int
    default: 20
  credentials:
    description:
      - With O(cluster), also return the cluster's UI credentials at the pool's gateway (RV(credentials)).
      - They are a secret; run the task with C(no_log) unless it is meant to show them
        (C(playbooks/ui_credentials.yml) is the one command that does).
    type: bool
    default: false
seealso:
  - module: dcspark.dcm.dcm_cluster
"""

EXAMPLES = r"""
- name: Read the pool
  dcspark.dcm.dcm_pool_info:
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
    etcd_ca_cert: /etc/dcm/pki/ca.crt
    etcd_client_cert: /etc/dcm/pki/client.crt
    etcd_client_key: /etc/dcm/pki/client.key
  register: pool

- name: Wait until the face cluster runs
  dcspark.dcm.dcm_pool_info:
    cluster: face
    etcd_endpoints: "{{ dcm_etcd_endpoints }}"
  register: face
  until: face.clusters[0].converged
  retries: 60
  delay: 2
"""

RETURN = r"""
revision:
  description: The etcd revision everything was read at.
  returned: success
  type: int
hosts:
  description:
    - Every host of the pool (C(live) false for one whose agent lost its lease but still holds nodes), with
      allocatable C(cpus) and C(memory), what the clusters request there and which clusters use it.
  returned: success
  type: list
  elements: dict
clusters:
  description:
    - Every cluster (or O(cluster) only) with C(generation), C(placement), C(images), C(network), C(ui),
      C(jupyter) (C(url) of the driver's Jupyter server, C(host), and the command that prints its C(token); null
      without one), C(master_url), C(nodes) (each with C(host), C(container), C(state), C(health), C(restarts), C(generation),
      C(error)), C(running), C(converged), C(health) (C(ok) or C(degraded)), C(degraded) (reason and since)
      and C(repairs) (the DCM master's last moves of its nodes).
    - C(generations), the retained generations newest first (C(generation), C(current), C(origin) - V(deploy),
      V(rollback) with C(rollback_of), or V(recorded) - C(deployed_by), C(updated_at), C(spec_hash),
      C(spark_version), C(pip_packages), C(images), C(placement)), and C(rollout), where a rolling change
      stands (C(from), C(to), C(done), C(pending)), or null.
    - C(jobs), the cluster's five newest jobs, newest first (C(id), C(app), C(state), C(exit_code), C(duration_s),
      C(app_id), C(submitted_by), C(submitted_at)); M(dcspark.dcm.dcm_logs) reads one whole.
  returned: success
  type: list
  elements: dict
leader:
  description: The DCM master in charge (C(name), C(since)), or null when none leads.
  returned: success
  type: dict
credentials:
  description: With O(credentials), the cluster's C(url) at the gateway, C(user) and C(password).
  returned: when O(credentials) is set
  type: dict
events:
  description: The newest O(events) events, oldest first (only O(cluster)'s when given), each with C(time),
    C(kind), C(source), C(message) and the C(cluster), C(node) or C(host) it concerns.
  returned: success
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.views import pool_view


def read_pool(m: DcmModule) -> None:
    cluster = m.params["cluster"]
    store = m.store()
    snap = store.snapshot()
    jobs: dict = {}
    for job in store.jobs(cluster, revision=snap.revision):
        jobs.setdefault(job.get("cluster"), []).append(job)
    view = pool_view(snap, store.status(snap.revision), cluster, store.events(m.params["events"], cluster, snap.revision),
                     store.leader(snap.revision), store.histories(snap.revision, cluster), jobs)
    m.result.update(view)
    if cluster and (m.params["must_exist"] or m.params["credentials"]) and not view["clusters"]:
        m.fail(f"cluster {cluster} has no record in etcd (deployed clusters: {', '.join(sorted(snap.clusters)) or 'none'})")
    if m.params["credentials"]:
        if not cluster:
            m.fail("credentials needs the cluster's name (cluster=NAME)")
        password = (store.held_secrets(cluster).get("secrets") or {}).get("ui_password")
        if not password:
            m.fail(f"cluster {cluster} has no UI credentials yet (deployed before the gateway existed): "
                   "deploy it again with deploy_cluster.yml to give it some")
        m.result["credentials"] = {"url": view["clusters"][0]["ui"], "user": cluster, "password": password}


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={"cluster": {"type": "str"}, "must_exist": {"type": "bool", "default": False},
                       "events": {"type": "int", "default": 20},
                       "credentials": {"type": "bool", "default": False}},
        supports_check_mode=True,
    ).run(read_pool)


if __name__ == "__main__":
    main()
