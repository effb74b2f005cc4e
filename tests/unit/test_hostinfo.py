"""Host readers on fake /proc and /sys/fs/cgroup trees, then on this machine for real."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.host import hostinfo

GIB = 1 << 30
MEMINFO_16G = "MemTotal:       16777216 kB\nMemFree:         8000000 kB\n"
V1_UNLIMITED = "9223372036854771712"


def make_tree(root, files: dict) -> str:
    for path, text in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(root)


def v1_tree(root, quota="-1", period="100000", cpuset="0-7", limit=V1_UNLIMITED, cpu_dir="cpu,cpuacct",
            extra=None) -> str:
    files = {
        "/proc/meminfo": MEMINFO_16G,
        # Docker's view with a private hierarchy: the container's path is not below the mount.
        "/proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:cpuset:/docker/abc\n1:name=systemd:/docker/abc\n",
        f"/sys/fs/cgroup/{cpu_dir}/cpu.cfs_quota_us": quota,
        f"/sys/fs/cgroup/{cpu_dir}/cpu.cfs_period_us": period,
        "/sys/fs/cgroup/cpuset/cpuset.cpus": cpuset,
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": limit,
    }
    files.update(extra or {})
    return make_tree(root, files)


def v2_tree(root, cpu_max="max 100000", memory_max="max", effective="0-7", extra=None) -> str:
    files = {
        "/proc/meminfo": MEMINFO_16G,
        "/proc/self/cgroup": "0::/\n",
        "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
        "/sys/fs/cgroup/cpu.max": cpu_max,
        "/sys/fs/cgroup/memory.max": memory_max,
        "/sys/fs/cgroup/cpuset.cpus.effective": effective,
    }
    files.update(extra or {})
    return make_tree(root, files)


# -- cgroup v1 -------------------------------------------------------------------------
def test_v1_quota_and_memory_limit_win_over_proc(tmp_path):
    root = v1_tree(tmp_path, quota="150000", period="100000", limit=str(2 * GIB))
    cpus = hostinfo.cpus(root, cpu_count=8)
    assert (cpus.value, cpus.source) == (1500, hostinfo.CGROUP_QUOTA)
    assert cpus.limits == {"proc": 8000, "cgroup-quota": 1500, "cpuset": 8000}
    memory = hostinfo.memory(root)
    assert (memory.value, memory.source) == (2 * GIB, hostinfo.CGROUP)
    assert memory.limits["proc"] == 16 * GIB


def test_v1_unlimited_values_leave_proc_in_charge(tmp_path):
    root = v1_tree(tmp_path, quota="-1", limit=V1_UNLIMITED)
    cpus = hostinfo.cpus(root, cpu_count=8)
    assert (cpus.value, cpus.source) == (8000, hostinfo.PROC)
    assert "cgroup-quota" not in cpus.limits
    memory = hostinfo.memory(root)
    assert (memory.value, memory.source) == (16 * GIB, hostinfo.PROC)
    assert "cgroup" not in memory.limits


def test_v1_limit_above_memtotal_is_no_limit(tmp_path):
    root = v1_tree(tmp_path, limit=str(64 * GIB))
    memory = hostinfo.memory(root)
    assert (memory.value, memory.source) == (16 * GIB, hostinfo.PROC)


def test_v1_separate_cpu_directory(tmp_path):
    root = v1_tree(tmp_path, quota="50000", period="100000", cpu_dir="cpu")
    assert hostinfo.cpus(root, cpu_count=8).value == 500


def test_v1_cpuset_narrower_than_quota(tmp_path):
    root = v1_tree(tmp_path, quota="400000", period="100000", cpuset="0-1,6")
    cpus = hostinfo.cpus(root, cpu_count=8)
    assert (cpus.value, cpus.source) == (3000, hostinfo.CPUSET)
    assert cpus.limits["cgroup-quota"] == 4000


def test_v1_effective_cpus_preferred_over_configured(tmp_path):
    root = v1_tree(tmp_path, cpuset="0-7", extra={"/sys/fs/cgroup/cpuset/cpuset.effective_cpus": "2-3"})
    assert hostinfo.cpus(root, cpu_count=8).limits["cpuset"] == 2000


def test_v1_nested_cgroup_found_through_mountinfo_and_parents_limit(tmp_path):
    # Like this project's machines: the memory hierarchy is mounted at its root and the
    # process sits two levels down; a parent's limit applies to its children too.
    root = make_tree(tmp_path, {
        "/proc/meminfo": MEMINFO_16G,
        "/proc/self/cgroup": "4:memory:/jobs/one\n1:cpu:/jobs/one\n3:cpuset:/\n",
        "/proc/self/mountinfo": (
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
            "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
            "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        ),
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": V1_UNLIMITED,
        "/sys/fs/cgroup/memory/jobs/memory.limit_in_bytes": str(GIB),
        "/sys/fs/cgroup/memory/jobs/one/memory.limit_in_bytes": str(4 * GIB),
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
        "/sys/fs/cgroup/cpu/jobs/one/cpu.cfs_quota_us": "250000",
        "/sys/fs/cgroup/cpu/jobs/one/cpu.cfs_period_us": "100000",
        "/sys/fs/cgroup/cpuset/cpuset.cpus": "0-3",
    })
    dirs = hostinfo.cgroup_dirs(root)
    assert dirs["memory"][0] == os.path.join(root, "sys/fs/cgroup/memory/jobs/one")
    assert dirs["memory"][-1] == os.path.join(root, "sys/fs/cgroup/memory")
    memory = hostinfo.memory(root)
    assert (memory.value, memory.source) == (GIB, hostinfo.CGROUP)
    cpus = hostinfo.cpus(root, cpu_count=4)
    assert (cpus.value, cpus.source) == (2500, hostinfo.CGROUP_QUOTA)


def test_v1_container_with_host_cgroupns_sees_its_own_cgroup_at_the_mount(tmp_path):
    # Docker mounts the container's own cgroup at /sys/fs/cgroup/<controller>/ (mount root
    # /docker/abc) while /proc/self/cgroup names the full path.
    root = make_tree(tmp_path, {
        "/proc/meminfo": MEMINFO_16G,
        "/proc/self/cgroup": "4:memory:/docker/abc\n",
        "/proc/self/mountinfo": "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": str(3 * GIB),
    })
    assert hostinfo.cgroup_dirs(root)["memory"] == [os.path.join(root, "sys/fs/cgroup/memory")]
    assert hostinfo.memory(root).value == 3 * GIB


# -- cgroup v2 -------------------------------------------------------------------------
def test_v2_cpu_max_and_memory_max(tmp_path):
    root = v2_tree(tmp_path, cpu_max="200000 100000", memory_max=str(GIB), effective="0-7")
    cpus = hostinfo.cpus(root, cpu_count=8)
    assert (cpus.value, cpus.source) == (2000, hostinfo.CGROUP_QUOTA)
    memory = hostinfo.memory(root)
    assert (memory.value, memory.source) == (GIB, hostinfo.CGROUP)
    assert hostinfo.cgroup_dirs(root)["version"] == 2


def test_v2_max_means_no_limit(tmp_path):
    root = v2_tree(tmp_path, cpu_max="max 100000", memory_max="max")
    assert (hostinfo.cpus(root, cpu_count=8).source, hostinfo.memory(root).source) == ("proc", "proc")
    assert hostinfo.cpus(root, cpu_count=8).value == 8000
    assert hostinfo.memory(root).value == 16 * GIB


def test_v2_cpuset_narrower_than_quota(tmp_path):
    root = v2_tree(tmp_path, cpu_max="600000 100000", effective="0,2,4-5")
    cpus = hostinfo.cpus(root, cpu_count=8)
    assert (cpus.value, cpus.source) == (4000, hostinfo.CPUSET)
    assert cpus.limits == {"proc": 8000, "cgroup-quota": 6000, "cpuset": 4000}


def test_v2_nested_cgroup_and_fractional_quota(tmp_path):
    root = v2_tree(tmp_path, extra={
        "/proc/self/cgroup": "0::/system.slice/dcm.service\n",
        "/sys/fs/cgroup/system.slice/cpu.max": "max 100000",
        "/sys/fs/cgroup/system.slice/dcm.service/cpu.max": "75000 100000",
        "/sys/fs/cgroup/system.slice/dcm.service/memory.max": str(512 << 20),
        "/sys/fs/cgroup/system.slice/dcm.service/cpuset.cpus.effective": "0-1",
    })
    assert hostinfo.cpus(root, cpu_count=8).value == 750
    assert hostinfo.memory(root).value == 512 << 20


# -- no cgroup at all ------------------------------------------------------------------
def test_no_cgroup_files_uses_proc(tmp_path):
    root = make_tree(tmp_path, {"/proc/meminfo": MEMINFO_16G})
    assert hostinfo.cgroup_dirs(root)["version"] is None
    cpus = hostinfo.cpus(root, cpu_count=3)
    assert (cpus.value, cpus.source, cpus.limits) == (3000, "proc", {"proc": 3000})
    memory = hostinfo.memory(root)
    assert (memory.value, memory.source) == (16 * GIB, "proc")


def test_missing_meminfo_is_an_error(tmp_path):
    with pytest.raises(OSError, match="MemTotal"):
        hostinfo.memory(str(tmp_path))


# -- small parsers ---------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("0-3,6", {0, 1, 2, 3, 6}),
    ("0", {0}),
    ("1,3-4\n", {1, 3, 4}),
    ("", set()),
])
def test_parse_cpu_list(text, expected):
    assert hostinfo.parse_cpu_list(text) == expected


@pytest.mark.parametrize("total, reserve, expected", [
    ((4000, 8 * GIB), (500, 512 << 20), (3500, 8 * GIB - (512 << 20))),
    ((400, 256 << 20), (500, 512 << 20), (0, 0)),
    ((2000, GIB), (0, 0), (2000, GIB)),
])
def test_allocatable_subtracts_the_reserve_with_a_floor(total, reserve, expected):
    assert hostinfo.allocatable(*total, *reserve) == expected


ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def test_default_route_with_the_lowest_metric_wins(tmp_path):
    root = make_tree(tmp_path, {"/proc/net/route": ROUTE_HEADER + (
        "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
        "eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        "down0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
    )})
    assert hostinfo.default_route_interface(root) == "eth0"
    assert hostinfo.address(root, lookup={"eth0": "192.0.2.7"}.get) == ("192.0.2.7", "eth0", None)


def test_no_default_route_gives_a_reason(tmp_path):
    root = make_tree(tmp_path, {"/proc/net/route": ROUTE_HEADER +
                                "eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"})
    ip, interface, reason = hostinfo.address(root, lookup=lambda name: "203.0.113.1")
    assert (ip, interface) == (None, None)
    assert "no IPv4 default route" in reason


def test_interface_without_ipv4_gives_a_reason(tmp_path):
    root = make_tree(tmp_path, {"/proc/net/route": ROUTE_HEADER +
                                "tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"})
    ip, interface, reason = hostinfo.address(root, lookup=lambda name: None)
    assert (ip, interface) == (None, "tun0")
    assert "tun0" in reason and "no IPv4" in reason


def test_hostname_and_kernel_from_proc(tmp_path):
    root = make_tree(tmp_path, {"/proc/sys/kernel/hostname": "node7\n", "/proc/sys/kernel/osrelease": "6.1.0-26-amd64\n"})
    assert (hostinfo.hostname(root), hostinfo.kernel(root)) == ("node7", "6.1.0-26-amd64")


# -- Docker, with a stand-in for the SDK's APIClient -------------------------------------
class FakeDocker:
    def info(self):
        return {"DockerRootDir": "/srv/docker", "ServerVersion": "20.10.24", "Driver": "overlay2",
                "ContainersRunning": 1}

    def df(self):
        return {"LayersSize": 1234567, "Images": [{"Id": "a"}, {"Id": "b"}],
                "Containers": [{"Id": "c1"}, {"Id": "c2"}, {"Id": "c3"}], "Volumes": []}


def test_docker_usage_reads_info_df_and_the_data_root_filesystem():
    seen = []

    def statvfs(path):
        seen.append(path)
        return {"path": path, "total": 100, "used": 40, "free": 60, "available": 50}

    usage = hostinfo.docker_usage(FakeDocker(), statvfs)
    assert seen == ["/srv/docker"]
    assert usage == {
        "data_root": "/srv/docker", "server_version": "20.10.24", "storage_driver": "overlay2",
        "images_size": 1234567, "images": 2, "containers": 3, "containers_running": 1,
        "filesystem": {"path": "/srv/docker", "total": 100, "used": 40, "free": 60, "available": 50},
    }


def test_docker_usage_when_the_data_root_is_not_visible():
    def statvfs(path):
        raise FileNotFoundError(2, "No such file or directory", path)

    usage = hostinfo.docker_usage(FakeDocker(), statvfs)
    assert usage["filesystem"] is None
    assert "/srv/docker" in usage["filesystem_error"]


def test_docker_facts_on_a_socket_nobody_listens_on(tmp_path):
    facts, reason = hostinfo.docker_facts(f"unix://{tmp_path}/absent.sock", timeout=2)
    assert facts is None
    assert reason.startswith("cannot read the Docker engine at unix://") and "absent.sock" in reason


# -- this machine, for real ------------------------------------------------------------------
def _meminfo_total() -> int:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_this_machine_cpus_within_cpu_count():
    cpus = hostinfo.cpus()
    assert 0 < cpus.value <= os.cpu_count() * 1000
    assert cpus.limits["proc"] == os.cpu_count() * 1000
    assert cpus.value == min(cpus.limits.values())
    # The cpuset is what the scheduler lets this process use.
    if "cpuset" in cpus.limits:
        assert cpus.limits["cpuset"] == len(os.sched_getaffinity(0)) * 1000


def test_this_machine_memory_within_memtotal():
    total = _meminfo_total()
    memory = hostinfo.memory()
    assert memory.limits["proc"] == total
    assert 0 < memory.value <= total
    assert memory.value == min(memory.limits.values())


def test_this_machine_finds_its_own_memory_cgroup():
    if hostinfo.cgroup_dirs()["version"] != 1:
        pytest.skip("the machine does not use cgroup v1")
    with open("/proc/self/cgroup", encoding="utf-8") as handle:
        path = next(line.strip().split(":", 2)[2] for line in handle if ":memory:" in line)
    own = os.path.normpath(os.path.join("/sys/fs/cgroup/memory", path.lstrip("/")))
    if not os.path.isdir(own):
        pytest.skip("the process's memory cgroup is not visible below the mount")
    assert hostinfo.cgroup_dirs()["memory"][0] == own


def test_this_machine_disk_matches_df():
    if not shutil.which("df"):
        pytest.skip("no df")
    fields = subprocess.run(["df", "-B1", "--output=size", "/"], capture_output=True, text=True, check=True).stdout.split()
    assert hostinfo.disk("/")["total"] == int(fields[-1])


def test_this_machine_address_matches_ip():
    ip_tool = shutil.which("ip")
    address, interface, reason = hostinfo.address()
    if interface is None:
        pytest.skip(f"no default route here: {reason}")
    if not ip_tool:
        pytest.skip("no ip command")
    shown = subprocess.run([ip_tool, "-4", "-o", "addr", "show", "dev", interface],
                           capture_output=True, text=True, check=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in shown.splitlines()]
    assert address in addresses
