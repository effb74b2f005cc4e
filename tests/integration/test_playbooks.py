"""Playbooks run for real through ansible-playbook."""

from __future__ import annotations

import json

from support import run_playbook

HOSTS = {"what_if_hosts": [{"name": "a", "cpus": 4, "memory": "8g"}, {"name": "b", "cpus": 2, "memory": "4g"}]}


def test_plan_playbook_resolves_spec_name_from_the_collection():
    proc = run_playbook("playbooks/plan.yml", {"spec": "face.json", **HOSTS})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # face: master 0.5 CPU/768m -> a (rate 0, name); driver -> b (a's rate is now > 0);
    # workers 3 x (1 CPU, 1g): v(a) = min(3.5/1, 7.25g/1g) = 3, v(b) = min(1/1, 3g/1g) = 1 -> a a a
    assert 'workers: a, a, a' in proc.stdout
    assert 'master: a' in proc.stdout and 'driver: b' in proc.stdout


def test_plan_playbook_names_a_missing_spec():
    proc = run_playbook("playbooks/plan.yml", {"spec": "nope.json"})
    assert proc.returncode != 0
    assert "spec nope.json is neither a file here nor in" in proc.stdout + proc.stderr


def test_plan_playbook_reports_an_infeasible_spec(tmp_path):
    spec = {"name": "big", "runtime": {"spark_version": "4.0.1"}, "worker": {"count": 9, "cpus": 2, "memory": "2g"}}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(spec))
    proc = run_playbook("playbooks/plan.yml", {"spec": str(path), **HOSTS})
    assert proc.returncode != 0
    assert "cluster big: worker 2 of 9 (2 CPUs, 2g) fits on no host" in proc.stdout + proc.stderr
