"""playbooks/gc.yml through ansible-playbook, against the real Docker engine and a real TLS etcd.

The playbook has no scope label (it collects the whole host, like the agents), so on a shared
engine it runs in check mode only: it must read the desired state from etcd, plan both passes
and say per host what would go, and remove nothing. The objects planted here carry this run's
test label and are removed by it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from support import BIN, REPO, ansible_env

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys

from ansible_collections.dcspark.dcm.plugins.module_utils.core import labels
from docker_fixtures import cleanup, container, derive_image, engine, import_base

pytestmark = [pytest.mark.docker, pytest.mark.etcd]

HOST = "localhost"  # the inventory name, which the playbook passes as host_name


def shown(stdout: str) -> list:
    """The lines of the playbook's summary (the callback may wrap them), whitespace collapsed."""
    text = " ".join(stdout.split())
    start = text.index("TASK [Show what went]")
    # up to the next play (the registry's) or the recap
    end = min(i for i in (text.find("PLAY [", start), text.find("PLAY RECAP", start)) if i >= 0)
    return [part.strip(" '\"") for part in text[start:end].split(" - ")[1:]]


def gc_playbook(tmp_path, etcd, extra: dict, check: bool = True) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"dcm_pool": {"children": {"dcm_masters": {"hosts": {
        HOST: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}}}))
    # this machine is no pool registry, even where Debian's docker-registry package is installed (the
    # registry tests use its binary): its play must find no registry configuration here
    variables = {**etcd.playbook_vars(tmp_path),
                 "registry_config_path": str(tmp_path / "no-registry" / "config.yml"), **extra}
    cmd = [f"{BIN}/ansible-playbook", "-i", str(inventory), "playbooks/gc.yml", "-e", json.dumps(variables)]
    if check:
        cmd.append("--check")
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def planted():
    api = engine()
    run_id = uuid.uuid4().hex
    cluster = f"gcp{run_id[:8]}"
    try:
        base = import_base(api, run_id, "dcspark-gcp-test/base")
        derive_image(api, base, run_id, 1 << 20, {labels.MANAGED: "true"}, (f"dcspark-gcp-test/unused:{run_id}",))

        def node(cluster_name):
            return {labels.MANAGED: "true", labels.CLUSTER: cluster_name, labels.NODE: "worker-1",
                    labels.SPEC_HASH: "h1"}

        ids = {"needed": container(api, base, run_id, node(cluster), ["/bin/true"]),
               "orphan": container(api, base, run_id, node(f"gone{run_id[:8]}"), ["/bin/true"])}
        names = {key: api.inspect_container(cid)["Name"].lstrip("/") for key, cid in ids.items()}
        record = {"name": cluster, "spec_hash": "h1", "placement": {"master": "x", "driver": "x", "workers": [HOST]},
                  "images": {}}
        yield {"api": api, "run": run_id, "ids": ids, "names": names, "record": record}
    finally:
        problems = cleanup(api, run_id)
        api.close()
        assert not problems, problems


def test_check_mode_lists_what_would_go_per_host_and_removes_nothing(tmp_path, clean_etcd, planted):
    clean_etcd.client.put(keys.cluster_key(planted["record"]["name"]), json.dumps(planted["record"]))
    proc = gc_playbook(tmp_path, clean_etcd, {"gc_threshold": 0})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = shown(proc.stdout)
    containers = next(line for line in summary if line.startswith("containers: would remove "))
    assert planted["names"]["orphan"] in containers  # exited, and its cluster is not desired
    assert planted["names"]["needed"] not in containers  # the desired cluster's worker-1 on this host
    images = next(line for line in summary if line.startswith("images: use "))
    # threshold 0: F = U/2, and the planted unused image is a candidate, so some image would go
    assert "(threshold 0 %): target " in images and ", would remove " in images, images
    for cid in planted["ids"].values():
        assert planted["api"].inspect_container(cid)["State"]["Status"] == "exited"  # check mode: still there


def test_one_collector_can_be_turned_off_and_not_both(tmp_path, clean_etcd, planted):
    proc = gc_playbook(tmp_path, clean_etcd, {"gc_images": False})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "images: not collected (gc_images=false)" in shown(proc.stdout)
    assert "Remove least recently used DCSpark images" in proc.stdout and "skipping: [localhost]" in proc.stdout

    proc = gc_playbook(tmp_path, clean_etcd, {"gc_images": False, "gc_containers": False})
    assert proc.returncode != 0
    assert "gc_containers=false with gc_images=false leaves nothing to do" in proc.stdout


def test_a_threshold_outside_0_to_1_is_refused(tmp_path, clean_etcd, planted):
    proc = gc_playbook(tmp_path, clean_etcd, {"gc_threshold": 1.5})
    assert proc.returncode != 0
    assert "gc_threshold is a fraction of the disk between 0 and 1 (got 1.5)" in proc.stdout
