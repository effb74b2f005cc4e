"""The pool's UI gateway: credentials, routes and nginx locations (pure), and the agent's files (real folder)."""

import base64
import hashlib
import logging

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.host import gateway as host_gateway
from ansible_collections.dcspark.dcm.plugins.module_utils.policy import gateway
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.placement import (
    public_record, split_secrets, ui_password)


def record(name="face", master="h1", driver="overlay"):
    return {"name": name, "network": {"name": f"dcm-{name}", "driver": driver},
            "placement": {"master": master, "driver": master, "workers": [master]}}


def test_the_htpasswd_line_is_a_salted_sha1_nginx_reads_and_only_its_password_opens():
    line = gateway.htpasswd_line("face", "s3cret-password")
    user, _sep, hashed = line.partition(":")
    assert user == "face" and hashed.startswith("{SSHA}")
    raw = base64.b64decode(hashed[6:])
    digest, salt = raw[:20], raw[20:]
    assert len(salt) == 8 and hashlib.sha1(b"s3cret-password" + salt).digest() == digest
    assert gateway.verify_htpasswd(line, "face", "s3cret-password")
    assert not gateway.verify_htpasswd(line, "face", "s3cret-passwore")
    assert not gateway.verify_htpasswd(line, "video", "s3cret-password")
    # the same password of another cluster hashes differently; a write of the same one is stable
    assert gateway.htpasswd_line("video", "s3cret-password").split("}")[1] != hashed[6:]
    assert gateway.htpasswd_line("face", "s3cret-password") == line
    with pytest.raises(DcmError):
        gateway.htpasswd_line("fa:ce", "x")


def test_the_ui_password_is_random_kept_across_generations_secret_and_not_copied_to_node_hosts():
    first = ui_password(None)
    assert len(first) >= 32 and first != ui_password(None)
    assert ui_password({"ui_password": first}) == first
    public, secrets = split_secrets({"name": "face", "secret": "s" * 64, "ui_password": first})
    assert "ui_password" not in public and secrets["ui_password"] == first
    assert public_record({"name": "face", "ui_password": first})["ui_password"] == "********"
    entry = gateway.gateway_entry("face", first)
    assert first not in str(entry) and gateway.verify_htpasswd(entry["htpasswd"], "face", first)


def test_routes_follow_the_masters_report_and_skip_clusters_without_credentials():
    entries = {"face": gateway.gateway_entry("face", "p" * 32), "video": gateway.gateway_entry("video", "q" * 32)}
    records = {"face": record(), "video": record("video", "h2", "flannel"), "other": record("other")}
    status = {("face", "master"): {"host": "h1", "state": "running", "address": "10.0.1.5"},
              ("video", "master"): {"host": "h3", "state": "running", "address": "10.5.0.2"}}
    served = gateway.routes(records, entries, status)
    assert sorted(served) == ["face", "video"]  # "other" has no gateway entry: not served at all
    assert served["face"] == {"network": "dcm-face", "driver": "overlay", "address": "10.0.1.5",
                              "htpasswd": entries["face"]["htpasswd"]}
    assert served["video"]["address"] is None  # its master moved to h2, which has not reported yet
    status[("face", "master")]["state"] = "exited"
    assert gateway.routes(records, entries, status)["face"]["address"] is None
    status[("face", "master")].update(state="running", address="not-an-address")
    assert gateway.routes(records, entries, status)["face"]["address"] is None
    # an entry of another cluster's user does not serve this one
    assert "face" not in gateway.routes(records, {"face": entries["video"]}, status)


def test_locations_strip_the_prefix_authenticate_per_cluster_and_answer_503_without_a_master():
    served = {"face": {"network": "dcm-face", "driver": "overlay", "address": "10.0.1.5", "htpasswd": "face:{SSHA}x"},
              "video": {"network": "dcm-video", "driver": "overlay", "address": None, "htpasswd": "video:{SSHA}y"}}
    text = gateway.render_locations(served)
    face = text[text.index("location /clusters/face/ {"):text.index("location = /clusters/video")]
    assert "auth_basic_user_file /etc/dcm-gateway/htpasswd/face;" in face
    assert "proxy_pass http://10.0.1.5:8080/;" in face  # the trailing slash strips /clusters/face/
    assert "proxy_redirect ~^https?://[^/]+(/clusters/face/.*)$ $1;" in face  # already under the prefix
    assert "proxy_redirect ~^https?://[^/]+/(.*)$ /clusters/face/$1;" in face
    assert 'proxy_set_header Authorization "";' in face  # the password is not passed on to Spark
    video = text[text.index("location /clusters/video/ {"):]
    assert "htpasswd/video;" in video and "return 503" in video and "proxy_pass" not in video
    assert "location = /clusters/face { return 301 /clusters/face/; }" in text
    assert gateway.ui_url("10.0.0.1", 8443, "face") == "https://10.0.0.1:8443/clusters/face/"


class FakeContainer:
    """Stands in for the Docker SDK's container where this test checks files only (no network to attach)."""

    def __init__(self):
        self.attrs = {"NetworkSettings": {"Networks": {"bridge": {}}}}
        self.signals = []

    def kill(self, signal):
        self.signals.append(signal)

    def reload(self):
        pass


class FakeClient:
    def __init__(self, container):
        self.containers = self
        self.container = container

    def get(self, _name):
        return self.container


def test_the_agent_writes_the_files_once_and_reloads_only_on_a_change(tmp_path):
    container = FakeContainer()
    gw = host_gateway.Gateway(FakeClient(container), "dcm-gateway", str(tmp_path), logging.getLogger("test"))
    served = {"face": {"network": "dcm-face", "driver": "flannel", "address": "10.5.0.2", "htpasswd": "face:{SSHA}x"}}
    assert gw.sync(served) and container.signals == ["SIGHUP"]
    assert (tmp_path / "htpasswd" / "face").read_text() == "face:{SSHA}x\n"
    assert (tmp_path / "htpasswd" / "face").stat().st_mode & 0o777 == 0o640
    assert "proxy_pass http://10.5.0.2:8080/;" in (tmp_path / "locations.conf").read_text()
    assert not gw.sync(served) and container.signals == ["SIGHUP"]  # nothing changed: no reload
    assert gw.sync({}) and container.signals == ["SIGHUP", "SIGHUP"]  # undeployed: its file goes
    assert list((tmp_path / "htpasswd").iterdir()) == []
    assert "clusters/face" not in (tmp_path / "locations.conf").read_text()
