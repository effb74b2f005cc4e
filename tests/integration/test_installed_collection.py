"""The collection as a user gets it, not as this checkout runs it.

`ansible-galaxy collection build` makes the tarball of this checkout, `ansible-galaxy collection
install` puts it into a fresh collections path (offline: its Galaxy dependencies are the ones the
`ansible` package brings, and any attempt to reach a server goes to a closed port), and every run
happens from a directory outside the checkout, with ANSIBLE_COLLECTIONS_PATH naming only that path
and an empty Ansible configuration, so neither the checkout's ansible.cfg nor its .collections/ link
can help. Checked: what the tarball carries and leaves out, the plan playbook by its FQCN with a
spec named by bare name (the collection's specs/), by a file in the current directory and by an
absolute path, `--syntax-check` of every playbook by its FQCN, and the DCM core the agent and
master roles install, resolved from the installed role.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile

import pytest
import yaml

from support import BIN, REPO

HOSTS = [{"name": "a", "cpus": 4, "memory": "8g"}, {"name": "b", "cpus": 2, "memory": "4g"}]
# The operator playbooks a user runs by FQCN (the collection may have more; all are syntax-checked).
PLAYBOOKS = ["site", "plan", "deploy_cluster", "submit", "logs", "status", "undeploy_cluster",
             "rollback_cluster", "gc", "cordon_host"]
# A pool of one host, this machine: enough for the plays that read groups['dcm_masters'] and the
# dcm role's checks. Nothing here connects anywhere.
TINY_INVENTORY = {
    "all": {
        "children": {
            "dcm_pool": {
                "children": {
                    "dcm_masters": {
                        "hosts": {
                            "localhost": {
                                "ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                            },
                        },
                    },
                    "dcm_workers": {"hosts": {}},
                },
            },
        },
    },
}
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing answers, so a download fails at once


def galaxy() -> dict:
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


class Installed:
    """The installed collection and a working directory outside the checkout to run Ansible from."""

    def __init__(self, base, tarball: str) -> None:
        self.tarball = tarball
        self.install_output = ""
        self.collections = str(base / "collections")
        self.root = os.path.join(self.collections, "ansible_collections", "dcspark", "dcm")
        self.cwd = str(base / "work")
        os.makedirs(self.cwd)
        self.config = os.path.join(self.cwd, "ansible.cfg")  # empty: Ansible's own defaults
        with open(self.config, "w", encoding="utf-8"):
            pass
        self.inventory = os.path.join(self.cwd, "pool.yml")
        with open(self.inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump(TINY_INVENTORY, handle)

    def env(self, **extra: str) -> dict:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("ANSIBLE_") and key.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
        env.pop("PYTHONPATH", None)
        env.update(
            ANSIBLE_CONFIG=self.config,
            ANSIBLE_COLLECTIONS_PATH=self.collections,
            HTTP_PROXY=CLOSED, HTTPS_PROXY=CLOSED, http_proxy=CLOSED, https_proxy=CLOSED,
            ANSIBLE_NOCOLOR="1",
        )
        env.update(extra)
        return env

    def run(self, tool: str, *argv: str, json_output: bool = False, cwd: str | None = None) -> subprocess.CompletedProcess:
        extra = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"} if json_output else {}
        return subprocess.run([os.path.join(BIN, tool), *argv], cwd=cwd or self.cwd, env=self.env(**extra),
                              capture_output=True, text=True, timeout=600, check=False)


def build_and_install(base) -> Installed:
    dist = base / "dist"
    built = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(dist), REPO],
                           cwd=str(base), capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = str(dist / f"dcspark-dcm-{galaxy()['version']}.tar.gz")
    installed = Installed(base, tarball)
    # What a user runs, without --no-deps: community.docker and the others are found installed.
    result = installed.run("ansible-galaxy", "collection", "install", tarball, "-p", installed.collections)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.path.isfile(os.path.join(installed.root, "MANIFEST.json")), result.stdout
    installed.install_output = result.stdout
    return installed


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    return build_and_install(tmp_path_factory.mktemp("installed"))


def plan(installed: Installed, spec: str, cwd: str | None = None, hosts=None) -> subprocess.CompletedProcess:
    extra = {"spec": spec, "what_if_hosts": hosts or HOSTS, "dcm_check_index": False}  # no package index offline
    return installed.run("ansible-playbook", "-i", installed.inventory, "dcspark.dcm.plan", "-e", json.dumps(extra),
                         json_output=True, cwd=cwd)


def host_results(proc: subprocess.CompletedProcess) -> list:
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from ansible-playbook (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None
    return [result for play in report["plays"] for task in play["tasks"] for result in task["hosts"].values()]


def placement(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    found = [result["placement"] for result in host_results(proc) if isinstance(result.get("placement"), dict)]
    assert len(found) == 1, proc.stdout[-4000:]
    return found[0]


def test_the_tarball_carries_what_a_user_needs_and_no_development_clutter(installed):
    with tarfile.open(installed.tarball) as tar:
        names = set(tar.getnames())
    tops = {name.split("/", 1)[0] for name in names}
    for needed in ("plugins", "roles", "playbooks", "specs", "schemas", "docs", "meta", "inventories",
                   "README.md", "LICENSE", "MANIFEST.json", "FILES.json"):
        assert needed in tops, needed
    for needed in ("specs/face.json", "specs/apps/face/detect.py", "specs/video_synopsis.json",
                   "specs/apps/video_synopsis/synopsis.py", "schemas/cluster-spec.schema.json",
                   "plugins/module_utils/daemons/agent.py", "roles/dcm/vars/main.yml", "meta/runtime.yml",
                   "inventories/example/hosts.yml",
                   # sandbox_up.yml builds its host image with these
                   "scripts/build-sandbox-image.sh", "sandbox/Dockerfile.host"):
        assert needed in names, needed
    for clutter in (".venv", ".build", ".collections", ".cache", ".ansible", ".pytest_cache", ".hypothesis", ".git",
                    ".ci", "tests", "molecule", "benchmarks", "awx", "ansible.cfg", "Makefile", "pytest.ini",
                    "requirements-dev.txt"):
        assert clutter not in tops, clutter
    for name in names:
        parts = name.split("/")
        assert "__pycache__" not in parts and ".pki" not in parts and not name.endswith((".pyc", ".tar.gz")), name
    assert {name for name in names if name.startswith("scripts/")} == {"scripts/build-sandbox-image.sh"}
    # every role, module, playbook and spec of the checkout is there
    for folder in ("roles", "playbooks", "plugins/modules", "specs"):
        shipped = {entry for entry in os.listdir(os.path.join(REPO, folder)) if not entry.startswith("__")}
        assert shipped <= set(os.listdir(os.path.join(installed.root, folder))), folder


def test_the_install_took_the_dependencies_already_installed_and_no_server(installed):
    """The install went through closed proxies: the dependencies came from the `ansible` package."""
    with open(os.path.join(installed.root, "MANIFEST.json"), encoding="utf-8") as handle:
        dependencies = json.load(handle)["collection_info"]["dependencies"]
    assert dependencies == galaxy()["dependencies"]
    for dependency in dependencies:
        assert re.search(rf"'{re.escape(dependency)}:[^']+' is already installed", installed.install_output), \
            installed.install_output


def test_plan_by_fqcn_takes_a_bare_spec_name_from_the_installed_collection(installed):
    assert not os.path.exists(os.path.join(installed.cwd, "face.json"))
    placed = placement(plan(installed, "face.json"))
    # the same plan as tests/integration/test_playbooks.py: master and driver by Eq. 2, workers packed
    assert placed["master"] == "a" and placed["driver"] == "b" and placed["workers"] == ["a", "a", "a"]


def test_plan_by_fqcn_prefers_a_spec_file_in_the_current_directory_and_takes_absolute_paths(installed, tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    mine = {"name": "face", "runtime": {"spark_version": "4.0.1"}, "worker": {"count": 1, "cpus": 1, "memory": "1g"}}
    (here / "face.json").write_text(json.dumps(mine), encoding="utf-8")
    assert placement(plan(installed, "face.json", cwd=str(here)))["workers"] == ["a"]
    elsewhere = tmp_path / "elsewhere" / "two.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps({**mine, "name": "two", "worker": {"count": 2, "cpus": 1, "memory": "1g"}}),
                         encoding="utf-8")
    assert placement(plan(installed, str(elsewhere)))["workers"] == ["a", "a"]


def test_a_missing_spec_names_the_installed_specs_folder(installed):
    proc = plan(installed, "nope.json")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "spec nope.json is neither a file here nor in " + os.path.realpath(os.path.join(installed.root, "specs")) + "/" \
        in output, output[-3000:]


def test_every_playbook_passes_syntax_check_by_its_fqcn(installed):
    names = sorted(entry[:-4] for entry in os.listdir(os.path.join(installed.root, "playbooks")) if entry.endswith(".yml"))
    assert set(PLAYBOOKS) <= set(names), names
    for inventory in (os.path.join(installed.root, "inventories", "example"), installed.inventory):
        proc = installed.run("ansible-playbook", "--syntax-check", "-i", inventory, *(f"dcspark.dcm.{n}" for n in names))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        checked = [line.split(":", 1)[1].strip() for line in proc.stdout.splitlines() if line.startswith("playbook: ")]
        assert checked == [os.path.join(installed.root, "playbooks", f"{n}.yml") for n in names], proc.stdout


def test_the_installed_dcm_role_lists_the_core_of_the_installed_collection(installed):
    """roles/dcm/vars/main.yml builds dcm_core_files from role_path/../../plugins/module_utils.

    Ansible sets role_path only for a role's own tasks: there it is the folder of the role using
    the variables (dcm_agent or dcm_master install the core), a sibling of roles/dcm. The probe's
    debug runs after the installed role dcspark.dcm.dcm (its variables, checks and argument spec)
    with role_path set as it is inside those roles.
    """
    probe = os.path.join(installed.cwd, "core.yml")
    with open(probe, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{
            "name": "The DCM core as the agent and master roles install it",
            "hosts": "dcm_masters",
            "gather_facts": False,
            "roles": [{"role": "dcspark.dcm.dcm"}],
            "tasks": [{
                "name": "Show the core's source and files",
                "ansible.builtin.debug": {"msg": {"source": "{{ dcm_core_source | realpath }}",
                                                  "files": "{{ dcm_core_files }}",
                                                  "packages": "{{ dcm_core_packages }}"}},
                "vars": {"role_path": os.path.join(installed.root, "roles", "dcm_agent")},
            }],
        }], handle, sort_keys=False)
    proc = installed.run("ansible-playbook", "-i", installed.inventory, probe, json_output=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    shown = [result["msg"] for result in host_results(proc) if isinstance(result.get("msg"), dict)]
    assert len(shown) == 1, proc.stdout[-4000:]
    core = os.path.realpath(os.path.join(installed.root, "plugins", "module_utils"))
    assert shown[0]["source"] == core
    files = shown[0]["files"]
    assert "daemons/agent.py" in files and "state/store.py" in files and "__init__.py" in files, files
    on_disk = sorted(os.path.relpath(os.path.join(folder, name), core)
                     for folder, _dirs, names in os.walk(core) for name in names
                     if name.endswith(".py") and os.path.relpath(folder, core).count(os.sep) == 0)
    assert files == on_disk
    assert "daemons" in shown[0]["packages"] and "state" in shown[0]["packages"]
