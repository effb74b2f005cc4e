"""The pool's UI gateway on the real Docker engine: roles/gateway's image (Debian's nginx-light) driven by
the agent's :class:`Gateway` exactly as on the gateway host: it attaches the container to a cluster's
network, serves a stand-in Spark master (busybox httpd on 8080) under ``/clusters/<name>/`` over TLS
with that cluster's password only, reloads nginx when a route changes, and stops serving and detaches
when the cluster goes. Everything made here carries this run's label and is removed by id.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid

import docker
import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.host.gateway import Gateway
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.gateway import htpasswd_line
from docker_fixtures import TEST_RUN, busybox_tar, cleanup, engine

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = "dcspark/debian-base:bookworm"
NOBODY = 65534  # the gateway runs as a user of its own (on a pool: the agent's, who writes its files)
MASTER_PAGE = json.dumps({"workers": [{"host": "spark-worker-gwt-1", "state": "ALIVE"}]})


def www_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in (("www/index.html", "<h1>Spark Master at stand-in</h1>"), ("www/json/index.html", MASTER_PAGE)):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def self_signed(folder) -> None:
    """The gateway's TLS files: a certificate for 127.0.0.1 (the test's CA is the certificate itself)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=gwt",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "server.key"),
                    "-out", str(folder / "server.crt")], check=True, capture_output=True)


@pytest.fixture(scope="module")
def gateway_image():
    """roles/gateway's image, built on the local engine from the Debian base the sandbox image builds."""
    api = engine()
    if not api.images(name=BASE):
        subprocess.run([os.path.join(REPO, "scripts", "build-sandbox-image.sh")], check=True)  # makes BASE too
    run_id = uuid.uuid4().hex[:12]
    client = docker.DockerClient(version="auto", timeout=600)
    image, _logs = client.images.build(path=os.path.join(REPO, "roles", "gateway", "files"), buildargs={"BASE": BASE},
                                       tag=f"dcspark-test/gateway:{run_id}", labels={TEST_RUN: run_id}, rm=True)
    yield image.id
    problems = cleanup(api, run_id)
    assert not problems, problems


@pytest.fixture()
def lab(gateway_image, tmp_path):
    api = engine()
    run_id = uuid.uuid4().hex[:12]
    client = docker.DockerClient(version="auto", timeout=120)
    network = client.networks.create(f"dcm-gwt-{run_id}", driver="bridge", labels={TEST_RUN: run_id})
    answer = api.import_image_from_data(busybox_tar(), repository="dcspark-test/master", tag=run_id,
                                        changes=[f"LABEL {TEST_RUN}={run_id}"])
    master = client.containers.create(json.loads(answer.strip().splitlines()[-1])["status"],
                                      ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
                                      labels={TEST_RUN: run_id}, network=network.name, user="185:185")
    master.put_archive("/", www_tar())
    master.start()
    master.reload()
    conf = tmp_path / "gateway"
    (conf / "tls").mkdir(parents=True)
    self_signed(conf / "tls")
    (conf / "locations.conf").write_text("")
    hand_over(conf)
    gateway = client.containers.run(
        gateway_image, name=f"dcm-gateway-{run_id}", detach=True, labels={TEST_RUN: run_id},
        user=f"{NOBODY}:{NOBODY}", read_only=True, tmpfs={"/tmp": "size=16m"}, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], mem_limit="128m", ports={"8443/tcp": ("127.0.0.1", None)},
        volumes={str(conf): {"bind": "/etc/dcm-gateway", "mode": "ro"}})
    try:
        gateway.reload()
        port = int(gateway.attrs["NetworkSettings"]["Ports"]["8443/tcp"][0]["HostPort"])
        yield {"client": client, "network": network.name, "conf": conf, "gateway": gateway, "port": port,
               "master": master.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"],
               "ca": str(conf / "tls" / "server.crt")}
    finally:
        problems = cleanup(api, run_id)
        network.remove()
        assert not problems, problems


def hand_over(conf) -> None:
    """Give the gateway's user what this test wrote as root (on a pool the agent's user writes it all)."""
    for folder, dirs, files in os.walk(conf):
        for name in [folder] + [os.path.join(folder, entry) for entry in dirs + files]:
            os.chown(name, NOBODY, NOBODY)


def sync(lab, gateway: Gateway, served: dict) -> bool:
    changed = gateway.sync(served)
    hand_over(lab["conf"])
    return changed


def get(lab, path: str, user: str | None = None, password: str | None = None) -> tuple:
    request = urllib.request.Request(f"https://127.0.0.1:{lab['port']}{path}")
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    context = ssl.create_default_context(cafile=lab["ca"])
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as answer:  # noqa: S310
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, ConnectionError):  # nginx still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def settled(lab, path: str, status: int, *auth: str) -> tuple:
    """The answer to ``path`` once nginx's reload is over: five answers in a row with ``status`` (until then
    an old worker may still take a new connection with the previous locations), else the last one."""
    deadline, streak, answer = time.monotonic() + 20, 0, (0, "")
    while streak < 5 and time.monotonic() < deadline:
        answer = get(lab, path, *auth)
        streak = streak + 1 if answer[0] == status else 0
        if streak < 5:
            time.sleep(0.1)
    return answer


def test_the_agent_makes_the_gateway_serve_a_cluster_with_its_password_only_and_forget_it(lab):
    gateway = Gateway(lab["client"], lab["gateway"].name, str(lab["conf"]), logging.getLogger("test"))
    password = "p" * 32
    assert settled(lab, "/clusters/gwt/", 404)[0] == 404  # nothing served yet
    served = {"gwt": {"network": lab["network"], "driver": "bridge", "address": lab["master"],
                      "htpasswd": htpasswd_line("gwt", password)}}
    assert sync(lab, gateway, served)
    lab["gateway"].reload()
    assert lab["network"] in lab["gateway"].attrs["NetworkSettings"]["Networks"]  # attached to reach the master
    assert settled(lab, "/clusters/gwt/json/", 200, "gwt", password) == (200, MASTER_PAGE)
    assert get(lab, "/clusters/gwt/", "gwt", password) == (200, "<h1>Spark Master at stand-in</h1>")
    assert get(lab, "/clusters/gwt/json/")[0] == 401
    assert get(lab, "/clusters/gwt/json/", "gwt", "p" * 31 + "q")[0] == 401
    assert get(lab, "/clusters/gwt/json/", "other", password)[0] == 401
    assert not sync(lab, gateway, served)  # nothing changed: no reload
    # the master gone from its reports: 503 with the password, still 401 without (nothing said before it)
    assert sync(lab, gateway, {"gwt": dict(served["gwt"], address=None)})
    assert settled(lab, "/clusters/gwt/json/", 503, "gwt", password)[0] == 503
    assert get(lab, "/clusters/gwt/json/")[0] == 401
    # undeployed: not served, password file gone, detached from its network
    assert sync(lab, gateway, {})
    assert settled(lab, "/clusters/gwt/json/", 404, "gwt", password)[0] == 404
    assert not list((lab["conf"] / "htpasswd").iterdir())
    lab["gateway"].reload()
    assert lab["network"] not in lab["gateway"].attrs["NetworkSettings"]["Networks"]
    assert lab["gateway"].status == "running"  # reloads, never restarts
