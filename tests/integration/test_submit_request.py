"""submit.yml's first play: what the command line asks for is checked before anything reaches a host.

`-e 'args=["--limit", "10"]'` is what a user types first, and Ansible cuts a key=value extra var at its
first space: the job would get '["--limit",' as its arguments. The play refuses such a value, says why
and how to pass it; whole values in either form are decoded.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from support import BIN, REPO, ansible_env


def submit(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    app = tmp_path / "count.py"
    app.write_text("print(1)\n")
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
           os.path.join(REPO, "playbooks", "submit.yml"), "-e", "cluster=face", "-e", f"app={app}",
           "-e", f"ansible_python_interpreter={os.path.join(BIN, 'python')}", *extra]
    # the inventory has no dcm_masters: the run stops after the first play whatever it decided
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("extra,name", [
    ('args=["--limit", "10"]', "args"),
    ('files=["a.py", "b.py"]', "files"),
    ('conf={"spark.executor.memory": "512m"}', "conf"),
])
def test_a_value_cut_at_a_space_is_refused_saying_how_to_pass_it(tmp_path, extra, name):
    run = submit(tmp_path, "-e", extra)
    assert run.returncode != 0
    out = " ".join((run.stdout + run.stderr).split())  # where a failure is shown depends on the environment
    assert f"{name} must be a JSON" in out and "cuts the value at its first space" in out, run.stdout[-3000:]
    assert "Check the cluster's name" not in run.stdout  # stopped at the first check


@pytest.mark.parametrize("extra", [['-e', 'args=["--limit","10"]', "-e", 'conf={"a":"b"}'],
                                   ["-e", '{"args": ["--limit", "10"], "conf": {"a": "b"}}']])
def test_whole_values_in_either_form_pass_the_check(tmp_path, extra):
    run = submit(tmp_path, *extra)
    assert "Check that args and files are JSON lists" in run.stdout and "must be a JSON" not in run.stdout + run.stderr, \
        run.stdout[-3000:]
    assert "Check the cluster's name" in run.stdout
