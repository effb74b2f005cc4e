"""roles/flannel run for real with ansible-playbook on this machine: it must stop before changing anything
when flannel's release artifact cannot be had, and say which variable to set and which file it expects.

flanneld itself cannot run here (no release download, no systemd as PID 1), so this covers the path every
site without the artifact takes; molecule/flannel runs the whole role on simulated hosts. Everything the role
would write is pointed into tmp_path (unit, binary, cache, daemon.json), and the etcd configuration key into a
prefix of its own on the test etcd (conftest.py), so the checks that nothing was created are exact.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import uuid

import pytest
from support import BIN, REPO, ansible_env

from ansible_collections.dcspark.dcm.plugins.module_utils.state.keys import prefix_end

pytestmark = pytest.mark.etcd

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
VERSION = "v0.28.9"
ARTIFACT = f"flannel-{VERSION}-linux-{ARCH}.tar.gz"
SYSTEM_UNIT = "/etc/systemd/system/flanneld.service"


@pytest.fixture
def target(tmp_path, etcd):
    """A throwaway target: localhost in an inventory of its own, every path of the role under tmp_path."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"dcm_pool": {"children": {"dcm_masters": {"hosts": {
        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}}}))
    playbook = tmp_path / "flannel.yml"
    playbook.write_text("- hosts: dcm_pool\n  gather_facts: true\n  roles:\n    - role: dcspark.dcm.flannel\n")
    prefix = f"/dcm-test-flannel-role-{uuid.uuid4().hex[:8]}/network"
    settings = {
        **etcd.playbook_vars(tmp_path),
        "flannel_etcd_prefix": prefix,
        "flannel_version": VERSION,
        "flannel_binary": str(tmp_path / "bin" / "flanneld"),
        "flannel_unit_path": str(tmp_path / "systemd" / "flanneld.service"),
        "docker_daemon_config_path": str(tmp_path / "docker" / "daemon.json"),
        "upstream_binary_cache_dir": str(tmp_path / "cache"),
        # nothing may be fetched from the internet by a test: an address that refuses at once
        "flannel_download_url": "http://127.0.0.1:9/flannel/{version}/flannel-{version}-linux-{arch}.tar.gz",
    }
    system_unit_before = os.path.exists(SYSTEM_UNIT)
    yield tmp_path, inventory, playbook, prefix, settings
    root = prefix.rsplit("/", 1)[0] + "/"
    etcd.client.delete(root, prefix_end(root))
    assert os.path.exists(SYSTEM_UNIT) == system_unit_before


def run_role(target, **overrides) -> tuple:
    _tmp, inventory, playbook, _prefix, settings = target
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), str(playbook),
           "-e", json.dumps({**settings, **overrides})]
    proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                          capture_output=True, text=True, timeout=600, check=False)
    return proc, " ".join((proc.stdout + proc.stderr).split())


def assert_nothing_changed(etcd, target):
    tmp, _inventory, _playbook, prefix, settings = target
    assert etcd.client.get(prefix + "/config") is None, "the network configuration was written to etcd"
    for created in ("flannel_binary", "flannel_unit_path", "docker_daemon_config_path"):
        assert not os.path.exists(settings[created]), f"{created} {settings[created]} was created"
    cache = tmp / "cache"
    assert not cache.exists() or not any(path.is_file() for path in cache.rglob("*")), "something was cached"
    if not os.path.exists(SYSTEM_UNIT):
        return
    with open(SYSTEM_UNIT, encoding="utf-8") as handle:
        assert str(tmp) not in handle.read(), "the role wrote the system's flanneld unit"


def test_no_pinned_checksum_stops_the_role_naming_flannel_checksums(etcd, target):
    proc, said = run_role(target)
    assert proc.returncode != 0, said[-3000:]
    assert "flannel_checksums" in said and ARTIFACT in said and VERSION in said, said[-3000:]
    assert_nothing_changed(etcd, target)


def test_a_missing_local_copy_stops_the_role_naming_flannel_local_artifact(etcd, target):
    tmp = target[0]
    missing = tmp / "mirror" / ARTIFACT
    proc, said = run_role(target, flannel_local_artifact=str(missing),
                          flannel_checksums={VERSION: {ARCH: "sha256:" + "ab" * 32}})
    assert proc.returncode != 0, said[-3000:]
    assert "flannel_local_artifact" in said and ARTIFACT in said and str(missing) in said, said[-3000:]
    assert_nothing_changed(etcd, target)


def test_an_unreachable_download_stops_the_role_naming_flannel_local_artifact(etcd, target):
    proc, said = run_role(target, flannel_checksums={VERSION: {ARCH: "sha256:" + "cd" * 32}})
    assert proc.returncode != 0, said[-3000:]
    assert "could not be downloaded" in said, said[-3000:]
    assert "flannel_local_artifact" in said and ARTIFACT in said, said[-3000:]
    assert_nothing_changed(etcd, target)


def test_a_local_copy_that_does_not_match_the_pin_is_refused(etcd, target):
    tmp = target[0]
    copy = tmp / "mirror" / ARTIFACT
    copy.parent.mkdir()
    copy.write_bytes(b"not flannel's release artifact\n")
    proc, said = run_role(target, flannel_local_artifact=str(copy),
                          flannel_checksums={VERSION: {ARCH: "sha256:" + "ef" * 32}})
    assert proc.returncode != 0, said[-3000:]
    assert "flannel_local_artifact" in said and "not the pinned" in said, said[-3000:]
    assert_nothing_changed(etcd, target)


def test_bad_settings_stop_the_role_before_the_artifact(etcd, target):
    proc, said = run_role(target, flannel_etcd_endpoints=["http://127.0.0.1:2379"])
    assert proc.returncode != 0 and "all https://" in said, said[-3000:]
    proc, said = run_role(target, flannel_backend="udp")
    assert proc.returncode != 0 and "flannel_backend" in said, said[-3000:]
    assert_nothing_changed(etcd, target)


def run_config_step(target, **overrides) -> tuple:
    """Only the role's etcd step (tasks_from: config), which needs no flanneld."""
    tmp, _inventory, playbook, _prefix, _settings = target
    step = tmp / "config.yml"
    step.write_text("- hosts: dcm_pool\n  gather_facts: false\n  tasks:\n    - ansible.builtin.include_role:\n"
                    "        name: dcspark.dcm.flannel\n        tasks_from: config\n")
    return run_role((tmp, target[1], step, target[3], target[4]), **overrides)


def test_the_roles_etcd_step_writes_flannels_config_once_and_guards_it(etcd, target):
    prefix = target[3]
    proc, said = run_config_step(target)
    assert proc.returncode == 0, said[-3000:]
    kv = etcd.client.get(prefix + "/config")
    assert json.loads(kv.value) == {"Network": "10.40.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}

    proc, said = run_config_step(target)
    assert proc.returncode == 0 and "changed=0" in said, said[-3000:]
    assert etcd.client.get(prefix + "/config").mod_revision == kv.mod_revision

    proc, said = run_config_step(target, flannel_backend="host-gw")
    assert proc.returncode != 0 and "flannel_config_force" in said, said[-3000:]
    assert etcd.client.get(prefix + "/config").mod_revision == kv.mod_revision

    # a forced change notifies the restart of flanneld; this target has no systemd, so the role is told
    # what a host where flanneld does not run would report (its record of flanneld's state)
    proc, said = run_config_step(target, flannel_backend="host-gw", flannel_config_force=True,
                                 flannel__active={"status": {"ActiveState": "inactive"}})
    assert proc.returncode == 0, said[-3000:]
    assert json.loads(etcd.client.get(prefix + "/config").value)["Backend"] == {"Type": "host-gw"}
    assert "flanneld restarts to read it" in said and "RUNNING HANDLER [dcspark.dcm.flannel : Restart the flanneld" in said
    assert "skipping: [localhost]" in said.split("RUNNING HANDLER [dcspark.dcm.flannel : Restart the flanneld", 1)[1]
