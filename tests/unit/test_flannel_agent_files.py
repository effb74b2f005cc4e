"""The pure part of the agent's flannel backend: subnet.env, the docker0 check, the hosts files."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.daemons import converge

from ansible_collections.dcspark.dcm.plugins.module_utils.host import flannel
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import normalize_spec

SUBNET_ENV = "FLANNEL_NETWORK=10.40.0.0/16\nFLANNEL_SUBNET=10.40.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"


def test_subnet_env_is_read_as_flannel_writes_it():
    assert flannel.parse_subnet_env(SUBNET_ENV) == {
        "FLANNEL_NETWORK": "10.40.0.0/16", "FLANNEL_SUBNET": "10.40.7.1/24", "FLANNEL_MTU": "1450",
        "FLANNEL_IPMASQ": "true"}


@pytest.mark.parametrize("text, problem", [
    ("FLANNEL_NETWORK=10.40.0.0/16\n", "has no FLANNEL_SUBNET"),
    ("FLANNEL_NETWORK=10.40.0.0/16\nFLANNEL_SUBNET=10.40.300.1/24\n", "10.40.300.1/24"),
    ("FLANNEL_NETWORK=10.40.0.0/16\nthis is not a variable\n", "line 2: not VARIABLE=value"),
])
def test_a_broken_subnet_env_is_named(text, problem):
    with pytest.raises(DcmError, match=problem):
        flannel.parse_subnet_env(text, "/run/flannel/subnet.env")


def test_a_missing_subnet_file_says_flanneld_does_not_run(tmp_path):
    with pytest.raises(DcmError, match="flanneld does not run on this host"):
        flannel.read_subnet_env(str(tmp_path / "subnet.env"))


def test_docker0_must_be_on_the_leased_subnet():
    leased = flannel.parse_subnet_env(SUBNET_ENV)
    flannel.check_bridge(["10.40.7.0/24"], leased)
    with pytest.raises(DcmError, match=r"docker0 is on 172.17.0.0/16 but flannel leased this host 10.40.7.0/24.*"
                                       r"run site.yml"):
        flannel.check_bridge(["172.17.0.0/16"], leased)
    with pytest.raises(DcmError, match="docker0 is on no subnet"):
        flannel.check_bridge([], leased)


def test_hosts_text_lists_localhost_then_nodes_by_name_and_skips_unknown_addresses():
    text = flannel.hosts_text({"spark-worker-face-1": "10.40.7.3", "spark-master-face": "10.40.2.2",
                               "spark-driver-face": None})
    assert text.splitlines() == ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                                 "10.40.2.2\tspark-master-face", "10.40.7.3\tspark-worker-face-1"]


def test_peer_addresses_come_from_status_reports_and_skip_the_unusable():
    reports = [{"container": "spark-master-face", "address": "10.40.2.2"},
               {"container": "spark-worker-face-1", "state": "missing"}, {"address": "10.40.2.9"}]
    assert flannel.peer_addresses(reports) == {"spark-master-face": "10.40.2.2"}


def test_hosts_files_are_rewritten_in_place_and_pruned(tmp_path):
    files = flannel.HostsFiles(str(tmp_path / "hosts"))
    assert files.write("face", {"spark-master-face": "10.40.2.2"})
    path = files.path("face")
    inode = os.stat(path).st_ino
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert not files.write("face", {"spark-master-face": "10.40.2.2"})  # unchanged: not written
    assert files.write("face", {"spark-master-face": "10.40.9.9"})
    assert os.stat(path).st_ino == inode  # the bind mount of a running container still sees it
    assert "10.40.9.9\tspark-master-face" in open(path, encoding="utf-8").read()
    files.write("video", {})
    assert files.prune({"video"}) == ["face"]
    assert sorted(os.listdir(tmp_path / "hosts")) == ["video.hosts"]


def test_flannel_nodes_go_on_docker0_and_wait_for_their_name():
    spec = normalize_spec({"name": "face", "runtime": {"spark_version": "4.0.1"},
                           "master": {"cpus": 1, "memory": "1g"}, "driver": {"cpus": 1, "memory": "1g"},
                           "worker": {"cpus": 1, "memory": "1g", "count": 1}})
    record = {"name": "face", "spec": spec, "images": {"master": "m", "worker": "w", "driver": "d"}, "secret": "s",
              "placement": {"master": "h1", "driver": "h1", "workers": ["h1"]}}
    on_flannel = converge.desired_nodes([{**record, "network": {"name": "bridge", "driver": "flannel"}}], "h1")
    on_overlay = converge.desired_nodes([{**record, "network": {"name": "dcm-face", "driver": "overlay"}}], "h1")
    for name, node in on_flannel.items():
        assert (node.network, node.network_driver) == ("bridge", "flannel")
        assert dict(node.env)[flannel.NAME_WAIT_ENV] == str(flannel.NAME_WAIT_SECONDS)
        assert flannel.NAME_WAIT_ENV not in dict(on_overlay[name].env)
        assert node.config_hash != on_overlay[name].config_hash  # a backend change recreates the node
