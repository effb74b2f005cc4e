"""The agent's convergence on the real Docker engine: create with limits, recreate on change, remove.

The node image is a busybox filesystem imported with a non-root USER (and a root one, which must be
refused). Everything made here carries this run's test label (containers inherit it from the image),
and the cluster name is unique per run; the plan is restricted to that cluster, so nothing else on
the engine is ever touched.
"""

from __future__ import annotations

import json
import uuid

import docker
import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.daemons import converge

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec
from docker_fixtures import TEST_RUN, busybox_tar, cleanup, engine

MIB = 1 << 20


def import_node_image(api, run_id: str, user: str | None, owned_dirs: dict | None = None) -> str:
    changes = [f"LABEL {TEST_RUN}={run_id}", 'CMD ["/bin/sleep", "3600"]']
    if user:
        changes.append(f"USER {user}")
    tag = f"{run_id}-{'user' if user else 'root'}{'-dirs' if owned_dirs else ''}"
    answer = api.import_image_from_data(busybox_tar(owned_dirs), repository="dcspark-test/node", tag=tag,
                                        changes=changes)
    return json.loads(answer.strip().splitlines()[-1])["status"]


@pytest.fixture()
def lab():
    api = engine()
    run_id = uuid.uuid4().hex[:12]
    client = docker.DockerClient(version="auto", timeout=120)
    network = client.networks.create(f"dcm-cvt-{run_id}", driver="bridge", labels={TEST_RUN: run_id})
    try:
        yield {"api": api, "client": client, "run": run_id, "network": network.name,
               "image": import_node_image(api, run_id, "185:185")}
    finally:
        problems = cleanup(api, run_id)
        network.remove()
        assert not problems, problems


def record(lab, worker_memory="512m", image=None, count=2):
    name = f"cvt-{lab['run']}"
    spec = normalize_spec({
        "name": name, "runtime": {"spark_version": "4.0.1"},
        "master": {"cpus": 0.5, "memory": "256m"}, "driver": {"cpus": 0.25, "memory": "512m"},
        "worker": {"cpus": 1, "memory": worker_memory, "count": count},
        "ui": {"publish": "127.0.0.1"},  # the master's UI on the host's loopback too (an SSH tunnel's)
    })
    image = image or lab["image"]
    return {"name": name, "spec": spec, "spec_hash": "x", "generation": 1, "desired_state": "running",
            "images": {"master": image, "worker": image, "driver": image},
            "network": {"name": lab["network"], "driver": "bridge"}, "secret": "s" * 64,
            "placement": {"master": "here", "driver": "here", "workers": ["here"] * count}}


def converge_once(lab, records, nodes):
    wanted = converge.desired_nodes(records, "here")
    cluster = f"cvt-{lab['run']}"
    mine = [c for c in nodes.observed() if c.labels.get(labels.CLUSTER) == cluster]
    actions = converge.plan_actions(wanted, mine)
    nodes.apply(actions)
    return wanted, actions


def containers_of(lab):
    return {c.name: c for c in lab["client"].containers.list(all=True, filters={"label": f"{TEST_RUN}={lab['run']}"})}


def remove_nodes_and_volume(lab, volume: str) -> None:
    """What a volume test made: this run's containers, then the volume of exactly that name."""
    for container in containers_of(lab).values():
        container.remove(force=True)
    for found in lab["client"].volumes.list(filters={"name": volume}):
        if found.name == volume:
            found.remove(force=True)


def test_converge_creates_limited_non_root_nodes_and_reports_them(lab, tmp_path):
    nodes = converge.DockerNodes(lab["client"], last_used_file=str(tmp_path / "last-used.json"))
    wanted, actions = converge_once(lab, [record(lab)], nodes)
    assert len(actions.create) == 4 and not nodes.errors, nodes.errors
    found = containers_of(lab)
    name = f"cvt-{lab['run']}"
    assert sorted(found) == sorted([f"spark-master-{name}", f"spark-driver-{name}",
                                    f"spark-worker-{name}-1", f"spark-worker-{name}-2"])
    worker = found[f"spark-worker-{name}-1"].attrs
    host_config = worker["HostConfig"]
    assert (host_config["NanoCpus"], host_config["Memory"], host_config["MemorySwap"]) == (10**9, 512 * MIB, 512 * MIB)
    assert host_config["CapDrop"] == ["ALL"] and host_config["PidsLimit"] == converge.PIDS_LIMIT
    assert "no-new-privileges" in host_config["SecurityOpt"]
    assert worker["Config"]["Hostname"] == f"spark-worker-{name}-1"
    assert lab["network"] in worker["NetworkSettings"]["Networks"]
    assert worker["Config"]["User"] == "185:185"  # set at create, whatever the image says
    # the secret is a file only the container user reads, never in the environment docker inspect shows
    assert not any("s" * 64 in entry for entry in worker["Config"]["Env"])
    assert "s" * 64 not in json.dumps(worker)
    container = found[f"spark-worker-{name}-1"]
    uid = container.exec_run(
        ["sh", "-c", 'while read key value rest; do [ "$key" = Uid: ] && echo "$value"; done < /proc/self/status'])
    assert uid.output.decode().strip() == "185"
    listing = container.exec_run(["ls", "-ln", "/run/dcspark"]).output.decode()
    assert listing.split()[-9:-6] == ["-r--------", "1", "185"], listing
    assert container.exec_run(["cat", "/run/dcspark/auth"]).output.decode() == "s" * 64
    status = nodes.status(wanted[f"spark-master-{name}"], "here")
    assert status["state"] == "running" and status["ui_port"] > 0
    bindings = found[f"spark-master-{name}"].attrs["HostConfig"]["PortBindings"]
    assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}, bindings  # loopback only
    assert not worker["HostConfig"].get("PortBindings")  # nothing else is published
    assert json.loads((tmp_path / "last-used.json").read_text())  # image use recorded for the GC
    # a second pass has nothing to do
    _wanted, again = converge_once(lab, [record(lab)], nodes)
    assert again.empty and len(again.keep) == 4


def test_converge_recreates_changed_nodes_restarts_stopped_ones_and_removes_the_rest(lab):
    nodes = converge.DockerNodes(lab["client"])
    converge_once(lab, [record(lab)], nodes)
    name = f"cvt-{lab['run']}"
    before = {n: c.id for n, c in containers_of(lab).items()}
    containers_of(lab)[f"spark-master-{name}"].stop(timeout=1)
    _wanted, actions = converge_once(lab, [record(lab, worker_memory="768m", count=1)], nodes)
    after = containers_of(lab)
    assert [n.name for n, _c in actions.start] == [f"spark-master-{name}"]
    assert after[f"spark-master-{name}"].id == before[f"spark-master-{name}"]  # started again, not replaced
    assert after[f"spark-worker-{name}-1"].id != before[f"spark-worker-{name}-1"]  # new memory: recreated
    assert after[f"spark-worker-{name}-1"].attrs["HostConfig"]["Memory"] == 768 * MIB
    assert f"spark-worker-{name}-2" not in after  # no longer wanted
    converge_once(lab, [], nodes)
    assert containers_of(lab) == {}


def test_containers_of_dcspark_images_that_are_not_nodes_are_left_alone(lab):
    """An image build's intermediate container (or one started by hand) carries the image's
    managed/cluster labels; the agent once removed one mid-build. Only nodes it created are its own."""
    name = f"cvt-{lab['run']}"
    bystander = lab["client"].containers.run(lab["image"], detach=True, network_mode="none",
                                             labels={labels.MANAGED: "true", labels.CLUSTER: name})
    nodes = converge.DockerNodes(lab["client"])
    assert all(c.id != bystander.id for c in nodes.observed())
    converge_once(lab, [], nodes)
    bystander.reload()
    assert bystander.status == "running"


def test_a_root_image_is_refused_and_reported(lab):
    root_image = import_node_image(lab["api"], lab["run"], None)
    nodes = converge.DockerNodes(lab["client"])
    wanted, _actions = converge_once(lab, [record(lab, image=root_image)], nodes)
    assert containers_of(lab) == {}
    name = f"cvt-{lab['run']}"
    status = nodes.status(wanted[f"spark-master-{name}"], "here")
    assert status["state"] == "missing" and "runs as root" in status["error"], status


def test_an_image_built_for_another_user_is_refused_and_reported(lab):
    other = import_node_image(lab["api"], lab["run"], "1000:1000")
    nodes = converge.DockerNodes(lab["client"])
    wanted, _actions = converge_once(lab, [record(lab, image=other)], nodes)
    assert containers_of(lab) == {}
    status = nodes.status(wanted[f"spark-master-cvt-{lab['run']}"], "here")
    assert status["state"] == "missing" and "built for user 1000:1000" in status["error"], status
    assert "spark_images_uid=185" in status["error"]


def test_a_new_secret_recreates_the_nodes_with_the_new_file(lab):
    nodes = converge.DockerNodes(lab["client"])
    converge_once(lab, [record(lab)], nodes)
    before = {n: c.id for n, c in containers_of(lab).items()}
    rotated = record(lab)
    rotated["secret"] = "r" * 64
    converge_once(lab, [rotated], nodes)
    after = containers_of(lab)
    assert sorted(after) == sorted(before) and all(after[n].id != before[n] for n in before)
    master = after[f"spark-master-cvt-{lab['run']}"]
    assert master.exec_run(["cat", "/run/dcspark/auth"]).output.decode() == "r" * 64


def test_a_volume_keeps_what_a_node_wrote_across_containers_and_an_undeploy(lab, tmp_path):
    """The spec's volume: made with DCSpark's labels at the first mount, owned by the container user (the
    image's folder), mounted only into the roles it names, kept when its containers are replaced or removed."""
    image = import_node_image(lab["api"], lab["run"], "185:185", owned_dirs={"data": 185})
    name = f"cvt-{lab['run']}"
    volume = f"dcm-{name}-data"

    def with_volume(worker_memory: str) -> dict:
        rec = record(lab, worker_memory=worker_memory, image=image, count=1)
        rec["spec"]["volumes"] = [{"name": "data", "path": "/data", "nodes": ["worker"], "read_only": False}]
        return rec

    nodes = converge.DockerNodes(lab["client"], last_used_file=str(tmp_path / "last-used.json"))
    try:
        converge_once(lab, [with_volume("512m")], nodes)
        assert not nodes.errors, nodes.errors
        found = containers_of(lab)
        worker = found[f"spark-worker-{name}-1"]
        mounts = [(m["Type"], m.get("Name"), m["Destination"], m["RW"]) for m in worker.attrs["Mounts"]]
        assert mounts == [("volume", volume, "/data", True)]
        assert not found[f"spark-driver-{name}"].attrs["Mounts"]  # the spec names the workers only
        made = lab["client"].volumes.get(volume).attrs["Labels"]
        assert made == {labels.MANAGED: "true", labels.CLUSTER: name, labels.VOLUME: volume}
        wrote = worker.exec_run(["sh", "-c", "echo kept > /data/probe"])  # as 185: the volume took /data's owner
        assert wrote.exit_code == 0, wrote.output

        converge_once(lab, [with_volume("640m")], nodes)  # a new container for the worker
        again = containers_of(lab)[f"spark-worker-{name}-1"]
        assert again.id != worker.id and not nodes.errors, nodes.errors
        assert again.exec_run(["cat", "/data/probe"]).output.decode().strip() == "kept"

        converge_once(lab, [], nodes)  # undeployed: the containers go, the volume stays
        assert not containers_of(lab)
        assert lab["client"].volumes.get(volume).attrs["Labels"][labels.CLUSTER] == name

        # a volume of that name which is not the cluster's is never mounted
        lab["client"].volumes.get(volume).remove()
        lab["client"].volumes.create(name=volume, labels={TEST_RUN: lab["run"]})
        converge_once(lab, [with_volume("512m")], nodes)
        assert f"spark-worker-{name}-1" not in containers_of(lab)
        assert any(f"volume {volume} on this host is not cluster {name}'s" in str(error)
                   for error in nodes.errors.values()), nodes.errors
    finally:
        remove_nodes_and_volume(lab, volume)


def test_a_history_server_runs_its_command_with_its_own_health_check_on_the_drivers_event_volume(lab, tmp_path):
    """The history node: the master's image told to run ``history``, its health asked on its own port, the
    event-log volume shared with the driver (what the driver writes, the server reads)."""
    answer = lab["api"].import_image_from_data(
        busybox_tar({"opt/dcspark/events": 185}), repository="dcspark-test/node",
        tag=f"{lab['run']}-history",
        changes=[f"LABEL {TEST_RUN}={lab['run']}", "USER 185:185", 'ENTRYPOINT ["/bin/sh", "-c", "exec sleep 3600"]',
                 'CMD ["master"]'])
    image = json.loads(answer.strip().splitlines()[-1])["status"]
    rec = record(lab, image=image, count=1)
    rec["spec"]["history"] = {"cpus": 0.25, "memory": 512 * MIB, "max_age": "1d"}
    name, volume = rec["name"], f"dcm-{rec['name']}.history"
    nodes = converge.DockerNodes(lab["client"], last_used_file=str(tmp_path / "last-used.json"))
    try:
        wanted, _actions = converge_once(lab, [rec], nodes)
        assert not nodes.errors, nodes.errors
        found = containers_of(lab)
        history, driver = found[f"spark-history-{name}"], found[f"spark-driver-{name}"]
        config = history.attrs["Config"]
        assert config["Cmd"] == ["history"] and found[f"spark-master-{name}"].attrs["Config"]["Cmd"] == ["master"]
        assert config["Healthcheck"]["Test"] == converge.HISTORY_HEALTHCHECK["test"]
        assert (history.attrs["HostConfig"]["NanoCpus"], history.attrs["HostConfig"]["Memory"]) == (25 * 10**7, 512 * MIB)
        for container in (history, driver):
            mounts = [(m.get("Name"), m["Destination"], m["RW"]) for m in container.attrs["Mounts"]]
            assert mounts == [(volume, converge.EVENT_LOG_DIR, True)], (container.name, mounts)
        assert not found[f"spark-worker-{name}-1"].attrs["Mounts"]
        wrote = driver.exec_run(["sh", "-c", f"echo app-1 > {converge.EVENT_LOG_DIR}/app-1"])  # as 185
        assert wrote.exit_code == 0, wrote.output
        assert history.exec_run(["cat", f"{converge.EVENT_LOG_DIR}/app-1"]).output.decode().strip() == "app-1"
        assert nodes.status(wanted[f"spark-history-{name}"], "here")["state"] == "running"
    finally:
        remove_nodes_and_volume(lab, volume)
