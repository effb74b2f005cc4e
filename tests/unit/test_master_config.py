"""The DCM master's configuration and its pure decisions (no etcd)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError
from ansible_collections.dcspark.dcm.plugins.module_utils.daemons.master import Decision, apply_decision, load_config


def write(tmp_path, data) -> str:
    path = tmp_path / "master.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return str(path)


ETCD = {"endpoints": ["https://10.0.0.1:2379"], "ca_cert": "/etc/dcm/pki/ca.crt"}


def test_defaults_are_the_papers_ten_second_checks(tmp_path):
    config = load_config(write(tmp_path, {"name": "m1", "etcd": ETCD}))
    assert (config.name, config.interval, config.leader_ttl, config.campaign_interval, config.host_grace) == (
        "m1", 10.0, 10, 2.0, 10.0)
    assert config.etcd.endpoints == ("https://10.0.0.1:2379",)


@pytest.mark.parametrize("data, message", [
    ({"etcd": {}}, "etcd.endpoints is empty"),
    ({"etcd": ETCD, "intervall": 5}, "unknown keys intervall"),
    ({"etcd": ETCD, "interval": 0}, "interval must be a positive number"),
    ({"etcd": ETCD, "host_grace": -1}, "host_grace must be zero or a positive number"),
    ({"etcd": ETCD, "leader_ttl": "soon"}, "leader_ttl must be a positive number"),
    ({"etcd": ETCD, "leader_ttl": 4, "campaign_interval": 3}, "at most half of leader_ttl"),
    ([1, 2], "must be a JSON object"),
    ("{not json", "is not valid JSON"),
])
def test_bad_configurations_name_the_key_and_the_fix(tmp_path, data, message):
    with pytest.raises(DcmError, match=message):
        load_config(write(tmp_path, data))


def test_missing_configuration_file_is_named(tmp_path):
    with pytest.raises(DcmError, match="cannot read the master configuration .*nothing.json"):
        load_config(str(tmp_path / "nothing.json"))


RECORD = {"name": "face", "generation": 3, "placement": {"master": "a", "driver": "a", "workers": ["b", "c"]}}


def test_a_move_keeps_the_generation_clears_degraded_and_keeps_ten_repairs():
    record = dict(RECORD, degraded={"reason": "x", "since": "then"},
                  repairs=[{"time": str(i)} for i in range(10)])
    new = apply_decision(record, Decision("face", "move", "c lost its lease", moves={"worker-2": ("c", "a")},
                                          placement={"master": "a", "driver": "a", "workers": ["b", "a"]}), 0)
    assert new["generation"] == 3 and "degraded" not in new
    assert new["placement"]["workers"] == ["b", "a"]
    assert len(new["repairs"]) == 10 and new["repairs"][-1]["moves"] == {"worker-2": ["c", "a"]}
    assert record["placement"]["workers"] == ["b", "c"]  # the input is not changed


def test_degraded_keeps_its_first_since_and_recovered_clears_it():
    first = apply_decision(RECORD, Decision("face", "degraded", "no room"), 0)
    again = apply_decision(first, Decision("face", "degraded", "still no room"), 3600)
    assert again["degraded"]["since"] == first["degraded"]["since"] == "1970-01-01T00:00:00Z"
    assert again["degraded"]["reason"] == "still no room"
    assert "degraded" not in apply_decision(again, Decision("face", "recovered", "back"), 7200)
