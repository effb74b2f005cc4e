"""dcspark.dcm.dcm_flannel_config against a real etcd 3.4 with client-certificate TLS (see conftest.py).

The key layout and values are flannel's documented ones: ``<prefix>/config`` holds the network
configuration JSON (Documentation/configuration.md), host leases live under ``<prefix>/subnets/<ip>-<len>``
(Documentation/reservations.md). Each test works under its own prefix and removes it afterwards.
"""

from __future__ import annotations

import json
import uuid

import pytest
from support import run_module

from ansible_collections.dcspark.dcm.plugins.module_utils.state.keys import prefix_end

pytestmark = pytest.mark.etcd


@pytest.fixture
def flannel_prefix(etcd):
    prefix = f"/dcm-test-flannel-{uuid.uuid4().hex[:8]}/network"
    root = prefix.rsplit("/", 1)[0] + "/"
    yield prefix
    etcd.client.delete(root, prefix_end(root))


def configure(etcd, prefix, check=False, diff=False, **params):
    args = {"prefix": prefix, "network": "10.40.0.0/16", **etcd.module_args(), **params}
    return run_module("dcm_flannel_config", args, check=check, diff=diff)


def stored(etcd, prefix):
    kv = etcd.client.get(prefix + "/config")
    return (json.loads(kv.value), kv.mod_revision) if kv else (None, None)


def test_creates_the_documented_config_once(etcd, flannel_prefix):
    first = configure(etcd, flannel_prefix)
    assert first.get("changed") is True, first
    assert first["key"] == flannel_prefix + "/config"
    value, revision = stored(etcd, flannel_prefix)
    assert value == {"Network": "10.40.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}

    again = configure(etcd, flannel_prefix)
    assert again.get("changed") is False and not again.get("failed"), again
    assert stored(etcd, flannel_prefix) == (value, revision), "an unchanged config was rewritten"


def test_a_trailing_slash_in_the_prefix_names_the_same_key(etcd, flannel_prefix):
    configure(etcd, flannel_prefix)
    again = configure(etcd, flannel_prefix + "/")
    assert again["key"] == flannel_prefix + "/config" and again.get("changed") is False, again


def test_check_mode_writes_nothing_and_shows_the_diff(etcd, flannel_prefix):
    result = configure(etcd, flannel_prefix, check=True, diff=True, backend={"type": "host-gw"})
    assert result.get("changed") is True, result
    assert stored(etcd, flannel_prefix) == (None, None)
    assert json.loads(result["diff"]["after"]) == {"Network": "10.40.0.0/16", "SubnetLen": 24,
                                                   "Backend": {"Type": "host-gw"}}
    assert result["diff"]["before"] == ""


def test_vxlan_options_use_flannels_key_names(etcd, flannel_prefix):
    configure(etcd, flannel_prefix, subnet_len=26, subnet_min="10.40.1.0", subnet_max="10.40.200.192",
              backend={"type": "vxlan", "vni": 4096, "port": 4789, "direct_routing": True})
    value, _rev = stored(etcd, flannel_prefix)
    assert value == {"Network": "10.40.0.0/16", "SubnetLen": 26, "SubnetMin": "10.40.1.0",
                     "SubnetMax": "10.40.200.192",
                     "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789, "DirectRouting": True}}


def test_a_change_that_strands_the_hosts_is_refused_without_force(etcd, flannel_prefix):
    configure(etcd, flannel_prefix)
    before = stored(etcd, flannel_prefix)
    # a lease as flanneld writes it (Documentation/reservations.md)
    etcd.client.put(flannel_prefix + "/subnets/10.40.3.0-24", json.dumps(
        {"PublicIP": "192.0.2.5", "PublicIPv6": None, "BackendType": "vxlan",
         "BackendData": {"VNI": 1, "VtepMAC": "c6:d2:32:6f:8f:44"}}))

    for changes in ({"network": "10.50.0.0/16"}, {"subnet_len": 25}, {"backend": {"type": "host-gw"}},
                    {"backend": {"type": "vxlan", "vni": 2}}):
        refused = configure(etcd, flannel_prefix, **changes)
        assert refused.get("failed") is True, (changes, refused)
        assert "force" in refused["msg"] and "flannel_config_force" in refused["msg"], refused["msg"]
        assert "1 lease(s)" in refused["msg"], refused["msg"]
        assert refused["leases"] == ["10.40.3.0-24"]
        assert stored(etcd, flannel_prefix) == before, f"{changes} was written without force"

    # the same refusal in check mode: a preview does not promise a change it would refuse
    preview = configure(etcd, flannel_prefix, check=True, network="10.50.0.0/16")
    assert preview.get("failed") is True, preview

    forced = configure(etcd, flannel_prefix, network="10.50.0.0/16", force=True)
    assert forced.get("changed") is True, forced
    assert stored(etcd, flannel_prefix)[0]["Network"] == "10.50.0.0/16"


def test_subnet_range_may_change_without_force(etcd, flannel_prefix):
    configure(etcd, flannel_prefix)
    result = configure(etcd, flannel_prefix, subnet_min="10.40.10.0")
    assert result.get("changed") is True and not result.get("failed"), result
    assert stored(etcd, flannel_prefix)[0]["SubnetMin"] == "10.40.10.0"


def test_defaults_of_an_existing_config_count_as_its_values(etcd, flannel_prefix):
    # written by hand without SubnetLen: flannel reads /24 for a /16, so SubnetLen 24 strands nothing...
    etcd.client.put(flannel_prefix + "/config", json.dumps({"Network": "10.40.0.0/16", "Backend": {"Type": "vxlan"}}))
    assert configure(etcd, flannel_prefix).get("changed") is True
    # ...while a config without Backend is flannel's udp backend: switching to vxlan needs force
    etcd.client.put(flannel_prefix + "/config", json.dumps({"Network": "10.40.0.0/16", "SubnetLen": 24}))
    refused = configure(etcd, flannel_prefix)
    assert refused.get("failed") is True and '"udp"' in refused["msg"], refused


@pytest.mark.parametrize(("params", "field"), [
    ({"network": "10.40.0.1/16"}, "network:"),
    ({"network": "not-a-network"}, "network:"),
    ({"network": "10.40.0.0/29"}, "network:"),
    ({"subnet_len": 31}, "subnet_len:"),
    ({"subnet_len": 17}, "subnet_len:"),
    ({"subnet_min": "10.41.0.0"}, "subnet_min:"),
    ({"subnet_max": "10.40.0.128"}, "subnet_max:"),
    ({"backend": {"type": "host-gw", "vni": 1}}, "backend.vni:"),
    ({"backend": {"type": "vxlan", "port": 70000}}, "backend.port:"),
    ({"backend": {"type": "vxlan", "vni": 0}}, "backend.vni:"),
    ({"prefix": "coreos.com/network"}, "prefix:"),
])
def test_bad_input_is_refused_naming_the_field(etcd, flannel_prefix, params, field):
    result = configure(etcd, params.pop("prefix", flannel_prefix), **params)
    assert result.get("failed") is True and result["msg"].startswith(field), result
    assert stored(etcd, flannel_prefix) == (None, None)


def test_an_unknown_backend_type_is_refused_by_its_choices(etcd, flannel_prefix):
    result = configure(etcd, flannel_prefix, backend={"type": "udp"})
    assert result.get("failed") is True, result
    assert "type" in result["msg"] and "vxlan" in result["msg"] and "udp" in result["msg"], result["msg"]
    assert stored(etcd, flannel_prefix) == (None, None)


def test_a_client_certificate_from_another_ca_is_refused(etcd, flannel_prefix):
    result = configure(etcd, flannel_prefix, etcd_client_cert=etcd.untrusted_cert, etcd_client_key=etcd.untrusted_key)
    assert result.get("failed") is True, result
    assert stored(etcd, flannel_prefix) == (None, None)
