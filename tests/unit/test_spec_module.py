"""dcspark.dcm.dcm_spec through Ansible: a bare cluster name is checked by the spec schema's own rule."""

from __future__ import annotations

import pytest
from support import run_module

from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import validate_schema
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.schema import SCHEMA

SPEC = {"name": "face", "runtime": {"spark_version": "4.0.1"}, "worker": {"count": 2}}


def test_a_valid_name_is_returned_alone():
    result = run_module("dcm_spec", {"name": "face-2"}, check=True)
    assert result.get("failed") is not True, result
    assert result["name"] == "face-2" and result["changed"] is False
    assert "spec" not in result and "spec_hash" not in result


@pytest.mark.parametrize("name", ["Bad_Name", "-face", "face-", "a" * 41, ""])
def test_a_bad_name_fails_with_the_spec_validators_own_words(name):
    result = run_module("dcm_spec", {"name": name})
    assert result.get("failed") is True, result
    # the same message a spec with that name gets for its name (one rule, one wording)
    expected = validate_schema(name, SCHEMA["properties"]["name"], "name")
    assert expected and result["msg"] == "; ".join(expected)
    spec = run_module("dcm_spec", {"spec": {**SPEC, "name": name}})
    assert spec.get("failed") is True and expected[0] in spec["msg"], spec


def test_the_message_names_the_rule_and_the_value():
    result = run_module("dcm_spec", {"name": "Bad_Name"})
    assert result["msg"].startswith("name: must be a DNS label") and result["msg"].endswith('got "Bad_Name"')


def test_spec_and_name_are_mutually_exclusive_and_one_is_required():
    both = run_module("dcm_spec", {"spec": SPEC, "name": "face"})
    assert both.get("failed") is True and "mutually exclusive" in both["msg"], both
    neither = run_module("dcm_spec", {"base_dir": "/tmp"})
    assert neither.get("failed") is True and "one of the following is required: spec, name" in neither["msg"], neither


def test_a_spec_still_gives_the_normalized_spec():
    result = run_module("dcm_spec", {"spec": SPEC})
    assert result.get("failed") is not True, result
    assert result["name"] == "face" and result["spec"]["worker"]["count"] == 2 and result["spec_hash"]
    assert result["requests"]["workers"] == 2 and result["app_dir"] == ""
