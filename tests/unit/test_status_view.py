"""The status text (views.status_text, the dcspark.dcm.status_lines filter) on hand-made pool views.

status.yml prints these lines; tests/integration/test_status_playbook.py runs it against etcd.
"""

from __future__ import annotations

import copy
import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dcspark.dcm.plugins.filter.dcm import FilterModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy import views
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import Snapshot
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec, spec_hash

GIB = 1 << 30
NOW = 1764904500.0  # 2025-12-05T03:15:00Z
STATUS_LINES = FilterModule().filters()["status_lines"]


def node(name: str, host: str, **report) -> dict:
    entry = {"node": name, "host": host, "container": f"spark-{name}-face", "state": "running", "health": "healthy",
             "restarts": 0, "generation": 3, "ui_port": None, "error": None, "observed_at": "2025-12-05T03:14:56Z"}
    entry.update(report)
    return entry


def job(ident: str, **fields) -> dict:
    entry = {"id": ident, "app": "face", "state": "succeeded", "exit_code": 0, "duration_s": 72.4,
             "app_id": "app-20251205031002-0001", "submitted_by": "alice", "submitted_at": "2025-12-05T03:10:00Z"}
    entry.update(fields)
    return entry


def host(name: str, **fields) -> dict:
    entry = {"name": name, "address": "10.0.0.1", "live": True, "cordoned": False, "drained": False, "cpus": 4.0,
             "memory": 8053063680, "requested_cpus": 0.0, "requested_memory": 0, "clusters": [],
             "agent_version": "0.1.0"}
    entry.update(fields)
    return entry


def face(**fields) -> dict:
    entry = {
        "name": "face", "generation": 3, "spark_version": "4.0.1", "health": "ok", "degraded": None,
        "desired_state": "running", "master_url": "spark://spark-master-face:7077", "ui": "http://10.0.0.1:32768",
        "jupyter": None, "running": 3, "converged": True, "rollout": None, "repairs": [],
        "nodes": [node("master", "sandbox1", ui_port=32768), node("driver", "sandbox1", health="none"),
                  node("worker-1", "sandbox3", restarts=12, observed_at="2025-12-05T02:10:00Z")],
        "jobs": [job("20251205T031000Z-3f9a1c"),
                 job("20251205T030000Z-77aa01", state="running", exit_code=None, duration_s=None, app_id=None,
                     submitted_by="bob", submitted_at="2025-12-05T03:00:00Z")],
        "generations": [
            {"generation": 3, "current": True, "line": "generation 3 (current): deploy by alice at "
                                                       "2025-12-05T02:00:00Z; Spark 4.0.1"},
            {"generation": 2, "current": False, "line": "generation 2: deploy by bob at 2025-12-04T02:00:00Z; "
                                                        "Spark 4.0.1"}],
    }
    entry.update(fields)
    return entry


def degraded_video() -> dict:
    return face(
        name="video-synopsis", generation=7, spark_version="3.5.3", health="degraded", running=1, converged=False,
        degraded={"reason": "worker-2 fits on no live host", "since": "2025-12-05T03:01:00Z",
                  "checked_at": "2025-12-05T03:14:00Z"},
        ui=None,
        jupyter={"url": "http://10.0.0.1:32770/lab", "host": "sandbox1",
                 "token": "docker exec spark-driver-video-synopsis dcspark-node jupyter-token"},
        rollout={"from": 6, "to": 7, "done": ["worker-1"], "pending": ["worker-2", "master"],
                 "started_at": "2025-12-05T03:00:00Z"},
        nodes=[node("master", "sandbox1", generation=6),
               node("worker-2", "sandbox3", state="unreported", health="unknown", generation=None,
                    observed_at=None, error="pull access denied for 10.0.0.11:5000/dcspark-worker")],
        jobs=[], generations=[])


def pool(**fields) -> dict:
    view = {
        "revision": 4211,
        "hosts": [
            host("sandbox1", address="172.18.0.2", requested_cpus=2.5, requested_memory=3 * GIB,
                 clusters=["face", "video-synopsis"]),
            host("sandbox2", address="172.18.0.3", cordoned=True),
            host("sandbox3", address=None, live=False, cordoned=True, drained=True, cpus=0.0, memory=0,
                 requested_cpus=1.25, requested_memory=1536 << 20, clusters=["face"], agent_version=None),
        ],
        "clusters": [face(), degraded_video()],
        "leader": {"name": "sandbox1", "lease": "694d", "pid": 811, "since": "2025-12-05T01:00:00Z"},
        "events": [
            {"time": "2025-12-05T03:01:00Z", "kind": "degraded", "source": "sandbox1",
             "message": "video-synopsis: worker-2 fits on no live host", "cluster": "video-synopsis"},
            {"time": "2025-12-05T03:14:00Z", "kind": "start", "source": "sandbox3",
             "message": "started spark-worker-1-face (restart 12)"},
        ],
    }
    view.update(fields)
    return view


def starts(header: str) -> dict:
    return {match.group(): match.start() for match in re.finditer(r"\S+", header)}


# -- table -------------------------------------------------------------------------------------------
def test_a_table_aligns_text_left_and_numbers_right_with_two_spaces_between():
    lines = views.table([["a", 1, "x y"], ["longer", 123, None]], ["NAME", "N", "NOTE"])
    assert lines == [
        "NAME      N  NOTE",
        "a         1  x y",
        "longer  123  -",
    ]


def test_a_table_keeps_given_alignment_indents_and_never_ends_a_line_with_a_space():
    lines = views.table([["1", ""], ["22", "b"]], ["ID", "LAST"], right=set(), indent="  ")
    assert lines == ["  ID  LAST", "  1   -", "  22  b"]
    assert not any(line.endswith(" ") for line in lines)
    # a cell with a line break or tabs stays on its row
    assert views.table([["a\nb\tc"]], ["X"]) == ["X", "a b c"]


def test_a_column_of_numbers_and_dashes_is_right_aligned_and_a_column_of_dashes_is_not():
    lines = views.table([[None, None], [-1.5, None], [10, None]], ["FREE", "WHAT"])
    assert lines == ["FREE  WHAT", "   -  -", "-1.5  -", "  10  -"]


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        views.table([["a"]], ["A", "B"])


def test_an_empty_table_is_its_header():
    assert views.table([], ["A", "BB"]) == ["A  BB"]


# -- units and times -------------------------------------------------------------------------------
@pytest.mark.parametrize("size, text", [(8053063680, "7.5"), (0, "0.0"), (1536 << 20, "1.5"), (16 * GIB, "16.0"),
                                        (-(1536 << 20), "-1.5"), (None, "-"), (100 << 20, "0.1")])
def test_memory_is_in_gib_with_one_decimal(size, text):
    assert views.gib_text(size) == text


@pytest.mark.parametrize("cpus, text", [(4.0, "4"), (0.25, "0.25"), (2.5, "2.5"), (0, "0"), (-1.25, "-1.25"),
                                        (None, "-"), (1.0004, "1"), (-0.0001, "0")])
def test_cpus_lose_trailing_zeros(cpus, text):
    assert views.cpus_text(cpus) == text


@pytest.mark.parametrize("seconds, tenths, text", [
    (4.24, False, "4s"), (4.24, True, "4.2s"), (45, False, "45s"), (59.6, False, "1m00s"), (725, False, "12m05s"),
    (3 * 3600 + 7 * 60, False, "3h07m"), (2 * 86400 + 4 * 3600 + 59, False, "2d04h"), (-3, False, "0s"),
    (None, False, "-"),
])
def test_spans_use_their_two_largest_units(seconds, tenths, text):
    assert views.span(seconds, tenths=tenths) == text


@pytest.mark.parametrize("stamp, seconds", [
    ("2025-12-05T03:15:00Z", NOW), ("2025-12-05T03:14:56.123456789Z", NOW - 4), ("2025-12-05T03:15:00", NOW),
    ("2025-12-05T04:15:00+01:00", NOW), (NOW, NOW), ("0001-01-01T00:00:00Z", None), ("", None), (None, None),
    ("yesterday", None), (True, None),
])
def test_timestamps_of_the_agents_docker_and_etcd_read_as_epoch_seconds(stamp, seconds):
    assert views.parse_time(stamp) == seconds


def test_age_counts_from_now():
    assert views.age("2025-12-05T02:10:00Z", NOW) == "1h05m"
    assert views.age(None, NOW) == "-"


# -- hosts -----------------------------------------------------------------------------------------
def test_the_hosts_table_gives_state_cpus_and_gib_requested_allocatable_and_free():
    lines = views.status_text(pool(), "hosts", NOW)
    assert lines == [
        "pool at etcd revision 4211: 3 hosts; CPUs and memory (GiB) requested, allocatable and free",
        "HOST      ADDRESS     STATE          CPU-REQ  CPU-ALLOC  CPU-FREE  MEM-REQ  MEM-ALLOC  MEM-FREE  CLUSTERS",
        "sandbox1  172.18.0.2  live               2.5          4       1.5      3.0        7.5       4.5  "
        "face, video-synopsis",
        "sandbox2  172.18.0.3  live,cordoned        0          4         4      0.0        7.5       7.5  -",
        "sandbox3  -           LOST,drained      1.25          0     -1.25      1.5        0.0      -1.5  face",
    ]


def test_every_host_row_lines_up_with_the_header():
    hosts = [host(f"host-{i}", cpus=4 ** i, memory=GIB * 3 ** i, requested_memory=GIB * i) for i in range(6)]
    lines = views.hosts_text(pool(hosts=hosts))
    at = starts(lines[1])
    for line in lines[2:]:
        for column in ("CPU-REQ", "CPU-ALLOC", "CPU-FREE", "MEM-REQ", "MEM-ALLOC", "MEM-FREE"):
            end = at[column] + len(column)
            assert line[end - 1] != " " and line[end] == " ", (column, line)  # numbers end where their header does
        assert line[at["STATE"]:].startswith("live ") and line[at["CLUSTERS"]:] == "-"
    assert lines[-1].split()[3:9] == ["0", "1024", "1024", "5.0", "243.0", "238.0"]


@pytest.mark.parametrize("fields, state", [
    ({}, "live"), ({"cordoned": True}, "live,cordoned"), ({"cordoned": True, "drained": True}, "live,drained"),
    ({"live": False}, "LOST"), ({"live": False, "cordoned": True}, "LOST,cordoned"),
])
def test_a_hosts_state(fields, state):
    assert views.host_state(host("h", **fields)) == state


# -- clusters --------------------------------------------------------------------------------------
def test_a_healthy_cluster_block():
    lines = views.clusters_text(pool(clusters=[face()]), NOW)
    assert lines == [
        "face gen 3: Spark 4.0.1, health ok, 3/3 nodes running, no rollout",
        "  UI http://10.0.0.1:32768",
        "  NODE      HOST      GEN  STATE    HEALTH   RESTARTS  AGE  REPORTED   ADDRESS  CONTAINER",
        "  master    sandbox1    3  running  healthy         0  -    4s ago     -        spark-master-face",
        "  driver    sandbox1    3  running  none            0  -    4s ago     -        spark-driver-face",
        "  worker-1  sandbox3    3  running  healthy        12  -    1h05m ago  -        spark-worker-1-face",
        "  jobs, newest first (logs.yml -e cluster=face -e job=ID shows one):",
        "  JOB                      APP   STATE      EXIT  DURATION  SPARK-APP                BY     SUBMITTED",
        "  20251205T031000Z-3f9a1c  face  succeeded     0     1m12s  app-20251205031002-0001  alice  "
        "2025-12-05T03:10:00Z",
        "  20251205T030000Z-77aa01  face  running       -         -  -                        bob    "
        "2025-12-05T03:00:00Z",
        "  retained generations (rollback_cluster.yml -e cluster=face -e generation=N returns to one):",
        "  generation 3 (current): deploy by alice at 2025-12-05T02:00:00Z; Spark 4.0.1",
        "  generation 2: deploy by bob at 2025-12-04T02:00:00Z; Spark 4.0.1",
    ]


def test_a_degraded_cluster_in_a_rollout_says_why_what_waits_and_each_nodes_error():
    lines = views.clusters_text(pool(clusters=[degraded_video()]), NOW)
    assert lines[0] == ("video-synopsis gen 7: Spark 3.5.3, health DEGRADED since 2025-12-05T03:01:00Z: worker-2 "
                        "fits on no live host, 1/2 nodes running, rolling from gen 6 to 7 (1 moved, waiting: "
                        "worker-2, master)")
    assert lines[1] == ("  UI - (no gateway host registered), Jupyter http://10.0.0.1:32770/lab (its token: docker exec "
                        "spark-driver-video-synopsis dcspark-node jupyter-token on sandbox1)")
    assert lines[2:] == [
        "  NODE      HOST      GEN  STATE       HEALTH   RESTARTS  AGE  REPORTED  ADDRESS  CONTAINER",
        "  master    sandbox1    6  running     healthy         0  -    4s ago    -        spark-master-face",
        "  worker-2  sandbox3    -  unreported  unknown         0  -    -         -        spark-worker-2-face",
        "  worker-2 error: pull access denied for 10.0.0.11:5000/dcspark-worker",
        "  jobs: none yet",
    ]


def test_a_degraded_cluster_without_a_record_of_why_still_says_degraded():
    heading = views.cluster_heading(face(health="degraded", degraded=None))
    assert "health DEGRADED: no reason recorded" in heading


def test_clusters_are_blocks_apart_and_each_starts_with_name_gen():
    lines = views.clusters_text(pool(), NOW)
    headings = [line for line in lines if line and not line.startswith(" ")]
    assert [h.split(":")[0] for h in headings] == ["face gen 3", "video-synopsis gen 7"]
    assert lines[lines.index(headings[1]) - 1] == ""


def test_node_columns_show_the_containers_age_and_address():
    cluster = face(nodes=[node("master", "sandbox1", since="2025-12-05T01:15:00.5Z", address="10.11.0.2"),
                          node("driver", "sandbox1")])
    lines = views.nodes_text(cluster, NOW)
    assert lines[0].split() == ["NODE", "HOST", "GEN", "STATE", "HEALTH", "RESTARTS", "AGE", "REPORTED", "ADDRESS",
                                "CONTAINER"]
    assert lines[1].split()[6:] == ["2h00m", "4s", "ago", "10.11.0.2", "spark-master-face"]
    assert lines[2].split()[6:] == ["-", "4s", "ago", "-", "spark-driver-face"]


def test_a_job_of_a_short_run_shows_tenths_and_a_failed_one_its_exit_code():
    lines = views.jobs_text(face(jobs=[job("j2", state="failed", exit_code=137, duration_s=3.21),
                                       job("j1", duration_s=4000)]))
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["j2"][2:5] == ["failed", "137", "3.2s"] and rows["j1"][2:5] == ["succeeded", "0", "1h06m"]


def test_an_empty_pool():
    empty = {"revision": 1, "hosts": [], "clusters": [], "leader": None, "events": []}
    assert views.status_text(empty, None, NOW) == [
        "pool at etcd revision 1: no hosts (no dcm-agent has registered one)",
        "",
        "no clusters deployed",
        "",
        "leader: none (is dcm-master running?)",
        "events: none",
    ]


def test_a_cluster_with_no_nodes_placed():
    assert views.nodes_text(face(nodes=[]), NOW) == ["  no nodes placed"]


# -- the master and the events ---------------------------------------------------------------------
def test_the_leader_and_the_events_table():
    assert views.status_text(pool(), "events", NOW) == [
        "leader: sandbox1 (leading since 2025-12-05T01:00:00Z)",
        "the newest 2 events, oldest first:",
        "TIME                  SOURCE    KIND      MESSAGE",
        "2025-12-05T03:01:00Z  sandbox1  degraded  video-synopsis: worker-2 fits on no live host",
        "2025-12-05T03:14:00Z  sandbox3  start     started spark-worker-1-face (restart 12)",
    ]


# -- all of it, from pool_view -----------------------------------------------------------------------
def test_status_text_reads_what_pool_view_gives():
    spec = normalize_spec({"name": "face", "runtime": {"spark_version": "4.0.1"},
                           "master": {"cpus": 0.5, "memory": "768m"}, "driver": {"cpus": 1, "memory": "1g"},
                           "worker": {"cpus": 1, "memory": "1g", "count": 2}})
    record = {"name": "face", "spec": spec, "spec_hash": spec_hash(spec), "generation": 1,
              "desired_state": "running", "images": {}, "network": {"name": "dcm-face", "driver": "overlay"},
              "placement": {"master": "h1", "driver": "h1", "workers": ["h1", "h2"]}}
    snap = Snapshot(revision=9, hosts={
        "h1": {"name": "h1", "address": "10.0.0.1", "allocatable": {"cpus": 4, "memory": 8 * GIB},
               "gateway_port": 8443},
        "h2": {"name": "h2", "address": "10.0.0.2", "allocatable": {"cpus": 2, "memory": 3 * GIB}},
    }, clusters={"face": record})
    status = {("face", "master"): {"state": "running", "health": "healthy", "generation": 1, "ui_port": 32768,
                                   "observed_at": "2025-12-05T03:14:00Z"}}
    view = views.pool_view(snap, status, jobs={"face": [job("j1")]})
    lines = views.status_text(view, None, NOW)
    assert lines[0] == "pool at etcd revision 9: 2 hosts; CPUs and memory (GiB) requested, allocatable and free"
    assert lines[2].split() == ["h1", "10.0.0.1", "live", "2.5", "4", "1.5", "2.8", "8.0", "5.2", "face"]
    assert lines[3].split() == ["h2", "10.0.0.2", "live", "1", "2", "1", "1.0", "3.0", "2.0", "face"]
    assert "face gen 1: Spark 4.0.1, health ok, 1/4 nodes running, no rollout" in lines
    # the gateway's address, and the loopback port the spec's ui.publish asked for
    assert "  UI https://10.0.0.1:8443/clusters/face/, master UI http://127.0.0.1:32768 on h1" in lines
    master = next(line for line in lines if line.startswith("  master "))
    assert master.split() == ["master", "h1", "1", "running", "healthy", "0", "-", "1m00s", "ago", "-",
                              "spark-master-face"]
    assert any(line.split()[:3] == ["j1", "face", "succeeded"] for line in lines)
    assert lines[-2:] == ["leader: none (is dcm-master running?)", "events: none"]


# -- the filter --------------------------------------------------------------------------------------
def test_the_filter_reads_a_registered_result_and_ignores_ansibles_keys():
    registered = dict(pool(), changed=False, failed=False, invocation={"module_args": {}})
    assert STATUS_LINES(registered, "clusters", NOW) == views.status_text(pool(), "clusters", NOW)
    assert STATUS_LINES(registered, now=NOW) == views.status_text(pool(), None, NOW)
    assert STATUS_LINES(registered)[0].startswith("pool at etcd revision 4211: ")  # now: the current time


def test_the_filter_does_not_change_its_input():
    view = pool()
    before = copy.deepcopy(view)
    STATUS_LINES(view, now=NOW)
    assert view == before


@pytest.mark.parametrize("value, args, message", [
    ("not a view", (), "expects the result of dcspark.dcm.dcm_pool_info"),
    ({"hosts": []}, (), "expects the result of dcspark.dcm.dcm_pool_info"),
    (pool(), ("nodes",), "section must be one of hosts, clusters, events, got 'nodes'"),
    (pool(), (None, "soon"), "now is seconds since the epoch"),
    (pool(hosts=[{"name": "h", "cpus": "four"}]), ("hosts",), "the view does not read as dcm_pool_info's"),
])
def test_the_filter_names_what_is_wrong(value, args, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        STATUS_LINES(value, *args)
