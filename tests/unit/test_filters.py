"""The collection's Jinja filters, called directly and through a real ansible-playbook run."""

from __future__ import annotations

import json
import textwrap

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dcspark.dcm.plugins.filter.dcm import FilterModule
from ansible_collections.dcspark.dcm.plugins.module_utils.policy.scheduler import least_requested_rate as eq2
from support import run_playbook

FILTERS = FilterModule().filters()
GIB = 1 << 30


def test_the_plugin_exports_the_documented_filters():
    assert set(FILTERS) == {"memory_bytes", "memory_human", "cpus_milli", "least_requested_rate", "pool_address",
                            "status_lines"}


@pytest.mark.parametrize("value, expected", [
    ("4g", 4 * GIB), ("4G", 4 * GIB), ("512m", 512 << 20), ("1k", 1024), ("1t", 1 << 40),
    ("1024", 1024), (4096, 4096), (float(GIB), GIB),
])
def test_memory_bytes(value, expected):
    assert FILTERS["memory_bytes"](value) == expected


@pytest.mark.parametrize("value", ["4 GB", "1.5g", "-1", "", -5, None, True, 1.5, ["4g"]])
def test_memory_bytes_rejects_bad_input_with_the_accepted_forms(value):
    with pytest.raises(AnsibleFilterError, match=r"memory_bytes: .*(suffix|negative|size like)"):
        FILTERS["memory_bytes"](value)


@pytest.mark.parametrize("value, expected", [
    (4 * GIB, "4g"), (1536 << 20, "1536m"), (1000, "1000"), (0, "0"), ("4096m", "4g"), (1 << 40, "1t"),
])
def test_memory_human(value, expected):
    assert FILTERS["memory_human"](value) == expected


@pytest.mark.parametrize("size", ["4g", "1536m", "7k", "1000", "3t"])
def test_memory_human_reads_back_to_the_same_bytes(size):
    as_bytes = FILTERS["memory_bytes"](size)
    assert FILTERS["memory_bytes"](FILTERS["memory_human"](as_bytes)) == as_bytes


@pytest.mark.parametrize("value", ["lots", -1, None])
def test_memory_human_rejects_bad_input(value):
    with pytest.raises(AnsibleFilterError, match="memory_human: "):
        FILTERS["memory_human"](value)


@pytest.mark.parametrize("value, expected", [(2, 2000), (0.5, 500), ("1.25", 1250), ("1500m", 1500), (0, 0)])
def test_cpus_milli(value, expected):
    assert FILTERS["cpus_milli"](value) == expected


@pytest.mark.parametrize("value", ["two", -1, 0.0001, None, True])
def test_cpus_milli_rejects_bad_input(value):
    with pytest.raises(AnsibleFilterError, match="cpus_milli: cpus"):
        FILTERS["cpus_milli"](value)


def test_least_requested_rate_is_eq2_of_the_scheduler():
    host = {"cpus": 16, "memory": "64g", "requested_cpus": 4, "requested_memory": 48 * GIB}
    rate = FILTERS["least_requested_rate"](host)
    assert rate == pytest.approx(0.25 + 0.75)
    assert rate == eq2(16000, 64 * GIB, 4000, 48 * GIB)


def test_least_requested_rate_of_an_empty_host_and_defaults():
    assert FILTERS["least_requested_rate"]({"cpus": 2.5, "memory": 1024}) == 0.0


@pytest.mark.parametrize("host, message", [
    ("node1", "expects a host dict"),
    ({"memory": "4g"}, "lacks cpus"),
    ({"cpus": 2}, "lacks memory"),
    ({"cpus": 0, "memory": "4g"}, "no capacity"),
    ({"cpus": 2, "memory": "4 GB"}, "least_requested_rate: memory: "),
    ({"cpus": 2, "memory": "4g", "requested_cpus": "lots"}, "least_requested_rate: requested_cpus: "),
])
def test_least_requested_rate_rejects_bad_hosts(host, message):
    with pytest.raises(AnsibleFilterError, match=message):
        FILTERS["least_requested_rate"](host)


PLAYBOOK = textwrap.dedent("""\
    - name: DCSpark filters through Ansible
      hosts: localhost
      connection: local
      gather_facts: false
      vars:
        pool:
          - {name: a, cpus: 16, memory: 64g, requested_cpus: 8, requested_memory: 32g}
          - {name: b, cpus: 4, memory: 8g}
      tasks:
        - name: Bad input fails the task with the filter's message
          block:
            - name: A size with a space
              ansible.builtin.debug:
                msg: "{{ '4 GB' | dcspark.dcm.memory_bytes }}"
          rescue:
            - name: Keep the message
              ansible.builtin.set_fact:
                memory_error: "{{ ansible_failed_result.msg }}"

        - name: A host without capacity fails Eq. 2 clearly
          block:
            - name: Zero CPUs
              ansible.builtin.debug:
                msg: "{{ {'cpus': 0, 'memory': '1g'} | dcspark.dcm.least_requested_rate }}"
          rescue:
            - name: Keep the message
              ansible.builtin.set_fact:
                rate_error: "{{ ansible_failed_result.msg }}"

        - name: Write what the filters computed, as Ansible typed it
          ansible.builtin.copy:
            dest: "{{ out }}"
            mode: "0644"
            content: >-
              {{ {'bytes': '4g' | dcspark.dcm.memory_bytes,
                  'human': 4294967296 | dcspark.dcm.memory_human,
                  'human_odd': 1610612736 | dcspark.dcm.memory_human,
                  'human_float': ((8 * 1024 ** 3) / 2) | dcspark.dcm.memory_human,
                  'milli_float': 0.5 | dcspark.dcm.cpus_milli,
                  'milli_text': '1500m' | dcspark.dcm.cpus_milli,
                  'rates': pool | map('dcspark.dcm.least_requested_rate') | list,
                  'memory_error': memory_error | default(None),
                  'rate_error': rate_error | default(None)} | to_json }}
    """)


def test_filters_through_ansible_playbook(tmp_path):
    playbook = tmp_path / "filters.yml"
    playbook.write_text(PLAYBOOK)
    out = tmp_path / "computed.json"
    proc = run_playbook(str(playbook), {"out": str(out)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    computed = json.loads(out.read_text())
    assert computed["bytes"] == 4294967296 and isinstance(computed["bytes"], int)
    assert (computed["human"], computed["human_odd"], computed["human_float"]) == ("4g", "1536m", "4g")
    assert (computed["milli_float"], computed["milli_text"]) == (500, 1500)
    assert computed["rates"] == [1.0, 0.0]
    # the bad inputs really failed, with the filters' own messages
    assert computed["memory_error"] and all(part in computed["memory_error"]
                                            for part in ("memory_bytes", "k/m/g/t suffix", "4 GB"))
    assert computed["rate_error"] and "no capacity" in computed["rate_error"]


@pytest.mark.parametrize(
    ("hostvars", "expected"),
    [
        ({"dcm_address": "10.0.0.5", "ansible_default_ipv4": {"address": "192.0.2.1"}}, "10.0.0.5"),
        ({"ansible_default_ipv4": {"address": "192.0.2.1"}, "ansible_host": "h1.lab"}, "192.0.2.1"),
        ({"ansible_default_ipv4": {}, "ansible_host": "h1.lab", "inventory_hostname": "h1"}, "h1.lab"),
        ({"inventory_hostname": "h1"}, "h1"),
    ],
)
def test_pool_address_prefers_the_inventory_then_facts(hostvars, expected):
    assert FILTERS["pool_address"](hostvars) == expected


def test_pool_address_rejects_what_is_not_a_host():
    with pytest.raises(AnsibleFilterError, match="pool_address: expects a host's variables"):
        FILTERS["pool_address"]("10.0.0.5")
    with pytest.raises(AnsibleFilterError, match="neither dcm_address"):
        FILTERS["pool_address"]({})
