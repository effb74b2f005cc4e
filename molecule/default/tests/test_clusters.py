"""Two DCSpark clusters with conflicting runtimes on the scenario's pool (molecule verifier).

Deploys specs/face.json (Spark 4.0.1, OpenCV 4, numpy 2) and specs/video_synopsis.json (Spark 3.5.3,
OpenCV 3.4, numpy 1) with playbooks/deploy_cluster.yml, exactly as an operator does, then checks
what the issue promises: both applications succeed with their own library versions, container
limits equal the spec, the placement is the scheduler's plan, one cluster cannot reach the other's
master, a client without the cluster's secret is refused, an unchanged redeploy changes nothing,
bad specs change nothing, jobs submitted to the running clusters (several at once, a failing one, one
past its timeout) and their logs, and undeploy leaves nothing behind.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
PKI = "/etc/dcm/pki"
# etcdctl as etcd's root (gRPC takes the user from the certificate; root.crt is on the masters only)
ETCDCTL = (f"ETCDCTL_API=3 etcdctl --cacert={PKI}/ca.crt --cert={PKI}/root.crt --key={PKI}/root.key "
           "--endpoints=https://127.0.0.1:2379 --command-timeout=10s")
REGISTRY_AUTH = "/etc/dcm/registry"
# "user:password" of a registry identity's JSON file (argument: the file), for curl -u and docker login
CREDENTIALS_OF = """python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["username"] + ":" + d["password"])'"""
# curl's option to ask the pool registry as its read-only identity (on a pool host)
AS_PULLER = f'-u "$({CREDENTIALS_OF} {REGISTRY_AUTH}/puller.json)"'
FACE, VIDEO = "face", "video-synopsis"
SPECS = {FACE: "face.json", VIDEO: "video_synopsis.json"}
MIB = 1 << 20


def _playbook_command(inventory: str, name: str, args: tuple) -> tuple:
    """``(argv, env)`` of an ansible-playbook run of one of the collection's playbooks, as an operator runs it."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    return [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", name),
            *args], env


def playbook(inventory: str, name: str, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    argv, env = _playbook_command(inventory, name, args)
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def playbook_process(inventory: str, name: str, *args: str) -> subprocess.Popen:
    """``playbook`` started in the background (several at once)."""
    argv, env = _playbook_command(inventory, name, args)
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def recap(output: str) -> dict:
    """``{host: {ok, changed, failed...}}`` from a PLAY RECAP."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        found[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def newest_reports(reports: dict, cluster: str) -> dict:
    """``{node: report}`` of ``cluster`` from ``{/dcm/status/<host>/<cluster>/<node>: report}``."""
    found: dict = {}
    for key, report in sorted(reports.items()):
        parts = key[len("/dcm/status/"):].split("/")
        if len(parts) == 3 and parts[1] == cluster and \
                str(report.get("observed_at", "")) >= str(found.get(parts[2], {}).get("observed_at", "")):
            found[parts[2]] = report
    return found


class Pool:
    def __init__(self, inventory: str) -> None:
        self.inventory = inventory
        runner = AnsibleRunner(inventory)
        self.names = runner.get_hosts("dcm_pool")
        self.first = runner.get_hosts("dcm_masters")[0]
        self.hosts = {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in self.names}

    def etcd_get(self, key: str, prefix: bool = False) -> dict:
        result = self.hosts[self.first].run(f"{ETCDCTL} get {key} {'--prefix' if prefix else ''} -w json")
        assert result.rc == 0, result.stderr
        kvs = json.loads(result.stdout).get("kvs") or []
        return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"])) for kv in kvs}

    def cluster(self, name: str) -> dict | None:
        return self.etcd_get(f"/dcm/clusters/{name}").get(f"/dcm/clusters/{name}")

    def node_status(self, cluster: str) -> dict:
        """``{node: report}`` of a cluster from its agents' reports (``/dcm/status/<host>/<cluster>/<node>``;
        while a node moves, the newer of two hosts' reports)."""
        return newest_reports(self.etcd_get("/dcm/status/", prefix=True), cluster)

    def secrets(self, name: str) -> dict:
        """``/dcm/secrets/<name>``: the cluster's secrets, kept apart from its record, and the hosts with a copy."""
        return self.etcd_get(f"/dcm/secrets/{name}")[f"/dcm/secrets/{name}"]

    def containers(self, name: str, cluster: str | None = None) -> list:
        label = f"org.dcspark.cluster={cluster}" if cluster else "org.dcspark.managed=true"
        out = self.hosts[name].check_output(f"docker ps -aq --filter label={label}")
        return out.split()

    def inspect(self, name: str, container: str) -> dict:
        return json.loads(self.hosts[name].check_output(f"docker inspect {container}"))[0]

    def ui_password(self, name: str) -> str:
        """The cluster's password at the pool's UI gateway (kept with its secrets)."""
        return self.secrets(name)["secrets"]["ui_password"]

    def gateway_url(self) -> str:
        """``https://<first master>:<port>``: the pool's UI gateway, as its host registered it."""
        record = self.etcd_get(f"/dcm/hosts/{self.first}")[f"/dcm/hosts/{self.first}"]
        return f"https://{record['address']}:{record['gateway_port']}"

    def gateway(self, path: str, user: str | None = None, password: str | None = None, base: str = "") -> tuple:
        """``(HTTP status, body)`` of ``path`` at the gateway (``base``, else :meth:`gateway_url`), from this
        machine, TLS checked with the pool's CA."""
        if not getattr(self, "_ca", None):
            with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as stream:
                stream.write(self.hosts[self.first].file(f"{PKI}/ca.crt").content_string)
            self._ca = stream.name  # pylint: disable=attribute-defined-outside-init
        request = urllib.request.Request((base or self.gateway_url()) + path)
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=self._ca)
        try:
            with urllib.request.urlopen(request, context=context, timeout=15) as answer:  # noqa: S310
                return answer.status, answer.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def master_json(self, name: str) -> dict:
        """The cluster's Spark master ``/json/`` through the gateway, with its own credentials."""
        status, body = self.gateway(f"/clusters/{name}/json/", name, self.ui_password(name))
        assert status == 200, f"{name}: the gateway answered {status}: {body[:500]}"
        return json.loads(body)

    def state(self) -> dict:
        """What a failed deploy must leave untouched: etcd's /dcm/clusters/ and every host's containers."""
        return {"clusters": sorted(self.etcd_get("/dcm/clusters/", prefix=True)),
                "containers": {name: sorted(self.containers(name)) for name in self.names},
                "networks": sorted(self.hosts[self.first].check_output(
                    "docker network ls -q --filter label=org.dcspark.managed=true").split())}


@pytest.fixture(scope="module")
def deployed(pool):
    """Both clusters deployed, one after the other, each deploy running its application."""
    runs = {}
    for name, spec in SPECS.items():
        run = playbook(pool.inventory, "deploy_cluster.yml", "-e", f"spec={spec}")
        assert run.returncode == 0, f"deploy of {spec} failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
        runs[name] = run
    yield runs
    for name in SPECS:
        playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={name}", timeout=600)


def test_both_applications_succeed_with_their_own_versions(deployed):
    face, video = deployed[FACE].stdout, deployed[VIDEO].stdout
    assert re.search(r"face: OK", face), face[-4000:]
    assert re.search(r"video-synopsis: OK|synopsis: OK", video), video[-4000:]
    # what the executors loaded, as each application printed it
    assert "4.10.0" in face and "2.1.3" in face and "4.0.1" in face
    assert "3.4.18" in video and "1.26.4" in video and "3.5.3" in video


def test_a_deploy_shows_progress_lines_and_no_retry_noise(deployed):
    for name, run in deployed.items():
        assert "FAILED - RETRYING" not in run.stdout, run.stdout[-4000:]
        assert re.search(rf"{name}: \d+/\d+ nodes running, (\d+)/\1 workers ALIVE", run.stdout), run.stdout[-4000:]


def test_both_clusters_run_side_by_side(pool, deployed):
    for name in SPECS:
        record = pool.cluster(name)
        assert record is not None, f"{name} has no record"
        expected = len(nodes_of(record))  # master, driver, workers, and face's history server
        found = sum(len(pool.containers(host, name)) for host in pool.names)
        assert found == expected, f"{name}: {found} containers, {expected} nodes"


def test_placement_is_the_plan_and_containers_sit_there(pool, deployed):
    for name in SPECS:
        record = pool.cluster(name)
        flat = " ".join(deployed[name].stdout.split())  # the callback wraps long lines
        planned = re.search(r"plan: master on (\S+), driver on (\S+), workers on ((?:\S+, )*[^\s,'\"]+)", flat)
        assert planned, deployed[name].stdout[-3000:] + deployed[name].stderr[-2000:]
        placement = record["placement"]
        assert [placement["master"], placement["driver"]] == [planned.group(1).rstrip(","), planned.group(2).rstrip(",")]
        assert ", ".join(placement["workers"]) == planned.group(3).strip()
        nodes = [("master", placement["master"]), ("driver", placement["driver"])] + [
            (f"worker-{i}", host) for i, host in enumerate(placement["workers"], start=1)]
        for node, host in nodes:
            role, _sep, index = node.partition("-")
            container = f"spark-{role}-{name}" + (f"-{index}" if index else "")
            assert pool.hosts[host].run(f"docker inspect {container}").rc == 0, f"{container} is not on {host}"


def test_container_limits_equal_the_spec(pool, deployed):
    for name in SPECS:
        record = pool.cluster(name)
        spec, placement = record["spec"], record["placement"]
        checked = [("master", placement["master"], f"spark-master-{name}"),
                   ("driver", placement["driver"], f"spark-driver-{name}"),
                   ("worker", placement["workers"][0], f"spark-worker-{name}-1")]
        if "history" in spec:  # beside the driver
            checked.append(("history", placement["driver"], f"spark-history-{name}"))
        for role, host, container in checked:
            config = pool.inspect(host, container)
            host_config = config["HostConfig"]
            assert host_config["NanoCpus"] == int(float(spec[role]["cpus"]) * 1e9), (container, host_config["NanoCpus"])
            assert host_config["Memory"] == spec[role]["memory"], (container, host_config["Memory"])
            assert host_config["MemorySwap"] == spec[role]["memory"], "swap must not extend the limit"
            assert host_config["PidsLimit"] and host_config["PidsLimit"] > 0
            assert host_config["CapDrop"] == ["ALL"]
            user = config["Config"]["User"]
            assert user and user.split(":")[0] not in ("0", "root"), f"{container} runs as {user!r}"
            uid = pool.hosts[host].check_output(f"docker exec {container} id -u")
            assert uid != "0"


def nodes_of(record: dict) -> list:
    """``[(host, container)]`` of every node of a cluster record."""
    name, placement = record["name"], record["placement"]
    found = [(placement["master"], f"spark-master-{name}"), (placement["driver"], f"spark-driver-{name}")]
    found += [(host, f"spark-worker-{name}-{i}") for i, host in enumerate(placement["workers"], 1)]
    if "history" in record["spec"]:
        found.append((placement["driver"], f"spark-history-{name}"))
    return found


def test_no_node_shows_its_secret_and_every_node_runs_as_185(pool, deployed):
    """docker inspect (anyone in the docker group) must not reveal a cluster's secret or token."""
    for name in SPECS:
        record, held = pool.cluster(name), pool.secrets(name)
        secrets = held["secrets"]
        assert "secret" not in record and "jupyter_token" not in record  # every agent reads records
        assert held["hosts"] == sorted({host for host, _container in nodes_of(record)})
        copies = pool.etcd_get("/dcm/host-secrets/", prefix=True)
        assert sorted(key.split("/")[3] for key in copies if key.endswith(f"/{name}")) == held["hosts"]
        for host, container in nodes_of(record):
            config = pool.inspect(host, container)
            shown = json.dumps(config)
            assert secrets["secret"] not in shown, f"{container}: the secret is visible in docker inspect"
            if secrets.get("jupyter_token"):
                assert secrets["jupyter_token"] not in shown, container
            assert config["Config"]["User"] == "185:185", (container, config["Config"]["User"])
            listing = pool.hosts[host].check_output(f"docker exec {container} stat -c '%a %u' /run/dcspark/auth")
            assert listing == "400 185", (container, listing)


def test_the_running_images_carry_exactly_the_roles_entrypoint(pool, deployed):
    """The spec's Dockerfile lines run before DCM's files are copied: these are byte for byte the role's."""
    import hashlib
    files = {"/usr/local/bin/dcspark-node": "dcspark-node", "/usr/local/bin/dcspark-submit": "dcspark-submit",
             "/usr/local/lib/dcspark/dcspark_conf.py": "dcspark_conf.py"}
    expected = {}
    for path, name in files.items():
        with open(os.path.join(REPO, "roles", "spark_images", "files", name), "rb") as handle:
            expected[path] = hashlib.sha256(handle.read()).hexdigest()
    for name in SPECS:
        host = pool.cluster(name)["placement"]["master"]
        out = pool.hosts[host].check_output(f"docker exec spark-master-{name} sha256sum {' '.join(files)}")
        found = {path: digest for digest, path in (line.split() for line in out.splitlines())}
        assert found == expected, name


PROBE = ("import socket,sys\n"
         "try:\n"
         "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close(); print('connected')\n"
         "except OSError as e:\n"
         "    print('refused', e)\n")


def connect(pool, host: str, container: str, target: str, port: int | str = 7077) -> str:
    """From inside ``container`` on ``host``, open a TCP connection to ``target``:``port``."""
    return pool.hosts[host].check_output(
        f"docker exec {container} /opt/dcspark/venv/bin/python -c \"{PROBE}\" {target} {port}")


def test_no_container_reaches_the_registry_or_etcd(pool, deployed):
    """A cluster's code (or a spec's Dockerfile lines at build time) must not touch other clusters' images or
    the pool's state (docker_protected_ports: every host resets connections from its container bridges)."""
    record = pool.cluster(FACE)
    registry = record["images"]["master"].split("/", 1)[0]
    address, port = registry.rsplit(":", 1)
    targets = [(address, port), (address, "2379"), (address, "2380")]  # the registry's host is an etcd member
    for host, container in nodes_of(record):
        for target, target_port in targets:
            out = connect(pool, host, container, target, target_port)
            assert out.startswith("refused"), (container, host, target, target_port, out)
    # a container on the default bridge, where image builds run (their RUN lines), is refused as well
    master_host = record["placement"]["master"]
    build_like = pool.hosts[master_host].check_output(
        f"docker run --rm --network bridge --memory 256m --cpus 0.5 --entrypoint /opt/dcspark/venv/bin/python "
        f"{record['images']['master']} -c \"{PROBE}\" {address} 2379")
    assert build_like.startswith("refused"), build_like
    # the registry and etcd themselves answer the hosts: the refusals are the rule's doing
    answer = pool.hosts[pool.first].run(f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {PKI}/ca.crt https://{registry}/v2/")
    assert answer.stdout in ("200", "401"), answer.stdout + answer.stderr
    health = pool.hosts[pool.first].run(ETCDCTL.replace("127.0.0.1", address) + " endpoint health")
    assert health.rc == 0, health.stdout + health.stderr


# As an agent on its host: the agent's configuration (endpoints, gateway certificate, user, password
# file), then each request of argv[1:] ("get KEY", "prefix KEY", "put KEY"): one line each, "ok" or the refusal.
AS_AGENT = r"""
import base64, json, ssl, sys, urllib.error, urllib.request
conf = json.load(open("/etc/dcm/agent.json"))["etcd"]
context = ssl.create_default_context(cafile=conf["ca_cert"])
context.load_cert_chain(conf["client_cert"], conf["client_key"])
url = conf["endpoints"][0]
def call(path, body, token=None):
    request = urllib.request.Request(url + "/v3/" + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", token)
    try:
        return json.load(urllib.request.urlopen(request, context=context, timeout=10))
    except urllib.error.HTTPError as error:
        return {"refused": error.read().decode()[:200]}
b64 = lambda text: base64.b64encode(text.encode()).decode()
token = call("auth/authenticate", {"name": conf["user"], "password": open(conf["password_file"]).read().strip()})["token"]
for request in sys.argv[1:]:
    verb, key = request.split(" ", 1)
    body = {"key": b64(key)}
    if verb == "prefix":
        body["range_end"] = b64(key[:-1] + chr(ord(key[-1]) + 1))
    if verb == "put":
        answer = call("kv/put", dict(body, value=b64('{"forged": true}')), token)
    else:
        answer = call("kv/range", body, token)
    print(request, "->", answer["refused"] if "refused" in answer else "ok")
"""


def test_an_agents_etcd_identity_reaches_only_its_own_keys(pool, deployed):
    """A compromised host holds its agent's etcd identity: it must not rewrite what the agents run (records),
    read another host's secrets, or the secrets' master copy."""
    record = pool.cluster(FACE)
    holder = record["placement"]["driver"]
    other = next(name for name in pool.names if name != holder)
    probe = f"/dcm/status/{holder}/{FACE}/probe"
    requests = [f"get /dcm/clusters/{FACE}", f"prefix /dcm/host-secrets/{holder}/", f"put {probe}",
                "prefix /dcm/status/", f"put /dcm/events/agent-{holder}/probe", f"get /dcm/gateway/{FACE}",
                f"put /dcm/gateway/{FACE}",  # its own password hash would open face's UIs
                f"put /dcm/clusters/{FACE}", f"get /dcm/secrets/{FACE}", f"prefix /dcm/host-secrets/{other}/",
                f"put /dcm/hosts/{other}", "prefix /dcm/jobs/", "put /dcm/images/probe",
                f"put /dcm/status/{other}/{FACE}/master", f"put /dcm/events/agent-{other}/probe",
                "put /dcm/events/master-probe/probe"]
    script = base64.b64encode(AS_AGENT.encode()).decode()
    said = pool.hosts[holder].check_output(
        f"echo {script} | base64 -d | python3 - " + " ".join(f"'{request}'" for request in requests)).splitlines()
    answers = dict(line.split(" -> ", 1) for line in said)
    allowed, refused = requests[:6], requests[6:]
    assert all(answers[request] == "ok" for request in allowed), said
    assert all("permission denied" in answers[request] for request in refused), said
    for key in (probe, f"/dcm/events/agent-{holder}/probe"):
        pool.hosts[pool.first].run(f"{ETCDCTL} del {key}")
    assert pool.cluster(FACE) == record
    # the modules on a host act as the identity its file names, root's alone to read
    identity = pool.hosts[holder].file("/etc/dcm/etcd/modules.json")
    assert (identity.user, identity.mode) == ("root", 0o600)


def test_a_module_acts_as_the_identity_its_hosts_file_names(pool, deployed):
    """On a host that is not a master the modules act as its agent (the sandbox's hosts are all masters,
    so a file naming the agent stands in): a GC pass reads what it needs, recording a job is refused."""
    name = pool.names[-1]
    host = pool.hosts[name]
    agent = json.loads(host.check_output("cat /etc/dcm/agent.json"))["etcd"]
    identity = host.check_output("mktemp --suffix=.json")
    try:
        host.check_output(f"echo '{json.dumps({'user': agent['user'], 'password_file': agent['password_file']})}' > {identity}")
        args = {"etcd_endpoints": agent["endpoints"], "etcd_ca_cert": f"{PKI}/ca.crt",
                "etcd_client_cert": f"{PKI}/gateway.crt", "etcd_client_key": f"{PKI}/gateway.key",
                "etcd_identity_file": identity}
        gc = host.ansible("dcspark.dcm.dcm_container_gc", json.dumps(args), check=True)
        assert gc.get("failed") is not True and "plan" in gc, gc
        job = next(iter(pool.etcd_get(f"/dcm/jobs/{FACE}/", prefix=True).values()))
        # (testinfra's tree output of a failed module carries its msg, not always "failed")
        refused = host.ansible("dcspark.dcm.dcm_job_record", json.dumps({**args, "job": job}), check=False)
        assert f"to user '{agent['user']}': permission denied" in refused.get("msg", ""), refused
        assert refused.get("changed") is not True, refused
    finally:
        host.run(f"rm -f {identity}")


def test_a_hosts_client_certificate_gets_nothing_of_dcms_state(pool, deployed):
    """Every host's client certificate names the host: over gRPC that is the etcd user, which has no DCM key."""
    host = pool.hosts[pool.first]
    folder = host.check_output("mktemp -d")
    try:
        for name in ("client.crt", "client.key"):
            host.check_output(f"cp {PKI}/{name} {folder}/{name}")
        as_host = ETCDCTL.replace(f"{PKI}/root.crt", f"{folder}/client.crt").replace(f"{PKI}/root.key", f"{folder}/client.key")
        for command in (f"get /dcm/clusters/{FACE}", f"put /dcm/clusters/{FACE} forged"):
            result = host.run(f"{as_host} {command}")
            assert result.rc != 0 and ("user name not found" in result.stderr or "permission denied" in result.stderr), \
                (command, result.stdout, result.stderr)
    finally:
        host.run(f"rm -rf {folder}")


def test_one_cluster_cannot_reach_the_other_master(pool, deployed):
    face, video = pool.cluster(FACE), pool.cluster(VIDEO)
    face_worker = (face["placement"]["workers"][0], "spark-worker-face-1")
    video_worker = (video["placement"]["workers"][0], f"spark-worker-{VIDEO}-1")
    own = connect(pool, *face_worker, "spark-master-face")
    assert own.startswith("connected"), own
    # by name: the other cluster's master does not even resolve on this network
    by_name = connect(pool, *face_worker, f"spark-master-{VIDEO}")
    assert by_name.startswith("refused"), by_name
    # by address: the other master's address on its own network is reachable from its own cluster ...
    master = pool.inspect(video["placement"]["master"], f"spark-master-{VIDEO}")
    address = master["NetworkSettings"]["Networks"][video["network"]["name"]]["IPAddress"]
    peer = connect(pool, *video_worker, address)
    assert peer.startswith("connected"), peer
    # ... and not from this one: the host drops what leaves docker_gwbridge for the overlay pool
    # (dcm-overlay-isolation), so the packets never leave the host
    by_address = connect(pool, *face_worker, address)
    assert by_address.startswith("refused"), by_address


def test_a_client_without_the_cluster_secret_is_refused(pool, deployed):
    record = pool.cluster(FACE)
    host = pool.hosts[record["placement"]["driver"]]
    job = ("from pyspark.sql import SparkSession\n"
           "s = SparkSession.builder.appName('intruder').getOrCreate()\n"
           "print('COUNT', s.sparkContext.parallelize(range(10)).count())\n")
    host.check_output(f"docker exec -i spark-driver-face sh -c 'cat > /tmp/intruder.py' <<'EOF'\n{job}EOF")
    wrong = host.run("timeout 240 docker exec -e _SPARK_AUTH_SECRET=not-the-secret spark-driver-face "
                     "spark-submit --conf spark.network.timeout=30s /tmp/intruder.py")
    assert wrong.rc != 0 and "COUNT 10" not in wrong.stdout, wrong.stdout[-2000:]
    plain = host.run("timeout 240 docker exec spark-driver-face spark-submit --conf spark.authenticate=false "
                     "/tmp/intruder.py")
    assert plain.rc != 0 and "COUNT 10" not in plain.stdout, plain.stdout[-2000:]
    # the same job with the cluster's own configuration runs: the refusals above are the secret's doing
    right = host.run("timeout 240 docker exec spark-driver-face spark-submit /tmp/intruder.py")
    assert right.rc == 0 and "COUNT 10" in right.stdout, right.stdout[-2000:] + right.stderr[-2000:]


def test_a_foreign_image_under_the_expected_tag_is_not_used(pool, deployed):
    """Whoever can compute a spec's tag and push (here: another master, with valid builder credentials)
    must not decide what the next deploy runs: etcd records what the pool's own build pushed."""
    tag = re.search(r"cluster face, tag ([0-9a-f]{20})", deployed[FACE].stdout).group(1)
    record = pool.cluster(FACE)
    registry = record["images"]["master"].split("/", 1)[0]
    ours = record["images"]["master"].split("@", 1)[1]
    intruder = next(name for name in pool.names if name != pool.first)  # not the build host
    foreign_ref = f"{registry}/dcspark-master:{tag}"
    made = pool.hosts[intruder].run(
        "set -e; d=$(mktemp -d); echo 'not built by the pool' > \"$d/x\"; "
        f"tar -C \"$d\" -c . | docker import --change 'USER 185:185' - {foreign_ref}; rm -rf \"$d\"; "
        f"docker push {foreign_ref}; docker image rm {foreign_ref}")
    assert made.rc == 0, made.stdout + made.stderr

    def served() -> str:
        return pool.hosts[pool.first].check_output(
            f"curl -sS -I --cacert /etc/dcm/pki/ca.crt {AS_PULLER} "
            "-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "
            "-H 'Accept: application/vnd.oci.image.manifest.v1+json' "
            f"https://{registry}/v2/dcspark-master/manifests/{tag} | tr -d '\\r' | "
            "sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'")

    assert served() != ours  # the registry now serves the intruder's image under the tag
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", "spec=face.json", "-e", "run_app=false")
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 0, run.stdout[-4000:]
    assert "which no build of this pool pushed" in said and "building it again" in said, said[-4000:]
    after = pool.cluster(FACE)
    assert after["images"]["master"].split("@", 1)[1] == ours  # the nodes still run the pool's image
    assert served() == ours  # and the tag is the pool's again


def test_an_unchanged_redeploy_rebuilds_and_changes_nothing(pool, deployed):
    before = {host: sorted(pool.containers(host, FACE)) for host in pool.names}
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", "spec=face.json", "-e", "run_app=false")
    assert run.returncode == 0, run.stdout[-4000:]
    assert all(counts["changed"] == 0 for counts in recap(run.stdout).values()), recap(run.stdout)
    assert "(unchanged)" in run.stdout
    assert {host: sorted(pool.containers(host, FACE)) for host in pool.names} == before


def test_plan_reads_the_live_pool_on_its_first_master(pool, deployed):
    """With etcd's access control on, plan.yml plans where the deploy does: on the first master, as root there."""
    before = pool.state()
    run = playbook(pool.inventory, "plan.yml", "-e", f"spec={SPECS[FACE]}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    placed = re.findall(r"(master|driver|workers): ([\w, ]+)", run.stdout)
    assert {role for role, _hosts in placed} == {"master", "driver", "workers"}, run.stdout[-2000:]
    assert all(host.strip() in pool.names for _role, hosts in placed for host in hosts.split(",")), placed
    assert pool.state() == before


def test_a_spec_that_does_not_fit_changes_nothing(pool, deployed, tmp_path):
    spec = json.loads(open(os.path.join(REPO, "specs", "face.json"), encoding="utf-8").read())
    spec["name"] = "too-big"
    spec["worker"]["count"] = 40
    path = tmp_path / "too-big.json"
    path.write_text(json.dumps(spec))
    (tmp_path / spec["runtime"]["app_dir"]).mkdir(parents=True)
    (tmp_path / spec["runtime"]["app_dir"] / spec["app"]["main"]).write_text("print('never runs')\n")
    before = pool.state()
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", f"spec={path}")
    assert run.returncode != 0
    said = " ".join((run.stdout + run.stderr).split())
    assert re.search(r"cluster too-big: worker \d+ of 40 .*? fits on no host", said), said[-3000:]
    assert "TASK [Build and push" not in run.stdout, "images were built for a spec that does not fit"
    assert pool.state() == before


def test_a_malformed_spec_changes_nothing(pool, deployed, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "Bad_Name", "runtime": {"spark_version": "4.0.1"},
                                "worker": {"count": 0, "cpus": 1, "memory": "1g"}, "colour": "blue"}))
    before = pool.state()
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", f"spec={path}")
    assert run.returncode != 0
    said = " ".join((run.stdout + run.stderr).split())
    assert "worker.count: must be >= 1, got 0" in said, said[-3000:]
    assert "name: must be a DNS label" in said and "colour: unknown key" in said, said[-3000:]
    assert pool.state() == before


JOB = """import sys
import numpy
from pyspark.sql import SparkSession

from jobhelpers import probe

session = SparkSession.builder.appName(sys.argv[1]).getOrCreate()
seen = sorted(set(session.sparkContext.parallelize(range(4), 2).map(probe).collect()))
print("JOB", sys.argv[1], "spark", session.version, "numpy", numpy.__version__, "executors", seen)
if sys.argv[2:] == ["fail"]:
    raise ValueError("deliberate failure of " + sys.argv[1])
if sys.argv[2:] == ["hang"]:
    import time
    time.sleep(900)
"""
HELPERS = """def probe(_):
    import numpy
    print("EXECUTOR-PROBE", numpy.__version__, flush=True)
    return numpy.__version__
"""


def submit_args(name: str, tmp_path, *extra: str) -> list:
    app, helpers = tmp_path / "job.py", tmp_path / "jobhelpers.py"
    app.write_text(JOB)
    helpers.write_text(HELPERS)
    return ["-e", f"cluster={name}", "-e", f"app={app}", "-e", json.dumps({"files": [str(helpers)]}), *extra]


def job_id(output: str) -> str:
    found = re.search(r"job (\d{8}T\d{6}Z-[0-9a-f]{6}) on cluster", output)
    assert found, output[-3000:]
    return found.group(1)


def test_the_deploys_application_run_is_a_job_record(pool, deployed):
    jobs = pool.etcd_get(f"/dcm/jobs/{FACE}/", prefix=True)
    assert any(job["app"] == "detect.py" and job["state"] == "succeeded" and job["exit_code"] == 0
               and job["app_id"] for job in jobs.values()), jobs


def test_jobs_submitted_at_once_run_with_their_clusters_versions(pool, deployed, tmp_path):
    runs = []
    for name, tag in ((FACE, "one"), (FACE, "two"), (VIDEO, "three")):
        folder = tmp_path / tag
        folder.mkdir()
        args = submit_args(name, folder, "-e", json.dumps({"args": [tag], "conf": {"spark.cores.max": "1"}}))
        runs.append((name, tag, playbook_process(pool.inventory, "submit.yml", *args)))
    expected = {FACE: ("4.0.1", "2.1.3"), VIDEO: ("3.5.3", "1.26.4")}
    for name, tag, proc in runs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{tag} on {name}:\n{out[-4000:]}\n{err[-2000:]}"
        spark, numpy = expected[name]
        assert f"JOB {tag} spark {spark} numpy {numpy} executors ['{numpy}']" in out, out[-3000:]
        record = pool.etcd_get(f"/dcm/jobs/{name}/{job_id(out)}")[f"/dcm/jobs/{name}/{job_id(out)}"]
        assert record["state"] == "succeeded" and record["app"] == "job.py" and record["args"] == [tag]
        assert record["conf"] == {"spark.cores.max": "1"} and record["app_id"].startswith("app-")


def test_a_failing_job_fails_submit_with_its_error(pool, deployed, tmp_path):
    run = playbook(pool.inventory, "submit.yml", *submit_args(FACE, tmp_path, "-e", json.dumps({"args": ["bad", "fail"]})))
    assert run.returncode != 0
    said = " ".join((run.stdout + run.stderr).split())  # failures: stderr under molecule
    assert "failed with exit code 1" in said and "ValueError: deliberate failure of bad" in said, said[-3000:]


def test_a_running_jobs_ui_opens_through_the_gateway_and_a_job_over_its_timeout_is_killed(pool, deployed, tmp_path):
    """One hanging job: its application UI through the master's proxy link while it runs, then its timeout."""
    proc = playbook_process(pool.inventory, "submit.yml",
                            *submit_args(FACE, tmp_path, "-e", json.dumps({"args": ["slow", "hang"]}), "-e", "timeout=60"))
    password = pool.ui_password(FACE)
    deadline, running = time.monotonic() + 50, []
    while not running and time.monotonic() < deadline and proc.poll() is None:
        running = [app for app in pool.master_json(FACE).get("activeapps", []) if app.get("name") == "slow"]
        time.sleep(1)
    assert running, "the job 'slow' never showed as a running application"
    status, page = pool.gateway(f"/clusters/{FACE}/", FACE, password)
    link = f"/clusters/{FACE}/proxy/{running[0]['id']}"
    assert status == 200 and f'href="{link}' in page, page[:3000]
    # the application registers with the master before its own UI is up: the proxy answers "Spark is
    # starting up" until it is
    status, jobs = pool.gateway(f"{link}/jobs/", FACE, password)
    while "Spark is starting up" in jobs and time.monotonic() < deadline + 30 and proc.poll() is None:
        time.sleep(1)
        status, jobs = pool.gateway(f"{link}/jobs/", FACE, password)
    assert status == 200 and "Spark Jobs" in jobs and "slow" in jobs, jobs[:1500]
    out, err = proc.communicate(timeout=600)
    assert proc.returncode != 0
    said = " ".join((out + err).split())
    assert "ran longer than 60 s and was killed" in said, said[-3000:]
    ident = job_id(out)
    driver = pool.hosts[pool.cluster(FACE)["placement"]["driver"]]
    left = driver.run(f"docker exec spark-driver-{FACE} sh -c 'ls /tmp/dcspark-jobs; "
                      "cat /proc/[0-9]*/cmdline | tr \"\\000\" \" \"'")
    assert ident not in left.stdout, left.stdout  # no folder and no process of the job
    assert "org.apache.spark.deploy.SparkSubmit" not in left.stdout, left.stdout  # no driver JVM left
    record = pool.etcd_get(f"/dcm/jobs/{FACE}/{ident}")[f"/dcm/jobs/{FACE}/{ident}"]
    assert record["state"] == "timed_out" and record["exit_code"] in (124, 137)


def test_logs_show_a_workers_registration_and_a_jobs_executor_output(pool, deployed, tmp_path):
    run = playbook(pool.inventory, "submit.yml", *submit_args(FACE, tmp_path, "-e", json.dumps({"args": ["logged"]})))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    ident = job_id(run.stdout)
    worker = playbook(pool.inventory, "logs.yml", "-e", f"cluster={FACE}", "-e", "node=worker-1", "-e", "lines=400")
    assert worker.returncode == 0 and "Successfully registered with master" in worker.stdout, worker.stdout[-3000:] + worker.stderr[-2000:]
    job = playbook(pool.inventory, "logs.yml", "-e", f"cluster={FACE}", "-e", f"job={ident}")
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-2000:]
    assert "JOB logged spark 4.0.1" in job.stdout and "EXECUTOR-PROBE 2.1.3" in job.stdout, job.stdout[-4000:]
    assert re.search(r"--- worker-\d+ executor \d+ stdout", job.stdout), job.stdout[-4000:]
    status = playbook(pool.inventory, "status.yml", "-e", f"cluster={FACE}")
    assert status.returncode == 0 and ident in status.stdout, status.stdout[-3000:] + status.stderr[-2000:]


def test_status_json_agrees_with_etcd_and_the_hosts_containers(pool, deployed, tmp_path):
    path = tmp_path / "status.json"
    run = playbook(pool.inventory, "status.yml", "-e", f"json={path}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    view = json.loads(path.read_text())
    assert sorted(cluster["name"] for cluster in view["clusters"]) == sorted(
        key.rsplit("/", 1)[1] for key in pool.etcd_get("/dcm/clusters/", prefix=True))
    assert sorted(host["name"] for host in view["hosts"] if host["live"]) == sorted(pool.names)
    for cluster in view["clusters"]:
        for node in cluster["nodes"]:
            running = pool.hosts[node["host"]].check_output(
                f"docker ps --filter name=^{node['container']}$ --filter status=running --format '{{{{.Names}}}}'")
            assert (running == node["container"]) == (node["state"] == "running"), (node, running)
    # the same view as tables: every cluster, its nodes and hosts on aligned lines
    status = playbook(pool.inventory, "status.yml")
    for cluster in view["clusters"]:
        assert re.search(rf"^\s*{cluster['name']} gen {cluster['generation']}: Spark", status.stdout, re.M), status.stdout
    assert re.search(r"^\s*HOST\s+ADDRESS\s+STATE\s+CPU-REQ", status.stdout, re.M), status.stdout[-3000:] + status.stderr[-2000:]


def worker_links(page: str, name: str) -> list:
    """The worker links of a master page served through the gateway (Spark's reverse proxy, prefixed)."""
    return re.findall(rf'href="(/clusters/{name}/proxy/worker-[^"]+)"', page)


def test_the_gateway_serves_each_cluster_with_its_own_credentials_only(pool, deployed):
    run = playbook(pool.inventory, "ui_credentials.yml", "-e", f"cluster={FACE}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    password = pool.ui_password(FACE)
    assert f"password: {password}" in run.stdout, run.stdout[-2000:]  # the documented command shows it
    assert f"{pool.gateway_url()}/clusters/{FACE}/" in run.stdout
    for name in SPECS:  # ... and no deploy's output does
        assert pool.ui_password(name) not in deployed[name].stdout + deployed[name].stderr
    # the master page through the gateway lists every worker of the record ALIVE
    for name in SPECS:
        count = pool.cluster(name)["spec"]["worker"]["count"]
        alive = sorted(w["host"] for w in pool.master_json(name)["workers"] if w["state"] == "ALIVE")
        assert alive == [f"spark-worker-{name}-{i}" for i in range(1, count + 1)], alive
    # its links go through Spark's reverse proxy, under the cluster's path: a worker's page opens
    status, page = pool.gateway(f"/clusters/{FACE}/", FACE, password)
    assert status == 200 and "Spark Master at" in page, page[:500]
    links = worker_links(page, FACE)
    assert len(links) >= 3, page[:3000]
    status, worker = pool.gateway(links[0], FACE, password)
    assert status == 200 and "Spark Worker at" in worker, worker[:1000]
    # no credentials, a wrong password, another cluster's credentials: 401; nothing lists the clusters
    assert pool.gateway(f"/clusters/{FACE}/")[0] == 401
    assert pool.gateway(f"/clusters/{FACE}/json/", FACE, password[:-1] + ("x" if password[-1] != "x" else "y"))[0] == 401
    assert pool.gateway(f"/clusters/{VIDEO}/json/", FACE, password)[0] == 401
    assert pool.gateway(f"/clusters/{VIDEO}/json/", VIDEO, password)[0] == 401
    assert pool.gateway(links[0].replace(f"/clusters/{FACE}/", f"/clusters/{VIDEO}/"), FACE, password)[0] == 401
    status, root = pool.gateway("/")
    assert status == 200 and FACE not in root and VIDEO not in root
    assert pool.gateway("/clusters/no-such-cluster/", FACE, password)[0] == 404


def test_the_master_ui_answers_on_no_host_address(pool, deployed):
    for name in SPECS:
        record = pool.cluster(name)
        master = pool.inspect(record["placement"]["master"], f"spark-master-{name}")
        assert not master["HostConfig"].get("PortBindings"), master["HostConfig"].get("PortBindings")
        assert not any(master["NetworkSettings"].get("Ports", {}).values()), master["NetworkSettings"]["Ports"]
        # nothing of the cluster listens on a host port of any host (the gateway is the one way in)
        for host in pool.names:
            published = pool.hosts[host].check_output(
                f"docker ps --filter label=org.dcspark.cluster={name} --format '{{{{.Ports}}}}'")
            assert "->" not in published, f"{name} on {host}: {published}"


CHROMIUM = os.environ.get("DCSPARK_CHROMIUM", "chromium")


def browse(url: str, *flags: str) -> str:
    """What headless Chromium renders of ``url`` (the DOM after scripts ran)."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
            "--virtual-time-budget=5000", *flags, url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed on {url}: {done.stderr[-2000:]}"
    return done.stdout


def screenshot(url: str, shot) -> None:
    """A screenshot of ``url`` by headless Chromium at ``shot``: a PNG of some substance."""
    browse(url, f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_a_browser_opens_the_master_page_and_follows_a_worker_link(pool, deployed, tmp_path):
    """A real browser through the gateway: the master page, then the page of a worker it links to."""
    password = pool.ui_password(FACE)
    base = pool.gateway_url().replace("https://", f"https://{FACE}:{password}@")
    page = browse(f"{base}/clusters/{FACE}/", "--dump-dom")
    assert "Spark Master at" in page and "ALIVE" in page, page[:2000]
    links = worker_links(page, FACE)
    assert links, page[:3000]
    worker = browse(f"{base}{links[0]}", "--dump-dom")
    assert "Spark Worker at" in worker and "Running Executors" in worker, worker[:2000]
    screenshot(f"{base}{links[0]}", tmp_path / "worker.png")
    # without the credentials the browser is asked for them (headless: it renders nothing), never Spark's page
    denied = browse(f"{pool.gateway_url()}/clusters/{FACE}/", "--dump-dom")
    assert "Spark Master" not in denied and "ALIVE" not in denied, denied[:1000]


def history_apps(pool, name: str, password: str) -> list:
    """The application ids the cluster's history server lists, through the gateway."""
    status, body = pool.gateway(f"/clusters/{name}/history/api/v1/applications", name, password)
    assert status == 200, f"{name}: the history server answered {status}: {body[:500]}"
    return [app["id"] for app in json.loads(body)]


def test_the_history_server_shows_the_deploys_application_beside_the_driver(pool, deployed, tmp_path):
    """face has a history server: one more node on the driver's host, the event logs on the cluster's volume
    there, its pages through the gateway under the cluster's credentials, in a real browser."""
    record, password = pool.cluster(FACE), pool.ui_password(FACE)
    driver_host = record["placement"]["driver"]
    history = pool.inspect(driver_host, f"spark-history-{FACE}")
    assert history["State"]["Running"] and history["Config"]["User"] == "185:185"
    master = pool.inspect(record["placement"]["master"], f"spark-master-{FACE}")
    assert history["Image"] == master["Image"]  # the master's image (Spark's classes), none of its own
    for container in (f"spark-history-{FACE}", f"spark-driver-{FACE}"):
        mounts = {m["Destination"]: m.get("Name") for m in pool.inspect(driver_host, container)["Mounts"]}
        assert mounts.get("/opt/dcspark/events") == f"dcm-{FACE}.history", (container, mounts)
    assert pool.node_status(FACE)["history"]["health"] == "healthy"
    # the application the deploy ran left its event log; the server lists it by its Spark id
    app_ids = sorted(job["app_id"] for job in pool.etcd_get(f"/dcm/jobs/{FACE}/", prefix=True).values()
                     if job["app"] == "detect.py" and job["state"] == "succeeded" and job.get("app_id"))
    assert app_ids, "the deploy's application has no job record with its Spark id"
    app_ids = app_ids[-1:]  # the newest: this deploy's run (Spark's ids begin with the time)
    deadline = time.monotonic() + 60  # the server scans the folder every 10 s
    while app_ids[0] not in history_apps(pool, FACE, password) and time.monotonic() < deadline:
        time.sleep(2)
    assert app_ids[0] in history_apps(pool, FACE, password), app_ids
    # the cluster's credentials only
    assert pool.gateway(f"/clusters/{FACE}/history/")[0] == 401
    assert pool.gateway(f"/clusters/{FACE}/history/", VIDEO, pool.ui_password(VIDEO))[0] == 401
    # a browser: the list of applications, then the jobs page of the deploy's application
    base = pool.gateway_url().replace("https://", f"https://{FACE}:{password}@")
    page = browse(f"{base}/clusters/{FACE}/history/", "--dump-dom")
    assert "History Server" in page and app_ids[0] in page, page[:3000]
    links = sorted(set(re.findall(rf'href="(/clusters/{FACE}/history/history/{app_ids[0]}/[^"]*)"', page)))
    assert links, page[:3000]
    jobs = browse(f"{base}{links[0]}", "--dump-dom")
    assert "Spark Jobs" in jobs and "Completed Jobs" in jobs, jobs[:3000]
    screenshot(f"{base}{links[0]}", tmp_path / "history.png")


def test_scale_follows_the_worker_count_without_a_build_and_keeps_master_and_driver(pool, deployed):
    """video-synopsis 2 -> 3 -> 1 workers (it is undeployed next), then a count beyond the pool.

    The pool has 2.25 CPUs left beside face (its history server included) and video-synopsis, over three
    hosts of 3.5: however they are placed, one more worker of 1 CPU fits, two may not."""
    before = pool.cluster(VIDEO)
    kept = {node: pool.inspect(before["placement"][node], f"spark-{node}-{VIDEO}")["Id"] for node in ("master", "driver")}

    def workers_running() -> int:
        return sum(1 for host in pool.names for _id in pool.hosts[host].check_output(
            f"docker ps -q --filter label=org.dcspark.cluster={VIDEO} --filter label=org.dcspark.role=worker "
            "--filter status=running").split())

    for count in (3, 1):
        run = playbook(pool.inventory, "scale_cluster.yml", "-e", f"cluster={VIDEO}", "-e", f"workers={count}")
        assert run.returncode == 0, run.stdout[-4000:]
        # the wait counted the workers ALIVE on the cluster's Spark master
        assert re.search(rf"{VIDEO}: \d+/\d+ nodes running, {count}/{count} workers ALIVE", run.stdout), run.stdout[-4000:]
        assert "Build" not in run.stdout and "docker_image" not in run.stdout  # nothing built
        record = pool.cluster(VIDEO)
        assert record["spec"]["worker"]["count"] == count and len(record["placement"]["workers"]) == count
        assert record["images"] == before["images"]
        assert {node: record["placement"][node] for node in kept} == {node: before["placement"][node] for node in kept}
        assert {node: pool.inspect(record["placement"][node], f"spark-{node}-{VIDEO}")["Id"] for node in kept} == kept
        # a removed worker's container goes at the agent's next pass: give it a few
        deadline = time.monotonic() + 60
        while workers_running() != count and time.monotonic() < deadline:
            time.sleep(2)
        assert workers_running() == count
    assert "removed worker-2, worker-3" in " ".join(run.stdout.split()), run.stdout[-4000:]

    state = pool.state()
    refused = playbook(pool.inventory, "scale_cluster.yml", "-e", f"cluster={VIDEO}", "-e", "workers=500")
    # the failure is printed as YAML, whose long strings fold at any space (with a backslash when double-quoted),
    # and on stderr under molecule (its ansible.cfg has display_failed_stderr): stop 22 failed on that
    said = " ".join((refused.stdout + refused.stderr).split())
    failure = said[said.index("FAILED!"):][:2000] if "FAILED!" in said else said[-3000:]  # the task's message
    assert refused.returncode != 0, failure
    assert re.search(r"worker-\d+\W+\(1\W+CPU\W+1g\)\W+fits\W+on\W+no\W+host", said), failure
    assert re.search(r"of\W+the\W+499\W+workers\W+to\W+add\W+fit", said), failure
    assert pool.state() == state and pool.cluster(VIDEO) == record


def test_undeploy_leaves_nothing_behind(pool, deployed):
    run = playbook(pool.inventory, "undeploy_cluster.yml", "-e", f"cluster={VIDEO}", timeout=900)
    assert run.returncode == 0, run.stdout[-4000:]
    assert pool.cluster(VIDEO) is None
    assert pool.node_status(VIDEO) == {}
    for host in pool.names:
        assert pool.containers(host, VIDEO) == [], f"{VIDEO} containers left on {host}"
    networks = pool.hosts[pool.first].check_output(f"docker network ls -q --filter name=dcm-{VIDEO}")
    assert networks == ""
    # its resources are free again: the face cluster's hosts no longer count the video nodes
    status = playbook(pool.inventory, "status.yml")
    clusters = status.stdout.split("Show the clusters")[-1].split("Show the DCM master")[0]  # not the events
    assert status.returncode == 0 and "face gen" in clusters and VIDEO not in clusters, status.stdout[-3000:] + status.stderr[-2000:]
