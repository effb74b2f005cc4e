"""roles/qfs without the QFS binaries: its files rendered by Ansible's templating, checked key by key.

The key names and defaults below are QFS's own, from the files docs/qfs.md cites: the annotated
conf/MetaServer.prp and conf/ChunkServer.prp, the Deployment Guide's sample configurations, the
chunkserver's source (chunkServer.hostname, .nodeId, .rackId) and webui/qfsstatus.py with its
server.conf. A rendered key that QFS does not know fails here.
"""

from __future__ import annotations

import configparser
import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from support import REPO, role_yaml, trusted

ROLE = os.path.join(REPO, "roles", "qfs")

# name -> QFS's documented default (None: no default, must be set)
METASERVER_KEYS = {
    "metaServer.clientPort": "20000",
    "metaServer.chunkServerPort": "30000",
    "metaServer.logDir": None,
    "metaServer.cpDir": None,
    "metaServer.createEmptyFs": "0",
    "metaServer.clusterKey": None,
    "metaServer.rootDirUser": None,
    "metaServer.rootDirGroup": None,
    "metaServer.rootDirMode": None,
    "metaServer.recoveryInterval": "30",
    "metaServer.msgLogWriter.logLevel": None,
}
CHUNKSERVER_KEYS = {
    "chunkServer.metaServer.hostname": None,
    "chunkServer.metaServer.port": "30000",
    "chunkServer.clientPort": "22000",
    "chunkServer.chunkDir": None,
    "chunkServer.clusterKey": None,
    "chunkServer.hostname": None,
    "chunkServer.nodeId": None,
    "chunkServer.rackId": None,
    "chunkServer.msgLogWriter.logLevel": None,
}
# qfsstatus.py: [webserver] keys it reads (the first four unconditionally), [chunk] keys of server.conf.
WEBUI_REQUIRED = {"webServer.metaserverPort", "webServer.docRoot", "webServer.port", "webServer.allMachinesFn"}
WEBUI_KEYS = WEBUI_REQUIRED | {"webServer.metaserverHost", "webServer.autoRefresh", "webServer.displayPorts",
                               "webServer.socketTimeout"}
WEBUI_CHUNK_KEYS = {"refreshInterval", "currentSize", "currentSpan", "hourlySize", "hourlySpan", "daylySize",
                    "daylySpan", "monthlySize", "monthlySpan", "predefinedHeaders", "predefinedChunkDirHeaders"}


def load(*parts: str):
    return role_yaml("qfs", *parts)


def templar(pool_size: int = 3, **overrides) -> Templar:
    hosts = [f"h{index}" for index in range(1, pool_size + 1)]
    variables = {
        **load("defaults", "main.yml"),
        **load("vars", "main.yml"),
        "dcm_pool_name": "lab",
        "dcm_masters_group": "dcm_masters",
        "groups": {"dcm_pool": hosts, "dcm_masters": hosts[:1], "all": hosts},
        "inventory_hostname": "h1",
        "ansible_managed": "Ansible managed",
        # What dcspark.dcm.pool_address gives for h1 (tested with the filter's own tests).
        "qfs_chunkserver_hostname": "10.0.0.11",
        "qfs__metaserver_address": "10.0.0.11",
        **overrides,
    }
    return Templar(loader=DataLoader(), variables=trusted(variables))


def render(name: str, **extra) -> str:
    with open(os.path.join(ROLE, "templates", name), encoding="utf-8") as handle:
        source = handle.read()
    return templar(**extra).template(trust_as_template(source))


def properties(text: str) -> dict:
    pairs = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not a QFS property line: {line!r}"
            pairs[key.strip()] = value.strip()
    return pairs


def settings(name: str, **extra) -> dict:
    engine = templar(**extra)
    merged = {**engine.template(trust_as_template("{{ " + name + " }}")),
              **engine.template(trust_as_template("{{ " + name + "_extra }}"))}
    return {key: value for key, value in merged.items() if value not in (-1, "-1", "", None)}


def test_metaserver_config_uses_only_documented_keys_and_defaults():
    rendered = properties(render("qfs.prp.j2", qfs__settings=settings("qfs_metaserver_config"), qfs__what="metaserver"))
    assert set(rendered) == set(METASERVER_KEYS)
    for key, default in METASERVER_KEYS.items():
        if default is not None:
            assert rendered[key] == default, key
    assert rendered["metaServer.cpDir"] == "/var/lib/qfs/meta/checkpoint"
    assert rendered["metaServer.logDir"] == "/var/lib/qfs/meta/transaction_logs"
    assert rendered["metaServer.clusterKey"] == "dcm-lab"


def test_chunkserver_config_uses_only_documented_keys_and_defaults():
    rendered = properties(render("qfs.prp.j2", qfs__settings=settings("qfs_chunkserver_config"), qfs__what="chunkserver"))
    assert set(rendered) == set(CHUNKSERVER_KEYS) - {"chunkServer.rackId"}  # -1: left out
    for key, default in CHUNKSERVER_KEYS.items():
        if default is not None:
            assert rendered[key] == default, key
    # The metaserver is named by address (Deployment Guide: host names should not be used).
    assert rendered["chunkServer.metaServer.hostname"] == "10.0.0.11"
    assert rendered["chunkServer.hostname"] == "10.0.0.11"
    assert rendered["chunkServer.nodeId"] == "FILE:/etc/machine-id"
    assert rendered["chunkServer.clusterKey"] == "dcm-lab"
    several = settings("qfs_chunkserver_config", qfs_chunk_dirs=["/srv/d0", "/srv/d1"], qfs_chunkserver_rack_id=4)
    rendered = properties(render("qfs.prp.j2", qfs__settings=several, qfs__what="chunkserver"))
    assert rendered["chunkServer.chunkDir"] == "/srv/d0 /srv/d1" and rendered["chunkServer.rackId"] == "4"


def test_extra_settings_are_merged_over_the_defaults():
    merged = settings("qfs_metaserver_config", qfs_metaserver_config_extra={"metaServer.clientPort": 20100})
    assert merged["metaServer.clientPort"] == 20100


def test_webui_config_has_the_keys_qfsstatus_reads():
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keep QFS's spelling; qfsstatus.py itself matches case-insensitively
    parser.read_string(render("webui.conf.j2"))
    webserver = set(parser["webserver"])
    assert WEBUI_REQUIRED <= webserver <= WEBUI_KEYS
    assert set(parser["chunk"]) <= WEBUI_CHUNK_KEYS
    assert parser["webserver"]["webServer.port"] == "20050"
    assert parser["webserver"]["webServer.metaserverPort"] == "20000"
    assert parser["webserver"]["webServer.docRoot"] == "/opt/qfs/webui/files"


@pytest.mark.parametrize("unit,binary", [
    ("qfs-metaserver", "/opt/qfs/bin/metaserver /etc/qfs/MetaServer.prp"),
    ("qfs-chunkserver", "/opt/qfs/bin/chunkserver /etc/qfs/ChunkServer.prp"),
    ("qfs-webui", "/usr/bin/python3 /opt/qfs/webui/qfsstatus.py /etc/qfs/webui.conf"),
])
def test_units_run_as_qfs_with_hardening(unit, binary):
    service = service_section(render(f"{unit}.service.j2"))
    assert service["ExecStart"] == binary
    assert service["Type"] == "simple" and service["User"] == "qfs" and service["Group"] == "qfs"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""


def service_section(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.split("[Service]")[1].split("[Install]")[0].splitlines()
                if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize("unit,folder", [("qfs-metaserver", "/var/lib/qfs/meta"),
                                         ("qfs-chunkserver", "/var/lib/qfs/chunks")])
def test_daemons_work_in_a_folder_they_may_write(unit, folder):
    # The real metaserver writes relative to its working directory: under ProtectSystem=strict with
    # none set it failed with "MetaDataSync.cc:930 metadatafetch: Read-only file system".
    service = service_section(render(f"{unit}.service.j2"))
    assert service["WorkingDirectory"] == folder
    assert folder in service["ReadWritePaths"].split()


def test_no_unit_ever_passes_the_create_flag():
    # "-c|-create-fs -- create new empty file system, and exit": only the one-time command may pass it.
    for unit in ("qfs-metaserver", "qfs-chunkserver", "qfs-webui"):
        text = render(f"{unit}.service.j2")
        assert " -c" not in service_section(text)["ExecStart"] and "EnvironmentFile" not in text


def test_the_file_system_is_created_with_minus_c_under_the_units_sandbox():
    argv = templar().template(trust_as_template("{{ qfs__create_fs_argv }}"))
    assert argv[:2] == ["systemd-run", "--quiet"] and "--wait" in argv and "--pipe" in argv
    assert argv[-3:] == ["/opt/qfs/bin/metaserver", "-c", "/etc/qfs/MetaServer.prp"]
    properties = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--property=")]
    unit = service_section(render("qfs-metaserver.service.j2"))
    for setting in properties:
        key, _sep, value = setting.partition("=")
        assert unit[key] == value, setting
    assert {"User=qfs", "Group=qfs", "WorkingDirectory=/var/lib/qfs/meta", "ProtectSystem=strict"} <= set(properties)


def test_the_runtime_libraries_qfs_links_are_installed():
    # What ldd showed missing on Debian 12 for QFS 2.2.8's binaries and libqfs_access.so.
    assert {"libboost-regex1.74.0", "libkrb5-3", "libssl3"} <= set(load("defaults", "main.yml")["qfs_packages"])


@pytest.mark.parametrize("hosts,expected", [(1, "1"), (2, "2"), (3, "3"), (8, "3"), (9, "S"), (30, "S")])
def test_replication_below_nine_chunkservers_reed_solomon_from_nine(hosts, expected):
    assert templar(pool_size=hosts).template(trust_as_template("{{ qfs_create_params }}")) == expected


def test_the_metaserver_falls_back_to_the_first_master():
    assert templar().template(trust_as_template("{{ qfs__metaserver_host }}")) == "h1"
    own = templar(groups={"dcm_pool": ["h1", "h2"], "dcm_masters": ["h1"], "qfs_metaservers": ["h2"]})
    assert own.template(trust_as_template("{{ qfs__metaserver_host }}")) == "h2"


def test_argument_specs_match_the_defaults():
    defaults = load("defaults", "main.yml")
    options = load("meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, option in options.items():
        if "default" in option:
            assert option["default"] == defaults[name], name
        assert option["description"], name


def test_spark_images_qfs_arguments_match_their_defaults():
    role = os.path.join(REPO, "roles", "spark_images")
    with open(os.path.join(role, "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = {key: value for key, value in yaml.safe_load(handle).items() if key.startswith("spark_images_qfs_")}
    with open(os.path.join(role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        options = {key: value for key, value in yaml.safe_load(handle)["argument_specs"]["main"]["options"].items()
                   if key.startswith("spark_images_qfs_")}
    assert set(options) == set(defaults) and defaults["spark_images_qfs_enabled"] is False
    for name, option in options.items():
        if "default" in option:
            assert option["default"] == defaults[name], name
