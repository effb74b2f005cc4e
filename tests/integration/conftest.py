"""A real etcd for the integration tests: Debian's etcd-server on loopback, TLS everywhere.

The session fixture ``etcd`` generates a throw-away PKI (CA, server/peer
certificate for 127.0.0.1 and localhost, a client certificate, and a client
certificate from a CA etcd does not trust), starts ``/usr/bin/etcd`` with
client and peer certificate authentication on free loopback ports, waits
until an authenticated status request answers, and stops exactly that process
at the end. ``clean_etcd`` wipes ``/dcm/`` around each test.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import StoreError
from ansible_collections.dcspark.dcm.plugins.module_utils.state.etcd import EtcdClient, EtcdConfig

ETCD_BINARY = os.environ.get("DCM_TEST_ETCD", "/usr/bin/etcd")
READY_DEADLINE = 60.0  # seconds; a healthy single member answers in well under one


# -- PKI -----------------------------------------------------------------------
def _write_key(path: str, key) -> None:
    with open(path, "wb") as handle:
        handle.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
    os.chmod(path, 0o600)


def _write_cert(path: str, cert: x509.Certificate) -> None:
    with open(path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: str, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    """An empty ``subject`` gives a certificate without a common name (what etcd's gateway wants)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)] if subject else []))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def make_ca(directory: str, name: str) -> tuple:
    """A self-signed CA; returns ``(cert path, cert, key)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(name, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False,
        ), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = os.path.join(directory, f"{name}.crt")
    _write_cert(path, cert)
    return path, cert, key


def make_leaf(directory: str, name: str, ca_cert, ca_key, server: bool, common_name: str | None = None) -> tuple:
    """A certificate signed by the CA; ``server`` ones carry SANs 127.0.0.1/localhost and both usages
    (etcd peers are servers and clients of each other). The common name is ``name`` unless
    ``common_name`` says otherwise ("" for none). Returns ``(cert path, key path)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    builder = (
        _builder(name if common_name is None else common_name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
        ]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path = os.path.join(directory, f"{name}.crt")
    key_path = os.path.join(directory, f"{name}.key")
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return cert_path, key_path


# -- the server ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EtcdServer:
    """A running etcd: where it listens, the PKI to reach it, and a ready client."""

    endpoints: list
    client_port: int
    ca: str
    cert: str
    key: str
    untrusted_cert: str  # a client certificate signed by a CA etcd does not trust
    untrusted_key: str
    gateway_cert: str  # a client certificate without a common name: etcd's gateway with access control on
    gateway_key: str
    client: EtcdClient
    pid: int
    log: str
    issuer: tuple = ()  # (folder, CA certificate, CA key): see named_certificate

    def named_certificate(self, common_name: str) -> tuple:
        """A client certificate of the server's CA with this common name: ``(cert path, key path)``
        (gRPC clients such as etcdctl and flanneld are the etcd user their certificate names)."""
        folder, ca_cert, ca_key = self.issuer
        return make_leaf(folder, f"named-{common_name}", ca_cert, ca_key, server=False, common_name=common_name)

    def new_client(self, timeout: float = 10.0) -> EtcdClient:
        return EtcdClient(EtcdConfig(tuple(self.endpoints), self.ca, self.cert, self.key, timeout))

    def playbook_vars(self, folder) -> dict:
        """The dcm_etcd_* variables of a pool whose etcd is this one (no access control: the modules
        find no identity file in ``folder`` and go without a user, with the named client certificate)."""
        return {
            "dcm_etcd_endpoints": list(self.endpoints), "dcm_etcd_ca_cert": self.ca,
            "dcm_etcd_client_cert": self.cert, "dcm_etcd_client_key": self.key,
            "dcm_etcd_gateway_cert": self.cert, "dcm_etcd_gateway_key": self.key,
            "dcm_etcd_identity_file": os.path.join(str(folder), "no-identity.json"),
        }

    def module_args(self) -> dict:
        """The etcd options of a DCM module, pointing at this server."""
        return {
            "etcd_endpoints": list(self.endpoints),
            "etcd_ca_cert": self.ca,
            "etcd_client_cert": self.cert,
            "etcd_client_key": self.key,
        }

    def dump(self, prefix: str = keys.PREFIX) -> dict:
        """Every key under ``prefix`` with its value, mod revision and lease."""
        kvs, _rev = self.client.get_prefix(prefix)
        return {kv.key: (kv.value, kv.mod_revision, kv.lease) for kv in kvs}


def _log_tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def running_etcd(prefix: str = "dcm-etcd-"):
    """A new single-member etcd with TLS and client certificates on free loopback ports (stopped after)."""
    if not (os.path.isfile(ETCD_BINARY) and os.access(ETCD_BINARY, os.X_OK)):
        pytest.fail(
            f"{ETCD_BINARY} not found: the etcd integration tests need Debian's etcd-server (3.4). "
            "Run `make setup` (it installs etcd-server), or point DCM_TEST_ETCD at an etcd binary.",
            pytrace=False,
        )
    workdir = tempfile.mkdtemp(prefix=prefix)
    proc = None
    try:
        pki = os.path.join(workdir, "pki")
        os.mkdir(pki, 0o700)
        ca_path, ca_cert, ca_key = make_ca(pki, "dcm-test-ca")
        server_cert, server_key = make_leaf(pki, "etcd-server", ca_cert, ca_key, server=True)
        client_cert, client_key = make_leaf(pki, "dcm-client", ca_cert, ca_key, server=False)
        _rogue_ca, rogue_cert, rogue_key = make_ca(pki, "untrusted-ca")
        untrusted_cert, untrusted_key = make_leaf(pki, "untrusted-client", rogue_cert, rogue_key, server=False)
        gateway_cert, gateway_key = make_leaf(pki, "gateway-client", ca_cert, ca_key, server=False, common_name="")
        client_port, peer_port = free_port(), free_port()
        client_url = f"https://127.0.0.1:{client_port}"
        peer_url = f"https://127.0.0.1:{peer_port}"
        log_path = os.path.join(workdir, "etcd.log")
        command = [
            ETCD_BINARY,
            "--name", "dcm-test",
            "--data-dir", os.path.join(workdir, "data"),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"dcm-test={peer_url}",
            "--initial-cluster-state", "new",
            "--client-cert-auth", "--trusted-ca-file", ca_path,
            "--cert-file", server_cert, "--key-file", server_key,
            "--peer-client-cert-auth", "--peer-trusted-ca-file", ca_path,
            "--peer-cert-file", server_cert, "--peer-key-file", server_key,
            "--logger", "zap", "--log-outputs", "stderr",
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        client = EtcdClient(EtcdConfig((client_url,), ca_path, client_cert, client_key, timeout=2.0))
        deadline = time.monotonic() + READY_DEADLINE
        last_error = "no answer yet"
        while True:
            if proc.poll() is not None:
                pytest.fail(f"etcd exited with code {proc.returncode} before it was ready:\n{_log_tail(log_path)}",
                            pytrace=False)
            try:
                client.status()  # authenticated: proves TLS and client-cert auth are up
                break
            except StoreError as exc:
                last_error = str(exc)
            if time.monotonic() > deadline:
                pytest.fail(f"etcd did not answer an authenticated status request within {READY_DEADLINE:.0f} s "
                            f"({last_error}):\n{_log_tail(log_path)}", pytrace=False)
            time.sleep(0.05)  # poll interval, not a wait for readiness

        yield EtcdServer(
            endpoints=[client_url], client_port=client_port, ca=ca_path, cert=client_cert, key=client_key,
            untrusted_cert=untrusted_cert, untrusted_key=untrusted_key,
            gateway_cert=gateway_cert, gateway_key=gateway_key,
            client=EtcdClient(EtcdConfig((client_url,), ca_path, client_cert, client_key, timeout=10.0)),
            pid=proc.pid, log=log_path, issuer=(pki, ca_cert, ca_key),
        )
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd():
    with running_etcd() as server:
        yield server


def _wipe(server: EtcdServer) -> None:
    server.client.delete(keys.PREFIX, keys.prefix_end(keys.PREFIX))


@pytest.fixture
def clean_etcd(etcd):
    """The session's etcd with an empty ``/dcm/`` keyspace before and after the test."""
    _wipe(etcd)
    yield etcd
    _wipe(etcd)
