"""The shipped inventories describe a pool site.yml accepts: the group layout and the derived
addresses (etcd endpoints, registry) come out as the roles will read them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import BIN, REPO, ansible_env


def inventory(name: str) -> dict:
    proc = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", f"inventories/{name}", "--list"],
                          cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def hosts_of(data: dict, group: str) -> set:
    found = set(data.get(group, {}).get("hosts", []))
    for child in data.get(group, {}).get("children", []):
        found |= hosts_of(data, child)
    return found


@pytest.mark.parametrize(("name", "masters", "pool_size"), [("example", 3, 11), ("local", 1, 1), ("sandbox", 3, 3)])
def test_inventory_has_the_pool_groups(name, masters, pool_size):
    data = inventory(name)
    assert len(hosts_of(data, "dcm_masters")) == masters
    assert hosts_of(data, "dcm_masters") <= hosts_of(data, "dcm_pool")
    assert len(hosts_of(data, "dcm_pool")) == pool_size


@pytest.mark.parametrize("name", ["example", "local", "sandbox"])
def test_site_playbook_parses_with_the_inventory(name):
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", f"inventories/{name}", "--syntax-check",
                           "playbooks/site.yml"],
                          cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pool_addresses_come_from_the_inventory_and_facts(tmp_path):
    """The dcm role's derived endpoints read other hosts' addresses (role defaults are not in hostvars)."""
    playbook = tmp_path / "addresses.yml"
    playbook.write_text(
        "- hosts: dcm_masters\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role: {name: dcspark.dcm.dcm, public: true}\n"
        "    - ansible.builtin.debug: {msg: '{{ dcm_etcd_endpoints | join(\",\") }}|{{ dcm_registry_address }}'}\n"
        "      run_once: true\n"
    )
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "inventories/example", str(playbook)],
                          cwd=REPO, env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379|10.0.0.11:5000"
            in proc.stdout), proc.stdout
