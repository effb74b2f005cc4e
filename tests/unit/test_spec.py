"""The cluster spec: schema, normalization and the errors a person sees."""

from __future__ import annotations

import copy
import json
import os
import re

import jsonschema
import pytest

from support import REPO
from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import SpecError
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import (
    check_job_conf,
    load_spec_file,
    normalize_spec,
    parse_spec_text,
    spec_hash,
)
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.schema import SCHEMA
from ansible_collections.dcspark.dcm.plugins.module_utils.core.units import MEMORY_PATTERN

SPECS = os.path.join(REPO, "specs")

MINIMAL = {"name": "face", "runtime": {"spark_version": "4.0.1"}, "worker": {"count": 2}}


def with_change(path: str, value: object) -> dict:
    """MINIMAL with ``value`` set at dotted ``path`` (``value is DELETE`` removes the key)."""
    spec = copy.deepcopy(MINIMAL)
    spec.setdefault("master", {})
    spec.setdefault("driver", {})
    spec.setdefault("spark_conf", {})
    target = spec
    parts = path.split("/")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return spec


DELETE = object()

# (case id, spec, the exact problem the user reads)
MALFORMED = [
    ("count-zero", with_change("worker/count", 0), "worker.count: must be >= 1, got 0"),
    ("count-string", with_change("worker/count", "6"), 'worker.count: must be an integer, got a string "6"'),
    ("count-missing", with_change("worker/count", DELETE), "worker.count: is required"),
    ("count-fraction", with_change("worker/count", 1.5), "worker.count: must be an integer, got a number 1.5"),
    ("worker-missing", {"name": "face", "runtime": {"spark_version": "4.0.1"}}, "worker: is required"),
    ("unknown-top", dict(MINIMAL, gpus=1),
     "gpus: unknown key (allowed here: name, runtime, master, driver, worker, spark_conf, jupyter, history, ui, volumes, app)"),
    ("unknown-nested", with_change("worker/gpus", 1), "worker.gpus: unknown key (allowed here: cpus, memory, count)"),
    ("name-upper", with_change("name", "Face"),
     "name: must be a DNS label: lowercase letters, digits and '-', starting with a letter and not ending with '-'; not 'proxy' or "
     "'history' (Spark's UI reserves them in the gateway's paths), got \"Face\""),
    ("name-dash-end", with_change("name", "face-"), "name: must be a DNS label"),
    ("name-dot", with_change("name", "face.v2"), "name: must be a DNS label"),
    ("name-digit-first", with_change("name", "1face"), "name: must be a DNS label"),
    ("name-too-long", with_change("name", "a" * 41), "name: must be at most 40 characters, got 41"),
    ("name-empty", with_change("name", ""), "name: must not be empty"),
    ("spark-version-missing", with_change("runtime/spark_version", DELETE), "runtime.spark_version: is required"),
    ("spark-version-bad", with_change("runtime/spark_version", "4.0"), "runtime.spark_version: must be a Spark release like '4.0.1', got \"4.0\""),
    ("memory-unit", with_change("worker/memory", "4GB"),
     "worker.memory: must be a whole number with an optional k/m/g/t suffix (binary units), like '4g' or '512m', got \"4GB\""),
    ("memory-decimal", with_change("master/memory", "1.5g"), "master.memory: must be a whole number with an optional k/m/g/t suffix"),
    ("memory-negative", with_change("driver/memory", -1), "driver.memory: must be >= 1, got -1"),
    ("memory-too-small", with_change("worker/memory", "100m"), "worker.memory: must be at least 512m for a Spark JVM, got \"100m\""),
    ("cpus-zero", with_change("master/cpus", 0), "master.cpus: must be > 0, got 0"),
    ("cpus-string", with_change("driver/cpus", "two"), 'driver.cpus: must be a number, got a string "two"'),
    ("worker-cpus-fraction", with_change("worker/cpus", 0.5), "worker.cpus: must be an integer, got a number 0.5"),
    ("cpus-too-precise", with_change("master/cpus", 0.0005), "master.cpus: cpus supports at most 3 decimals (millicpus), got 0.0005"),
    ("pip-option", with_change("runtime/pip_packages", ["--index-url=http://x"]),
     "runtime.pip_packages[0]: must be a PyPI requirement like 'numpy==2.1.3' (no options, URLs or spaces)"),
    ("pip-duplicate", with_change("runtime/pip_packages", ["numpy==2.1.3", "numpy==2.1.3"]),
     "runtime.pip_packages[1]: duplicate of an earlier item \"numpy==2.1.3\""),
    ("apt-bad", with_change("runtime/apt_packages", ["libgl1; rm -rf /"]), "runtime.apt_packages[0]: must be a Debian package name"),
    ("apt-not-list", with_change("runtime/apt_packages", "libgl1"), 'runtime.apt_packages: must be a list, got a string "libgl1"'),
    ("env-name", with_change("runtime/env", {"OMP-THREADS": "1"}), 'runtime.env["OMP-THREADS"]: key must be an environment variable name'),
    ("env-value-int", with_change("runtime/env", {"OMP_NUM_THREADS": 1}), "runtime.env.OMP_NUM_THREADS: must be a string, got an integer 1"),
    ("dockerfile-from", with_change("runtime/dockerfile", ["FROM ubuntu"]),
     "runtime.dockerfile[0]: FROM is not allowed; the runtime layer starts from runtime.base_image"),
    ("dockerfile-user", with_change("runtime/dockerfile", ["USER root"]), "runtime.dockerfile[0]: USER is not allowed"),
    ("app-dir-escape", with_change("runtime/app_dir", "../secrets"), "runtime.app_dir: must be a relative path inside the spec's folder"),
    ("app-without-dir", with_change("app", {"main": "detect.py"}), "app: needs runtime.app_dir, the folder holding app.main"),
    ("app-main-kind", dict(with_change("runtime/app_dir", "apps/x"), app={"main": "detect.sh"}),
     "app.main: must be a .py or .jar file relative to runtime.app_dir"),
    ("app-jar-class", dict(with_change("runtime/app_dir", "apps/x"), app={"main": "job.jar"}), "app.class: is required when app.main is a .jar"),
    ("conf-key", with_change("spark_conf", {"executor.memory": "1g"}),
     "spark_conf[\"executor.memory\"]: key must be a Spark property name starting with 'spark.'"),
    ("conf-managed-auth", with_change("spark_conf", {"spark.authenticate": False}),
     "spark_conf[\"spark.authenticate\"]: is managed by DCM (Spark authentication is always on); remove it from the spec"),
    ("conf-managed-rest", with_change("spark_conf", {"spark.master.rest.enabled": True}),
     "spark_conf[\"spark.master.rest.enabled\"]: is managed by DCM (the REST submission server is always off)"),
    ("conf-value-list", with_change("spark_conf", {"spark.jars": ["a.jar"]}),
     "spark_conf[\"spark.jars\"]: must be a string or a number or true or false, got a list"),
    ("executor-memory-too-big", dict(with_change("worker/memory", "1g"), spark_conf={"spark.executor.memory": "2g"}),
     "spark_conf[\"spark.executor.memory\"]: 2g exceeds worker.memory 1g; lower it or raise worker.memory"),
    ("executor-cores-too-many", with_change("spark_conf", {"spark.executor.cores": 4}),
     "spark_conf[\"spark.executor.cores\"]: 4 exceeds worker.cpus 1; no executor could ever start"),
    ("history-max-age", dict(MINIMAL, history={"max_age": "3w"}),
     "history.max_age: must be a number of hours or days like '12h' or '7d', got \"3w\""),
    ("history-small", dict(MINIMAL, history={"memory": "256m"}),
     "history.memory: must be at least 512m for a Spark JVM, got \"256m\""),
    ("history-unknown", dict(MINIMAL, history={"port": 18080}), "history.port: unknown key"),
    ("history-event-log-dir", dict(MINIMAL, history={}, spark_conf={"spark.eventLog.dir": "file:/tmp"}),
     "spark_conf[\"spark.eventLog.dir\"]: is managed by DCM (the event logs go to the cluster's history volume"),
    ("history-conf", dict(MINIMAL, history={}, spark_conf={"spark.history.fs.cleaner.enabled": False}),
     "spark_conf[\"spark.history.fs.cleaner.enabled\"]: is managed by DCM (the history server's settings"),
    ("not-object", ["face"], '(root): must be an object, got a list ["face"]'),
    ("runtime-null", with_change("runtime", None), "runtime: must be an object, got null null"),
]


@pytest.mark.parametrize("spec, expected", [(spec, msg) for _id, spec, msg in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_spec_is_rejected_with_path_and_rule(spec, expected):
    with pytest.raises(SpecError) as info:
        normalize_spec(spec)
    problems = info.value.problems
    assert any(p.startswith(expected) for p in problems), f"expected {expected!r} in {problems}"


def test_there_are_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20


def test_every_problem_is_reported_at_once():
    spec = {"name": "Bad", "runtime": {}, "worker": {"count": 0, "gpus": 2}}
    with pytest.raises(SpecError) as info:
        normalize_spec(spec)
    assert len(info.value.problems) == 4
    assert "4 problems" in str(info.value)


def test_json_syntax_error_names_line_and_column():
    with pytest.raises(SpecError, match=r"not valid JSON: .* at line 2, column \d+"):
        parse_spec_text('{"name": "face",\n "worker": }', "bad.json")


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read the spec file"):
        load_spec_file(str(tmp_path / "nope.json"))


def test_defaults_and_units_are_normalized():
    spec = normalize_spec(dict(MINIMAL, worker={"count": 2, "memory": "1536m", "cpus": 2}, master={"cpus": 0.5, "memory": 1 << 30}))
    assert spec["worker"] == {"cpus": 2, "memory": 1536 << 20, "count": 2}
    assert spec["master"] == {"cpus": 0.5, "memory": 1 << 30}
    assert spec["driver"] == {"cpus": 1, "memory": 1 << 30}
    assert spec["runtime"]["base_image"] == "debian:bookworm-slim"
    assert spec["runtime"]["pip_packages"] == [] and spec["runtime"]["env"] == {}
    assert spec["app"] is None and spec["spark_conf"] == {}


def test_memory_suffixes_are_binary_and_case_insensitive():
    for text, expected in [("2048M", 2 << 30), ("3g", 3 << 30), ("1T", 1 << 40), ("1048576k", 1 << 30), (str(1 << 30), 1 << 30)]:
        spec = normalize_spec(dict(MINIMAL, worker={"count": 1, "memory": text}))
        assert spec["worker"]["memory"] == expected, text


def test_spark_conf_values_become_strings():
    spec = normalize_spec(dict(MINIMAL, spark_conf={"spark.executor.cores": 1, "spark.eventLog.enabled": True}))
    assert spec["spark_conf"] == {"spark.eventLog.enabled": "true", "spark.executor.cores": "1"}


def test_hash_is_stable_and_sees_every_change():
    first = normalize_spec(copy.deepcopy(MINIMAL))
    assert spec_hash(first) == spec_hash(normalize_spec(copy.deepcopy(MINIMAL)))
    # the same spec written differently (defaults spelled out, other units) is the same spec
    spelled = dict(MINIMAL, worker={"count": 2, "cpus": 1, "memory": "1024m"}, spark_conf={})
    assert spec_hash(normalize_spec(spelled)) == spec_hash(first)
    changed = normalize_spec(dict(MINIMAL, runtime={"spark_version": "4.0.1", "pip_packages": ["numpy==2.1.3"]}))
    assert spec_hash(changed) != spec_hash(first)


@pytest.mark.parametrize("name", ["face.json", "video_synopsis.json"])
def test_example_specs_are_valid(name):
    spec = load_spec_file(os.path.join(SPECS, name))
    assert spec["worker"]["count"] >= 1


def _pins(spec: dict) -> dict:
    return dict(p.split("==") for p in spec["runtime"]["pip_packages"])


def test_example_environments_really_conflict():
    face = load_spec_file(os.path.join(SPECS, "face.json"))
    video = load_spec_file(os.path.join(SPECS, "video_synopsis.json"))

    def major(version: str) -> str:
        return version.split(".")[0]

    assert major(face["runtime"]["spark_version"]) != major(video["runtime"]["spark_version"])
    for package in ("opencv-python-headless", "numpy"):
        assert major(_pins(face)[package]) != major(_pins(video)[package]), package
    assert face["name"] != video["name"]


# -- the published JSON Schema --------------------------------------------------------------

def test_published_schema_file_is_the_source_schema():
    with open(os.path.join(REPO, "schemas", "cluster-spec.schema.json"), encoding="utf-8") as handle:
        published = json.load(handle)
    assert published == json.loads(json.dumps(SCHEMA)), "run `python3 scripts/write_schema.py` to regenerate"


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_memory_pattern_is_the_units_rule():
    assert SCHEMA["properties"]["worker"]["properties"]["memory"]["pattern"] == MEMORY_PATTERN


SEMANTIC_ONLY = {
    "memory-too-small", "cpus-too-precise", "dockerfile-from", "dockerfile-user", "app-dir-escape", "app-without-dir",
    "app-jar-class", "conf-managed-auth", "conf-managed-rest", "executor-memory-too-big", "executor-cores-too-many",
    "history-small", "history-event-log-dir", "history-conf",
}


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_standard_validators_agree_with_ours(case):
    """Every structural rejection is also a rejection by a stock JSON Schema validator."""
    case_id, spec, _message = case
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(spec))
    if case_id in SEMANTIC_ONLY:
        assert not errors, f"{case_id} should pass the schema and fail only the semantic checks"
    else:
        assert errors, f"{case_id} passes a stock validator but not ours"


@pytest.mark.parametrize("name", ["face.json", "video_synopsis.json"])
def test_examples_pass_a_stock_validator(name):
    with open(os.path.join(SPECS, name), encoding="utf-8") as handle:
        jsonschema.Draft202012Validator(SCHEMA).validate(json.load(handle))


def test_problem_messages_never_leak_python_reprs():
    for _id, spec, _msg in MALFORMED:
        try:
            normalize_spec(spec)
        except SpecError as exc:
            assert not re.search(r"<class |Traceback|object at 0x", str(exc))


# -- volumes ---------------------------------------------------------------------
def volumes_spec(*volumes: dict) -> dict:
    return dict(copy.deepcopy(MINIMAL), volumes=list(volumes))


def test_volumes_are_optional_and_filled_with_their_defaults():
    assert "volumes" not in normalize_spec(MINIMAL)  # absent stays absent: no spec's hash changes
    spec = normalize_spec(volumes_spec({"name": "data", "path": "/data/in"},
                                       {"name": "notes", "path": "/opt/dcspark/notebooks", "nodes": ["driver"]}))
    assert spec["volumes"] == [
        {"name": "data", "path": "/data/in", "nodes": ["driver", "worker"], "read_only": False},
        {"name": "notes", "path": "/opt/dcspark/notebooks", "nodes": ["driver"], "read_only": False}]


@pytest.mark.parametrize(("volumes", "expected"), [
    ([{"name": "Data", "path": "/data"}], "volumes[0].name: must be a DNS label of at most 24 characters"),
    ([{"name": "data", "path": "/usr/local/bin"}], "volumes[0].path: must be /data, /mnt or /srv or a folder below them"),
    ([{"name": "data", "path": "/opt/dcspark/conf"}], "volumes[0].path: must be /data, /mnt or /srv"),
    ([{"name": "data", "path": "/data/../etc"}], "volumes[0].path: must not have '.' or '..' parts"),
    ([{"name": "data", "path": "data"}], "volumes[0].path: must be /data, /mnt or /srv"),
    ([{"name": "a", "path": "/data"}, {"name": "a", "path": "/srv"}], "volumes[1].name: \"a\" is also the name of volumes[0]"),
    ([{"name": "a", "path": "/data"}, {"name": "b", "path": "/data/x"}], "volumes[1].path: \"/data/x\" overlaps volumes[0].path"),
    ([{"name": "a", "path": "/data", "nodes": ["master"]}], "volumes[0].nodes[0]: must be one of \"driver\", \"worker\""),
    ([{"name": "a", "path": "/data", "nodes": []}], "volumes[0].nodes: must have at least 1 items"),
    ([{"name": "a", "path": "/opt/dcspark/notebooks"}], "volumes[0].nodes: /opt/dcspark/notebooks is the driver's Jupyter folder"),
    ([{"name": f"v{i}", "path": f"/data/{i}"} for i in range(17)], "volumes: must have at most 16 items, got 17"),
    ([], "volumes: must have at least 1 items"),
    ([{"name": "a", "path": "/data", "size": "1g"}], "volumes[0].size: unknown key (allowed here: name, path, nodes, read_only)"),
])
def test_a_bad_volume_is_refused_naming_the_field_and_the_rule(volumes, expected):
    with pytest.raises(SpecError) as info:
        normalize_spec(volumes_spec(*volumes))
    assert any(p.startswith(expected) for p in info.value.problems), f"expected {expected!r} in {info.value.problems}"


def test_a_history_server_is_optional_and_its_event_log_settings_are_free_without_one():
    assert "history" not in normalize_spec(MINIMAL)
    spec = normalize_spec(dict(MINIMAL, history={}))
    assert spec["history"] == {"cpus": 0.5, "memory": 1 << 30, "max_age": "7d"}
    # without a history server a spec may keep its own event logs (on QFS, say)
    own = normalize_spec(dict(MINIMAL, spark_conf={"spark.eventLog.enabled": True, "spark.eventLog.dir": "qfs:///e"}))
    assert own["spark_conf"]["spark.eventLog.dir"] == "qfs:///e"
    # a job's conf is checked by the same rule
    with pytest.raises(SpecError, match="spark.eventLog.enabled"):
        check_job_conf(spec, {"spark.eventLog.enabled": False})
