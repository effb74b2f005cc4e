"""The agent's flannel network backend on the real Docker engine and a real TLS etcd.

flanneld itself cannot run here (no binary; see docs/flannel.md), so the "leased subnet" is a
subnet.env written by the test that names the subnet the local engine's docker0 really has -
exactly the state roles/flannel leaves a host in. The containers run on the engine's default
bridge with this run's label and a cluster name unique to the run; the engine's own networks are
only read. What is checked is what the agent promises: nodes on docker0 with the cluster's hosts
file mounted read-only on /etc/hosts, every node's name (this host's from the engine, another
host's from its status in etcd) resolving inside the containers, the file rewritten in place when
a peer moves, and a docker0 that is not on the leased subnet refused with the fix, nothing created.
"""

from __future__ import annotations

import ipaddress
import json
import uuid

import docker
import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.daemons import converge

from ansible_collections.dcspark.dcm.plugins.module_utils.host import flannel

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.core import naming

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.agent import AgentConfig, Converger
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec
from docker_fixtures import TEST_RUN, busybox_tar, cleanup, engine

HOST = "here"


class OwnClusterNodes(converge.DockerNodes):
    """The real Docker adapter, listing only this test's cluster (the agent lists every DCSpark node)."""

    def __init__(self, client, cluster: str, **kwargs) -> None:
        super().__init__(client, **kwargs)
        self.cluster = cluster

    def observed(self) -> list:
        return [found for found in super().observed() if found.labels.get(labels.CLUSTER) == self.cluster]


def docker0_subnet(client) -> str:
    return client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Subnet"]


def write_subnet_env(path, subnet: str) -> None:
    network = ipaddress.ip_network(subnet)
    path.write_text(f"FLANNEL_NETWORK={network.supernet(new_prefix=max(network.prefixlen - 8, 8))}\n"
                    f"FLANNEL_SUBNET={next(network.hosts())}/{network.prefixlen}\nFLANNEL_MTU=1450\n"
                    "FLANNEL_IPMASQ=true\n")


@pytest.fixture
def lab(tmp_path):
    api = engine()
    run_id = uuid.uuid4().hex[:12]
    client = docker.DockerClient(version="auto", timeout=120)
    try:
        answer = api.import_image_from_data(busybox_tar(), repository="dcspark-test/flannel-node", tag=run_id, changes=[
            f"LABEL {TEST_RUN}={run_id}", 'CMD ["/bin/sleep", "3600"]', "USER 185:185"])
        subnet_file = tmp_path / "subnet.env"
        write_subnet_env(subnet_file, docker0_subnet(client))
        name = f"flt-{run_id}"
        nodes = OwnClusterNodes(client, name, hosts_files=flannel.HostsFiles(str(tmp_path / "hosts")),
                                subnet_file=str(subnet_file))
        yield {"client": client, "run": run_id, "name": name, "nodes": nodes, "subnet_file": subnet_file,
               "image": json.loads(answer.strip().splitlines()[-1])["status"]}
    finally:
        problems = cleanup(api, run_id)
        client.close()
        assert not problems, problems


def flannel_record(lab, remote_workers: int = 1) -> dict:
    spec = normalize_spec({
        "name": lab["name"], "runtime": {"spark_version": "4.0.1"},
        "master": {"cpus": 0.25, "memory": "256m"}, "driver": {"cpus": 0.25, "memory": "512m"},
        "worker": {"cpus": 1, "memory": "512m", "count": 1 + remote_workers},
    })
    return {"name": lab["name"], "spec": spec, "spec_hash": "x", "generation": 1, "desired_state": "running",
            "images": {"master": lab["image"], "worker": lab["image"], "driver": lab["image"]},
            "network": {"name": "bridge", "driver": "flannel"}, "secret": "s" * 64,
            "placement": {"master": HOST, "driver": HOST, "workers": [HOST] + ["elsewhere"] * remote_workers}}


def resolve(container, name: str) -> str:
    result = container.exec_run(["sh", "-c", f"grep -w '{name}' /etc/hosts"])
    assert result.exit_code == 0, (name, result.output)
    return result.output.decode().split()[0]


def test_flannel_nodes_run_on_docker0_and_resolve_every_peer_from_the_hosts_file(lab, clean_etcd):
    etcd = clean_etcd.client
    name = lab["name"]
    remote = f"spark-worker-{name}-2"
    etcd.put(keys.status_key("elsewhere", name, "worker-2"),
             json.dumps({"container": remote, "host": "elsewhere", "address": "10.250.7.3", "state": "running"}))
    etcd.put(keys.cluster_key(name), json.dumps(flannel_record(lab)))
    converger = Converger(AgentConfig(host_name=HOST, etcd=clean_etcd.new_client().config), clean_etcd.new_client(),
                          lab["nodes"])
    lease = etcd.lease_grant(60)
    actions = converger.once(lease)
    assert len(actions.create) == 3 and not lab["nodes"].errors, lab["nodes"].errors

    client = lab["client"]
    master = client.containers.get(f"spark-master-{name}")
    attrs = master.attrs
    assert list(attrs["NetworkSettings"]["Networks"]) == ["bridge"]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/etc/hosts"]["Source"] == lab["nodes"].hosts_files.path(name) and mounts["/etc/hosts"]["RW"] is False
    assert f"{flannel.NAME_WAIT_ENV}={flannel.NAME_WAIT_SECONDS}" in attrs["Config"]["Env"]
    subnet = ipaddress.ip_network(docker0_subnet(client))
    local = {}
    for node in ("master", "driver", "worker-1"):
        container = naming.container_name(name, node)
        report = json.loads(etcd.get(keys.status_key(HOST, name, node)).value)
        assert ipaddress.ip_address(report["address"]) in subnet, report  # on the leased subnet
        local[container] = report["address"]
    # inside a container: its own name, this host's peers, and the other host's worker
    driver = client.containers.get(f"spark-driver-{name}")
    for container, address in {**local, remote: "10.250.7.3"}.items():
        assert resolve(driver, container) == address

    # the remote worker moves (the old host's report goes with its lease): the file changes in place
    # and the running containers see it
    etcd.delete(keys.status_key("elsewhere", name, "worker-2"))
    etcd.put(keys.status_key("other", name, "worker-2"),
             json.dumps({"container": remote, "host": "other", "address": "10.250.9.4", "state": "running"}))
    converger.once(lease)
    assert resolve(driver, remote) == "10.250.9.4"
    assert resolve(master, remote) == "10.250.9.4"

    # undeployed: containers and the cluster's hosts file go
    etcd.delete(keys.cluster_key(name))
    converger.once(lease)
    assert not client.containers.list(all=True, filters={"label": f"{TEST_RUN}={lab['run']}"})
    assert not (lab["subnet_file"].parent / "hosts" / f"{name}.hosts").exists()


def test_a_docker0_off_the_leased_subnet_is_refused_with_the_fix_and_nothing_is_created(lab, clean_etcd):
    lab["subnet_file"].write_text("FLANNEL_NETWORK=10.251.0.0/16\nFLANNEL_SUBNET=10.251.3.1/24\n"
                                  "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    etcd = clean_etcd.client
    etcd.put(keys.cluster_key(lab["name"]), json.dumps(flannel_record(lab, remote_workers=0)))
    converger = Converger(AgentConfig(host_name=HOST, etcd=clean_etcd.new_client().config), clean_etcd.new_client(),
                          lab["nodes"])
    converger.once(etcd.lease_grant(60))
    assert not lab["client"].containers.list(all=True, filters={"label": f"{TEST_RUN}={lab['run']}"})
    report = json.loads(etcd.get(keys.status_key(HOST, lab["name"], "master")).value)
    assert report["state"] == "missing"
    assert "flannel leased this host 10.251.3.0/24" in report["error"] and "run site.yml" in report["error"], report

    lab["subnet_file"].unlink()
    converger.once(etcd.lease_grant(60))
    report = json.loads(etcd.get(keys.status_key(HOST, lab["name"], "master")).value)
    assert "subnet.env is missing: flanneld does not run on this host" in report["error"], report
