"""The DCM agent against a real etcd with TLS: registration, heartbeat, lease loss, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support import REPO

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.agent import Agent, HostFacts, load_config

pytestmark = pytest.mark.etcd

FACTS = HostFacts(cpus=4000, memory=8 << 30, address="127.0.0.1", disk={"total": 1, "free": 1})


def agent_config(etcd, tmp_path, **extra) -> str:
    data = {"host_name": "agent-test", "etcd": {"endpoints": list(etcd.endpoints), "ca_cert": etcd.ca,
                                                "client_cert": etcd.cert, "client_key": etcd.key},
            "lease_ttl": 3, "heartbeat": 1, "converge": False, **extra}
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(data))
    return str(path)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_registers_beats_and_comes_back_after_losing_its_lease(clean_etcd, tmp_path):
    client = clean_etcd.client
    agent = Agent(load_config(agent_config(clean_etcd, tmp_path)), clean_etcd.new_client(), facts=lambda: FACTS)
    agent.beat()  # first beat registers
    kv = client.get(keys.host_key("agent-test"))
    assert kv is not None and kv.lease == agent.lease
    assert json.loads(kv.value)["allocatable"] == {"cpus": 3.5, "memory": (8 << 30) - (512 << 20)}

    first = agent.lease
    agent.beat()  # refresh keeps the same lease
    assert agent.lease == first

    client.lease_revoke(first)  # etcd lost the lease (an outage longer than the TTL)
    assert client.get(keys.host_key("agent-test")) is None
    agent.beat()
    assert agent.lease != first and client.get(keys.host_key("agent-test")) is not None

    agent.deregister()
    assert client.get(keys.host_key("agent-test")) is None


def test_registration_expires_within_the_ttl_when_the_agent_dies(clean_etcd, tmp_path):
    client = clean_etcd.client
    agent = Agent(load_config(agent_config(clean_etcd, tmp_path)), clean_etcd.new_client(), facts=lambda: FACTS)
    agent.beat()
    started = time.monotonic()
    # no more beats: the process is gone without revoking
    wait_for(lambda: client.get(keys.host_key("agent-test")) is None, 10, "the registration to expire")
    assert time.monotonic() - started <= 3 + 1.5  # TTL 3 s, plus etcd's expiry granularity


def test_the_daemon_registers_and_leaves_on_sigterm(clean_etcd, tmp_path):
    client = clean_etcd.client
    lib = os.path.join(REPO, "plugins")
    code = "import sys; sys.path.insert(0, %r); from module_utils.daemons.agent import main; sys.exit(main())" % lib
    proc = subprocess.Popen([sys.executable, "-c", code, agent_config(clean_etcd, tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        record = wait_for(lambda: client.get(keys.host_key("agent-test")), 15, "the daemon to register")
        assert json.loads(record.value)["name"] == "agent-test"
        show = subprocess.run([sys.executable, "-c", code, "--show", agent_config(clean_etcd, tmp_path)],
                              capture_output=True, text=True, timeout=30, check=False)
        assert show.returncode == 0 and json.loads(show.stdout)["name"] == "agent-test"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert client.get(keys.host_key("agent-test")) is None  # revoked at once, not after the TTL
        assert "revoked lease" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    show = subprocess.run([sys.executable, "-c", code, "--show", agent_config(clean_etcd, tmp_path)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert show.returncode == 1 and "is not registered" in show.stderr


def test_the_daemon_survives_an_unreachable_etcd(tmp_path):
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"host_name": "lonely", "etcd": {"endpoints": ["https://127.0.0.1:9"], "timeout": 0.5},
                                "lease_ttl": 3, "heartbeat": 1}))
    lib = os.path.join(REPO, "plugins")
    code = "import sys; sys.path.insert(0, %r); from module_utils.daemons.agent import main; sys.exit(main())" % lib
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2.5)  # a few failed beats
        assert proc.poll() is None, "the agent must keep retrying, not exit"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "no etcd endpoint answered" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
