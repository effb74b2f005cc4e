#!/usr/bin/python
# Copyright: DCSpark contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcm_job_record
short_description: Write the record of a job that ran on a DCSpark cluster to etcd
version_added: 0.3.0
description:
  - Writes the job record M(dcspark.dcm.dcm_submit) returned with O(dcspark.dcm.dcm_submit#module:record=false)
    under C(/dcm/jobs/<cluster>/<id>), and keeps the newest O(keep_jobs) records of the cluster.
  - The playbooks run the job on the driver's host, whose etcd identity (its agent's) may read the cluster's record
    but not write jobs, and record it from the first master with this module.
  - The record is checked first - the fields M(dcspark.dcm.dcm_submit) makes and no other, a job id of its form,
    a cluster name of the spec's rule, a known state. The cluster need not have a record any more (a job
    that ran is recorded even when an undeploy removed its cluster meanwhile).
author:
  - DCSpark developers (@dcspark)
extends_documentation_fragment:
  - dcspark.dcm.etcd
attributes:
  check_mode:
    support: full
    description: Checks the record; writes nothing.
  diff_mode:
    support: none
    description: Not reported.
  idempotent:
    support: full
    description: Writing the same record again changes nothing.
options:
  job:
    description: The job's record, RV(dcspark.dcm.dcm_submit#module:job) of the run.
    type: dict
    required: true
  keep_jobs:
    description: How many job records of the cluster etcd keeps (the newest).
    type: int
    default: 50
"""

EXAMPLES = r"""
- name: Record the job that ran on the driver's host
  dcspark.dcm.dcm_job_record:
    job: "{{ submit_job.job }}"
    keep_jobs: 50
  when: submit_job.job is defined
"""

RETURN = r"""
job_id:
  description: The id of the job recorded.
  returned: success
  type: str
  sample: 20261205T031500Z-3f9a1c
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import DcmModule
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.jobs import check_job_record


def record_job(m: DcmModule) -> None:
    params = m.params
    if params["keep_jobs"] < 1:
        raise DcmError(f"keep_jobs must be at least 1, got {params['keep_jobs']}")
    job = check_job_record(params["job"])
    store = m.store()
    # no look-up of the cluster's record: a job that ran is recorded even when an undeploy removed its
    # cluster meanwhile (job records outlive an undeploy)
    m.result["job_id"] = job["id"]
    if store.job(job["cluster"], job["id"]) == job:
        return
    m.result["changed"] = True
    if not m.check_mode:
        store.put_job(job, params["keep_jobs"])


def main() -> None:
    DcmModule(
        AnsibleModule,
        argument_spec={
            "job": {"type": "dict", "required": True},
            "keep_jobs": {"type": "int", "default": 50},
        },
        supports_check_mode=True,
    ).run(record_job)


if __name__ == "__main__":
    main()
