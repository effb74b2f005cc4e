"""flannel end to end on two simulated hosts, with the flanneld TEST DOUBLE (molecule verifier).

What is real here: roles/flannel (install from a local artifact with a pinned checksum, the network
config in etcd, the Type=notify unit with etcd TLS flags, Docker wired through daemon.json, docker0
reset), etcd, Docker, the DCM agent's flannel backend, Spark. What is not: flanneld is the stand-in
of tests/flannel_double (flannel's documented etcd layout, flags and subnet.env; host-gw routes), so
nothing here proves the real flanneld's VXLAN data path - docs/flannel.md says so.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "default", "tests"))
from test_clusters import ETCDCTL, Pool, connect, playbook  # noqa: E402  pylint: disable=wrong-import-position

SPEC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "specs", "span.json"))
CLUSTER = "span"
PREFIX = "/coreos.com/network"
HOSTS_DIR = "/var/lib/dcm/hosts"


@pytest.fixture(scope="module")
def pool(request) -> Pool:
    inventory = request.config.option.ansible_inventory
    assert inventory, "run through molecule (testinfra's --ansible-inventory names the scenario's inventory)"
    return Pool(inventory)


def subnet_env(pool: Pool, name: str) -> dict:
    text = pool.hosts[name].file("/run/flannel/subnet.env").content_string
    return dict(line.split("=", 1) for line in text.split() if "=" in line)


def lab_address(pool: Pool, name: str) -> str:
    return json.loads(pool.hosts[name].check_output("ip -j -4 addr show dev eth0"))[0]["addr_info"][0]["local"]


def docker0(pool: Pool, name: str) -> str:
    info = json.loads(pool.hosts[name].check_output("ip -j -4 addr show dev docker0"))[0]["addr_info"][0]
    return f"{info['local']}/{info['prefixlen']}"


def leases(pool: Pool) -> dict:
    return {key.rsplit("/", 1)[1].replace("-", "/"): value
            for key, value in pool.etcd_get(f"{PREFIX}/subnets/", prefix=True).items()}


def test_flanneld_runs_on_every_host_and_leases_each_its_own_subnet(pool):
    config = pool.etcd_get(f"{PREFIX}/config")[f"{PREFIX}/config"]
    assert config["Backend"]["Type"] == "host-gw" and config["SubnetLen"] == 24
    network = ipaddress.ip_network(config["Network"])
    held = leases(pool)
    subnets = {}
    for name in pool.names:
        host = pool.hosts[name]
        assert host.service("flanneld").is_running
        assert "Type=notify" in host.check_output("systemctl cat flanneld")
        env = subnet_env(pool, name)
        subnet = ipaddress.ip_interface(env["FLANNEL_SUBNET"]).network
        assert env["FLANNEL_NETWORK"] == str(network) and subnet.subnet_of(network)
        assert held[str(subnet)]["PublicIP"] == lab_address(pool, name), held
        subnets[name] = subnet
    assert len(set(subnets.values())) == len(pool.names)
    # each host routes the other's subnet via the other's address
    first, second = pool.names
    route = pool.hosts[first].check_output(f"ip -4 route show {subnets[second]}")
    assert f"via {lab_address(pool, second)}" in route, route


def test_docker0_is_on_the_leased_subnet_through_daemon_json_alone(pool):
    for name in pool.names:
        host = pool.hosts[name]
        env = subnet_env(pool, name)
        options = json.loads(host.file("/etc/docker/daemon.json").content_string)
        assert options["bip"] == env["FLANNEL_SUBNET"]
        assert options["mtu"] == int(env["FLANNEL_MTU"])
        assert options["ip-masq"] is (env["FLANNEL_IPMASQ"] != "true")
        assert docker0(pool, name) == env["FLANNEL_SUBNET"]
        # no second channel: the running dockerd got none of them as flags (Debian's unit passes
        # $DOCKER_OPTS from /etc/default/docker, which must not set any)
        args = host.check_output("ps -o args= -C dockerd")
        assert not [flag for flag in ("--bip", "--mtu", "--ip-masq") if flag in args], args
        defaults = host.run("grep -E '^[[:space:]]*DOCKER_OPTS' /etc/default/docker")
        assert defaults.rc != 0, defaults.stdout


@pytest.fixture(scope="module")
def deployed(pool):
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", f"spec={SPEC}")
    assert run.returncode == 0, f"deploy failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    yield run
    playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={CLUSTER}", timeout=600)


def node_addresses(pool: Pool) -> dict:
    """{container: (host, address)} of the cluster's nodes, from their status in etcd."""
    found = {}
    for report in pool.node_status(CLUSTER).values():
        found[report["container"]] = (report["host"], report.get("address"))
    return found


def hosts_file(pool: Pool, name: str) -> dict:
    text = pool.hosts[name].file(f"{HOSTS_DIR}/{CLUSTER}.hosts").content_string
    return {parts[1]: parts[0] for parts in (line.split() for line in text.splitlines()) if len(parts) == 2}


def test_a_cluster_spans_both_hosts_and_shuffles_across_them(pool, deployed):
    assert "SPAN OK" in deployed.stdout, deployed.stdout[-4000:]
    record = pool.cluster(CLUSTER)
    assert record["network"] == {"name": "bridge", "driver": "flannel"}
    assert len(set(record["placement"]["workers"])) == 2, record["placement"]
    nodes = node_addresses(pool)
    assert len(nodes) == 4, nodes
    for container, (host, address) in nodes.items():
        leased = ipaddress.ip_interface(subnet_env(pool, host)["FLANNEL_SUBNET"]).network
        assert ipaddress.ip_address(address) in leased, (container, host, address)
    for name in pool.names:  # every host's file names every node, wherever it runs
        assert hosts_file(pool, name) == {c: a for c, (_h, a) in nodes.items()} | {"localhost": "127.0.0.1"}
    assert not pool.hosts[pool.names[0]].run(f"docker network ls -q --filter name=dcm-{CLUSTER}").stdout.strip()


def test_no_node_on_docker0_reaches_the_registry_or_etcd(pool, deployed):
    """flannel puts every cluster on docker0: the docker role's protected ports hold there too."""
    record = pool.cluster(CLUSTER)
    address, port = record["images"]["master"].split("/", 1)[0].rsplit(":", 1)
    for container, (host, _address) in node_addresses(pool).items():
        for target_port in (port, "2379", "2380"):  # the registry's host is an etcd member
            out = connect(pool, host, container, address, target_port)
            assert out.startswith("refused"), (container, host, target_port, out)
    reached = connect(pool, *next((h, c) for c, (h, _a) in node_addresses(pool).items()), f"spark-master-{CLUSTER}")
    assert reached.startswith("connected"), reached  # the probe itself works: the refusals are the rule's


def jupyter_get(pool: Pool, host: str, port: int, token: str = "") -> int:
    """HTTP status of the Jupyter server's /api/status, asked from the driver's host."""
    header = f"{{'Authorization': 'token {token}'}}" if token else "{}"
    probe = pool.hosts[host].run(
        "python3 -c \"import urllib.request, urllib.error, sys\n"
        f"req = urllib.request.Request('http://127.0.0.1:{port}/api/status', headers={header})\n"
        "try:\n    print(urllib.request.urlopen(req, timeout=10).status)\n"
        "except urllib.error.HTTPError as exc:\n    print(exc.code)\n"
        "except (urllib.error.URLError, OSError):\n    print(0)\"")  # not listening yet
    assert probe.rc == 0, probe.stderr
    return int(probe.stdout.strip())


def test_the_driver_runs_a_jupyter_server_that_needs_its_token_and_runs_notebooks_on_the_cluster(pool, deployed):
    flat = " ".join(deployed.stdout.split())
    shown = re.search(r"Jupyter: http://127\.0\.0\.1:(\d+)/lab on (\S+) \(token: docker exec spark-driver-span "
                      r"dcspark-node jupyter-token\)", flat)
    assert shown, deployed.stdout[-3000:] + deployed.stderr[-2000:]
    port, host = int(shown.group(1)), shown.group(2)
    assert host == pool.cluster(CLUSTER)["placement"]["driver"]
    driver = pool.hosts[host]
    assert driver.check_output(f"docker port spark-driver-{CLUSTER} 8888/tcp") == f"127.0.0.1:{port}"  # loopback only
    token = driver.check_output(f"docker exec spark-driver-{CLUSTER} dcspark-node jupyter-token")
    assert len(token) >= 32
    deadline = time.monotonic() + 120
    while (code := jupyter_get(pool, host, port)) not in (401, 403):
        assert time.monotonic() < deadline, f"the Jupyter server did not answer (last status {code})"
        time.sleep(2)
    assert jupyter_get(pool, host, port, "not-the-token") in (401, 403)
    assert jupyter_get(pool, host, port, token) == 200
    assert token not in json.dumps(pool.cluster(CLUSTER).get("spec"))  # the token is not part of the spec
    run = driver.run(f"docker exec spark-driver-{CLUSTER} jupyter nbconvert --to notebook --execute "
                     "--output-dir /tmp --output tour-run /opt/dcspark/notebooks/span.ipynb")
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    executed = driver.check_output(f"docker exec spark-driver-{CLUSTER} cat /tmp/tour-run.ipynb")
    assert "NOTEBOOK OK: 97 keys, 200000 records over 2 workers" in executed, executed[-3000:]


def test_docker0_follows_a_new_subnet_and_the_cluster_heals(pool, deployed):
    """flannel leases the host another subnet: site.yml moves docker0 there; the nodes come back on it."""
    worker_host = pool.names[1]
    host = pool.hosts[worker_host]
    old = ipaddress.ip_interface(subnet_env(pool, worker_host)["FLANNEL_SUBNET"]).network
    squatter = f"{PREFIX}/subnets/{old.network_address}-{old.prefixlen}"
    control = pool.hosts[pool.first]
    try:
        assert host.run("systemctl stop flanneld").rc == 0
        # the host's lease is gone and another host took its subnet meanwhile
        value = json.dumps({"PublicIP": "172.29.97.250", "PublicIPv6": None, "BackendType": "host-gw",
                            "BackendData": None})
        assert control.run(f"{ETCDCTL} put {squatter} '{value}'").rc == 0
        assert host.run("systemctl start flanneld").rc == 0
        new = ipaddress.ip_interface(subnet_env(pool, worker_host)["FLANNEL_SUBNET"]).network
        assert new != old
        run = playbook(pool.inventory, "site.yml")
        assert run.returncode == 0, run.stdout[-6000:]
        assert "docker0" in run.stdout  # the reset was said
        assert ipaddress.ip_interface(docker0(pool, worker_host)).network == new
        deadline = time.monotonic() + 180
        while True:
            nodes = node_addresses(pool)
            moved = [c for c, (h, a) in nodes.items() if h == worker_host]
            if moved and all(a and ipaddress.ip_address(a) in new for c, (h, a) in nodes.items() if h == worker_host) \
                    and hosts_file(pool, pool.first) == {c: a for c, (_h, a) in nodes.items()} | {"localhost": "127.0.0.1"}:
                break
            assert time.monotonic() < deadline, nodes
            time.sleep(2)
        driver = pool.cluster(CLUSTER)["placement"]["driver"]
        again = pool.hosts[driver].run(f"docker exec spark-driver-{CLUSTER} dcspark-submit")
        assert again.rc == 0 and "SPAN OK" in again.stdout, again.stdout[-3000:] + again.stderr[-3000:]
    finally:
        control.run(f"{ETCDCTL} del {squatter}")


def test_undeploy_leaves_no_container_and_no_hosts_file(pool, deployed):
    run = playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={CLUSTER}", timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]
    for name in pool.names:
        assert pool.containers(name, CLUSTER) == []
        deadline = time.monotonic() + 30
        while pool.hosts[name].file(f"{HOSTS_DIR}/{CLUSTER}.hosts").exists:
            assert time.monotonic() < deadline, f"the hosts file of {CLUSTER} stayed on {name}"
            time.sleep(1)
