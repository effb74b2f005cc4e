#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_submit
short_description: Run a job on a running DCSpark cluster and record it
version_added: 0.3.0
description:
  - Runs C(spark-submit) in client mode in the cluster's driver container, against the cluster's own master,
    with the cluster's authentication and encryption. Runs on the host the cluster record places the
    driver on (the playbook C(dcspark.dcm.submit) delegates there).
  - With O(app), ships that script or JAR and the O(files) from this host into a folder of the job's own in
    the driver container (C(/tmp/dcspark-jobs/<id>)), runs it, and removes the folder whatever the outcome;
    no image is rebuilt. C(.py), C(.zip) and C(.egg) files go to C(--py-files), other files to C(--files).
    Without O(app), runs the spec's own application baked into the images (what a deploy runs).
  - O(conf) is checked by the rules of the spec's C(spark_conf), against the cluster's spec; nothing DCM
    manages (authentication, encryption, the master, the REST server) can be set, sizes must fit the nodes.
  - Every job is recorded in etcd under C(/dcm/jobs/<cluster>/<id>) when it starts and again when it ends
    (who, when, file, arguments, Spark application id, exit code, duration and the tail of its output). The
    newest O(keep_jobs) records of the cluster are kept. With O(record=false) the module writes nothing to etcd
    and returns the record, for M(dcspark.dcm.dcm_job_record) to write where the identity may (on a pool with
    etcd's access control on, the agent identity of the driver's host reads cluster records but writes no job).
  - Fails when the job fails, with its exit code and its last error lines; a job that runs longer than
    O(timeout) is killed with its whole process group (the driver, hence the application and its executors).
author:
  - DCSpark developers (@dcspark)
requirements:
  - The Docker SDK for Python (C(docker) on PyPI, C(python3-docker) on Debian) on the driver's host.
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Checks the cluster, its driver container and O(conf); runs nothing and records nothing.
  diff_mode:
    support: none
    description: A job changes no configuration.
  idempotent:
    support: none
    description: Every run is a new job.
options:
  cluster:
    description: Name of the cluster (its record in etcd names the spec and the driver's host).
    type: str
    required: true
  app:
    description:
      - Path on this host of the application to run (a Python script, or a JAR with O(main_class)).
      - Omit it to run the spec's own application from the images.
    type: path
  files:
    description: Paths on this host of other files the job needs, shipped beside O(app).
    type: list
    elements: path
    default: []
  args:
    description: Arguments passed to the application.
    type: list
    elements: str
    default: []
  conf:
    description: Spark settings for this job only, checked like the spec's C(spark_conf).
    type: dict
    default: {}
  main_class:
    description: Main class of a JAR application (C(spark-submit --class)).
    type: str
    aliases: [class]
  timeout:
    description: Seconds the job may run; 0 for no limit. A job past it is killed and the module fails.
    type: int
    default: 0
  keep_jobs:
    description: How many job records of the cluster etcd keeps (the newest).
    type: int
    default: 50
  submitted_by:
    description: Who submitted the job (C(user@host) of the control node), for the record.
    type: str
    default: ""
  record:
    description:
      - Write the job's record to etcd here (when it starts and when it ends). V(false) only reads etcd and returns
        the record in RV(job), also when the job fails.
    type: bool
    default: true
  docker_host:
    description: URL of the Docker engine on the driver's host.
    type: str
    default: unix:///var/run/docker.sock
"""

EXAMPLES = r"""
- name: Run a script on the cluster face
  dcspark.dcm.dcm_submit:
    cluster: face
    app: /tmp/jobs/count.py
    files: [/tmp/jobs/helpers.py]
    args: ["--limit", "10"]
    conf: {spark.executor.memory: 512m}
    timeout: 600
  delegate_to: "{{ face_driver_host }}"
  register: job

- name: Run the spec's own application again
  dcspark.dcm.dcm_submit:
    cluster: face
"""

RETURN = r"""
job:
  description:
    - The job's record as etcd keeps it (C(id), C(cluster), C(app), C(files), C(args), C(conf), C(submitted_by),
      C(submitted_at), C(host), C(state) C(succeeded), C(failed) or C(timed_out), C(exit_code), C(duration_s),
      C(app_id), and the last lines of C(stdout) and C(stderr)).
  returned: when the job ran
  type: dict
job_id:
  description: The job's id, e.g. C(20261205T031500Z-3f9a1c).
  returned: when the job ran
  type: str
app_id:
  description: The Spark application id of the job, when the driver reported it.
  returned: when the job ran
  type: str
rc:
  description: Exit code of spark-submit (124 or 137 when the timeout killed it).
  returned: when the job ran
  type: int
stdout_lines:
  description: What the application printed.
  returned: when the job ran
  type: list
  elements: str
stderr_lines:
  description: What spark-submit and Spark logged.
  returned: when the job ran
  type: list
  elements: str
error_lines:
  description: The last lines of the output that say what went wrong.
  returned: failure
  type: list
  elements: str
"""

import getpass
import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.host.docker import connect
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.jobs import KILL_AFTER, Job, driver_container, submit
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import qfs_host_map
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import check_job_conf

DAY = 86400


def run_job(m: DcmModule) -> None:
    params = m.params
    if params["timeout"] < 0 or params["keep_jobs"] < 1:
        raise DcmError(f"timeout must be 0 or more seconds and keep_jobs at least 1, got {params['timeout']} "
                       f"and {params['keep_jobs']}")
    store = m.store()
    record = store.get_cluster(params["cluster"])
    if record is None:
        raise DcmError(f"cluster {params['cluster']} has no record in etcd: deploy it first (deploy_cluster.yml)")
    paths = ([params["app"]] if params["app"] else []) + list(params["files"])
    for path in paths:
        if not os.path.isfile(path):
            raise DcmError(f"{path} is not a file on {socket.gethostname()}")
    names = [os.path.basename(path) for path in paths]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DcmError(f"two files share the name {', '.join(duplicates)}: the job's folder holds one file per name")
    if not params["app"] and (params["files"] or params["args"] or params["conf"] or params["main_class"]):
        raise DcmError("files, args, conf and main_class go with app; without app the spec's own application runs "
                       "as the spec says")
    if not params["app"] and not (record["spec"].get("app") or {}).get("main"):
        raise DcmError(f"cluster {params['cluster']}: its spec has no application; give app, the file to run")
    job = Job(cluster=params["cluster"], app=names[0] if params["app"] else "", files=names[1:],
              args=list(params["args"]), conf=check_job_conf(record["spec"], params["conf"]),
              main_class=params["main_class"] or "", timeout=params["timeout"],
              submitted_by=params["submitted_by"] or f"{getpass.getuser()}@{socket.gethostname()}",
              label=(record["spec"].get("app") or {}).get("main", ""),
              qfs_hosts=qfs_host_map(record, store.hosts()))
    docker = connect(params["docker_host"], (params["timeout"] + KILL_AFTER + 60) if params["timeout"] else DAY)
    try:
        if m.check_mode:
            driver_container(docker, job.cluster)
            m.result.update(changed=False, argv=job.argv())
            return
        job_record, outcome = submit(store if params["record"] else None, docker, job, dict(zip(names, paths)),
                                     socket.gethostname(), params["keep_jobs"])
    finally:
        docker.close()
    m.result.update(changed=True, job=job_record, job_id=job_record["id"], app_id=job_record["app_id"],
                    rc=outcome.exit_code, stdout_lines=outcome.stdout.splitlines(),
                    stderr_lines=outcome.stderr.splitlines())
    if job_record["state"] == "timed_out":
        m.fail(f"job {job.id} ({job_record['app']}) on cluster {job.cluster} ran longer than {job.timeout} s and was "
               "killed with its driver; nothing of it is left in the driver container",
               error_lines=outcome.error_lines())
    if outcome.exit_code != 0:
        m.fail(f"job {job.id} ({job_record['app']}) on cluster {job.cluster} failed with exit code {outcome.exit_code}: "
               + " | ".join(outcome.error_lines(5)), error_lines=outcome.error_lines())


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "cluster": {"type": "str", "required": True},
            "app": {"type": "path"},
            "files": {"type": "list", "elements": "path", "default": []},
            "args": {"type": "list", "elements": "str", "default": []},
            "conf": {"type": "dict", "default": {}},
            "main_class": {"type": "str", "aliases": ["class"]},
            "timeout": {"type": "int", "default": 0},
            "keep_jobs": {"type": "int", "default": 50},
            "submitted_by": {"type": "str", "default": ""},
            "record": {"type": "bool", "default": True},
            "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
        },
        supports_check_mode=True,
    ).run(run_job)


if __name__ == "__main__":
    main()
