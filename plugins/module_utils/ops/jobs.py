"""Jobs on a running cluster: ship a job's files into the driver container, run spark-submit there in
client mode against the cluster's master, record the job in etcd.

Each job gets its own folder in the driver container, ``/tmp/dcspark-jobs/<id>``, removed when the job
ends whatever the outcome, so any number of jobs run side by side and none leaves a file behind. A
timeout runs the job under coreutils' ``timeout``, which signals the whole process group (spark-submit's
JVM and the Python process it starts): the driver dies, and with it the application and its executors.

The spec's own application (baked into the images) runs the same way, without files to ship, so every
run of a cluster is a job record: id, Spark application id, who, when, file, exit code, duration.
"""

from __future__ import annotations

import io
import posixpath
import re
import secrets
import tarfile
import time
from dataclasses import dataclass, field

from ..core import naming
from ..core.errors import DcmError
from ..spec.model import validate_schema
from ..spec.schema import SCHEMA
from ..state.store import DcmStore

JOBS_DIR = "/tmp/dcspark-jobs"
WORK_DIR = "/opt/dcspark/work"  # SPARK_WORKER_DIR of the runtime images: <app id>/<executor id>/stdout|stderr
KILL_AFTER = 10  # seconds between the timeout's TERM and its KILL
TIMED_OUT = (124, 137)  # timeout's exit code after TERM, and after KILL
APP_ID = re.compile(r"\bapp-\d{14}-\d{4,}\b")
OUTPUT_KEPT = 100  # lines of the driver's stdout, and of its stderr, the job record keeps
PY_SUFFIXES = (".py", ".zip", ".egg")


def new_job_id(now: float) -> str:
    """``20261205T031500Z-3f9a1c``: sorts by submission time, unique across concurrent submissions."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(3)


JOB_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
JOB_STATES = ("running", "succeeded", "failed", "timed_out")
_RECORD_FIELDS = ("id", "cluster", "app", "files", "args", "conf", "class", "timeout", "submitted_by",
                  "submitted_at", "host", "state", "exit_code", "duration_s", "app_id", "stdout", "stderr")


def check_job_record(raw: object) -> dict:
    """A job record made by :func:`submit` elsewhere (on the driver's host), checked before it is written:
    the fields :meth:`Job.record` makes and nothing else, a job id of :func:`new_job_id`'s form, a cluster name
    of the spec's rule, a known state."""
    if not isinstance(raw, dict):
        raise DcmError(f"a job record is a mapping (dcm_submit's job result), not {type(raw).__name__}")
    extra, missing = sorted(set(raw) - set(_RECORD_FIELDS)), sorted(set(_RECORD_FIELDS) - set(raw))
    if extra or missing:
        raise DcmError(f"not a job record of dcm_submit: unknown fields {extra or 'none'}, missing {missing or 'none'}")
    if not isinstance(raw["id"], str) or not JOB_ID.match(raw["id"]):
        raise DcmError(f"job id {raw['id']!r} is not of the form 20261205T031500Z-3f9a1c")
    problems = validate_schema(raw["cluster"], SCHEMA["properties"]["name"], "job cluster")
    if problems:
        raise DcmError("; ".join(problems))
    if raw["state"] not in JOB_STATES:
        raise DcmError(f"job state {raw['state']!r} is not one of {', '.join(JOB_STATES)}")
    for name in ("stdout", "stderr", "files", "args"):
        if not isinstance(raw[name], list):
            raise DcmError(f"job field {name} must be a list")
    return dict(raw, stdout=raw["stdout"][-OUTPUT_KEPT:], stderr=raw["stderr"][-OUTPUT_KEPT:])


@dataclass
class Job:
    """One submission: what runs, with what, for how long."""

    cluster: str
    app: str = ""  # file name of the application in the job's folder; "" runs the spec's own application
    files: list = field(default_factory=list)  # file names of the other files shipped with it
    args: list = field(default_factory=list)
    conf: dict = field(default_factory=dict)  # checked with spec.model.check_job_conf
    main_class: str = ""
    timeout: int = 0  # seconds; 0: none
    submitted_by: str = ""
    id: str = ""
    label: str = ""  # what the record names as the application when ``app`` is "" (the spec's main file)
    qfs_hosts: str = ""  # policy.placement.qfs_host_map of the cluster: QFS block locations -> its workers

    @property
    def folder(self) -> str:
        return posixpath.join(JOBS_DIR, self.id)

    def argv(self) -> list:
        """The command run in the driver container."""
        argv = ["timeout", "-s", "TERM", "-k", str(KILL_AFTER), str(self.timeout)] if self.timeout else []
        argv.append("dcspark-submit")
        if not self.app:
            return argv
        if self.main_class:
            argv += ["--class", self.main_class]
        for key, value in sorted(self.conf.items()):
            argv += ["--conf", f"{key}={value}"]
        py_files = [posixpath.join(self.folder, name) for name in self.files if name.endswith(PY_SUFFIXES)]
        other = [posixpath.join(self.folder, name) for name in self.files if not name.endswith(PY_SUFFIXES)]
        if py_files:
            argv += ["--py-files", ",".join(py_files)]
        if other:
            argv += ["--files", ",".join(other)]
        return argv + [posixpath.join(self.folder, self.app)] + [str(arg) for arg in self.args]

    def environment(self) -> dict:
        """A shipped application replaces the spec's own one for this run only; dcspark-submit passes the
        QFS host map as ``spark.hadoop.fs.qfs.dcspark.hostMap`` (for the spec's application too)."""
        env = {"DCSPARK_APP_MAIN": "", "DCSPARK_APP_CLASS": "", "DCSPARK_APP_ARGS": "[]"} if self.app else {}
        if self.qfs_hosts:
            env["DCSPARK_QFS_HOSTS"] = self.qfs_hosts
        return env

    def record(self, host: str, now: float) -> dict:
        return {
            "id": self.id, "cluster": self.cluster, "app": self.app or self.label or "(the spec's application)",
            "files": list(self.files), "args": [str(arg) for arg in self.args], "conf": dict(self.conf),
            "class": self.main_class or None, "timeout": self.timeout or None, "submitted_by": self.submitted_by,
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "host": host,
            "state": "running", "exit_code": None, "duration_s": None, "app_id": None, "stdout": [], "stderr": [],
        }


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def timed_out(self) -> bool:
        return self.exit_code in TIMED_OUT

    def app_id(self) -> str | None:
        match = APP_ID.search(self.stderr) or APP_ID.search(self.stdout)
        return match.group(0) if match else None

    def error_lines(self, count: int = 15) -> list:
        """The last lines that say what went wrong (tracebacks, exceptions, errors), else the last lines."""
        lines = (self.stderr + "\n" + self.stdout).splitlines()
        picked = [line for line in lines if re.search(r"Error|Exception|Traceback|FAIL|^\s+File ", line)]
        return (picked or [line for line in lines if line.strip()])[-count:]


def _archive(paths: dict) -> bytes:
    """A tar of ``{name in the job folder: local path}``, world-readable, for ``put_archive``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in sorted(paths.items()):
            info = tar.gettarinfo(path, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def _exec(docker, container: str, argv: list, environment: dict | None = None, workdir: str | None = None) -> tuple:
    """``(exit code, stdout, stderr)`` of ``argv`` run in ``container`` (``docker``: a ``docker.APIClient``)."""
    exec_id = docker.exec_create(container, argv, environment=environment or None, workdir=workdir)["Id"]
    out, err = docker.exec_start(exec_id, demux=True)
    code = docker.exec_inspect(exec_id).get("ExitCode")
    return (-1 if code is None else int(code)), (out or b"").decode("utf-8", "replace"), \
        (err or b"").decode("utf-8", "replace")


def driver_container(docker, cluster: str) -> str:
    """The name of ``cluster``'s driver container, checked to run on this host's engine."""
    name = naming.container_name(cluster, "driver")
    try:
        state = (docker.inspect_container(name).get("State") or {})
    except Exception as exc:  # pylint: disable=broad-except  # docker.errors.NotFound, APIError
        raise DcmError(f"cluster {cluster}: its driver container {name} is not on this host ({exc}); run the "
                       "job on the host the cluster record places the driver on") from None
    if not state.get("Running"):
        raise DcmError(f"cluster {cluster}: its driver container {name} is {state.get('Status', '?')}, not running")
    return name


def node_log(docker, container: str, lines: int = 100) -> list:
    """The last ``lines`` lines (0: all) of ``container``'s log, stdout and stderr as Docker interleaved them."""
    try:
        raw = docker.logs(container, stdout=True, stderr=True, tail=lines or "all")
    except Exception as exc:  # pylint: disable=broad-except  # docker.errors.NotFound, APIError
        raise DcmError(f"no container {container} on this host ({exc})") from None
    return raw.decode("utf-8", "replace").splitlines()


def executor_logs(docker, container: str, app_id: str, lines: int = 100) -> list:
    """``[{executor, stdout, stderr}]``: the output of application ``app_id``'s executors in worker ``container``."""
    if not APP_ID.fullmatch(app_id):
        raise DcmError(f"{app_id!r} is not a Spark application id (app-YYYYMMDDhhmmss-NNNN)")
    folder = posixpath.join(WORK_DIR, app_id)
    code, out, err = _exec(docker, container, ["find", folder, "-mindepth", "2", "-maxdepth", "2", "-type", "f"])
    if code:
        if "No such file" in err:
            return []  # no executor of that application ran on this worker
        raise DcmError(f"cannot list {folder} in {container}: {err.strip()}")
    executors: dict = {}
    for path in sorted(out.split()):
        executor, stream = path[len(folder) + 1:].split("/", 1)
        if stream not in ("stdout", "stderr"):
            continue
        tail_argv = ["tail", "-n", str(lines), path] if lines else ["cat", path]
        code, text, err = _exec(docker, container, tail_argv)
        entry = executors.setdefault(executor, {"executor": executor, "stdout": [], "stderr": []})
        entry[stream] = text.splitlines() if code == 0 else [f"(cannot read {path}: {err.strip()})"]
    return [executors[key] for key in sorted(executors, key=lambda k: (len(k), k))]


def run_in_driver(docker, job: Job, shipped: dict, clock=time.monotonic) -> Outcome:
    """Run ``job`` in its cluster's driver container; ``shipped`` maps file names to local paths."""
    name = driver_container(docker, job.cluster)
    if shipped:
        code, _out, err = _exec(docker, name, ["mkdir", "-p", "-m", "0700", job.folder])
        if code:
            raise DcmError(f"cannot create {job.folder} in {name}: {err.strip()}")
    try:
        if shipped and not docker.put_archive(name, job.folder, _archive(shipped)):
            raise DcmError(f"cannot copy the job's files into {name}:{job.folder}")
        started = clock()
        code, out, err = _exec(docker, name, job.argv(), job.environment(), job.folder if shipped else None)
        return Outcome(code, out, err, round(clock() - started, 1))
    finally:
        if shipped:
            _exec(docker, name, ["rm", "-rf", job.folder])


def submit(store: DcmStore | None, docker, job: Job, shipped: dict, host: str, keep: int = 50,
           now=time.time) -> tuple:
    """Record ``job``, run it in the driver container, record how it ended: ``(record, outcome)``.

    With ``store`` None nothing is written to etcd: the caller records the returned record itself
    (an agent's identity on the driver's host may read cluster records but not write jobs)."""
    job.id = job.id or new_job_id(now())
    record = job.record(host, now())
    if store is not None:
        store.put_job(record, keep)
    try:
        outcome = run_in_driver(docker, job, shipped)
    except Exception as exc:
        record.update(state="failed", stderr=[f"not run: {exc}"])
        if store is not None:
            store.put_job(record, keep)
        raise
    state = "timed_out" if job.timeout and outcome.timed_out else ("succeeded" if outcome.exit_code == 0 else "failed")
    record.update(state=state, exit_code=outcome.exit_code, duration_s=outcome.duration, app_id=outcome.app_id(),
                  stdout=outcome.stdout.splitlines()[-OUTPUT_KEPT:], stderr=outcome.stderr.splitlines()[-OUTPUT_KEPT:])
    if store is not None:
        store.put_job(record, keep)
    return record, outcome
