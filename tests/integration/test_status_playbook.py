"""playbooks/status.yml through ansible-playbook against the real TLS etcd of the integration suite.

No agent or master runs here: the test writes what they would (host records, a node's report, a
job record, an event, the leader key) with the state API, then reads the tables status.yml prints
and the JSON document of ``-e json=PATH``, and compares both with what etcd holds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time

import pytest
from support import BIN, REPO, ansible_env
from test_etcd_store import register, spec

from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore

pytestmark = pytest.mark.etcd

MASTER = "pool-master"  # the inventory's only host; the JSON file is written on the control node
JOB = "20251205T031000Z-3f9a1c"
GIB = 1 << 30
HOSTS, CLUSTERS, EVENTS = "Show the hosts", "Show the clusters", "Show the DCM master in charge and the newest events"


def status_playbook(tmp_path, etcd, *extra: str, cwd: str = REPO, **env: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"dcm_pool": {"children": {"dcm_masters": {"hosts": {
        MASTER: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}}}))
    variables = etcd.playbook_vars(tmp_path)
    cmd = [f"{BIN}/ansible-playbook", "-i", str(inventory), f"{REPO}/playbooks/status.yml",
           "-e", json.dumps(variables), *extra]
    # the default callback, with the result format of the collection's ansible.cfg (yaml) unless env says
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CONFIG=f"{REPO}/ansible.cfg", **env)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def task_output(stdout: str, task: str) -> str:
    """What the task printed, from the line after its banner up to the next task's banner."""
    after = stdout[stdout.index(f"TASK [{task}]"):].split("\n", 1)[1]
    return re.split(r"\n(?=TASK \[|RUNNING HANDLER \[|PLAY )", after, maxsplit=1)[0].rstrip("\n")


def section(stdout: str, task: str) -> list:
    """The lines of one section of status.yml as the yaml result format prints them: a block scalar."""
    printed = task_output(stdout, task)
    assert re.match(rf"ok: \[{MASTER}\] => \n    msg: \|", printed), printed
    return textwrap.dedent(printed.split("\n", 2)[2]).rstrip("\n").splitlines()


def pool_status_play(stdout: str) -> str:
    return stdout[stdout.index("PLAY [Pool status]"):stdout.index("PLAY RECAP")]


def starts(header: str) -> dict:
    """Where each column of a header line starts."""
    return {match.group(): match.start() for match in re.finditer(r"\S+", header)}


@pytest.fixture
def pool(clean_etcd):
    """Two hosts, the face cluster (its master reported running, one job) and a second cluster, the
    leader and one event, as the agents, the DCM master and submit.yml would have written them."""
    store = DcmStore(clean_etcd.client)
    register(store, "h1", 8, 16)
    register(store, "h2", 4, 6)
    store.reserve(spec("face", workers=2), deployed_by="tester")
    store.reserve(spec("video", workers=1), deployed_by="tester")
    lease = store.grant(60)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    master_host = store.get_cluster("face")["placement"]["master"]
    store.put_status(master_host, "face", "master", json.dumps({
        "host": master_host, "container": "spark-master-face", "generation": 1, "state": "running",
        "health": "healthy", "restarts": 2, "observed_at": now}), lease)
    store.put_job({"id": JOB, "cluster": "face", "app": "face", "state": "succeeded", "exit_code": 0,
                   "duration_s": 72.4, "app_id": "app-20251205031002-0001", "submitted_by": "alice",
                   "submitted_at": "2025-12-05T03:10:00Z", "stdout": ["not in the view"], "stderr": []})
    assert store.campaign(json.dumps({"name": "m1", "since": now}), lease)
    store.event_log("m1").record("start", "started spark-master-face", cluster="face")
    return clean_etcd


def test_status_prints_aligned_tables_and_writes_the_view_as_json(tmp_path, pool):
    target = tmp_path / "out" / "pool.json"
    target.parent.mkdir()
    proc = status_playbook(tmp_path, pool, "-e", f"json={target}")
    assert "skipping" not in pool_status_play(proc.stdout), pool_status_play(proc.stdout)

    hosts = section(proc.stdout, HOSTS)
    assert re.fullmatch(r"pool at etcd revision \d+: 2 hosts; CPUs and memory \(GiB\) requested, allocatable "
                        r"and free", hosts[0]), hosts
    header, rows = hosts[1], {line.split()[0]: line for line in hosts[2:]}
    assert header.split() == ["HOST", "ADDRESS", "STATE", "CPU-REQ", "CPU-ALLOC", "CPU-FREE", "MEM-REQ",
                              "MEM-ALLOC", "MEM-FREE", "CLUSTERS"]
    assert sorted(rows) == ["h1", "h2"]
    at = starts(header)
    for line in rows.values():
        # text starts under its header, numbers end under the end of theirs
        assert line[at["STATE"]:].startswith("live "), line
        assert line[at["CLUSTERS"]:] == "face, video", line
        for number in ("CPU-REQ", "CPU-ALLOC", "CPU-FREE", "MEM-REQ", "MEM-ALLOC", "MEM-FREE"):
            end = at[number] + len(number)
            assert line[end - 1] != " " and line[end] == " ", (number, line)
    # h2: 4 CPUs and 6 GiB allocatable; the master (1 CPU, 1 GiB) of one cluster and the driver of the other
    assert rows["h2"].split()[3:9] == ["2", "4", "2", "2.0", "6.0", "4.0"], rows["h2"]

    clusters = section(proc.stdout, CLUSTERS)
    assert clusters[0] == "face gen 1: Spark 4.0.1, health ok, 1/4 nodes running, no rollout", clusters
    assert "video gen 1: Spark 4.0.1, health ok, 0/3 nodes running, no rollout" in clusters, clusters
    face = clusters[:clusters.index("")]
    nodes = face[face.index(next(line for line in face if line.split()[:2] == ["NODE", "HOST"])):][:5]
    assert [line.split()[0] for line in nodes] == ["NODE", "master", "driver", "worker-1", "worker-2"], face
    master = nodes[1].split()
    assert master[2:6] == ["1", "running", "healthy", "2"] and master[-1] == "spark-master-face", nodes
    assert master[6] == "-", nodes  # AGE: the report written here has no since
    assert re.fullmatch(r"\d+s", master[7]) and master[8] == "ago", nodes  # how old its report is
    assert nodes[2].split()[2:7] == ["-", "unreported", "unknown", "0", "-"], nodes
    assert len({line.index("CONTAINER") if "CONTAINER" in line else line.index("spark-") for line in nodes}) == 1
    job = next(line for line in face if line.strip().startswith(JOB))
    assert job.split() == [JOB, "face", "succeeded", "0", "1m12s", "app-20251205031002-0001", "alice",
                           "2025-12-05T03:10:00Z"], job
    assert any(line.startswith("  generation 1 (current): deploy by tester at ") for line in face), face

    events = section(proc.stdout, EVENTS)
    assert events[0].startswith("leader: m1 (leading since "), events
    assert events[1:3] == ["the newest event:", "TIME                  SOURCE  KIND   MESSAGE"], events
    assert events[3].split(None, 3)[1:] == ["m1", "start", "started spark-master-face"], events

    assert "RUNNING HANDLER [Write the pool view as JSON (-e json=PATH)]" in proc.stdout
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    view = json.loads(target.read_text())
    snap = DcmStore(pool.client).snapshot()
    assert sorted(view) == ["clusters", "events", "hosts", "leader", "revision"]
    assert sorted(c["name"] for c in view["clusters"]) == sorted(snap.clusters) == ["face", "video"]
    assert sorted(h["name"] for h in view["hosts"]) == sorted(snap.hosts) == ["h1", "h2"]
    assert view["revision"] == snap.revision  # nothing was written since the playbook read
    assert f"pool at etcd revision {snap.revision}:" in hosts[0]
    for cluster in view["clusters"]:
        record = snap.clusters[cluster["name"]]
        assert (cluster["generation"], cluster["placement"]) == (record["generation"], record["placement"])
    face_view = next(c for c in view["clusters"] if c["name"] == "face")
    assert [j["id"] for j in face_view["jobs"]] == [JOB] and "stdout" not in face_view["jobs"][0]
    assert view["leader"]["name"] == "m1" and view["events"][-1]["message"] == "started spark-master-face"
    h2 = next(h for h in view["hosts"] if h["name"] == "h2")
    assert (h2["cpus"], h2["memory"], h2["requested_cpus"], h2["requested_memory"]) == (4, 6 * GIB, 2, 2 * GIB)


def test_one_cluster_without_json_shows_nothing_skipped_and_writes_nothing(tmp_path, pool):
    proc = status_playbook(tmp_path, pool, "-e", "cluster=face", "-e", "status_events=5")
    play = pool_status_play(proc.stdout)
    assert "skipping" not in play and "HANDLER" not in play and "changed:" not in play, play
    clusters = section(proc.stdout, CLUSTERS)
    assert clusters[0].startswith("face gen 1: ") and not any(line.startswith("video") for line in clusters)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hosts.yml"]


def test_a_relative_json_path_is_the_operators_current_directory(tmp_path, pool):
    status_playbook(tmp_path, pool, "-e", "json=pool.json", cwd=str(tmp_path))
    assert sorted(c["name"] for c in json.loads((tmp_path / "pool.json").read_text())["clusters"]) == ["face", "video"]


def test_with_the_json_result_format_each_section_is_a_list_of_lines(tmp_path, pool):
    proc = status_playbook(tmp_path, pool, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    printed = task_output(proc.stdout, HOSTS)
    assert printed.startswith(f"ok: [{MASTER}] => {{"), printed
    lines = json.loads(printed.split(" => ", 1)[1])["msg"]
    assert lines[1].split()[0] == "HOST" and sorted(line.split()[0] for line in lines[2:]) == ["h1", "h2"]
    assert len({line.index("CLUSTERS") if line.startswith("HOST") else line.index("face") for line in lines[1:]}) == 1
    # one JSON string a line: the default callback prints each on a line of its own
    assert all(f'        "{line}"' in proc.stdout for line in lines), printed


def test_an_empty_pool_says_so(tmp_path, clean_etcd):
    proc = status_playbook(tmp_path, clean_etcd)
    [hosts] = section(proc.stdout, HOSTS)
    assert re.fullmatch(r"pool at etcd revision \d+: no hosts \(no dcm-agent has registered one\)", hosts), hosts
    assert section(proc.stdout, CLUSTERS) == ["no clusters deployed"]
    assert section(proc.stdout, EVENTS) == ["leader: none (is dcm-master running?)", "events: none"]
