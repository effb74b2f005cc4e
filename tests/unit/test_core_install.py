"""The DCM core as the agent and master roles install it: every module of the tree, and importable.

The roles copy ``dcm_core_files`` (roles/dcm/vars/main.yml) into ``<prefix>/lib/dcm`` and start
``python3 -c 'from dcm.daemons.agent import main'``. This evaluates those variables through Ansible,
lays the files out the same way in a temporary folder and starts both daemons' ``--help``-free entry
points far enough to import everything they use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from support import REPO, run_playbook

CORE = os.path.join(REPO, "plugins", "module_utils")

PLAYBOOK = """
- name: What the roles install
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Read the dcm role's variables as a role that depends on it sees them
      ansible.builtin.include_vars:
        file: "{{ repo }}/roles/dcm/vars/main.yml"

    - name: Write them down
      ansible.builtin.copy:
        content: "{{ {'files': dcm_core_files, 'packages': dcm_core_packages} | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
      vars:
        role_path: "{{ repo }}/roles/dcm_agent"
"""


def test_the_roles_install_every_module_of_the_core_and_the_daemons_import(tmp_path):
    playbook = tmp_path / "core.yml"
    playbook.write_text(PLAYBOOK)
    out = tmp_path / "core.json"
    proc = run_playbook(str(playbook), {"repo": REPO, "out": str(out)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = json.loads(out.read_text())
    on_disk = sorted(os.path.relpath(os.path.join(folder, name), CORE)
                     for folder, dirs, names in os.walk(CORE) if "__pycache__" not in folder
                     for name in names if name.endswith(".py"))
    assert listed["files"] == on_disk
    assert listed["packages"] == sorted({os.path.dirname(path) for path in on_disk if os.path.dirname(path)})

    lib = tmp_path / "lib" / "dcm"
    for package in listed["packages"]:
        (lib / package).mkdir(parents=True)
    for path in listed["files"]:
        shutil.copyfile(os.path.join(CORE, path), lib / path)
    for daemon in ("agent", "master"):
        started = subprocess.run([sys.executable, "-c", f"from dcm.daemons.{daemon} import main; print(main.__module__)"],
                                 env={"PYTHONPATH": str(tmp_path / "lib"), "PATH": os.environ["PATH"]},
                                 capture_output=True, text=True, timeout=60, check=False)
        assert started.returncode == 0 and started.stdout.strip() == f"dcm.daemons.{daemon}", started.stderr
