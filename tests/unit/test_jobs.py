"""Jobs on a running cluster, the pure parts: the command a job runs, its conf checked like the spec's."""

from __future__ import annotations

import re

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError, SpecError
from ansible_collections.dcspark.dcm.plugins.module_utils.ops.jobs import KILL_AFTER, Job, Outcome, check_job_record, new_job_id
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import qfs_host_map
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.views import jobs_view
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import check_job_conf, normalize_spec

SPEC = normalize_spec({"name": "face", "runtime": {"spark_version": "4.0.1", "app_dir": "apps/face"},
                       "worker": {"cpus": 2, "memory": "2g", "count": 2}, "driver": {"memory": "1g"},
                       "spark_conf": {"spark.executor.memory": "512m"}, "app": {"main": "detect.py"}})


def test_a_shipped_job_runs_its_own_file_from_its_folder_with_its_conf_and_files():
    job = Job(cluster="face", id="20261205T031500Z-abcdef", app="count.py", files=["helpers.py", "data.csv", "lib.zip"],
              args=["--limit", 10], conf={"spark.executor.memory": "256m", "spark.sql.shuffle.partitions": "4"})
    folder = "/tmp/dcspark-jobs/20261205T031500Z-abcdef"
    assert job.folder == folder
    assert job.argv() == [
        "dcspark-submit",
        "--conf", "spark.executor.memory=256m", "--conf", "spark.sql.shuffle.partitions=4",
        "--py-files", f"{folder}/helpers.py,{folder}/lib.zip",
        "--files", f"{folder}/data.csv",
        f"{folder}/count.py", "--limit", "10",
    ]
    # the spec's own application does not run instead of the shipped one
    assert job.environment() == {"DCSPARK_APP_MAIN": "", "DCSPARK_APP_CLASS": "", "DCSPARK_APP_ARGS": "[]"}


def test_a_jar_job_names_its_class_and_a_timeout_wraps_the_whole_command():
    job = Job(cluster="face", id="x", app="job.jar", main_class="org.example.Main", timeout=30)
    assert job.argv() == ["timeout", "-s", "TERM", "-k", str(KILL_AFTER), "30", "dcspark-submit",
                          "--class", "org.example.Main", "/tmp/dcspark-jobs/x/job.jar"]


def test_the_specs_own_application_runs_as_the_images_say():
    job = Job(cluster="face", id="x", label="detect.py")
    assert job.argv() == ["dcspark-submit"]
    assert job.environment() == {}
    assert job.record("h1", 0.0)["app"] == "detect.py"


def test_every_job_gets_the_workers_by_the_address_qfs_names_their_host():
    record = {"name": "face", "placement": {"master": "h1", "driver": "h2", "workers": ["h1", "h3", "h1", "h4"]}}
    hosts = {"h1": {"address": "10.0.0.11"}, "h2": {"address": "10.0.0.12"}, "h3": {"address": "10.0.0.13"},
             "h4": {}}  # no address registered: left out, its chunks are simply not local to anyone
    qfs = qfs_host_map(record, hosts)
    assert qfs == "10.0.0.11=spark-worker-face-1,spark-worker-face-3;10.0.0.13=spark-worker-face-2"
    # dcspark-submit turns it into spark.hadoop.fs.qfs.dcspark.hostMap, for a shipped job and the spec's own
    assert Job(cluster="face", id="x", qfs_hosts=qfs).environment() == {"DCSPARK_QFS_HOSTS": qfs}
    assert Job(cluster="face", id="x", app="a.py", qfs_hosts=qfs).environment()["DCSPARK_QFS_HOSTS"] == qfs
    # an address that would break the map's syntax is never passed on
    assert qfs_host_map(record, {"h1": {"address": "10.0.0.11;x=y"}}) == ""


def test_job_ids_sort_by_submission_time_and_never_collide():
    early, late = new_job_id(1_700_000_000.0), new_job_id(1_700_000_001.0)
    assert early < late and early.startswith("20231114T221320Z-")
    assert len({new_job_id(1_700_000_000.0) for _attempt in range(200)}) == 200


def test_the_outcome_finds_the_application_id_and_the_lines_that_say_what_failed():
    outcome = Outcome(1, "counted 3\n", "INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID "
                      "app-20261205031501-0007\nINFO x\nTraceback (most recent call last):\n  File \"count.py\", "
                      "line 3\nValueError: bad\n", 4.2)
    assert outcome.app_id() == "app-20261205031501-0007"
    assert outcome.error_lines() == ["Traceback (most recent call last):", '  File "count.py", line 3', "ValueError: bad"]
    assert not outcome.timed_out and Outcome(124, "", "", 1.0).timed_out and Outcome(137, "", "", 1.0).timed_out


def test_a_jobs_conf_follows_the_rules_of_the_specs_spark_conf():
    assert check_job_conf(SPEC, {"spark.executor.memory": "1g", "spark.sql.shuffle.partitions": 8}) == {
        "spark.executor.memory": "1g", "spark.sql.shuffle.partitions": "8"}
    assert check_job_conf(SPEC, None) == {}


@pytest.mark.parametrize(("conf", "message"), [
    ({"spark.authenticate": "false"}, 'conf["spark.authenticate"]: is managed by DCM'),
    ({"spark.network.crypto.enabled": False}, 'conf["spark.network.crypto.enabled"]: is managed by DCM'),
    ({"spark.master": "local[*]"}, 'conf["spark.master"]: is managed by DCM'),
    ({"spark.master.rest.enabled": "true"}, 'conf["spark.master.rest.enabled"]: is managed by DCM'),
    ({"spark.executor.memory": "3g"}, 'conf["spark.executor.memory"]: 3g exceeds worker.memory'),
    ({"spark.executor.cores": "4"}, 'conf["spark.executor.cores"]: 4 exceeds worker.cpus'),
    ({"not.spark": "1"}, "conf"),
    ("spark.executor.memory=1g", "conf: must be an object"),
])
def test_a_job_cannot_switch_security_off_or_ask_more_than_the_nodes_have(conf, message):
    with pytest.raises(SpecError) as caught:
        check_job_conf(SPEC, conf)
    assert message in str(caught.value)
    assert "spark_conf" not in str(caught.value)


def test_status_lists_the_newest_jobs_first_without_their_output():
    jobs = [{"id": f"j{n}", "app": "a.py", "state": "succeeded", "stdout": ["x"] * 50} for n in range(8)]
    shown = jobs_view(jobs)
    assert [job["id"] for job in shown] == ["j7", "j6", "j5", "j4", "j3"]
    assert all("stdout" not in job for job in shown)


def test_a_job_record_from_elsewhere_is_taken_only_as_dcm_submit_makes_it():
    job = Job(cluster="face", app="count.py", id=new_job_id(1_796_000_000))
    record = dict(job.record("h1", 1_796_000_000), state="succeeded", stdout=[str(n) for n in range(500)])
    assert check_job_record(record)["stdout"] == [str(n) for n in range(400, 500)]  # the tail a record keeps
    for bad, message in ((dict(record, id="../clusters/face"), "is not of the form"),
                         (dict(record, state="done"), "is not one of"),
                         (dict(record, cluster="../secrets/x"), "job cluster"),
                         (dict(record, placement={}), "unknown fields ['placement']"),
                         ({k: v for k, v in record.items() if k != "host"}, "missing ['host']"),
                         (dict(record, stderr="boom"), "stderr must be a list"),
                         (["not", "a", "mapping"], "is a mapping")):
        with pytest.raises(DcmError, match=re.escape(message)):
            check_job_record(bad)
