"""AWX readiness, as far as it can be checked without an AWX controller (docs/awx.md).

Real here: the collection tarball `ansible-galaxy collection build` makes of this checkout, the
execution environment's build context made by `ansible-builder create` from
awx/execution-environment.yml (pins and collections checked against requirements-dev.txt and
galaxy.yml), the tarball installed the way the image's galaxy stage installs it, ansible-lint's
module-argument check of every awx.awx task, the job templates and surveys against the playbooks
they run, and configure.yml refusing to start without its settings. Not here: building the image
(no container registry to pull the base image from) and talking to a controller.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from support import BIN, REPO, ansible_env, trusted

AWX = os.path.join(REPO, "awx")
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def galaxy() -> dict:
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def pin(package: str) -> str:
    with open(os.path.join(REPO, "requirements-dev.txt"), encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(f"{package}=="):
                return line.strip()
    raise AssertionError(f"{package} is not pinned in requirements-dev.txt")


def run(*argv: str, cwd: str = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """awx/ copied aside, the collection tarball built into it, then `ansible-builder create`."""
    work = tmp_path_factory.mktemp("awx")
    definition = work / "awx"
    shutil.copytree(AWX, definition, ignore=shutil.ignore_patterns("*.tar.gz"))
    built = run(os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                str(definition), REPO)
    assert built.returncode == 0, built.stdout + built.stderr
    created = run(os.path.join(BIN, "ansible-builder"), "create", "-f", str(definition / "execution-environment.yml"),
                  "-c", str(work / "context"))
    assert created.returncode == 0, created.stdout + created.stderr
    return work


def test_the_ee_context_carries_the_collection_and_the_tested_ansible(context):
    version = galaxy()["version"]
    dockerfile = (context / "context" / "Dockerfile").read_text(encoding="utf-8")
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', dockerfile, re.MULTILINE)
    assert refs and pin("ansible-core") in refs.group(1).split(), dockerfile[:800]
    assert "ansible-galaxy collection install" in dockerfile and "-r requirements.yml" in dockerfile
    build = context / "context" / "_build"
    tarball = build / "collections" / f"dcspark-dcm-{version}.tar.gz"
    assert tarball.is_file()
    requirements = yaml.safe_load((build / "requirements.yml").read_text(encoding="utf-8"))["collections"]
    wanted = {entry["name"]: entry.get("version") for entry in requirements}
    assert wanted.pop(f"collections/dcspark-dcm-{version}.tar.gz") is None
    assert wanted == galaxy()["dependencies"]  # the EE brings exactly what the collection depends on
    for name in ("requirements.txt", "bindep.txt"):
        assert (build / name).read_text(encoding="utf-8") == (context / "awx" / name).read_text(encoding="utf-8")


def test_the_tarball_installs_with_every_role_playbook_and_module(context, tmp_path):
    version = galaxy()["version"]
    installed = run(os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", str(tmp_path),
                    str(context / "context" / "_build" / "collections" / f"dcspark-dcm-{version}.tar.gz"))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = tmp_path / "ansible_collections" / "dcspark" / "dcm"
    for role in os.listdir(os.path.join(REPO, "roles")):
        if os.path.isdir(os.path.join(REPO, "roles", role)):
            assert (root / "roles" / role / "tasks" / "main.yml").is_file(), role
    for folder in ("playbooks", "plugins/modules", "plugins/module_utils", "specs"):
        shipped = {name for name in os.listdir(os.path.join(REPO, folder)) if not name.startswith("__")}
        assert shipped <= set(os.listdir(root / folder)), folder
    assert not list(root.rglob("*.tar.gz")) and not (root / ".venv").exists()


def awx_settings() -> dict:
    with open(os.path.join(AWX, "awx_vars.yml"), encoding="utf-8") as handle:
        variables = trusted(yaml.safe_load(handle))
    return Templar(loader=DataLoader(), variables=variables).template(variables)


def test_job_templates_run_playbooks_that_exist_with_the_variables_their_surveys_set():
    settings = awx_settings()
    templates = {t["name"].removeprefix(settings["awx_template_prefix"]): t for t in settings["awx_job_templates"]}
    assert sorted(templates) == ["deploy_cluster", "gc", "rollback_cluster", "scale_cluster", "site", "status",
                                 "undeploy_cluster"]
    for name, template in templates.items():
        playbook = os.path.join(REPO, template["playbook"])
        assert os.path.isfile(playbook), playbook
        text = open(playbook, encoding="utf-8").read()
        for question in template.get("survey", {}).get("spec", []):
            assert question["type"] in SURVEY_TYPES and question["question_name"] and "required" in question
            assert re.search(rf"\b{question['variable']}\b", text), f"{name}: {playbook} never reads {question['variable']}"
            if question["type"] == "multiplechoice":
                assert question["default"] in question["choices"], question
    specs = templates["deploy_cluster"]["survey"]["spec"][0]
    assert specs["variable"] == "spec" and specs["choices"] == settings["awx_cluster_specs"]
    for spec in specs["choices"]:
        assert os.path.isfile(os.path.join(REPO, "specs", spec)), spec
    assert settings["awx_gc_interval_minutes"] == 5  # the paper's GC period
    configure = open(os.path.join(AWX, "configure.yml"), encoding="utf-8").read()
    assert 'unified_job_template: "{{ awx_template_prefix }}gc"' in configure
    assert "RRULE:FREQ=MINUTELY;INTERVAL={{ awx_gc_interval_minutes | int }}" in configure


def test_every_awx_task_passes_ansible_lint_with_its_module_arguments_checked():
    result = run(os.path.join(BIN, "ansible-lint"), "--offline", "awx")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "args[" not in result.stdout + result.stderr  # awx.awx options validated against the modules


def test_configure_refuses_to_start_without_its_settings_and_changes_nothing():
    result = run(os.path.join(BIN, "ansible-playbook"), "--check", os.path.join(AWX, "configure.yml"))
    assert result.returncode != 0
    assert "Set awx_project_url" in result.stdout and "awx_inventory_file" in result.stdout, result.stdout
    assert "ok=0" in result.stdout and "changed=0" in result.stdout  # it stopped at the first task
