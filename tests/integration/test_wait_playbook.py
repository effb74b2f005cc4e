"""dcm_wait through ansible-playbook against a real etcd: one progress line per change, no retry noise.

The agents' reports are written to etcd by the test (as agents do), and the cluster's Spark master
``/json/`` page is a small HTTP server on loopback that lists the workers the test says are ALIVE.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support import BIN, REPO, ansible_env, run_playbook
from test_etcd_store import register, spec

from ansible_collections.dcspark.dcm.plugins.module_utils.core import naming
from ansible_collections.dcspark.dcm.plugins.module_utils.state.store import DcmStore

pytestmark = pytest.mark.etcd

PLAYBOOK = """
- name: Wait for a cluster
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Wait until face runs
      dcspark.dcm.dcm_wait:
        cluster: face
        generation: "{{ wait_generation | default(omit) }}"
        timeout: "{{ wait_timeout }}"
        poll: 0.2
        etcd_endpoints: "{{ etcd.etcd_endpoints }}"
        etcd_ca_cert: "{{ etcd.etcd_ca_cert }}"
        etcd_client_cert: "{{ etcd.etcd_client_cert }}"
        etcd_client_key: "{{ etcd.etcd_client_key }}"
      register: waited

    - name: Keep what it returned
      ansible.builtin.copy:
        content: "{{ waited | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
"""


class Master:
    """A Spark master's ``/json/`` page on loopback with ``alive`` workers of face (by their container names,
    which workers register under), and always one more, ALIVE but not face's any more (a worker just removed
    by a scale down or a move, which the master has not dropped yet): it never counts."""

    def __init__(self) -> None:
        self.alive = 0
        master = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                workers = [{"state": "ALIVE", "host": f"spark-worker-face-{i}"} for i in range(1, master.alive + 1)]
                workers.append({"state": "ALIVE", "host": "spark-worker-face-9"})
                body = json.dumps({"workers": workers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def face(clean_etcd):
    store = DcmStore(clean_etcd.client)
    lease = register(store, "a", 8, 16)
    record = store.reserve(spec("face", workers=2)).record
    master = Master()
    yield store, lease, record, master
    master.close()


def report(store: DcmStore, record: dict, lease: int, master: Master, running: set, only: bool = False) -> None:
    """The agents' reports: ``running`` nodes run, the others are created (``only``: write just ``running``)."""
    for node, host in naming.placed_nodes(record):
        if only and node not in running:
            continue
        state = "running" if node in running else "created"
        value = {"state": state, "health": "healthy", "generation": record["generation"],
                 "container": naming.container_name("face", node)}
        if node == "master":
            value["ui_port"] = master.port
        store.put_status(host, "face", node, json.dumps(value), lease)


def wait(clean_etcd, tmp_path, timeout: int = 30, **extra):
    out = tmp_path / "waited.json"
    playbook = tmp_path / "wait.yml"
    playbook.write_text(PLAYBOOK)
    proc = run_playbook(str(playbook), {"etcd": clean_etcd.module_args(), "out": str(out), "wait_timeout": timeout,
                                        **extra})
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_it_prints_a_line_per_change_and_returns_once_every_worker_is_alive(clean_etcd, face, tmp_path):
    store, lease, record, master = face
    report(store, record, lease, master, {"master", "driver"})
    # each change (one key or one counter) happens once the playbook has printed the state before it,
    # so every state is seen, in order
    steps = [lambda: report(store, record, lease, master, {"worker-1"}, only=True),
             lambda: report(store, record, lease, master, {"worker-2"}, only=True),
             lambda: setattr(master, "alive", 1), lambda: setattr(master, "alive", 2)]
    out = tmp_path / "waited.json"
    playbook = tmp_path / "wait.yml"
    playbook.write_text(PLAYBOOK)
    extra = json.dumps({"etcd": clean_etcd.module_args(), "out": str(out), "wait_timeout": 60})
    proc = subprocess.Popen([os.path.join(BIN, "ansible-playbook"), str(playbook), "-e", extra], cwd=REPO, text=True,
                            env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, progress = [], []
    for line in proc.stdout:
        output.append(line)
        if line.strip().startswith("face: "):
            progress.append(line.strip().split(" (")[0])
            if steps:
                steps.pop(0)()
    assert proc.wait(timeout=60) == 0, "".join(output)
    assert "FAILED - RETRYING" not in "".join(output)
    assert progress == ["face: 2/4 nodes running, 0/2 workers ALIVE", "face: 3/4 nodes running, 0/2 workers ALIVE",
                        "face: 4/4 nodes running, 0/2 workers ALIVE",
                        "face: 4/4 nodes running, 1/2 workers ALIVE", "face: 4/4 nodes running, 2/2 workers ALIVE"], output
    waited = json.loads(out.read_text())
    assert waited["done"] and waited["alive"] == 2 and waited["clusters"][0]["converged"]


def test_it_stops_at_once_on_a_degraded_cluster_with_the_masters_reason(clean_etcd, face, tmp_path):
    store, lease, record, master = face
    report(store, record, lease, master, {"master"})
    current, revision = store.read_cluster("face")
    degraded = dict(current, degraded={"reason": "b lost its lease: worker-2 fits on no host", "since": "now"})
    assert store.advance_rollout("face", degraded, revision)
    started = time.monotonic()
    proc, _waited = wait(clean_etcd, tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "cluster face is degraded: b lost its lease: worker-2 fits on no host" in proc.stdout
    print(f"degraded noticed after {time.monotonic() - started:.1f} s (the timeout was 120 s)")


def test_a_timeout_names_the_nodes_still_missing(clean_etcd, face, tmp_path):
    store, lease, record, master = face
    report(store, record, lease, master, {"master", "driver", "worker-1"})
    proc, _waited = wait(clean_etcd, tmp_path, timeout=2)
    assert proc.returncode != 0
    said = " ".join(proc.stdout.split())
    assert "cluster face did not come up within 2 s" in said and "worker-2 on a: created" in said, said[-2000:]


def test_a_record_removed_during_the_wait_is_said_as_undeployed_meanwhile(clean_etcd, face, tmp_path):
    """A deploy that waits while a concurrent undeploy removes the cluster fails, saying so (not "never deployed")."""
    store, lease, record, master = face
    report(store, record, lease, master, {"master"})
    playbook = tmp_path / "wait.yml"
    playbook.write_text(PLAYBOOK)
    extra = json.dumps({"etcd": clean_etcd.module_args(), "out": str(tmp_path / "waited.json"), "wait_timeout": 60,
                        "wait_generation": record["generation"]})
    proc = subprocess.Popen([os.path.join(BIN, "ansible-playbook"), str(playbook), "-e", extra], cwd=REPO, text=True,
                            env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = []
    for line in proc.stdout:
        output.append(line)
        if line.strip().startswith("face: 1/4 nodes running"):  # the wait has seen the record: undeploy now
            store.remove_cluster("face")
    assert proc.wait(timeout=60) != 0, "".join(output)
    said = " ".join("".join(output).split())
    assert "face: 1/4 nodes running" in said, said[-2000:]
    assert (f"cluster face was undeployed while this run waited for its generation {record['generation']}"
            in said), said[-2000:]
    # without the generation (a wait for a cluster nobody deployed), the message says it has no record
    proc, _waited = wait(clean_etcd, tmp_path, timeout=5)
    assert proc.returncode != 0 and "cluster face has no record in etcd" in " ".join(proc.stdout.split())
