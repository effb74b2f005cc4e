"""The agent's convergence logic: what a host must run, and what changes it."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.daemons import converge

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels

from ansible_collections.dcspark.dcm.plugins.module_utils.policy import placement
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec

MIB = 1 << 20


def record(name="face", placement=None, generation=1, **spec_overrides):
    spec = normalize_spec({
        "name": name,
        "runtime": {"spark_version": "4.0.1", "env": {"OMP_NUM_THREADS": "1"}, "app_dir": "apps/face"},
        "master": {"cpus": 0.5, "memory": "768m"},
        "driver": {"cpus": 1, "memory": "1g"},
        "worker": {"cpus": 2, "memory": "1536m", "count": 2},
        "spark_conf": {"spark.executor.memory": "512m"},
        "app": {"main": "detect.py", "args": ["--expect", "4"]},
        **spec_overrides,
    })
    return {
        "name": name, "spec": spec, "spec_hash": "h1", "generation": generation, "desired_state": "running",
        "images": {role: f"reg:5000/dcspark-{role}@sha256:{role[0] * 64}" for role in ("master", "worker", "driver")},
        "network": {"name": f"dcm-{name}", "driver": "overlay"},
        "secret": "s" * 64,
        "placement": placement or {"master": "h1", "driver": "h2", "workers": ["h1", "h2"]},
    }


def test_a_host_runs_exactly_the_nodes_placed_on_it():
    wanted = converge.desired_nodes([record()], "h1")
    assert sorted(wanted) == ["spark-master-face", "spark-worker-face-1"]
    master = wanted["spark-master-face"]
    # the master's UI is published nowhere unless the spec asks (the gateway serves it)
    assert (master.cpus, master.memory, master.network, master.publish_ui) == (500, 768 * MIB, "dcm-face", "")
    assert master.image.startswith("reg:5000/dcspark-master@sha256:")
    assert converge.desired_nodes([record()], "h3") == {}


def test_node_environment_follows_the_image_contract():
    wanted = converge.desired_nodes([record()], "h2")
    worker = dict(wanted["spark-worker-face-2"].env)
    assert worker["SPARK_MASTER_URL"] == "spark://spark-master-face:7077"
    assert not any("s" * 64 in value for value in worker.values())  # the secret is a file, never a variable
    assert dict(wanted["spark-worker-face-2"].secrets) == {"auth": "s" * 64}
    assert "s" * 64 not in repr(wanted["spark-worker-face-2"])  # nor in the agent's log lines
    assert worker["SPARK_WORKER_CORES"] == "2"
    assert worker["SPARK_WORKER_MEMORY"] == f"{1536 - 256 - 128}m"
    assert worker["OMP_NUM_THREADS"] == "1"
    assert json.loads(worker["DCSPARK_SPARK_CONF"]) == {"spark.executor.memory": "512m"}
    driver = dict(wanted["spark-driver-face"].env)
    assert driver["DCSPARK_DRIVER_MEMORY"] == "640m"
    assert (driver["DCSPARK_APP_MAIN"], json.loads(driver["DCSPARK_APP_ARGS"])) == ("detect.py", ["--expect", "4"])
    assert "SPARK_WORKER_CORES" not in driver


def test_labels_name_the_cluster_node_and_configuration():
    node = converge.desired_nodes([record()], "h1")["spark-worker-face-1"]
    node_labels = node.labels()
    assert node_labels[labels.MANAGED] == "true"
    assert (node_labels[labels.CLUSTER], node_labels[labels.NODE], node_labels[labels.ROLE]) == ("face", "worker-1", "worker")
    assert node_labels[converge.CONFIG_LABEL] == node.config_hash


def test_the_configuration_hash_changes_with_what_the_container_is_made_of():
    before = converge.desired_nodes([record()], "h1")["spark-worker-face-1"]
    same = converge.desired_nodes([record(generation=2)], "h1")["spark-worker-face-1"]
    assert same.config_hash == before.config_hash  # a new generation alone recreates nothing
    bigger = converge.desired_nodes([record(worker={"cpus": 3, "memory": "1536m", "count": 2})], "h1")
    assert bigger["spark-worker-face-1"].config_hash != before.config_hash


def test_volumes_mount_into_the_roles_they_name_and_change_the_configuration():
    plain = converge.desired_nodes([record()], "h1")
    volumes = [{"name": "data", "path": "/data", "nodes": ["driver", "worker"]},
               {"name": "models", "path": "/srv/models", "nodes": ["worker"], "read_only": True}]
    mounted = converge.desired_nodes([record(volumes=volumes)], "h1") | converge.desired_nodes(
        [record(volumes=volumes)], "h2")
    expected = (("dcm-face-data", "/data", False), ("dcm-face-models", "/srv/models", True))
    assert mounted["spark-worker-face-1"].volumes == expected
    assert mounted["spark-driver-face"].volumes == (("dcm-face-data", "/data", False),)
    assert mounted["spark-master-face"].volumes == ()
    assert mounted["spark-master-face"].config_hash == plain["spark-master-face"].config_hash  # untouched
    assert mounted["spark-worker-face-1"].config_hash != plain["spark-worker-face-1"].config_hash


def observed(node, state="running", config=None):
    node_labels = node.labels()
    if config is not None:
        node_labels[converge.CONFIG_LABEL] = config
    return converge.Observed(id=f"id-{node.name}", name=node.name, state=state, labels=node_labels)


def test_plan_creates_missing_keeps_running_and_starts_stopped_nodes():
    wanted = converge.desired_nodes([record()], "h1")
    master, worker = wanted["spark-master-face"], wanted["spark-worker-face-1"]
    actions = converge.plan_actions(wanted, [observed(master, "exited")])
    assert [n.name for n in actions.create] == ["spark-worker-face-1"]
    assert [n.name for n, _c in actions.start] == ["spark-master-face"]
    assert not actions.remove
    actions = converge.plan_actions(wanted, [observed(master), observed(worker)])
    assert actions.empty and len(actions.keep) == 2


def test_plan_removes_unwanted_and_changed_containers():
    wanted = converge.desired_nodes([record()], "h1")
    gone = converge.desired_nodes([record(name="old")], "h1")["spark-master-old"]
    changed = observed(wanted["spark-master-face"], config="0" * 16)
    actions = converge.plan_actions(wanted, [observed(gone), changed])
    assert sorted(c.name for c in actions.remove) == ["spark-master-face", "spark-master-old"]
    assert sorted(n.name for n in actions.create) == ["spark-master-face", "spark-worker-face-1"]


def test_plan_holds_every_container_of_a_cluster_in_doubt_whatever_its_state_or_configuration():
    wanted = converge.desired_nodes([record()], "h1")
    doubtful = converge.desired_nodes([record(name="old")], "h1")
    held = [observed(doubtful["spark-master-old"], "exited"),
            observed(doubtful["spark-worker-old-1"], config="0" * 16)]
    actions = converge.plan_actions(wanted, held + [observed(wanted["spark-master-face"], "exited")], ["old"])
    assert sorted(c.name for c in actions.held) == ["spark-master-old", "spark-worker-old-1"]
    assert not actions.remove and [n.name for n, _c in actions.start] == ["spark-master-face"]
    # without the doubt the same containers are removed (no cluster wants them)
    assert sorted(c.name for c in converge.plan_actions(wanted, held).remove) == sorted(c.name for c in held)


@pytest.mark.parametrize("value, problem", [
    (None, ""), (1, ""), (2, "has format 2, newer than the 1 this DCM understands"),
    (0, "not a layout number"), ("1", "not a layout number"), (True, "not a layout number"),
])
def test_a_records_layout_is_checked_before_anything_acts_on_it(value, problem):
    found = placement.record_format_problem({} if value is None else {"format": value})
    assert (problem in found) if problem else found == ""
    assert bool(found) == bool(problem)


def test_a_new_record_carries_the_layout_it_was_written_in():
    spec = record()["spec"]
    new = placement.cluster_record(spec, {"master": "h1", "driver": "h1", "workers": ["h1", "h1"]}, None, None, "me", 0.0)
    assert new["format"] == placement.RECORD_FORMAT == 1


def test_a_stopped_cluster_has_no_nodes():
    stopped = record()
    stopped["desired_state"] = "stopped"
    assert converge.desired_nodes([stopped], "h1") == {}


def test_an_incomplete_record_is_named():
    broken = record()
    del broken["images"]
    with pytest.raises(DcmError, match="cluster record face: lacks images"):
        converge.desired_nodes([broken], "h3")


def test_only_a_host_running_nodes_of_a_cluster_needs_its_secret():
    """Hosts get a copy of the secrets of the clusters they run nodes of, and no other."""
    unshared = record()
    del unshared["secret"]
    assert converge.desired_nodes([unshared], "h3") == {}
    with pytest.raises(DcmError, match="cluster record face: lacks secret for h1"):
        converge.desired_nodes([unshared], "h1")


@pytest.mark.parametrize(("memory", "heap"), [(512 * MIB, 256 * MIB), (768 * MIB, 384 * MIB), (8192 * MIB, 1024 * MIB)])
def test_master_daemon_heap_stays_inside_its_container(memory, heap):
    assert converge.daemon_memory("master", memory) == heap


def test_status_values_are_stable_json():
    assert converge.status_value({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    assert "observed_at" in converge.stamp({"a": 1}, now=0)


def test_pool_view_reports_nodes_health_and_the_master_ui():
    from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import Snapshot
    from ansible_collections.dcspark.dcm.plugins.module_utils.policy.views import clusters_text, pool_view

    face = record()
    snap = Snapshot(revision=7, hosts={
        "h1": {"name": "h1", "address": "10.0.0.1", "allocatable": {"cpus": 4, "memory": 8 << 30}},
        "h2": {"name": "h2", "address": "10.0.0.2", "allocatable": {"cpus": 4, "memory": 8 << 30}},
    }, clusters={"face": face})
    status = {("face", node): {"state": "running", "health": "healthy", "generation": 1}
              for node in ("master", "driver", "worker-1")}
    status[("face", "master")]["ui_port"] = 32768
    view = pool_view(snap, status)
    cluster = view["clusters"][0]
    assert cluster["ui"] is None  # no host serves the gateway
    assert cluster["ui_local"] == "http://127.0.0.1:32768 on h1"
    snap.hosts["h2"]["gateway_port"] = 8443
    assert pool_view(snap, status)["clusters"][0]["ui"] == "https://10.0.0.2:8443/clusters/face/"
    assert (cluster["running"], cluster["converged"]) == (3, False)  # worker-2 has not reported yet
    assert [n["state"] for n in cluster["nodes"]] == ["running", "running", "running", "unreported"]
    h1 = next(h for h in view["hosts"] if h["name"] == "h1")
    assert h1["clusters"] == ["face"] and h1["requested_cpus"] == 0.5 + 2
    status[("face", "worker-2")] = {"state": "running", "generation": 1}
    assert pool_view(snap, status)["clusters"][0]["converged"]
    assert pool_view(snap, status, cluster="other")["clusters"] == []
    assert pool_view(snap, status)["clusters"][0]["history_ui"] is None  # face has no history server here
    snap.clusters["face"] = record(history={})
    with_history = pool_view(snap, status)["clusters"][0]
    assert with_history["history_ui"] == "https://10.0.0.2:8443/clusters/face/history/"
    assert [(n["node"], n["host"]) for n in with_history["nodes"]][:3] == [
        ("master", "h1"), ("driver", "h2"), ("history", "h2")]
    assert "history https://10.0.0.2:8443/clusters/face/history/" in "\n".join(clusters_text(pool_view(snap, status), 0))


def test_a_spec_with_jupyter_gives_its_driver_the_server_port_token_and_published_address():
    one_host = {"master": "h1", "driver": "h1", "workers": ["h1", "h1"]}
    with_jupyter = record(placement=one_host, jupyter={"publish": "0.0.0.0", "port": 9999})
    with_jupyter["jupyter_token"] = "t" * 48
    nodes = converge.desired_nodes([with_jupyter], "h1")
    driver = nodes["spark-driver-face"]
    env = dict(driver.env)
    assert env["DCSPARK_JUPYTER_PORT"] == "9999" and "t" * 48 not in env.values()
    assert dict(driver.secrets) == {"auth": "s" * 64, "jupyter-token": "t" * 48}
    assert driver.jupyter == (9999, "0.0.0.0")
    without = converge.desired_nodes([record(placement=one_host)], "h1")["spark-driver-face"]
    assert without.jupyter == () and "DCSPARK_JUPYTER_PORT" not in dict(without.env)
    assert driver.config_hash != without.config_hash
    for name, node in nodes.items():  # only the driver serves notebooks
        if node.role != "driver":
            assert node.jupyter == () and "jupyter-token" not in dict(node.secrets), name


def test_the_jupyter_token_is_kept_across_generations_and_hidden_from_output():
    spec = record(jupyter={})["spec"]
    first = placement.cluster_record(spec, {}, {}, None, "me", 0.0)
    second = placement.cluster_record(spec, {}, {}, first, "me", 1.0)
    assert len(first["jupyter_token"]) >= 32 and second["jupyter_token"] == first["jupyter_token"]
    assert placement.public_record(second)["jupyter_token"] == placement.HIDDEN
    assert "jupyter_token" not in placement.cluster_record(record()["spec"], {}, {}, None, "me", 0.0)


def test_the_secrets_archive_holds_one_private_file_per_secret_owned_by_the_container_user():
    import io
    import tarfile
    data = converge.secrets_archive({"auth": "s" * 64, "jupyter-token": "t" * 48}, 185)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert sorted(members) == ["run/dcspark", "run/dcspark/auth", "run/dcspark/jupyter-token"]
        assert members["run/dcspark"].isdir() and members["run/dcspark"].mode == 0o500
        assert all((m.uid, m.gid) == (185, 185) for m in members.values())
        assert members["run/dcspark/auth"].mode == 0o400
        assert archive.extractfile(members["run/dcspark/auth"]).read() == b"s" * 64


def test_a_new_secret_changes_the_config_hash_and_the_label_does_not_reveal_it():
    first = converge.desired_nodes([record()], "h1")["spark-master-face"]
    rotated = record()
    rotated["secret"] = "r" * 64
    second = converge.desired_nodes([rotated], "h1")["spark-master-face"]
    assert first.config_hash != second.config_hash
    assert all("s" * 64 not in str(value) for value in first.labels().values())


def test_a_history_server_runs_beside_the_driver_from_the_master_image_on_the_event_log_volume():
    history_record = record(history={"cpus": 0.5, "memory": "1g", "max_age": "2d"})
    wanted = converge.desired_nodes([history_record], "h2")  # the driver's host
    assert sorted(wanted) == ["spark-driver-face", "spark-history-face", "spark-worker-face-2"]
    history, driver = wanted["spark-history-face"], wanted["spark-driver-face"]
    assert history.image == history_record["images"]["master"] and history.role == "history"
    assert (history.cpus, history.memory) == (500, 1024 * MIB)
    events = ("dcm-face.history", converge.EVENT_LOG_DIR, False)
    assert history.volumes == (events,) and driver.volumes == (events,)
    assert wanted["spark-worker-face-2"].volumes == ()  # the workers do not see the event logs
    env = dict(history.env)
    assert (env["DCSPARK_EVENT_LOG_DIR"], env["DCSPARK_HISTORY_MAX_AGE"], env["SPARK_DAEMON_MEMORY"]) == (
        converge.EVENT_LOG_DIR, "2d", "512m")
    assert dict(driver.env)["DCSPARK_EVENT_LOG_DIR"] == converge.EVENT_LOG_DIR
    assert "DCSPARK_EVENT_LOG_DIR" not in dict(converge.desired_nodes([record()], "h2")["spark-driver-face"].env)
    assert history.labels()[labels.ROLE] == "history" and dict(history.secrets) == {"auth": "s" * 64}
    assert "spark-history-face" not in converge.desired_nodes([history_record], "h1")


def test_the_scheduler_places_the_history_server_with_the_driver_and_counts_both_there():
    spec = record(history={"cpus": 1.5, "memory": "2g"})["spec"]
    requests = placement.requests_of(spec)
    assert (requests["driver"].cpus, requests["driver"].memory) == (2500, 3 * 1024 * MIB)  # driver + history
    assert set(requests) == {"master", "driver", "worker"}
    assert requests["driver"].describe() == "2.5 CPUs, 3g with its history server"  # said when it fits nowhere
    usage = placement.cluster_usage(dict(record(history={"cpus": 1.5, "memory": "2g"}),
                                         placement={"master": "h1", "driver": "h2", "workers": ["h1"]}))
    assert usage["h2"] == (2500, 3 * 1024 * MIB, 2)  # two containers: the driver and the history server
    # the driver keeps its host across deploys: the event logs' volume lives there
    previous = {"spec": spec, "placement": {"master": "h1", "driver": "h2", "workers": ["h1", "h2"]}}
    assert placement.volume_pins(previous, spec) == {"driver": "h2"}
    assert placement.volume_pins(previous, record()["spec"]) == {}  # history dropped: nothing to keep


def test_doubt_changes_names_what_came_into_doubt_what_is_understood_and_what_is_gone():
    before = {"a": "not JSON", "b": "format 2", "c": "shape"}
    now = {"a": "not JSON", "b": "shape", "d": "format 3"}
    assert placement.doubt_changes(before, now, present={"a", "b", "d"}) == (
        {"b": "shape", "d": "format 3"}, [], ["c"])
    assert placement.doubt_changes(before, {}, present={"a", "c"}) == ({}, ["a", "c"], ["b"])
    assert placement.doubt_changes(now, now, present=set(now)) == ({}, [], [])
