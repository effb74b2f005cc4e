"""etcd's role-based access, for real: a second etcd of its own (authentication cannot be switched
off again without root), users and roles made by AccessControl, then each identity tries what it
may and may not do through the same client the agent, the master and the modules use.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import AccessDenied, DcmError, StoreError
from ansible_collections.dcspark.dcm.plugins.module_utils.interface.module import etcd_config
from ansible_collections.dcspark.dcm.plugins.module_utils.state import access, keys
from ansible_collections.dcspark.dcm.plugins.module_utils.state.etcd import EtcdClient, EtcdConfig
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore

from conftest import running_etcd
from support import run_module
from test_etcd_store import host_record, spec

from ansible_collections.dcspark.dcm.plugins.module_utils.core import naming

HOSTS = ["h1", "h2"]


def _passwords(tag: str = "") -> dict:
    users = [access.ROOT, access.MASTER] + [access.agent_user(host) for host in HOSTS]
    return {user: f"{user}-password-{tag or 'first'}-0123456789" for user in users}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """An etcd whose users and roles dcm_etcd_access made, authentication on; yields (server, password
    folder, an AccessControl acting as root)."""
    folder = tmp_path_factory.mktemp("etcd-passwords")
    with running_etcd("dcm-etcd-access-") as server:
        server.client.put(keys.cluster_key("face"), '{"name": "face"}')  # written before access control
        root = _write_passwords(folder, _passwords())
        args = {"hosts": HOSTS, "passwords": _passwords(), "etcd_endpoints": list(server.endpoints),
                "etcd_ca_cert": server.ca, "etcd_client_cert": server.gateway_cert,
                "etcd_client_key": server.gateway_key, "etcd_user": access.ROOT,
                "etcd_password_file": root[access.ROOT]}
        preview = run_module("dcm_etcd_access", args, check=True)
        assert preview.get("failed") is not True and "authentication: turned on" in preview["changes"], preview
        assert server.client.get(keys.cluster_key("face")) is not None  # still open: check mode changed nothing
        applied = run_module("dcm_etcd_access", args)
        assert applied.get("failed") is not True and applied["changed"] is True, applied
        assert f"role {access.agent_user('h1')}: granted readwrite {keys.host_key('h1')}" in applied["changes"]
        assert not any("password" in line and "-password-" in line for line in applied["changes"])
        again = run_module("dcm_etcd_access", args)
        assert (again.get("failed"), again["changed"], again["changes"]) == (None, False, []), again
        yield server, folder, access.AccessControl(_client(server, access.ROOT, root[access.ROOT]))


def _write_passwords(folder, passwords: dict) -> dict:
    paths = {}
    for user, password in passwords.items():
        path = folder / user
        path.write_text(password + "\n", encoding="utf-8")
        os.chmod(path, 0o600)
        paths[user] = str(path)
    return paths


def _client(server, user: str | None, password_file: str | None, cert: str = "") -> EtcdClient:
    """A client as DCM's identities have one: the pool's CN-less certificate, a user, a password file."""
    return EtcdClient(EtcdConfig(tuple(server.endpoints), server.ca, cert or server.gateway_cert,
                                 server.gateway_key if not cert else server.key, timeout=5.0,
                                 user=user, password_file=password_file))


def _as(secured_pool, user: str) -> EtcdClient:
    server, folder, _control = secured_pool
    return _client(server, user, str(folder / user))


def test_a_new_host_in_check_mode_is_only_reported(secured):
    _server, _folder, control = secured
    wider = access.pool_roles(HOSTS + ["h3"])
    passwords = dict(_passwords(), **{access.agent_user("h3"): "h3-password-0123456789"})
    preview = control.apply(passwords, wider, check_mode=True)
    assert f"role {access.agent_user('h3')}: added" in preview and f"user {access.agent_user('h3')}: added" in preview
    assert access.agent_user("h3") not in control.users()  # check mode wrote nothing


def test_an_agent_writes_its_host_record_status_and_events_and_reads_records(secured):
    agent = _as(secured, access.agent_user("h1"))
    store = DcmStore(agent)
    lease = store.register_host({"name": "h1", "address": "10.0.0.1"}, ttl=30)
    store.put_status("h1", "face", "worker-1", '{"state": "running"}', lease)
    store.agent_event_log("h1").record("started", "worker-1 started", cluster="face")
    assert "face" in store.clusters()
    assert ("face", "worker-1") in store.status()  # every host's reports (a flannel cluster's addresses)
    assert [event["source"] for event in store.events()] == ["h1"]
    assert store.host_names() == frozenset({"h1"})
    store.revoke(lease)  # a revoke needs write access to every key on the lease: its own only


@pytest.mark.parametrize("key", [keys.cluster_key("face"), keys.host_key("h2"), keys.LEADER,
                                 keys.images_key("face", "t1"), keys.generation_key("face", 1),
                                 keys.status_key("h2", "face", "master"),  # another host's node
                                 keys.events_prefix(keys.agent_writer("h2")) + "1",  # another agent's event
                                 keys.events_prefix("master-m1") + "1", keys.EVENTS + "00000000000000000001-h1"])
def test_an_agent_cannot_write_what_is_not_its_own(secured, key):
    agent = _as(secured, access.agent_user("h1"))
    with pytest.raises(AccessDenied) as refused:
        agent.put(key, '{"name": "forged"}')
    assert access.agent_user("h1") in str(refused.value) and key in str(refused.value)


def test_an_agent_cannot_read_generations_images_or_jobs(secured):
    agent = _as(secured, access.agent_user("h2"))
    for prefix in (keys.GENERATIONS, keys.IMAGES, keys.JOBS, keys.CORDON):
        with pytest.raises(AccessDenied):
            agent.get_prefix(prefix)


def test_the_master_moves_nodes_and_leads_but_writes_no_host_or_image(secured):
    master = _as(secured, access.MASTER)
    master.put(keys.cluster_key("face"), '{"name": "face", "moved": true}')
    master.put(keys.LEADER, "master-a")
    for key in (keys.host_key("h1"), keys.images_key("face", "t1"), keys.job_key("face", "j1")):
        with pytest.raises(AccessDenied):
            master.put(key, "{}")


def test_root_writes_everything(secured):
    root = _as(secured, access.ROOT)
    root.put(keys.images_key("face", "t1"), '{"digests": {}}')
    root.delete(keys.images_key("face", "t1"))


def test_no_user_and_a_certificate_with_a_name_are_refused(secured):
    server, _folder, _control = secured
    with pytest.raises(StoreError, match="user name is empty|permission denied"):
        _client(server, None, None).get(keys.cluster_key("face"))
    with pytest.raises(AccessDenied, match="without a common name"):
        _client(server, access.ROOT, str(secured[1] / access.ROOT), cert=server.cert).get(keys.cluster_key("face"))


def test_the_module_refuses_passwords_that_do_not_match_the_pool(secured):
    server, folder, _control = secured
    passwords = dict(_passwords(), intruder="intruder-password-0123456789")
    del passwords[access.MASTER]
    result = run_module("dcm_etcd_access", {
        "hosts": HOSTS, "passwords": passwords, "etcd_endpoints": list(server.endpoints), "etcd_ca_cert": server.ca,
        "etcd_client_cert": server.gateway_cert, "etcd_client_key": server.gateway_key,
        "etcd_user": access.ROOT, "etcd_password_file": str(folder / access.ROOT)})
    assert result["failed"] is True and "missing: ['dcm-master']" in result["msg"] and "intruder" in result["msg"]
    assert "password-first" not in json.dumps(result)


def test_a_wrong_or_missing_password_names_its_file(secured, tmp_path):
    server, _folder, _control = secured
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password-at-all\n", encoding="utf-8")
    with pytest.raises(AccessDenied, match=str(wrong)):
        _client(server, access.MASTER, str(wrong)).get(keys.LEADER)
    with pytest.raises(StoreError, match="cannot read the etcd password"):
        _client(server, access.MASTER, str(tmp_path / "absent")).get(keys.LEADER)


def test_a_module_acts_as_the_identity_its_hosts_file_names(secured, tmp_path):
    """module_defaults name one identity file; each host's file says who the modules there are."""
    server, folder, _control = secured
    identity = tmp_path / "modules.json"
    identity.write_text(json.dumps({"user": access.agent_user("h1"), "password_file": str(folder / access.agent_user("h1"))}))
    params = {**server.module_args(), "etcd_client_cert": server.gateway_cert, "etcd_client_key": server.gateway_key,
              "etcd_identity_file": str(identity)}
    agent = EtcdClient(etcd_config(params))
    assert agent.get(keys.cluster_key("face")) is not None
    with pytest.raises(AccessDenied, match=access.agent_user("h1")):
        agent.put(keys.cluster_key("face"), '{"name": "forged"}')
    # a user given to the module wins over the file; no file: no user, which etcd refuses now
    explicit = etcd_config(dict(params, etcd_user=access.ROOT, etcd_password_file=str(folder / access.ROOT)))
    assert explicit.user == access.ROOT
    with pytest.raises(StoreError, match="user name is empty|permission denied"):
        EtcdClient(etcd_config(dict(params, etcd_identity_file=str(tmp_path / "absent.json")))).get(keys.LEADER)
    identity.write_text('{"user": "dcm-agent-h1"}')
    with pytest.raises(DcmError, match="must be a JSON object with user and password_file"):
        etcd_config(params)


def test_a_daemon_running_before_access_control_goes_on_keeps_working(tmp_path):
    """Agents and masters start before site.yml's last play turns authentication on: their clients
    asked while it was off (no token) and must authenticate once it is on, not stop at "permission denied"."""
    with running_etcd("dcm-etcd-switch-") as server:
        paths = _write_passwords(tmp_path, _passwords("switch"))
        agent = _client(server, access.agent_user("h1"), paths[access.agent_user("h1")])
        master = _client(server, access.MASTER, paths[access.MASTER])
        root = _client(server, access.ROOT, paths[access.ROOT])
        master.put(keys.LEADER, "before")
        assert agent.get(keys.LEADER).value == "before"  # authentication off: both go on their certificate
        control = access.AccessControl(root)
        prepared = control.apply(_passwords("switch"), access.pool_roles(HOSTS), enable=False)
        assert "user dcm-master: added" in prepared and "authentication: turned on" not in prepared
        assert not control.enabled(_passwords("switch")[access.ROOT])  # site.yml's early pass leaves it off
        # (with authentication off a password cannot be tried, so the second pass sets them again)
        assert control.apply(_passwords("switch"), access.pool_roles(HOSTS))[-1] == "authentication: turned on"
        master.put(keys.LEADER, "after")
        agent.put(keys.host_key("h1"), "{}")
        assert agent.get(keys.cluster_key("none")) is None
        with pytest.raises(AccessDenied):
            agent.put(keys.LEADER, "forged")
        assert root.get(keys.LEADER).value == "after"


def test_a_stale_token_is_replaced_without_the_caller_noticing(secured):
    agent = _as(secured, access.agent_user("h1"))
    agent.get(keys.cluster_key("face"))
    endpoint = agent.endpoints()[0]
    agent._tokens[endpoint] = "expired.token"  # pylint: disable=protected-access
    assert agent.get(keys.cluster_key("face")) is not None
    assert agent._tokens[endpoint] != "expired.token"  # pylint: disable=protected-access


def test_an_agent_reads_the_secrets_of_its_own_host_only(secured):
    root = DcmStore(_as(secured, access.ROOT))
    leases = [root.register_host(host_record(host, 4, 8)) for host in HOSTS]
    try:
        record = root.reserve(spec("secure", workers=1)).record
        hosts = {host for _node, host in naming.placed_nodes(record)}
        agent_host = sorted(hosts)[0]
        agent = DcmStore(_as(secured, access.agent_user(agent_host)))
        assert agent.host_secrets(agent_host)["secure"]["secret"] == record["secret"]
        assert "secret" not in agent.clusters()["secure"]
        other = next(host for host in HOSTS if host != agent_host)
        with pytest.raises(AccessDenied):
            agent.host_secrets(other)
        with pytest.raises(AccessDenied):
            agent.held_secrets("secure")
    finally:
        root.remove_cluster("secure")
        for lease in leases:
            root.revoke(lease)


def test_flanneld_is_the_user_its_certificate_names_and_reaches_flannels_keys_only(secured):
    """flanneld speaks gRPC, where etcd takes the user from the client certificate's common name."""
    server, folder, _control = secured
    args = {"hosts": HOSTS, "passwords": _passwords(), "flannel_prefix": "/coreos.com/network",
            **server.module_args(), "etcd_client_cert": server.gateway_cert, "etcd_client_key": server.gateway_key,
            "etcd_user": access.ROOT, "etcd_password_file": str(folder / access.ROOT)}
    applied = run_module("dcm_etcd_access", args)
    assert applied.get("failed") is not True, applied
    assert "user h1: added (no password: known by its certificate)" in applied["changes"]
    assert "role dcm-flannel: granted readwrite /coreos.com/network/*" in applied["changes"]
    cert, key = server.named_certificate("h1")

    def etcdctl(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["etcdctl", f"--endpoints={server.endpoints[0]}", f"--cacert={server.ca}",
                               f"--cert={cert}", f"--key={key}", *argv], env={"ETCDCTL_API": "3", "PATH": os.environ["PATH"]},
                              capture_output=True, text=True, timeout=30, check=False)

    leased = etcdctl("put", "/coreos.com/network/subnets/10.5.1.0-24", '{"PublicIP": "10.0.0.1"}')
    assert leased.returncode == 0, leased.stderr
    assert etcdctl("get", "/coreos.com/network/subnets/10.5.1.0-24", "--print-value-only").stdout.strip()
    for argv in (["get", keys.cluster_key("face")], ["put", keys.host_key("h1"), "{}"]):
        refused = etcdctl(*argv)
        assert refused.returncode != 0 and "permission denied" in refused.stderr, (argv, refused)
    # a password cannot stand in for the certificate, and the user goes with the flannel backend
    with pytest.raises(AccessDenied):
        EtcdClient(EtcdConfig(tuple(server.endpoints), server.ca, server.gateway_cert, server.gateway_key,
                              user="h1", password_file=str(folder / access.ROOT))).get(keys.cluster_key("face"))
    removed = run_module("dcm_etcd_access", {key: value for key, value in args.items() if key != "flannel_prefix"})
    assert {"user h1: removed (no such identity any more)", "role dcm-flannel: removed (no such identity any more)"} \
        <= set(removed["changes"]), removed
    assert etcdctl("get", "/coreos.com/network/subnets/10.5.1.0-24").returncode != 0


def test_a_host_that_left_loses_its_identity_and_a_new_password_replaces_the_old(secured):
    """Last in this file: it changes the identities the tests above use."""
    server, folder, control = secured
    passwords = {user: password for user, password in _passwords().items() if user != access.agent_user("h2")}
    passwords[access.agent_user("h1")] = "h1-rotated-password-0123456789"
    changes = control.apply(passwords, access.pool_roles(["h1"]))
    assert f"user {access.agent_user('h2')}: removed (no such identity any more)" in changes
    assert f"user {access.agent_user('h1')}: password set" in changes
    with pytest.raises(AccessDenied):
        _client(server, access.agent_user("h2"), str(folder / access.agent_user("h2"))).get(keys.cluster_key("face"))
    with pytest.raises(AccessDenied):  # the old password file of h1
        _client(server, access.agent_user("h1"), str(folder / access.agent_user("h1"))).get(keys.cluster_key("face"))
    rotated = _write_passwords(folder, {"h1-new": passwords[access.agent_user("h1")]})
    assert _client(server, access.agent_user("h1"), rotated["h1-new"]).get(keys.cluster_key("face")) is not None
