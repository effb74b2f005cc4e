"""The pool's UI gateway: credentials, routes and nginx locations (pure functions; the agent's side runs
against the real engine and nginx in tests/integration/test_gateway_docker.py)."""

import base64
import hashlib

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
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
                              "history": None, "htpasswd": entries["face"]["htpasswd"]}
    assert served["video"]["address"] is None  # its master moved to h2, which has not reported yet
    status[("face", "master")]["state"] = "exited"
    assert gateway.routes(records, entries, status)["face"]["address"] is None
    status[("face", "master")].update(state="running", address="not-an-address")
    assert gateway.routes(records, entries, status)["face"]["address"] is None
    # an entry of another cluster's user does not serve this one
    assert "face" not in gateway.routes(records, {"face": entries["video"]}, status)


def test_a_history_server_is_routed_where_the_record_places_it_beside_the_driver():
    entries = {"face": gateway.gateway_entry("face", "p" * 32)}
    records = {"face": dict(record(), spec={"history": {"max_age": "7d"}})}
    records["face"]["placement"]["driver"] = "h2"
    status = {("face", "master"): {"host": "h1", "state": "running", "address": "10.0.1.5"}}
    assert gateway.routes(records, entries, status)["face"]["history"] == {"address": None}  # not reported: 503
    status[("face", "history")] = {"host": "h1", "state": "running", "address": "10.0.1.9"}
    assert gateway.routes(records, entries, status)["face"]["history"] == {"address": None}  # reported off its host
    status[("face", "history")]["host"] = "h2"
    served = gateway.routes(records, entries, status)
    assert served["face"]["history"] == {"address": "10.0.1.9"}
    text = gateway.render_locations(served)
    history = text[text.index("location /clusters/face/history/ {"):]
    assert "proxy_pass http://10.0.1.9:18080/;" in history and "htpasswd/face;" in history
    assert "proxy_redirect ~^https?://[^/]+/(.*)$ /clusters/face/history/$1;" in history
    assert "location = /clusters/face/history { return 301 /clusters/face/history/; }" in text
    status[("face", "history")]["state"] = "exited"
    text = gateway.render_locations(gateway.routes(records, entries, status))
    history = text[text.index("location /clusters/face/history/ {"):]
    assert "try_files /dcm-gateway-no-master =503;" in history and "proxy_pass" not in history
    assert "proxy_pass http://10.0.1.5:8080/;" in text  # the master's UI is served all the same


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
    assert "htpasswd/video;" in video and "try_files /dcm-gateway-no-master =503;" in video
    assert "proxy_pass" not in video and "return" not in video  # return would answer before the credentials
    assert "location = /clusters/face { return 301 /clusters/face/; }" in text
    assert gateway.ui_url("10.0.0.1", 8443, "face") == "https://10.0.0.1:8443/clusters/face/"
