"""dcm_submit and dcm_logs through Ansible, against the real Docker engine and a real etcd.

The "driver" here is a busybox container named as a cluster's driver, with a stand-in
``dcspark-submit`` that prints what spark-submit was asked and runs the shipped script with ``sh``:
what is tested is DCM's side - shipping the files into a folder of the job's own, the command it
runs, the exit code and error lines, the record in etcd, the folder removed whatever the outcome,
the logs of nodes and executors. Real Spark jobs (and the timeout killing a real driver) run in the
sandbox suite, molecule/default/tests/test_jobs.py.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec
from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore
from docker_fixtures import TEST_RUN, cleanup, engine, import_base
from support import run_module

pytestmark = pytest.mark.etcd

APP_ID = "app-20261205031501-0042"
FAKE_SUBMIT = f"""#!/bin/sh
echo "fake spark-submit $*" >&2
echo "INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID {APP_ID}" >&2
while [ $# -gt 0 ]; do case "$1" in --conf|--py-files|--files|--class) shift 2;; *) break;; esac; done
exec sh "$@"
"""


def _tar(files: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def world():
    client = engine()
    run_id = uuid.uuid4().hex
    cluster = f"jobs{run_id[:8]}"
    base = import_base(client, run_id, "dcspark-test/jobs")
    names = {}
    try:
        # every busybox applet, a /tmp, the stand-in spark-submit, and the images' non-root user
        setup = client.create_container(base, command=["/bin/sh", "-c", "/bin/busybox --install -s /bin && "
                                                       "mkdir -m 1777 /tmp"], labels={TEST_RUN: run_id})
        client.put_archive(setup["Id"], "/", _tar({"usr/local/bin/dcspark-submit": (FAKE_SUBMIT, 0o755)}))
        client.start(setup["Id"])
        assert client.wait(setup["Id"], timeout=60)["StatusCode"] == 0
        image = client.commit(setup["Id"], changes=["USER 185", f"LABEL {TEST_RUN}={run_id}"])["Id"]
        for node, command in (("driver", "echo driver up; sleep 600"), ("worker-1", "echo worker up; sleep 600")):
            name = f"spark-{node.split('-', maxsplit=1)[0]}-{cluster}" + ("-1" if node == "worker-1" else "")
            client.create_container(image, name=name, command=["/bin/sh", "-c", command], labels={TEST_RUN: run_id},
                                    host_config=client.create_host_config(network_mode="none"))
            client.start(name)
            names[node] = name
        worker_files = {f"opt/dcspark/work/{APP_ID}/0/stdout": ("executor 0 says hello\n", 0o644),
                        f"opt/dcspark/work/{APP_ID}/0/stderr": ("executor 0 INFO\n", 0o644),
                        f"opt/dcspark/work/{APP_ID}/1/stdout": ("executor 1 says hi\n", 0o644)}
        client.put_archive(names["worker-1"], "/", _tar(worker_files))
        yield {"client": client, "cluster": cluster, "names": names}
    finally:
        problems = cleanup(client, run_id)
        client.close()
        assert not problems, f"cleanup of test run {run_id} left things behind: {problems}"


@pytest.fixture
def deployed(clean_etcd, world):
    spec = normalize_spec({"name": world["cluster"], "runtime": {"spark_version": "4.0.1", "app_dir": "apps/x"},
                           "worker": {"count": 1, "memory": "1g"}, "app": {"main": "main.py"}})
    record = {"name": world["cluster"], "spec": spec, "generation": 1, "desired_state": "running",
              "placement": {"master": "h", "driver": "h", "workers": ["h"]}}
    clean_etcd.client.put(keys.cluster_key(world["cluster"]), json.dumps(record))
    return clean_etcd


def submit(etcd, world, tmp_path, script: str, **extra) -> dict:
    app = tmp_path / "job.py"
    app.write_text(script)
    helper = tmp_path / "helpers.py"
    helper.write_text("# shipped beside the job\n")
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    args = {"cluster": world["cluster"], "app": str(app), "files": [str(helper), str(data)],
            "args": ["one", "two"], "submitted_by": "tester@here", **etcd.module_args(), **extra}
    return run_module("dcm_submit", args)


def job_folders(world) -> str:
    client = world["client"]
    exec_id = client.exec_create(world["names"]["driver"], ["sh", "-c", "ls -A /tmp/dcspark-jobs 2>/dev/null"])["Id"]
    return client.exec_start(exec_id).decode()


def test_a_job_runs_its_shipped_files_in_a_folder_of_its_own_and_is_recorded(deployed, world, tmp_path):
    result = submit(deployed, world, tmp_path, 'cd "$(dirname "$0")" && echo "args: $*" && ls && id -u\n')
    assert result.get("failed") is not True, result
    assert result["rc"] == 0 and result["app_id"] == APP_ID
    folder = f"/tmp/dcspark-jobs/{result['job_id']}"
    assert result["stdout_lines"] == ["args: one two", "data.csv", "helpers.py", "job.py", "185"]
    assert f"--py-files {folder}/helpers.py --files {folder}/data.csv {folder}/job.py one two" in \
        "\n".join(result["stderr_lines"])
    record = DcmStore(deployed.client).job(world["cluster"], result["job_id"])
    assert record["state"] == "succeeded" and record["exit_code"] == 0 and record["app_id"] == APP_ID
    assert record["app"] == "job.py" and record["submitted_by"] == "tester@here" and record["duration_s"] >= 0
    assert record["stdout"][0] == "args: one two"
    assert job_folders(world) == ""  # the job's folder is gone


def test_a_failing_job_fails_the_module_with_its_exit_code_and_error_lines(deployed, world, tmp_path):
    result = submit(deployed, world, tmp_path, 'echo working\necho "ValueError: no such column" >&2\nexit 3\n')
    assert result.get("failed") is True
    assert "failed with exit code 3" in result["msg"] and "ValueError: no such column" in result["msg"]
    assert result["error_lines"][-1] == "ValueError: no such column"
    record = DcmStore(deployed.client).job(world["cluster"], result["job_id"])
    assert record["state"] == "failed" and record["exit_code"] == 3
    assert job_folders(world) == ""


def test_a_conf_that_weakens_security_is_refused_before_anything_runs(deployed, world, tmp_path):
    result = submit(deployed, world, tmp_path, "echo must not run\n", conf={"spark.authenticate": "false"})
    assert result.get("failed") is True
    assert 'conf["spark.authenticate"]: is managed by DCM' in result["msg"]
    assert DcmStore(deployed.client).jobs(world["cluster"]) == []  # not run, not recorded
    assert job_folders(world) == ""


def test_a_job_run_without_recording_is_recorded_by_dcm_job_record(deployed, world, tmp_path):
    """How the playbooks run a job on a pool with etcd's access control: the driver's host only reads
    etcd, the first master writes the record the run returned."""
    failed = submit(deployed, world, tmp_path, 'echo "ValueError: bad row" >&2\nexit 2\n', record=False)
    assert failed.get("failed") is True and failed["job"]["state"] == "failed", failed
    store = DcmStore(deployed.client)
    assert store.jobs(world["cluster"]) == []  # nothing written by the run itself
    args = {"job": failed["job"], "keep_jobs": 5, **deployed.module_args()}
    preview = run_module("dcm_job_record", args, check=True)
    assert preview["changed"] is True and store.jobs(world["cluster"]) == []
    written = run_module("dcm_job_record", args)
    assert written.get("failed") is not True and written["changed"] is True, written
    record = store.job(world["cluster"], failed["job_id"])
    assert (record["state"], record["exit_code"], record["stderr"][-1]) == ("failed", 2, "ValueError: bad row")
    assert run_module("dcm_job_record", args)["changed"] is False  # the same record again changes nothing
    forged = dict(failed["job"], id="../../clusters/face", secret="x")
    refused = run_module("dcm_job_record", dict(args, job=forged))
    assert refused.get("failed") is True and "unknown fields ['secret']" in refused["msg"], refused
    escaping = run_module("dcm_job_record", dict(args, job=dict(failed["job"], cluster="../clusters")))
    assert escaping.get("failed") is True and "job cluster" in escaping["msg"], escaping
    assert [job["id"] for job in store.jobs(world["cluster"])] == [failed["job_id"]]
    # a job whose cluster was undeployed while it ran is still recorded
    gone = run_module("dcm_job_record", dict(args, job=dict(failed["job"], cluster="undeployed-meanwhile")))
    assert gone.get("failed") is not True and gone["changed"] is True, gone
    assert store.job("undeployed-meanwhile", failed["job_id"])["state"] == "failed"


def test_job_records_are_pruned_to_the_newest(deployed, world, tmp_path):
    ids = [submit(deployed, world, tmp_path, "true\n", keep_jobs=2)["job_id"] for _attempt in range(3)]
    assert [job["id"] for job in DcmStore(deployed.client).jobs(world["cluster"])] == ids[1:]


def test_logs_read_a_node_a_job_and_its_executors(deployed, world, tmp_path):
    job_id = submit(deployed, world, tmp_path, "echo from the driver\n")["job_id"]
    node = run_module("dcm_logs", {"cluster": world["cluster"], "node": "driver"})
    assert node.get("failed") is not True, node
    assert node["lines"][0] == "driver up"
    job = run_module("dcm_logs", {"cluster": world["cluster"], "job": job_id, **deployed.module_args()})
    assert job["job"]["stdout"] == ["from the driver"] and job["job"]["app_id"] == APP_ID
    executors = run_module("dcm_logs", {"cluster": world["cluster"], "node": "worker-1", "app_id": APP_ID})
    assert executors.get("failed") is not True, executors
    assert executors["executors"] == [
        {"executor": "0", "stdout": ["executor 0 says hello"], "stderr": ["executor 0 INFO"]},
        {"executor": "1", "stdout": ["executor 1 says hi"], "stderr": []}]
    missing = run_module("dcm_logs", {"cluster": world["cluster"], "job": "nope", **deployed.module_args()})
    assert missing.get("failed") is True and f"has no job nope (recent: {job_id})" in missing["msg"]


def test_job_records_outlive_an_undeploy_and_go_with_a_purge(deployed, world, tmp_path):
    submit(deployed, world, tmp_path, "true\n")
    store = DcmStore(deployed.client)
    store.remove_cluster(world["cluster"])
    assert len(store.jobs(world["cluster"])) == 1
    deployed.client.put(keys.cluster_key(world["cluster"]), json.dumps({"name": world["cluster"], "generation": 1}))
    store.remove_cluster(world["cluster"], purge=True)
    assert store.jobs(world["cluster"]) == []
