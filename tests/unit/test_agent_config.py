"""The agent's configuration and host record (pure parts)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.agent import HostFacts, host_record, load_config
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError

G = 1 << 30
FACTS = HostFacts(cpus=8000, memory=32 * G, address="10.0.0.5", disk={"total": 1, "free": 1})


def write(tmp_path, data) -> str:
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_record_subtracts_the_reserve_from_detected_totals(tmp_path):
    config = load_config(write(tmp_path, {"host_name": "h1", "etcd": {"endpoints": ["https://127.0.0.1:2379"]},
                                          "reserve_cpus": 1.5, "reserve_memory": "2g", "labels": {"rack": "a"}}))
    record = host_record(config, FACTS, now=0)
    assert record["name"] == "h1" and record["address"] == "10.0.0.5"
    assert (record["cpus"], record["memory"]) == (8, 32 * G)
    assert record["allocatable"] == {"cpus": 6.5, "memory": 30 * G}
    assert record["labels"] == {"rack": "a"} and record["advertised"] is False
    assert record["registered_at"] == "1970-01-01T00:00:00Z"


def test_advertised_totals_and_address_override(tmp_path):
    config = load_config(write(tmp_path, {"host_name": "h1", "etcd": {"endpoints": ["https://e:2379"]},
                                          "advertise_cpus": 4, "advertise_memory": "6g", "address": "172.29.99.11"}))
    record = host_record(config, FACTS, now=0)
    assert record["allocatable"] == {"cpus": 3.5, "memory": 6 * G - (512 << 20)}
    assert record["advertised"] is True and record["address"] == "172.29.99.11"


def test_reserve_larger_than_the_host_leaves_nothing(tmp_path):
    config = load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}, "reserve_cpus": 64,
                                          "reserve_memory": "1t"}))
    assert host_record(config, FACTS, now=0)["allocatable"] == {"cpus": 0, "memory": 0}


@pytest.mark.parametrize("data, message", [
    ({"etcd": {"endpoints": []}}, "etcd.endpoints is empty"),
    ({"etcd": {"endpoints": ["https://e:2379"]}, "heartbeet": 5}, "unknown keys heartbeet"),
    ({"etcd": {"endpoints": ["https://e:2379"]}, "heartbeat": 30, "lease_ttl": 30}, "must be positive and shorter than lease_ttl"),
    ("{not json", "is not valid JSON"),
    ({"etcd": {"endpoints": ["https://e:2379"]}, "container_uid": 0}, "container_uid must be a non-root"),
    ({"etcd": {"endpoints": ["https://e:2379"]}, "container_uid": "spark"}, "container_uid must be a non-root"),
    ({"etcd": {"endpoints": ["https://e:2379"]}, "container_uid": True}, "container_uid must be a non-root"),
])
def test_bad_configuration_is_named(tmp_path, data, message):
    with pytest.raises(DcmError, match=message):
        load_config(write(tmp_path, data))


def test_containers_run_as_185_unless_the_pool_says_otherwise(tmp_path):
    assert load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}})).container_uid == 185
    assert load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}, "container_uid": "1001"})).container_uid == 1001


def test_the_registry_identity_is_a_file_the_agent_reads_at_each_pull(tmp_path):
    assert load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}})).registry_auth_file == ""
    config = load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]},
                                          "registry_auth_file": "/etc/dcm/registry/puller.json"}))
    assert config.registry_auth_file == "/etc/dcm/registry/puller.json"


def test_missing_configuration_file(tmp_path):
    with pytest.raises(DcmError, match="cannot read the agent configuration"):
        load_config(str(tmp_path / "absent.json"))


def test_gc_keys_default_to_every_five_minutes_and_the_policy_threshold(tmp_path):
    config = load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}}))
    assert (config.container_gc_interval, config.image_gc_interval, config.image_gc_threshold) == (300, 300, 0.8)


def test_gc_keys_are_read_and_zero_turns_a_timer_off(tmp_path):
    config = load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}, "container_gc_interval": 0,
                                          "image_gc_interval": 90.5, "image_gc_threshold": 0}))
    assert (config.container_gc_interval, config.image_gc_interval, config.image_gc_threshold) == (0, 90.5, 0)
    config = load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}, "image_gc_threshold": "1",
                                          "container_gc_interval": "600"}))  # as a string from -e
    assert (config.container_gc_interval, config.image_gc_threshold) == (600, 1)


@pytest.mark.parametrize("key, value, message", [
    ("container_gc_interval", -1,
     r"container_gc_interval must be a number of seconds >= 0 \(0 turns that timer off\), got -1"),
    ("image_gc_interval", "soon", "image_gc_interval must be a number of seconds >= 0"),
    ("image_gc_interval", True, "image_gc_interval must be a number of seconds >= 0"),
    ("container_gc_interval", None, "container_gc_interval must be a number of seconds >= 0"),
    ("container_gc_interval", "inf", "container_gc_interval must be a number of seconds >= 0"),
    ("image_gc_threshold", 1.5, r"image_gc_threshold must be a fraction of the disk between 0 and 1 .*got 1.5"),
    ("image_gc_threshold", -0.1, "image_gc_threshold must be a fraction of the disk between 0 and 1"),
    ("image_gc_threshold", "nan", "image_gc_threshold must be a fraction of the disk between 0 and 1"),
    ("image_gc_treshold", 0.5, "unknown keys image_gc_treshold"),
])
def test_bad_gc_keys_are_named(tmp_path, key, value, message):
    with pytest.raises(DcmError, match=message):
        load_config(write(tmp_path, {"etcd": {"endpoints": ["https://e:2379"]}, key: value}))
