#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_logs
short_description: Read the logs of a DCSpark cluster's nodes and jobs
version_added: 0.3.0
description:
  - With O(node) and no O(app_id), returns the container log of that node (its Spark daemon, or the
    driver's Jupyter and application output) from the Docker engine of the host the module runs on;
    run it on the node's host (the playbook C(dcspark.dcm.logs) finds it from the cluster record).
  - With O(job), returns the job's record from etcd (M(dcspark.dcm.dcm_submit) keeps who, when, the exit code,
    the Spark application id and the last lines of the driver's output).
  - With O(app_id) and a worker O(node), returns the output of that application's executors on that worker
    (C(stdout) and C(stderr) of each executor in the worker's work folder).
author:
  - DCSpark developers (@dcspark)
requirements:
  - The Docker SDK for Python on the node's host (not needed for O(job)).
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only.
  idempotent:
    support: full
    description: Reads only.
options:
  cluster:
    description: Name of the cluster.
    type: str
    required: true
  node:
    description: C(master), C(driver), C(worker-N), or C(history) (a cluster with a history server).
    type: str
  job:
    description: Id of a job (RV(dcspark.dcm.dcm_submit#module:job_id)), to read its record from etcd.
    type: str
  app_id:
    description: Spark application id whose executors' output to read on the worker O(node).
    type: str
  lines:
    description: How many of the last lines to return (per log); 0 for all.
    type: int
    default: 100
  docker_host:
    description: URL of the Docker engine on the node's host.
    type: str
    default: unix:///var/run/docker.sock
"""

EXAMPLES = r"""
- name: The master's log
  dcspark.dcm.dcm_logs:
    cluster: face
    node: master
    lines: 50
  delegate_to: "{{ master_host }}"

- name: A job's record
  dcspark.dcm.dcm_logs:
    cluster: face
    job: 20261205T031500Z-3f9a1c
"""

RETURN = r"""
lines:
  description:
    - The node's container log (O(node) without O(app_id)); with O(app_id), the executors' output as text, each
      part headed C(--- worker-N executor ID stdout|stderr).
  returned: with node
  type: list
  elements: str
job:
  description: The job's record, with the last lines of the driver's C(stdout) and C(stderr).
  returned: with job
  type: dict
executors:
  description: Each executor of O(app_id) on the worker, with C(executor), C(stdout) and C(stderr) (lists of lines).
  returned: with app_id
  type: list
  elements: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core import naming
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.host.docker import connect
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.jobs import executor_logs, node_log

NODE = re.compile(r"^(master|driver|history|worker-[1-9][0-9]*)$")


def tail(lines: list, count: int) -> list:
    return lines[-count:] if count else lines


def read_logs(m: DcmModule) -> None:
    params = m.params
    cluster, node, count = params["cluster"], params["node"], params["lines"]
    if count < 0:
        raise DcmError(f"lines must be 0 (all) or more, got {count}")
    if node is not None and not NODE.match(node):
        raise DcmError(f"node must be master, driver, history or worker-N, got {node!r}")
    if params["job"]:
        store = m.store()
        if store is None:
            raise DcmError("reading a job's record needs the pool's etcd: set etcd_endpoints")
        record = store.job(cluster, params["job"])
        if record is None:
            known = [job["id"] for job in store.jobs(cluster, limit=10)]
            raise DcmError(f"cluster {cluster} has no job {params['job']} (recent: {', '.join(known) or 'none'})")
        record = dict(record, stdout=tail(record.get("stdout") or [], count),
                      stderr=tail(record.get("stderr") or [], count))
        m.result["job"] = record
    if node is None:
        if not params["job"]:
            raise DcmError("give node (master, driver, worker-N), job, or both")
        return
    docker = connect(params["docker_host"], 120)
    try:
        container = naming.container_name(cluster, node)
        if params["app_id"]:
            if not node.startswith("worker-"):
                raise DcmError(f"executors run on workers; {node} is not one")
            executors = executor_logs(docker, container, params["app_id"], count)
            m.result["executors"] = executors
            m.result["lines"] = [line for entry in executors for stream in ("stdout", "stderr")
                                 for line in [f"--- {node} executor {entry['executor']} {stream}"] + entry[stream]]
        else:
            m.result["lines"] = node_log(docker, container, count)
    finally:
        docker.close()


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "node": {"type": "str"},
            "job": {"type": "str"},
            "app_id": {"type": "str"},
            "lines": {"type": "int", "default": 100},
            "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
        },
        etcd="optional",
        supports_check_mode=True,
    ).run(read_logs)


if __name__ == "__main__":
    main()
