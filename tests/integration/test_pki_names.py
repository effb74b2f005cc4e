"""The pki role refuses host names that are DCM's etcd identities, before it creates anything.

etcd takes a gRPC client's user from its certificate's common name, and a host's client certificate
names the host: a host called ``root`` would be etcd's root user.
"""

from __future__ import annotations

import subprocess

from support import BIN, REPO, ansible_env


def run_pki(tmp_path, hosts: str) -> subprocess.CompletedProcess:
    play = tmp_path / "pki.yml"
    play.write_text("- hosts: all\n  gather_facts: false\n  roles: [dcspark.dcm.pki]\n")
    cmd = [f"{BIN}/ansible-playbook", "-i", hosts, "-c", "local", str(play),
           "-e", f"dcm_pki_dir={tmp_path / 'pki'}", "-e", "dcm_masters_group=all"]
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(ANSIBLE_CONFIG=f"{REPO}/ansible.cfg"),
                          capture_output=True, text=True, timeout=300, check=False)


def test_hosts_named_like_etcd_identities_are_refused_and_nothing_is_created(tmp_path):
    done = run_pki(tmp_path, "lab1,root,dcm-agent-lab2,dcm-master,")
    assert done.returncode != 0, done.stdout
    assert "inventory names root, dcm-master, dcm-agent-lab2 are names of DCM's etcd identities" in \
        " ".join(done.stdout.split()), done.stdout
    assert "rename those hosts" in done.stdout
    assert not (tmp_path / "pki").exists()  # no CA, no key: the check comes first
