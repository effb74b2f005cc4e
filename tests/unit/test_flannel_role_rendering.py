"""roles/flannel without flanneld: the unit, the etcd configuration JSON and the Docker wiring, checked
against flannel's own documentation.

Sources (flannel-io/flannel): Documentation/configuration.md ("Key command line options", the config
keys), Documentation/backends.md (Backend keys), Documentation/running.md (subnet.env), and
dist/mk-docker-opts.sh (subnet.env -> Docker's --bip/--mtu/--ip-masq). The expressions are the role's
own (defaults/main.yml, vars/main.yml, templates, tasks), templated by Ansible's Templar.
"""

from __future__ import annotations

import json
import os
import shlex

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.dcspark.dcm.plugins.module_utils.policy.flannel_network import desired_config
from support import role_yaml, trusted

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "flannel")

# flanneld's flags as configuration.md lists them ("Key command line options"); main.go defines these too.
DOCUMENTED_FLAGS = {
    "public-ip", "etcd-endpoints", "etcd-prefix", "etcd-keyfile", "etcd-certfile", "etcd-cafile",
    "kube-subnet-mgr", "iface", "iface-regex", "iptables-resync", "subnet-file", "net-config-path",
    "subnet-lease-renew-margin", "ip-masq", "v", "healthz-ip", "healthz-port", "version",
}
BOOLEAN_FLAGS = {"ip-masq", "kube-subnet-mgr", "version"}
# configuration.md: the keys of <prefix>/config (IPv4).
CONFIG_KEYS = {"Network", "SubnetLen", "SubnetMin", "SubnetMax", "Backend"}
# backends.md: the keys of Backend per type.
BACKEND_KEYS = {"vxlan": {"Type", "VNI", "Port", "GBP", "DirectRouting", "MacPrefix"}, "host-gw": {"Type"}}

POOL = {
    "dcm_etcd_endpoints": ["https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"],
    "dcm_etcd_ca_cert": "/etc/dcm/pki/ca.crt",
    "dcm_etcd_client_cert": "/etc/dcm/pki/client.crt",
    "dcm_etcd_client_key": "/etc/dcm/pki/client.key",
    "ansible_managed": "Ansible managed",
}


def load(relative: str):
    return role_yaml("flannel", relative)


def templar(**overrides) -> Templar:
    variables = {**POOL, **trusted(load("defaults/main.yml")), **overrides}
    variables.update(trusted(load("vars/main.yml")))  # role vars win over defaults, as in Ansible
    return Templar(loader=DataLoader(), variables=variables)


def render(expression: str, **overrides):
    return templar(**overrides).template(trust_as_template(expression))


def unit(**overrides) -> str:
    with open(os.path.join(ROLE, "templates", "flanneld.service.j2"), encoding="utf-8") as handle:
        return render(handle.read(), **overrides)


def exec_start(text: str) -> list:
    """ExecStart's words, continuation lines joined as systemd joins them."""
    joined = text.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line[len("ExecStart="):])


def flags(words: list) -> dict:
    parsed = {}
    for word in words[1:]:
        assert word.startswith("--"), f"not a flag: {word!r}"
        name, _sep, value = word[2:].partition("=")
        assert name not in parsed, f"--{name} given twice"
        parsed[name] = value if _sep else True
    return parsed


def test_the_unit_runs_flanneld_with_documented_flags_only():
    words = exec_start(unit())
    assert words[0] == "/usr/local/bin/flanneld"
    given = flags(words)
    assert set(given) <= DOCUMENTED_FLAGS, set(given) - DOCUMENTED_FLAGS
    assert given == {
        "etcd-endpoints": "https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379",
        "etcd-prefix": "/coreos.com/network",
        "etcd-cafile": "/etc/dcm/pki/ca.crt",
        "etcd-certfile": "/etc/dcm/pki/client.crt",
        "etcd-keyfile": "/etc/dcm/pki/client.key",
        "subnet-file": "/run/flannel/subnet.env",
        "ip-masq": True,
    }
    for name, value in given.items():
        assert (value is True) == (name in BOOLEAN_FLAGS), f"--{name}: a boolean flag takes no value and others need one"


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"flannel_ip_masq": False}, {"ip-masq": None}),
    ({"flannel_iface": "eth1"}, {"iface": "eth1"}),
    ({"flannel_iface": "192.0.2.7", "flannel_public_ip": "198.51.100.7"}, {"iface": "192.0.2.7", "public-ip": "198.51.100.7"}),
    ({"flannel_etcd_prefix": "/dcspark/network", "flannel_subnet_file": "/run/flannel/dcspark.env"},
     {"etcd-prefix": "/dcspark/network", "subnet-file": "/run/flannel/dcspark.env"}),
])
def test_the_unit_follows_the_variables(overrides, expected):
    given = flags(exec_start(unit(**overrides)))
    assert set(given) <= DOCUMENTED_FLAGS
    for name, value in expected.items():
        assert given.get(name) == value, (name, given)
    if "iface" not in expected:
        assert "iface" not in given and "public-ip" not in given


def test_the_unit_is_type_notify_and_passes_nothing_to_docker():
    text = unit(flannel_ready_timeout=45)
    service = text.split("[Service]", 1)[1].split("[Install]", 1)[0]
    settings = dict(line.split("=", 1) for line in service.splitlines() if "=" in line and not line.startswith(("#", " ")))
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert settings["TimeoutStartSec"] == "45"
    assert "EnvironmentFile" not in text and "ExecStartPost" not in text and "mk-docker-opts" not in text


def backend_of(**overrides) -> dict:
    return render("{{ flannel__backend }}", **overrides)


@pytest.mark.parametrize("overrides", [
    {},
    {"flannel_vxlan_vni": 4096, "flannel_vxlan_port": 4789, "flannel_vxlan_direct_routing": True},
    {"flannel_backend": "host-gw"},
    {"flannel_subnet_min": "10.40.1.0", "flannel_subnet_max": "10.40.250.0"},
])
def test_the_config_written_to_etcd_uses_documented_keys(overrides):
    variables = {**load("defaults/main.yml"), **overrides}
    config = desired_config(variables["flannel_network"], variables["flannel_subnet_len"],
                            variables["flannel_subnet_min"] or None, variables["flannel_subnet_max"] or None,
                            backend_of(**overrides))
    assert set(config) <= CONFIG_KEYS and {"Network", "SubnetLen", "Backend"} <= set(config)
    kind = config["Backend"]["Type"]
    assert set(config["Backend"]) <= BACKEND_KEYS[kind], config
    assert json.loads(json.dumps(config)) == config


def test_vxlan_options_reach_the_backend_with_flannels_names():
    backend = backend_of(flannel_vxlan_vni=4096, flannel_vxlan_port=4789, flannel_vxlan_direct_routing=False)
    config = desired_config("10.40.0.0/16", 24, backend=backend)
    assert config["Backend"] == {"Type": "vxlan", "VNI": 4096, "Port": 4789, "DirectRouting": False}
    assert desired_config("10.40.0.0/16", 24, backend=backend_of())["Backend"] == {"Type": "vxlan"}


def mk_docker_opts(env: dict) -> set:
    """What upstream's dist/mk-docker-opts.sh derives from subnet.env (without -m)."""
    result = set()
    if env.get("FLANNEL_SUBNET"):
        result.add(f"--bip={env['FLANNEL_SUBNET']}")
    if env.get("FLANNEL_MTU"):
        result.add(f"--mtu={env['FLANNEL_MTU']}")
    if env.get("FLANNEL_IPMASQ") == "true":
        result.add("--ip-masq=false")
    elif env.get("FLANNEL_IPMASQ") == "false":
        result.add("--ip-masq=true")
    return result


def as_dockerd_flags(options: dict) -> set:
    return {f"--{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in options.items()}


@pytest.mark.parametrize("text", [
    # running.md's example (vxlan, no --ip-masq)
    "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
    # flanneld --ip-masq on vxlan
    "FLANNEL_NETWORK=10.40.0.0/16\nFLANNEL_SUBNET=10.40.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    # host-gw keeps the interface's MTU
    "FLANNEL_NETWORK=10.40.0.0/16\nFLANNEL_SUBNET=10.40.200.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n",
    # configuration.md's dual-stack example: the IPv6 variables give Docker nothing here
    "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\nFLANNEL_IPV6_NETWORK=2001:cafe:42::/56\n"
    "FLANNEL_IPV6_SUBNET=2001:cafe:42::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    # an older flanneld without FLANNEL_IPMASQ: no ip-masq either way
    "FLANNEL_SUBNET=10.40.9.1/24\nFLANNEL_MTU=8951\n",
])
def test_subnet_env_maps_to_daemon_json_as_mk_docker_opts_does(text):
    env = render("{{ flannel__subnet_env }}", flannel__subnet_env_text=text)
    options = render("{{ flannel__docker_options }}", flannel__subnet_env_text=text)
    assert as_dockerd_flags(options) == mk_docker_opts(env), options
    assert set(options) <= {"bip", "mtu", "ip-masq"}
    if "mtu" in options:
        assert isinstance(options["mtu"], int), "daemon.json's mtu is a number"
    if "ip-masq" in options:
        assert isinstance(options["ip-masq"], bool), "daemon.json's ip-masq is a boolean"


def test_subnet_env_values_are_read_exactly():
    text = "FLANNEL_NETWORK=10.40.0.0/16\nFLANNEL_SUBNET=10.40.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    assert render("{{ flannel__docker_options }}", flannel__subnet_env_text=text) == {
        "bip": "10.40.3.1/24", "mtu": 1450, "ip-masq": False}
    assert render("{{ flannel__docker_options }}", flannel__subnet_env_text="") == {}


def docker0_expression() -> tuple:
    tasks = load("tasks/docker0_address.yml")
    note = next(task for task in tasks if "ansible.builtin.set_fact" in task)
    return note["ansible.builtin.set_fact"]["flannel__docker0"], note["vars"]


@pytest.mark.parametrize(("rc", "stdout", "expected"), [
    (0, json.dumps([{"ifindex": 3, "ifname": "docker0", "addr_info": [
        {"family": "inet", "local": "10.40.3.1", "prefixlen": 24, "broadcast": "10.40.3.255", "scope": "global"}]}]),
     "10.40.3.1/24"),
    (0, json.dumps([{"ifindex": 3, "ifname": "docker0", "addr_info": [
        {"family": "inet", "local": "172.17.0.1", "prefixlen": 16, "scope": "global"}]}]), "172.17.0.1/16"),
    (0, json.dumps([{"ifindex": 3, "ifname": "docker0", "addr_info": []}]), ""),
    (0, "", ""),
    (1, "", ""),  # Device "docker0" does not exist.
])
def test_docker0s_address_is_read_in_flannels_form(rc, stdout, expected):
    expression, task_vars = docker0_expression()
    variables = {"flannel__docker0_ip": {"rc": rc, "stdout": stdout}, **trusted(task_vars)}
    result = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expression))
    assert result == expected


def test_argument_specs_match_the_defaults():
    spec = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load("defaults/main.yml")
    assert set(spec) == set(defaults), set(spec) ^ set(defaults)
    python_types = {"str": str, "path": str, "int": int, "bool": bool, "dict": dict, "list": list}
    for name, option in spec.items():
        value = defaults[name]
        templated = isinstance(value, str) and "{{" in value
        if value is not None and not templated:
            assert isinstance(value, python_types[option["type"]]), (name, value, option["type"])
        if "default" in option:
            assert option["default"] == value, (name, option["default"], value)
        elif not templated:
            assert value is None, f"{name}: the spec documents no default but defaults/main.yml sets {value!r}"
    assert spec["flannel_backend"]["choices"] == ["vxlan", "host-gw"]


def test_no_checksum_is_shipped():
    # no authoritative sha256 is published with flannel's releases: the role must fail naming flannel_checksums
    assert load("defaults/main.yml")["flannel_checksums"] == {}
