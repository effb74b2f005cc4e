"""dcm_host_info run through Ansible on this machine, checked against what the test reads itself."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import uuid

import pytest

from support import run_module

GIB = 1 << 30


def _meminfo_total() -> int:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


@pytest.fixture(scope="module")
def facts() -> dict:
    result = run_module("dcm_host_info", {"reserve_cpus": 0.25, "reserve_memory": "1g"})
    assert result.get("failed") is not True, result
    return result


def test_cpus_match_what_limits_them(facts):
    assert facts["changed"] is False
    cpus = facts["cpus"]
    assert 0 < cpus <= os.cpu_count()
    assert facts["limits"]["cpus"]["proc"] == os.cpu_count()
    assert cpus == min(facts["limits"]["cpus"].values())
    if facts["cpu_source"] == "proc":
        assert cpus == os.cpu_count()
    elif facts["cpu_source"] == "cpuset":
        assert cpus == len(os.sched_getaffinity(0))
    else:
        assert facts["cpu_source"] == "cgroup-quota"


def test_memory_matches_meminfo_or_the_cgroup_limit(facts):
    total = _meminfo_total()
    assert facts["limits"]["memory"]["proc"] == total
    if facts["memory_source"] == "proc":
        assert facts["memory"] == total
    else:
        assert facts["memory_source"] == "cgroup"
        assert 0 < facts["memory"] < total


def test_allocatable_is_total_minus_the_reserve(facts):
    assert facts["reserved"] == {"cpus": 0.25, "memory": GIB}
    assert facts["allocatable"]["cpus"] == pytest.approx(max(facts["cpus"] - 0.25, 0))
    assert facts["allocatable"]["memory"] == max(facts["memory"] - GIB, 0)


def test_disk_hostname_kernel_address(facts):
    stat = os.statvfs("/")
    assert facts["disk"]["path"] == "/"
    assert facts["disk"]["total"] == stat.f_blocks * stat.f_frsize
    assert 0 <= facts["disk"]["available"] <= facts["disk"]["free"] <= facts["disk"]["total"]
    assert facts["hostname"] == socket.gethostname()
    assert facts["kernel"] == os.uname().release
    if facts["address"] is None:
        assert facts["address_error"]
    elif shutil.which("ip"):
        shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", facts["interface"]],
                               capture_output=True, text=True, check=True).stdout
        assert facts["address"] in [line.split()[3].split("/")[0] for line in shown.splitlines()]


def test_check_mode_reads_the_same(facts):
    checked = run_module("dcm_host_info", {"reserve_cpus": 0.25, "reserve_memory": "1g", "gather_docker": False},
                         check=True)
    assert checked["changed"] is False
    assert (checked["cpus"], checked["memory"], checked["allocatable"]) == (
        facts["cpus"], facts["memory"], facts["allocatable"])
    assert checked["docker"] is None and "docker_error" not in checked


def test_unreachable_docker_is_reported_not_fatal(tmp_path):
    result = run_module("dcm_host_info", {"docker_host": f"unix://{tmp_path}/no-engine.sock"})
    assert result.get("failed") is not True, result
    assert result["docker"] is None
    assert "no-engine.sock" in result["docker_error"]
    assert result["cpus"] > 0


def test_a_bad_reserve_fails_with_the_option_name():
    result = run_module("dcm_host_info", {"reserve_memory": "1 GB"})
    assert result.get("failed") is True
    assert result["msg"].startswith("reserve_memory: ")


def test_a_reserve_larger_than_the_host_gives_zero():
    result = run_module("dcm_host_info", {"reserve_cpus": 100000, "reserve_memory": "1024t", "gather_docker": False})
    assert result["allocatable"] == {"cpus": 0, "memory": 0}


# -- Docker -----------------------------------------------------------------------------------
def _docker_client():
    import docker

    try:
        client = docker.from_env(timeout=20)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any reason the engine is unusable
        pytest.fail(f"no Docker engine ({exc}); `make test` starts one (scripts/ensure-docker.sh)")
    return client


@pytest.fixture()
def tiny_image():
    """An image of 2 MiB imported from a tar (no registry needed), removed afterwards."""
    client = _docker_client()
    payload = os.urandom(2 << 20)  # random, so no other image shares the layer
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    tag = f"dcspark-test-hostinfo:{uuid.uuid4().hex[:12]}"
    repository, version = tag.split(":")
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=version)
    try:
        yield client
    finally:
        client.images.remove(tag, force=True)
        client.close()


@pytest.mark.docker
def test_docker_usage_matches_the_engine(tiny_image):
    client = tiny_image
    info = client.info()
    before = client.df()
    result = run_module("dcm_host_info", {"gather_docker": True})  # ansible -a "{}" is read as a raw param
    after = client.df()
    assert result.get("failed") is not True, result
    docker = result["docker"]
    assert docker is not None, result.get("docker_error")
    assert docker["data_root"] == info["DockerRootDir"]
    stat = os.statvfs(info["DockerRootDir"])
    assert docker["filesystem"]["total"] == stat.f_blocks * stat.f_frsize
    assert docker["server_version"] == info["ServerVersion"]
    # Other tests may add or remove images meanwhile: the module's reading lies between ours.
    low, high = sorted((before["LayersSize"], after["LayersSize"]))
    assert low <= docker["images_size"] <= high
    assert docker["images_size"] >= 2 << 20  # at least the image this test imported
    assert min(len(before["Images"]), len(after["Images"])) <= docker["images"] <= max(
        len(before["Images"]), len(after["Images"]))
    assert docker["images"] >= 1
    assert docker["containers"] >= docker["containers_running"] >= 0


@pytest.fixture()
def empty_image():
    """An image with no files of its own: the host's /usr and libraries are bind-mounted read-only."""
    client = _docker_client()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("tmp", "proc", "sys", "etc"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    tag = f"dcspark-test-hostinfo-run:{uuid.uuid4().hex[:12]}"
    repository, version = tag.split(":")
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=version)
    try:
        yield client, tag
    finally:
        client.images.remove(tag, force=True)
        client.close()


READ_LIMITS = (
    "import json; from ansible_collections.dcspark.dcm.plugins.module_utils.host import hostinfo as h; "
    "c, m = h.cpus(), h.memory(); print(json.dumps([c.value, c.source, m.value, m.source]))"
)


@pytest.mark.docker
@pytest.mark.parametrize("cgroup_options", [
    # Docker's default view: the container's own cgroup appears at the mount point.
    pytest.param({}, id="own-cgroup-at-mount"),
    # The sandbox's host containers: the whole hierarchy, the container's cgroup deep inside.
    pytest.param({"cgroupns": "host", "volumes": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}}},
                 id="whole-hierarchy"),
])
def test_container_limits_win_over_proc_inside_a_container(empty_image, cgroup_options):
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("the container borrows the host's /usr/bin/python3, which is missing")
    client, tag = empty_image
    volumes = {path: {"bind": path, "mode": "ro"} for path in ("/usr", "/lib", "/lib64", "/bin") if os.path.isdir(path)}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    volumes[repo] = {"bind": "/c/ansible_collections/dcspark/dcm", "mode": "ro"}
    volumes.update(cgroup_options.get("volumes", {}))
    options = {key: value for key, value in cgroup_options.items() if key != "volumes"}
    runs = {}
    for name, limits in {
        "quota": {"nano_cpus": 500_000_000, "mem_limit": "300m"},
        "cpuset": {"cpuset_cpus": "0"},
    }.items():
        output = client.containers.run(
            tag, [os.path.realpath("/usr/bin/python3"), "-c", READ_LIMITS], remove=True, volumes=volumes,
            environment={"PYTHONPATH": "/c", "PYTHONDONTWRITEBYTECODE": "1"}, **limits, **options,
        )
        runs[name] = json.loads(output)
    assert runs["quota"] == [500, "cgroup-quota", 300 << 20, "cgroup"]
    assert runs["cpuset"][:2] == [1000, "cpuset" if os.cpu_count() > 1 else "proc"]
    assert runs["cpuset"][3] == "proc" and runs["cpuset"][2] == _meminfo_total()
