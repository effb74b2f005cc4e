"""plan.yml (and the first play of deploy_cluster.yml) check what the deploy needs before anything is
built: the app files exist, pyspark==<runtime.spark_version> is a release on the package index the image
build installs from, and the pip packages resolve there (dcspark.dcm.dcm_spec with check_index).

Tests marked "PyPI" ask the real index (https://pypi.org/simple, the build's default) and fail, not skip,
when it cannot be reached. The others use a canned index on loopback or need no index at all.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from support import BIN, REPO, ansible_env

PYPI = "https://pypi.org/simple"
HOSTS = {"what_if_hosts": [{"name": "a", "cpus": 8, "memory": "32g"}, {"name": "b", "cpus": 4, "memory": "16g"}]}
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def run(playbook: str, extra_vars: dict, inventory: str | None = None, local_index: bool = False) -> tuple:
    """``(completed process, seconds)`` of ansible-playbook; ``local_index`` drops proxy variables
    (a canned index on loopback)."""
    cmd = [os.path.join(BIN, "ansible-playbook"), playbook, "-e", json.dumps(extra_vars)]
    if inventory:
        cmd += ["-i", inventory]
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1")
    if local_index:
        for name in PROXY_VARIABLES:
            env.pop(name, None)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, time.monotonic() - started


def output(proc: subprocess.CompletedProcess) -> str:
    return " ".join((proc.stdout + proc.stderr).split())  # messages are folded over lines


def require_pypi() -> None:
    """Fail (never skip) when PyPI cannot be asked: these tests are about asking it."""
    try:
        with urllib.request.urlopen(f"{PYPI}/pyspark/", timeout=15) as response:
            response.read(1)
    except OSError as exc:
        pytest.fail(f"this test asks the package index {PYPI} (the image build's default) and cannot reach it "
                    f"from here ({exc}); give this machine access to it (proxy: https_proxy, CA: SSL_CERT_FILE)")


def spec_copy(folder, name: str = "face.json", app_main: str | None = None, **runtime) -> str:
    """A copy of one of the collection's specs and its app folder in ``folder``, with ``runtime`` fields
    and app.main replaced."""
    with open(os.path.join(REPO, "specs", name), encoding="utf-8") as handle:
        spec = json.load(handle)
    app_dir = spec["runtime"]["app_dir"]
    shutil.copytree(os.path.join(REPO, "specs", app_dir), os.path.join(folder, app_dir))
    spec["runtime"].update(runtime)
    if app_main:
        spec["app"]["main"] = app_main
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    return path


# -- against PyPI ----------------------------------------------------------------------------------
def test_plan_fails_in_seconds_on_a_spark_version_pypi_does_not_have(tmp_path):
    require_pypi()
    proc, seconds = run("playbooks/plan.yml", {"spec": spec_copy(tmp_path, spark_version="4.0.9"), **HOSTS})
    print(f"plan.yml with runtime.spark_version 4.0.9 failed after {seconds:.2f} s (target: under 10 s)")
    text = output(proc)
    assert proc.returncode != 0, text
    assert f"runtime.spark_version: 4.0.9 is not a release of pyspark on {PYPI} (newest: " in text, text
    assert "4.0.x: " in text or "4.0.1" in text, text  # the releases of the series are named
    assert "TASK [Plan the cluster]" not in proc.stdout


def test_plan_names_a_pip_package_version_pypi_does_not_have(tmp_path):
    require_pypi()
    packages = ["opencv-python-headless==4.10.0.84", "numpy==9.9.9", "scikit-image==0.24.0"]
    proc, seconds = run("playbooks/plan.yml", {"spec": spec_copy(tmp_path, pip_packages=packages), **HOSTS})
    print(f"plan.yml with numpy==9.9.9 failed after {seconds:.2f} s")
    text = output(proc)
    assert proc.returncode != 0, text
    assert f"runtime.pip_packages[1]: numpy==9.9.9: no such version on {PYPI} (newest: " in text, text
    assert "runtime.spark_version" not in text and "pip_packages[0]" not in text, text


@pytest.mark.parametrize("name, summary", [
    ("face.json", f"pyspark 4.0.1 and 3 pip requirement(s) found on {PYPI}"),
    ("video_synopsis.json", f"pyspark 3.5.3 and 2 pip requirement(s) found on {PYPI}"),
])
def test_plan_checks_the_collections_specs_against_pypi(name, summary):
    require_pypi()
    proc, seconds = run("playbooks/plan.yml", {"spec": name, **HOSTS})
    print(f"plan.yml {name}: {seconds:.2f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary in output(proc)


# -- no index needed -------------------------------------------------------------------------------
def test_plan_fails_on_a_missing_app_file(tmp_path):
    proc, _seconds = run("playbooks/plan.yml", {"spec": spec_copy(tmp_path, app_main="missing.py"), **HOSTS})
    text = output(proc)
    assert proc.returncode != 0, text
    assert f"app.main: missing.py is not a file in {tmp_path}/apps/face (runtime.app_dir apps/face" in text, text
    assert "TASK [Plan the cluster]" not in proc.stdout


def test_plan_fails_on_a_missing_app_folder(tmp_path):
    proc, _seconds = run("playbooks/plan.yml", {"spec": spec_copy(tmp_path, app_dir="apps/nowhere"), **HOSTS})
    text = output(proc)
    assert proc.returncode != 0, text
    assert "runtime.app_dir: apps/nowhere is not a folder" in text, text


def test_the_index_check_can_be_turned_off(tmp_path):
    extra = {"spec": spec_copy(tmp_path, spark_version="4.0.9"), "dcm_check_index": False, **HOSTS}
    proc, _seconds = run("playbooks/plan.yml", extra, local_index=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "package index not checked (dcm_check_index=false)" in output(proc)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_index_fails_and_says_how_to_skip_the_check(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/simple"
    extra = {"spec": spec_copy(tmp_path), "spark_images_pip_index_url": url, **HOSTS}
    proc, _seconds = run("playbooks/plan.yml", extra, local_index=True)
    text = output(proc)
    assert proc.returncode != 0, text
    assert f"cannot reach package index {url} (" in text, text
    assert "-e dcm_check_index=false" in text, text


# -- a canned index: the build host's settings are the ones used ------------------------------------
class CannedIndex(http.server.BaseHTTPRequestHandler):
    """``/simple/pyspark/``: 4.0.0 and 4.0.1 (PEP 691 JSON); any other project: 404."""

    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path != "/simple/pyspark/":
            self.send_error(404)
            return
        files = [{"filename": f"pyspark-{v}.tar.gz", "url": f"/files/pyspark-{v}.tar.gz", "hashes": {}}
                 for v in ("4.0.0", "4.0.1")]
        data = json.dumps({"meta": {"api-version": "1.0"}, "name": "pyspark", "files": files}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args):
        pass


@pytest.fixture()
def canned_index():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CannedIndex)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("playbook", ["playbooks/plan.yml", "playbooks/deploy_cluster.yml"])
def test_the_index_is_the_one_the_build_host_is_given(tmp_path, canned_index, playbook):
    """spark_images_pip_index_url set for dcm_masters only (where the image build runs) is the index
    asked; deploy_cluster.yml fails in its first play, before any pool host is contacted."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"dcm_masters": {
        # a host that would only ever be this machine, should a play reach it
        "hosts": {"m1": {"ansible_host": "127.0.0.1", "ansible_connection": "local"}},
        "vars": {"spark_images_pip_index_url": canned_index}}}}}))
    spec = spec_copy(tmp_path, spark_version="4.0.9", pip_packages=[])
    proc, seconds = run(playbook, {"spec": spec, **HOSTS}, inventory=str(inventory), local_index=True)
    print(f"{playbook} with a canned index: {seconds:.2f} s")
    text = output(proc)
    assert proc.returncode != 0, text
    assert (f"runtime.spark_version: 4.0.9 is not a release of pyspark on {canned_index} "
            "(newest: 4.0.1, 4.0.0)") in text, text
    assert proc.stdout.count("PLAY [") == 1, proc.stdout  # nothing after the check ran
    assert "m1" not in proc.stdout.split("PLAY RECAP")[0], proc.stdout
