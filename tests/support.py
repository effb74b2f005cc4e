"""Helpers for tests that run the collection's modules through Ansible for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".collections")
BIN = os.path.dirname(sys.executable)


def ensure_collection_link() -> None:
    """`make setup` links the checkout as .collections/ansible_collections/dcspark/dcm; direct pytest runs get it here."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "dcspark", "dcm")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(REPO, os.path.dirname(link)), link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


def ansible_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    env.update(extra)
    return env


def run_module(module: str, args: dict, check: bool = False, diff: bool = False, timeout: int = 300) -> dict:
    """Run ``dcspark.dcm.<module>`` on localhost with ``args``; return its result dict."""
    cmd = [os.path.join(BIN, "ansible"), "localhost", "-m", f"dcspark.dcm.{module}"]
    if args:  # `-a '{}'` would be read as a free-form parameter
        cmd += ["-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=timeout, check=False)
    try:
        report = json.loads(proc.stdout)
        return report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"ansible gave no JSON result (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None


def run_playbook(playbook: str, extra_vars: dict | None = None, check: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [os.path.join(BIN, "ansible-playbook"), playbook]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def role_yaml(role: str, *parts: str):
    """A YAML file of one of the collection's roles (defaults, argument specs...), parsed."""
    import yaml  # pylint: disable=import-outside-toplevel

    with open(os.path.join(REPO, "roles", role, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def trusted(value):
    """Role files are trusted templates: Ansible 2.19 renders only strings marked so, and strings
    from yaml.safe_load are not."""
    from ansible.template import trust_as_template  # pylint: disable=import-outside-toplevel

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value
