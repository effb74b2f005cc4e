"""What an operator checks on a freshly provisioned pool (molecule verifier, pytest-testinfra).

Runs against the hosts of the scenario's inventory through testinfra's ansible backend; every
command runs inside a host, as an operator logged in there would run it. The pool is the one
`site.yml` describes: Docker on every host, etcd (TLS for clients and peers) on dcm_masters, the
registry (TLS) on the first master, the DCM agent registering every host in etcd on a lease.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import time
import uuid

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner
from test_clusters import CREDENTIALS_OF, REGISTRY_AUTH

testinfra_hosts = ["dcm_pool"]

PKI = "/etc/dcm/pki"
# etcdctl acts as etcd's root: gRPC takes the user from the certificate's name (root.crt: masters only)
CA, CLIENT_CERT, CLIENT_KEY = f"{PKI}/ca.crt", f"{PKI}/root.crt", f"{PKI}/root.key"
ETCD_CLIENT_PORT = 2379
REGISTRY_PORT = 5000
HOSTS_PREFIX = "/dcm/hosts/"
# How often the polls below look again; their deadlines derive from the lease TTL.
POLL_INTERVAL = 1.0


class Pool:
    """The pool as the inventory describes it, with a testinfra Host per inventory host."""

    def __init__(self, inventory: str) -> None:
        runner = AnsibleRunner(inventory)
        self.names = runner.get_hosts("dcm_pool")
        self.masters = runner.get_hosts("dcm_masters")
        self.hosts = {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
                      for name in self.names}
        self.addresses = {name: default_address(host) for name, host in self.hosts.items()}

    @property
    def first_master(self) -> str:
        return self.masters[0]

    @property
    def registry(self) -> str:
        """host:port of the pool's registry: the first master (dcm_registry_host's default)."""
        return f"{self.addresses[self.first_master]}:{REGISTRY_PORT}"

    def etcd_endpoints(self) -> str:
        return ",".join(f"https://{self.addresses[m]}:{ETCD_CLIENT_PORT}" for m in self.masters)

    def etcdctl(self, args: str, on: str | None = None, endpoints: str | None = None, certificate: bool = True):
        """Run etcdctl (v3 API) on a master, as etcd's root (its certificate)."""
        auth = f"--cert={CLIENT_CERT} --key={CLIENT_KEY} " if certificate else ""
        command = (f"ETCDCTL_API=3 etcdctl --endpoints={endpoints or self.etcd_endpoints()} --cacert={CA} {auth}"
                   f"--dial-timeout=3s --command-timeout=10s {args}")
        return self.hosts[on or self.first_master].run(command)

    def registration(self, name: str) -> dict | None:
        """The etcd entry /dcm/hosts/<name>: its JSON value and lease, or None when absent."""
        result = self.etcdctl(f"get {HOSTS_PREFIX}{name} -w json")
        assert result.rc == 0, f"etcdctl get failed: {result.stderr}"
        kvs = json.loads(result.stdout).get("kvs") or []
        if not kvs:
            return None
        return {"value": json.loads(base64.b64decode(kvs[0]["value"])), "lease": int(kvs[0].get("lease", 0))}

    def lease_ttl(self, lease: int) -> int:
        """The TTL the lease was granted with, in seconds."""
        result = self.etcdctl(f"lease timetolive {lease:x}")
        assert result.rc == 0, result.stderr
        granted = re.search(r"granted with TTL\((\d+)s\)", result.stdout)
        assert granted, f"unexpected etcdctl output: {result.stdout}"
        return int(granted.group(1))


def default_address(host) -> str:
    """The address of the host's default route: the one the roles use (ansible_default_ipv4)."""
    route = host.check_output("ip -4 route get 8.8.8.8")
    found = re.search(r"\bsrc (\d+\.\d+\.\d+\.\d+)", route)
    assert found, f"no source address in: {route}"
    return found.group(1)


def wait_until(condition, deadline: float, what: str) -> None:
    """Poll ``condition`` until it is true; fail with ``what`` once ``deadline`` seconds have passed."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what}: not the case after {deadline:.0f} s")
        time.sleep(POLL_INTERVAL)


@pytest.fixture(scope="module")
def pool(request) -> Pool:
    inventory = request.config.option.ansible_inventory
    assert inventory, "run through molecule (testinfra's --ansible-inventory names the scenario's inventory)"
    return Pool(inventory)


def is_master(pool: Pool, host) -> bool:
    return host.backend.get_hostname() in pool.masters


# --- Docker ------------------------------------------------------------------------------------

def test_docker_engine_runs(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled
    assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0


SWARM_PORTS = {2377, 7946}  # swarm raft/join (mutual TLS) and gossip: not the Docker API


def test_docker_does_not_serve_its_api_on_tcp(host):
    listeners = [line for line in host.check_output("ss -Hltnp").splitlines() if '"dockerd"' in line]
    ports = {int(line.split()[3].rsplit(":", 1)[1]) for line in listeners}
    assert not ports - SWARM_PORTS, f"dockerd listens on TCP:\n{listeners}"


def test_every_host_is_an_active_swarm_member(pool, host):
    state = host.check_output("docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'")
    manager = host.backend.get_hostname() in pool.masters
    assert state == f"active {str(manager).lower()}", state


def test_docker_trusts_the_registry_ca(pool, host):
    trusted = host.file(f"/etc/docker/certs.d/{pool.registry}/ca.crt")
    assert trusted.is_file
    # the pool's CA, the one that signed the registry's certificate
    assert trusted.content == host.file(CA).content


# --- etcd --------------------------------------------------------------------------------------

def test_etcd_runs_on_the_masters_only(pool, host):
    etcd = host.service("etcd")
    if is_master(pool, host):
        assert etcd.is_running
        assert etcd.is_enabled
        assert host.check_output(f"ss -Hltn 'sport = :{ETCD_CLIENT_PORT}'"), "nothing listens on the client port"
    else:
        assert not etcd.is_running


def test_etcd_cluster_is_healthy_over_tls(pool):
    assert pool.masters, "the inventory has no dcm_masters"
    for name in pool.masters:
        own_endpoint = f"https://{pool.addresses[name]}:{ETCD_CLIENT_PORT}"
        # --cluster: ask this member for every member's client URL and check each of them
        health = pool.etcdctl("endpoint health --cluster", on=name, endpoints=own_endpoint)
        assert health.rc == 0, f"{name}: {health.stdout}\n{health.stderr}"
        lines = (health.stdout + health.stderr).strip().splitlines()
        healthy = [line for line in lines if " is healthy" in line]
        assert len(healthy) == len(pool.masters), lines
        assert all(line.startswith("https://") for line in healthy), lines

        members = pool.etcdctl("member list -w json", on=name, endpoints=own_endpoint)
        assert members.rc == 0, members.stderr
        listed = json.loads(members.stdout)["members"]
        assert sorted(member["name"] for member in listed) == sorted(pool.masters)
        for member in listed:
            assert member["clientURLs"] and all(url.startswith("https://") for url in member["clientURLs"]), member
            assert member["peerURLs"] and all(url.startswith("https://") for url in member["peerURLs"]), member


def test_etcd_refuses_a_client_without_certificate(pool):
    with_certificate = pool.etcdctl(f"get {HOSTS_PREFIX} --prefix --keys-only")
    assert with_certificate.rc == 0, with_certificate.stderr
    without_certificate = pool.etcdctl(f"get {HOSTS_PREFIX} --prefix --keys-only", certificate=False)
    assert without_certificate.rc != 0, f"etcd answered a client without a certificate:\n{without_certificate.stdout}"


def test_etcd_refuses_plain_http(pool):
    host = pool.hosts[pool.first_master]
    address = pool.addresses[pool.first_master]
    over_tls = host.run(f"curl -sS --max-time 10 --cacert {CA} --cert {CLIENT_CERT} --key {CLIENT_KEY} "
                        f"https://{address}:{ETCD_CLIENT_PORT}/health")
    assert over_tls.rc == 0 and '"health":"true"' in over_tls.stdout, f"{over_tls.stdout}{over_tls.stderr}"
    plain = host.run(f"curl -sS --max-time 10 http://{address}:{ETCD_CLIENT_PORT}/health")
    assert '"health"' not in plain.stdout, f"etcd answered plain HTTP: {plain.stdout}"


def test_only_a_members_peer_certificate_is_taken_as_an_etcd_peer(pool):
    """Every pool host holds a server certificate of the pool's CA (registry, clients): with it alone a
    compromised host could join etcd or read its replication stream. Members take only the peer name."""
    for name in pool.masters:
        host = pool.hosts[name]
        peer_url = f"https://{pool.addresses[name]}:2380/members"
        as_member = host.run(f"curl -sS --http1.1 --max-time 10 --cacert {CA} --cert {PKI}/peer.crt --key {PKI}/peer.key {peer_url}")
        assert as_member.rc == 0 and '"peerURLs"' in as_member.stdout, f"{name}: {as_member.stdout}{as_member.stderr}"
        subject = host.check_output(f"openssl x509 -noout -subject -in {PKI}/server.crt")
        assert name in subject, subject  # the server certificate names its host, not the peers' name
        as_host = host.run(f"curl -sS --http1.1 --max-time 10 --cacert {CA} --cert {PKI}/server.crt --key {PKI}/server.key "
                           f"{peer_url}")
        assert as_host.rc != 0 and '"peerURLs"' not in as_host.stdout, f"{name} took a host certificate as a peer"
        assert "bad certificate" in as_host.stderr, as_host.stderr  # refused in the handshake, not for another reason
    config = pool.hosts[pool.first_master].check_output("cat /etc/default/etcd")
    assert 'ETCD_PEER_CERT_ALLOWED_CN="dcm-etcd-peer-' in config, config


# --- Registry ----------------------------------------------------------------------------------

def registry_call(pool, method: str, path: str, identity: str | None = None, on: str | None = None) -> str:
    """HTTP status of ``method https://<registry>/v2/<path>`` as ``identity`` (builder, puller, None: anonymous)."""
    auth = f'-u "$({CREDENTIALS_OF} {REGISTRY_AUTH}/{identity}.json)" ' if identity else ""
    return pool.hosts[on or pool.first_master].check_output(
        f"curl -sS --max-time 10 --cacert {CA} -o /dev/null -w '%{{http_code}}' -X {method} {auth}"
        f"https://{pool.registry}/v2/{path}")


def test_registry_serves_tls_only_and_only_to_its_identities(pool):
    host = pool.hosts[pool.first_master]
    assert host.service("docker-registry").is_running and host.service("nginx").is_running
    assert registry_call(pool, "GET", "", "puller") == "200"
    assert registry_call(pool, "GET", "", "builder") == "200"
    assert registry_call(pool, "GET", "") == "401"
    assert registry_call(pool, "GET", "_catalog") == "401"
    plain = host.run(f"curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}' http://{pool.registry}/v2/")
    assert plain.stdout != "200", "the registry answers plain HTTP"
    # the registry itself listens on its socket only: nothing but nginx on the registry port
    listeners = host.check_output(f"ss -Hltnp 'sport = :{REGISTRY_PORT}'")
    assert listeners and all('"nginx"' in line for line in listeners.splitlines()), listeners


def test_only_the_builder_may_write_to_the_registry(pool):
    upload = "dcm-molecule-check/refused/blobs/uploads/"
    assert registry_call(pool, "POST", upload) == "401"
    assert registry_call(pool, "POST", upload, "puller") == "401"
    delete = "dcm-molecule-check/refused/manifests/sha256:" + "0" * 64
    assert registry_call(pool, "DELETE", delete) == "401"
    assert registry_call(pool, "DELETE", delete, "puller") == "401"
    # the builder gets through to the registry (which has no such upload or manifest to speak of)
    assert registry_call(pool, "DELETE", delete, "builder") in ("404", "202")


def test_image_pushed_by_the_builder_is_pulled_by_the_puller_and_the_puller_cannot_push(pool):
    pusher = pool.first_master  # the builder identity lives on the masters (root's Docker login)
    pullers = [name for name in pool.names if name != pusher]
    assert pullers, "needs at least two hosts"
    # a fresh tag: nothing cached on any host or in the registry can make this pass
    image = f"{pool.registry}/dcm-molecule-check/pool:{uuid.uuid4().hex[:12]}"
    digest_of = f"docker image inspect --format '{{{{index .RepoDigests 0}}}}' {shlex.quote(image)}"
    # the puller's own Docker client configuration, in a temporary folder (no host keeps it)
    as_puller = ("c=$(mktemp -d); trap 'rm -rf \"$c\"' EXIT; "
                 f"{CREDENTIALS_OF} {REGISTRY_AUTH}/puller.json | cut -d: -f2- | "
                 f"docker --config \"$c\" login -u dcm-puller --password-stdin {pool.registry} >/dev/null; "
                 "docker --config \"$c\" ")
    try:
        made = pool.hosts[pusher].run(
            "set -e; d=$(mktemp -d); echo 'dcspark pool check' > \"$d/check.txt\"; "
            f"tar -C \"$d\" -c . | docker import --change 'LABEL org.dcspark.test=pool-check' - {image}; "
            "rm -rf \"$d\"")
        assert made.rc == 0, made.stderr
        pushed = pool.hosts[pusher].run(f"docker push {image}")
        assert pushed.rc == 0, f"push from {pusher} failed:\n{pushed.stdout}{pushed.stderr}"
        digest = pool.hosts[pusher].check_output(digest_of)
        assert digest.startswith(f"{pool.registry}/dcm-molecule-check/pool@sha256:"), digest
        for name in pullers:
            anonymous = pool.hosts[name].run(
                f"bash -c {shlex.quote('c=$(mktemp -d); docker --config $c pull ' + image + '; rc=$?; rm -rf $c; exit $rc')}")
            assert anonymous.rc != 0, f"{name} pulled without credentials"
            pulled = pool.hosts[name].run(f"bash -c {shlex.quote(as_puller + 'pull ' + image)}")
            assert pulled.rc == 0, f"pull on {name} failed:\n{pulled.stdout}{pulled.stderr}"
            assert pool.hosts[name].check_output(digest_of) == digest
        # the read-only identity cannot overwrite the tag
        retagged = pool.hosts[pullers[0]].run(
            f"bash -c {shlex.quote(as_puller + 'push ' + image)}")
        assert retagged.rc != 0 and ("unauthorized" in retagged.stderr.lower() or "401" in retagged.stderr), \
            retagged.stdout + retagged.stderr
    finally:
        for name in pool.names:
            pool.hosts[name].run(f"docker image rm -f {image}")


# --- DCM agent registration --------------------------------------------------------------------

def test_agent_runs(host):
    agent = host.service("dcm-agent")
    assert agent.is_running
    assert agent.is_enabled


def test_host_is_registered_in_etcd_on_a_lease(pool, host):
    name = host.backend.get_hostname()
    entry = pool.registration(name)
    assert entry is not None, f"{HOSTS_PREFIX}{name} is not in etcd"
    record = entry["value"]
    for field in ("cpus", "memory", "allocatable", "address"):
        assert field in record, f"{field} missing from {record}"
    assert {"cpus", "memory"} <= set(record["allocatable"]), record
    assert record["address"] == pool.addresses[name]
    assert entry["lease"] != 0, "registered without a lease: the entry would outlive its agent"
    assert 0 < pool.lease_ttl(entry["lease"]) <= 60


def test_registration_leaves_with_the_agent_and_comes_back(pool, host):
    name = host.backend.get_hostname()
    entry = pool.registration(name)
    assert entry is not None, f"{HOSTS_PREFIX}{name} is not in etcd"
    ttl = pool.lease_ttl(entry["lease"])
    try:
        host.check_output("systemctl stop dcm-agent")
        wait_until(lambda: pool.registration(name) is None, ttl + 5,
                   f"{HOSTS_PREFIX}{name} is gone after its agent stopped")
    finally:
        host.check_output("systemctl start dcm-agent")
    wait_until(lambda: pool.registration(name) is not None, ttl,
               f"{HOSTS_PREFIX}{name} is back after its agent started")


def test_registration_of_a_frozen_agent_expires_with_its_lease(pool):
    """An agent that stops heartbeating without saying so (a hung or partitioned host) leaves the
    pool when its lease expires, and registers again once it runs again."""
    name = pool.names[-1]
    host = pool.hosts[name]
    entry = pool.registration(name)
    assert entry is not None, f"{HOSTS_PREFIX}{name} is not in etcd"
    ttl = pool.lease_ttl(entry["lease"])
    try:
        host.check_output("systemctl kill --signal=SIGSTOP dcm-agent")
        # the entry stays while the lease lives ...
        assert pool.registration(name) is not None
        # ... and goes with it: nobody revoked it, only the TTL runs out
        wait_until(lambda: pool.registration(name) is None, ttl + 10,
                   f"{HOSTS_PREFIX}{name} expired with the lease of its frozen agent")
    finally:
        host.check_output("systemctl kill --signal=SIGCONT dcm-agent")
    wait_until(lambda: (pool.registration(name) or {}).get("lease") not in (None, entry["lease"]), ttl,
               f"{HOSTS_PREFIX}{name} is registered again, on a new lease, after its agent resumed")
