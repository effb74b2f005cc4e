"""A cluster's secrets are kept apart from its record, with a copy only for the hosts running its nodes
(an agent reads every record, so no record may hold a secret). Real etcd (conftest.py)."""

from __future__ import annotations

import json

from test_etcd_store import register, spec, stored_clusters

from ansible_collections.dcspark.dcm.plugins.module_utils.core import naming
from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore


def _hosts(record: dict) -> set:
    return {host for _node, host in naming.placed_nodes(record)}


def _copies(client) -> dict:
    """``{(host, cluster): copy}`` of every host copy in etcd."""
    kvs, _rev = client.get_prefix(keys.HOST_SECRETS)
    return {tuple(keys.name_from_key(keys.HOST_SECRETS, kv.key).split("/", 1)): json.loads(kv.value) for kv in kvs}


def test_a_record_holds_no_secret_and_only_the_clusters_hosts_get_a_copy(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    for host in ("a", "b", "c", "d"):
        register(store, host, 2, 4)
    face = store.reserve(spec("face", workers=1)).record
    other = store.reserve(spec("other", workers=1)).record
    raw = stored_clusters(client)
    assert "secret" not in raw["face"] and "secret" not in raw["other"]
    assert face["secret"] not in json.dumps(raw)  # not under another name either
    copies = _copies(client)
    assert {host for host, cluster in copies if cluster == "face"} == _hosts(face)
    assert {host for host, cluster in copies if cluster == "other"} == _hosts(other)
    assert all(copy["secret"] == (face if cluster == "face" else other)["secret"]
               for (_host, cluster), copy in copies.items())
    assert face["secret"] != other["secret"]
    outside = sorted({"a", "b", "c", "d"} - _hosts(face))
    assert outside and all("face" not in store.host_secrets(host) for host in outside)


def test_a_new_generation_keeps_the_secret_and_removal_takes_every_copy(clean_etcd):
    client = clean_etcd.client
    store = DcmStore(client)
    for host in ("a", "b", "c"):
        register(store, host, 4, 8)
    first = store.reserve(spec("face", workers=2)).record
    second = store.reserve(spec("face", workers=3), strategy="all-at-once").record
    assert second["generation"] == first["generation"] + 1
    assert store.held_secrets("face")["secrets"]["secret"] == first["secret"]
    assert {host for host, cluster in _copies(client) if cluster == "face"} == _hosts(second)
    store.remove_cluster("face")
    assert client.get(keys.secrets_key("face")) is None and _copies(client) == {}


def test_an_agent_sees_records_and_its_secrets_at_one_revision(clean_etcd, monkeypatch):
    """A removal landing between the agent's two reads must not show it a record without its secret
    (the agent would skip the record and remove the cluster's running containers)."""
    store = DcmStore(clean_etcd.client)
    for host in ("a", "b"):
        register(store, host, 2, 4)
    face = store.reserve(spec("face", workers=1)).record
    host = sorted(_hosts(face))[0]
    read_secrets = store._host_secrets  # pylint: disable=protected-access

    def then_removed(*args, **kwargs):
        found = read_secrets(*args, **kwargs)
        DcmStore(clean_etcd.new_client()).remove_cluster("face")  # lands after the secrets were read
        return found

    monkeypatch.setattr(store, "_host_secrets", then_removed)
    records, secrets, _unreadable = store.host_view(host)
    assert "face" in records and secrets["face"]["secret"] == face["secret"]
    monkeypatch.undo()
    assert store.host_view(host) == ({}, {}, {})


def test_the_ui_password_is_kept_across_generations_and_a_cluster_from_before_the_gateway_gets_one(clean_etcd):
    """The UI password follows the cluster like its secret; one deployed before the gateway existed (no
    password held, no gateway entry) gets one at its next generation, its Spark secret unchanged."""
    client = clean_etcd.client
    store = DcmStore(client)
    for host in ("a", "b", "c"):
        register(store, host, 4, 8)
    first = store.reserve(spec("face", workers=2)).record
    password = store.held_secrets("face")["secrets"]["ui_password"]
    assert password == first["ui_password"] and len(password) >= 32
    store.reserve(spec("face", workers=3), strategy="all-at-once")
    assert store.held_secrets("face")["secrets"]["ui_password"] == password
    # as an older release left it
    held = store.held_secrets("face")
    client.put(keys.secrets_key("face"),
               json.dumps(dict(held, secrets={k: v for k, v in held["secrets"].items() if k != "ui_password"})))
    client.delete(keys.gateway_key("face"))
    store.reserve(spec("face", workers=2), strategy="all-at-once")
    given = store.held_secrets("face")["secrets"]
    assert given["ui_password"] and given["ui_password"] != password and given["secret"] == first["secret"]
    entry = json.loads(client.get(keys.gateway_key("face")).value)
    assert entry["htpasswd"].startswith("face:{SSHA}") and given["ui_password"] not in json.dumps(entry)
