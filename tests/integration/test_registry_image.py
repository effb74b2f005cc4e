"""The registry client (host/registry.py) and the modules that use it, against registries over TLS.

Two servers, both on loopback with a certificate from a throw-away CA made here:

- Debian's ``docker-registry`` (the distribution registry 2.8 the registry role installs), started on a
  free port with its own storage and ``storage.delete`` enabled; images are pushed to it through the
  registry API itself (blobs, then a Docker v2 or an OCI manifest), so no Docker engine is involved.
  These tests are skipped when ``/usr/bin/docker-registry`` is missing (``apt-get install docker-registry``);
- a small stdlib HTTPS server that answers the v2 HEAD and DELETE of manifests as told, for the answers a
  well-configured registry does not give (405: deletions disabled; 500) and to see the requests made.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import textwrap
import threading
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import BIN, REPO, ansible_env, run_module

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.host.registry import MANIFEST_TYPES, RegistryClient
from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.state.events import read_events

REGISTRY_BINARY = os.environ.get("DCM_TEST_REGISTRY", "/usr/bin/docker-registry")
READY_DEADLINE = 60.0
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"


# -- PKI ---------------------------------------------------------------------------------------------
def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def make_pki(directory: str) -> dict:
    """A CA, a server certificate for 127.0.0.1 signed by it, and a CA that signed nothing."""
    now = datetime.datetime.now(datetime.timezone.utc)
    paths = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    for name, key, subject, issuer, signer, extensions in (
        ("ca", ca_key, "registry-test-ca", "registry-test-ca", ca_key,
         [(x509.BasicConstraints(ca=True, path_length=0), True)]),
        ("other-ca", None, "unrelated-ca", "unrelated-ca", None, [(x509.BasicConstraints(ca=True, path_length=0), True)]),
        ("server", None, "127.0.0.1", "registry-test-ca", ca_key, [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        ]),
    ):
        key = key or ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        cert = builder.sign(signer or key, hashes.SHA256())
        paths[name] = _write(os.path.join(directory, f"{name}.crt"), cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}_key"] = _write(os.path.join(directory, f"{name}.key"), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pki():
    directory = tempfile.mkdtemp(prefix="dcm-registry-pki-")
    try:
        yield make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- the real registry ------------------------------------------------------------------------------
class Registry:
    """A running docker-registry and a raw client of its API, to push what the tests look up."""

    def __init__(self, address: str, ca: str) -> None:
        self.address = address
        self.ca = ca
        self.context = ssl.create_default_context(cafile=ca)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple:
        connection = http.client.HTTPSConnection(self.address, timeout=30, context=self.context)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def push_blob(self, repository: str, data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _body = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        assert status == 202, status
        location = headers["Location"].split(self.address, 1)[-1]  # absolute or not, the path
        sep = "&" if "?" in location else "?"
        status, _headers, body = self.request("PUT", f"{location}{sep}digest={digest}", data,
                                              {"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
        return {"digest": digest, "size": len(data)}

    def push_image(self, repository: str, tag: str, media_type: str = DOCKER_V2) -> str:
        """A tiny image (a config and one layer) as ``repository:tag``; returns the manifest's digest."""
        oci = media_type == OCI
        config = self.push_blob(repository, json.dumps({"architecture": "amd64", "os": "linux",
                                                        "run": uuid.uuid4().hex}).encode())
        layer = self.push_blob(repository, os.urandom(64))
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci
                       else "application/vnd.docker.container.image.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if oci
                        else "application/vnd.docker.image.rootfs.diff.tar.gzip", **layer}],
        }).encode()
        status, headers, body = self.request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                                             {"Content-Type": media_type})
        assert status == 201, (status, body)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        assert headers["Docker-Content-Digest"] == digest
        return digest

    def ref(self, repository: str, tag: str) -> str:
        return f"{self.address}/{repository}:{tag}"


@pytest.fixture(scope="module")
def registry(pki):
    if not (os.path.isfile(REGISTRY_BINARY) and os.access(REGISTRY_BINARY, os.X_OK)):
        pytest.skip(f"{REGISTRY_BINARY} not found: these tests need Debian's docker-registry "
                    "(apt-get install docker-registry), or DCM_TEST_REGISTRY pointing at a registry binary")
    workdir = tempfile.mkdtemp(prefix="dcm-registry-")
    port = free_port()
    config = os.path.join(workdir, "config.yml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent(f"""\
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: {workdir}/storage
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:{port}
              secret: {uuid.uuid4().hex}
              tls:
                certificate: {pki['server']}
                key: {pki['server_key']}
            """))
    log_path = os.path.join(workdir, "registry.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([REGISTRY_BINARY, "serve", config], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    server = Registry(f"127.0.0.1:{port}", pki["ca"])
    try:
        deadline = time.monotonic() + READY_DEADLINE
        while True:
            assert proc.poll() is None, f"docker-registry exited with {proc.returncode}: {open(log_path).read()[-3000:]}"
            try:
                if server.request("GET", "/v2/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"docker-registry did not answer: {open(log_path).read()[-3000:]}"
            time.sleep(0.05)  # poll interval, not a wait for readiness
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_client_finds_docker_and_oci_manifests_by_tag_and_by_digest(registry):
    repo = f"dcspark-test-{uuid.uuid4().hex[:8]}"
    docker_digest = registry.push_image(repo, "v2")
    oci_digest = registry.push_image(repo, "oci", OCI)
    client = RegistryClient(registry.address, registry.ca)
    assert client.digest(registry.ref(repo, "v2")) == docker_digest
    assert client.digest(registry.ref(repo, "oci")) == oci_digest  # found only because OCI is asked for
    assert client.digest(f"{registry.address}/{repo}@{docker_digest}") == docker_digest
    assert client.head_manifest(repo, "v2") == docker_digest
    assert client.digest(registry.ref(repo, "nope")) is None
    assert client.digest(registry.ref("dcspark-never-pushed", "v2")) is None
    assert client.digest(f"{registry.address}/{repo}@sha256:{'0' * 64}") is None


def test_the_client_deletes_by_tag_or_digest_and_a_manifest_already_gone_is_fine(registry):
    repo = f"dcspark-test-{uuid.uuid4().hex[:8]}"
    first = registry.push_image(repo, "a")
    registry.push_image(repo, "b")
    client = RegistryClient(registry.address, registry.ca)
    assert client.delete(registry.ref(repo, "a")) is True  # the tag is resolved to its digest first
    assert client.digest(registry.ref(repo, "a")) is None
    assert client.delete(f"{registry.address}/{repo}@{first}") is False
    assert client.delete(registry.ref(repo, "a")) is False
    assert client.digest(registry.ref(repo, "b")) is not None


def test_the_certificate_is_checked_against_the_ca_given(registry, pki):
    client = RegistryClient(registry.address, pki["other-ca"])
    with pytest.raises(DcmError, match=rf"looking up {registry.address}/x:1: cannot reach {registry.address} \("):
        client.digest(registry.ref("x", "1"))
    with pytest.raises(DcmError, match=r"is not an image of registry"):
        RegistryClient(registry.address, registry.ca).digest("elsewhere:5000/x:1")


def test_dcm_registry_image_reports_present_and_missing_images(registry):
    repo = f"dcspark-test-{uuid.uuid4().hex[:8]}"
    digest = registry.push_image(repo, "1")
    images = [registry.ref(repo, "1"), registry.ref(repo, "2"), f"{registry.address}/{repo}@{digest}"]
    args = {"registry": registry.address, "registry_ca": registry.ca, "images": images}
    for check in (False, True):
        result = run_module("dcm_registry_image", args, check=check)
        assert result.get("failed") is not True, result
        assert result["changed"] is False
        assert result["present"] == {images[0]: digest, images[2]: digest}
        assert result["missing"] == [images[1]]

    refused = run_module("dcm_registry_image", {**args, "images": ["other:5000/x:1"]})
    assert refused.get("failed") is True and "other:5000/x:1 is not an image of registry" in refused["msg"], refused
    bad = run_module("dcm_registry_image", {**args, "images": ["no-registry-part"]})
    assert bad.get("failed") is True and "is not an image reference" in bad["msg"], bad


def test_the_spark_images_role_notes_the_digests_of_the_images_of_its_tag(registry, tmp_path):
    tag = uuid.uuid4().hex[:12]
    master = registry.push_image("dcspark-master", tag)
    runtime = registry.push_image("dcspark-runtime", tag, OCI)
    out = tmp_path / "digests.json"
    (tmp_path / "hosts.yml").write_text(textwrap.dedent("""\
        all:
          children:
            dcm_pool:
              children:
                dcm_masters:
                  hosts:
                    localhost:
                      ansible_connection: local
                      ansible_python_interpreter: "{{ ansible_playbook_python }}"
                      dcm_address: 10.0.0.1
        """))
    (tmp_path / "play.yml").write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          module_defaults:  # as the deploy play gives them: they must not reach dcm_registry_image
            group/dcspark.dcm.dcm:
              etcd_endpoints: ["https://127.0.0.1:1"]
              etcd_ca_cert: /nonexistent/ca.crt
          tasks:
            - name: Look the tag up as the role does
              ansible.builtin.include_role:
                name: dcspark.dcm.spark_images
                tasks_from: registry.yml
              vars:
                spark_images_registry: "{registry.address}"
                spark_images_registry_ca: "{registry.ca}"
                spark_images_registry_auth_file: ""  # this test registry takes anonymous requests
                spark_images__tag: "{tag}"
            - name: Write what it noted
              ansible.builtin.copy:
                content: "{{{{ spark_images__digests | to_json }}}}"
                dest: "{out}"
                mode: "0644"
        """))
    for check in (True, False):
        cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")]
        proc = subprocess.run(cmd + (["--check"] if check else []), cwd=REPO,
                              env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert out.exists() is not check  # check mode looks up too, but writes nothing
    assert json.loads(out.read_text()) == {"master": master, "runtime": runtime}


def test_dcm_registry_prune_deletes_queued_images_nothing_uses(registry, clean_etcd):
    gone_repo, kept_repo = f"dcspark-old-{uuid.uuid4().hex[:8]}", f"dcspark-new-{uuid.uuid4().hex[:8]}"
    old = registry.push_image(gone_repo, "1")
    registry.push_image(kept_repo, "2")
    old_ref, kept_ref = registry.ref(gone_repo, "1"), registry.ref(kept_repo, "2")
    etcd = clean_etcd.client
    etcd.put(keys.cluster_key("face"), json.dumps({"name": "face", "generation": 2, "images": {"worker": kept_ref}}))
    queued = {"cluster": "face", "generation": 1, "queued_at": 0, "images": {"worker": old_ref, "master": kept_ref}}
    etcd.put(keys.prune_key("face", 1), json.dumps(queued))
    args = {"registry": registry.address, "registry_ca": registry.ca, "grace": 0, **clean_etcd.module_args()}

    planned = run_module("dcm_registry_prune", args, check=True)
    assert planned.get("failed") is not True, planned
    assert planned["deleted"] == [old_ref] and RegistryClient(registry.address, registry.ca).digest(old_ref) == old

    pruned = run_module("dcm_registry_prune", args)
    assert pruned.get("failed") is not True, pruned
    assert pruned["changed"] is True and pruned["deleted"] == [old_ref]
    assert [k["image"] for k in pruned["kept"]] == [kept_ref]
    client = RegistryClient(registry.address, registry.ca)
    assert client.digest(old_ref) is None and client.digest(kept_ref) is not None
    assert etcd.get(keys.prune_key("face", 1)) is None  # the queue entry is settled
    assert [e["kind"] for e in read_events(etcd, limit=0)] == ["prune"]
    assert run_module("dcm_registry_prune", args)["changed"] is False


def test_dcm_registry_prune_refuses_without_etcd_endpoints(registry):
    result = run_module("dcm_registry_prune", {"registry": registry.address, "registry_ca": registry.ca})
    assert result.get("failed") is True and result["msg"].startswith("etcd_endpoints is empty"), result
    assert result["deleted"] == [] and result["kept"] == []


# -- a stand-in registry, for the answers a real one does not give here -----------------------------------
class StandIn(http.server.BaseHTTPRequestHandler):
    """Answers HEAD and DELETE of ``/v2/<repository>/manifests/<reference>`` from ``server.answers``."""

    def _answer(self) -> None:
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        status, headers = self.server.answers.get((self.command, self.path), (404, {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_DELETE = _answer  # noqa: N815

    def log_message(self, *args) -> None:  # pylint: disable=arguments-differ
        pass


@pytest.fixture
def stand_in(pki):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["server_key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.answers, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_every_manifest_type_is_asked_for_and_the_digest_header_is_the_answer(stand_in, pki):
    server, address = stand_in
    digest = "sha256:" + "a" * 64
    server.answers[("HEAD", "/v2/dcspark-master/manifests/t1")] = (200, {"Docker-Content-Digest": digest})
    client = RegistryClient(address, pki["ca"])
    assert client.digest(f"{address}/dcspark-master:t1") == digest
    assert client.digest(f"{address}/dcspark-master:t2") is None
    (_method, _path, headers), _second = server.requests
    assert set(headers["Accept"].split(", ")) == set(MANIFEST_TYPES) and len(MANIFEST_TYPES) == 4


def test_a_registry_that_refuses_deletions_is_named_with_the_fix(stand_in, pki):
    server, address = stand_in
    digest = "sha256:" + "b" * 64
    server.answers[("HEAD", "/v2/dcspark-worker/manifests/t1")] = (200, {"Docker-Content-Digest": digest})
    server.answers[("DELETE", f"/v2/dcspark-worker/manifests/{digest}")] = (405, {})
    client = RegistryClient(address, pki["ca"])
    with pytest.raises(DcmError, match=rf"^{address} refuses to delete manifests \(HTTP 405\): enable storage.delete"):
        client.delete(f"{address}/dcspark-worker:t1")
    assert [(method, path) for method, path, _h in server.requests] == [
        ("HEAD", "/v2/dcspark-worker/manifests/t1"), ("DELETE", f"/v2/dcspark-worker/manifests/{digest}")]


def test_other_answers_fail_naming_the_status(stand_in, pki):
    server, address = stand_in
    server.answers[("HEAD", "/v2/dcspark-driver/manifests/t1")] = (500, {})
    server.answers[("DELETE", "/v2/dcspark-driver/manifests/sha256:" + "c" * 64)] = (401, {})
    client = RegistryClient(address, pki["ca"])
    with pytest.raises(DcmError, match=rf"^looking up {address}/dcspark-driver:t1: HTTP 500 from {address}$"):
        client.digest(f"{address}/dcspark-driver:t1")
    with pytest.raises(DcmError, match=rf"^deleting {address}/dcspark-driver@sha256:c+: HTTP 401 from {address}$"):
        client.delete(f"{address}/dcspark-driver@sha256:{'c' * 64}")
    result = run_module("dcm_registry_image", {"registry": address, "registry_ca": pki["ca"],
                                               "images": [f"{address}/dcspark-driver:t1"]})
    assert result.get("failed") is True and result["msg"].endswith(f"HTTP 500 from {address}"), result


def test_the_modules_send_the_identity_of_the_auth_file_and_never_show_its_password(stand_in, pki, tmp_path):
    server, address = stand_in
    digest = "sha256:" + "d" * 64
    server.answers[("HEAD", "/v2/dcspark-master/manifests/t1")] = (200, {"Docker-Content-Digest": digest})
    auth = tmp_path / "puller.json"
    auth.write_text(json.dumps({"username": "dcm-puller", "password": "pw-" + "x" * 37}))
    args = {"registry": address, "registry_ca": pki["ca"], "registry_auth_file": str(auth),
            "images": [f"{address}/dcspark-master:t1"]}
    result = run_module("dcm_registry_image", args)
    assert result.get("failed") is not True, result
    assert result["present"] == {f"{address}/dcspark-master:t1": digest}
    (_method, _path, headers), = server.requests
    import base64
    assert base64.b64decode(headers["Authorization"].split()[1]).decode() == "dcm-puller:pw-" + "x" * 37
    assert "x" * 37 not in json.dumps(result)


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the registry credentials"),
    ("{not json", "is not JSON"),
    ('{"username": "dcm-puller"}', "must hold a JSON object with a username and a password"),
])
def test_a_missing_or_broken_auth_file_is_named_with_the_fix(stand_in, pki, tmp_path, content, message):
    _server, address = stand_in
    auth = tmp_path / "builder.json"
    if content is not None:
        auth.write_text(content)
    result = run_module("dcm_registry_image", {"registry": address, "registry_ca": pki["ca"],
                                               "registry_auth_file": str(auth), "images": [f"{address}/x:1"]})
    assert result.get("failed") is True and message in result["msg"] and "run site.yml" in result["msg"], result
