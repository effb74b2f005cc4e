"""A spec is untrusted input: what it may not do to the images it builds (docs/security.md).

Each case below is a spec that would switch a defence off if it were accepted; each is refused at plan
time with the field named, before anything is built.
"""

from __future__ import annotations

import importlib
import os

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.core.errors import DcmError, SpecError
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.loading import escaping_links
from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import (
    FORBIDDEN_DOCKERFILE, check_job_conf, normalize_spec)

dcm_spec = importlib.import_module("ansible_collections.dcspark.dcm.plugins.modules.dcm_spec")


def spec(**runtime) -> dict:
    return {"name": "face", "runtime": {"spark_version": "4.0.1", **runtime}, "worker": {"cpus": 1, "memory": "1g", "count": 1}}


def problems(raw: dict) -> list:
    with pytest.raises(SpecError) as caught:
        normalize_spec(raw)
    return caught.value.problems


@pytest.mark.parametrize("word", sorted(FORBIDDEN_DOCKERFILE))
@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_instructions_that_take_the_image_from_dcm_are_refused(word, case):
    found = problems(spec(dockerfile=["RUN true", f"  {case(word)} 0000"]))
    assert len(found) == 1 and found[0].startswith(f"runtime.dockerfile[1]: {word} is not allowed"), found


@pytest.mark.parametrize("line,why", [
    ("RUN true\nUSER 0", "must be one line"),
    ("RUN true\r\nONBUILD RUN id", "must be one line"),
    ("RUN apt-get update && \\", "must not end with '\\'"),
])
def test_a_line_cannot_smuggle_an_instruction_or_swallow_dcms_next_one(line, why):
    found = problems(spec(dockerfile=[line]))
    assert any(problem.startswith("runtime.dockerfile[0]: " + why) for problem in found), found


@pytest.mark.parametrize("name", ["SPARK_DAEMON_JAVA_OPTS", "SPARK_MASTER_OPTS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
                                  "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "HADOOP_CONF_DIR", "_SPARK_AUTH_SECRET",
                                  "DCSPARK_APP_MAIN", "PYSPARK_SUBMIT_ARGS", "PATH", "spark_submit_opts"])
def test_environment_names_that_change_how_the_jvm_spark_or_python_start_are_refused(name):
    found = problems(spec(env={name: "-javaagent:/tmp/x.jar", "OMP_NUM_THREADS": "1"}))
    assert len(found) == 1 and found[0].startswith(f"runtime.env.{name}: is not allowed"), found
    assert "JAVA_TOOL_OPTIONS" in found[0] and "LD_" in found[0]  # the message lists what is forbidden


def test_ordinary_lines_and_variables_still_pass():
    ok = normalize_spec(spec(dockerfile=["RUN apt-get update && apt-get install -y libgomp1", "ENV A=1", "LABEL x=y"],
                             env={"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}))
    assert ok["runtime"]["env"] == {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("key", ["spark.redaction.regex", "spark.redaction.string.regex",
                                 "spark.authenticate.enableSaslEncryption", "spark.network.crypto.saslFallback",
                                 "spark.network.crypto.keyLength", "spark.master.rest.port"])
def test_security_settings_are_dcms_in_the_spec_and_in_every_job(key):
    found = problems({**spec(), "spark_conf": {key: "x"}})
    assert len(found) == 1 and found[0].startswith(f'spark_conf["{key}"]: is managed by DCM'), found
    with pytest.raises(SpecError) as caught:
        check_job_conf(normalize_spec(spec()), {key: "x"})
    assert caught.value.problems[0].startswith(f'conf["{key}"]: is managed by DCM'), caught.value.problems


def test_an_app_dir_that_is_a_link_out_of_the_spec_folder_is_refused(tmp_path):
    secret = tmp_path / "pki"
    secret.mkdir()
    (secret / "ca.key").write_text("KEY")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "app").symlink_to(secret)
    assert escaping_links(str(specs), "app") == ["app"]
    with pytest.raises(DcmError) as caught:
        dcm_spec.resolve_app_dir({"runtime": {"app_dir": "app"}}, str(specs))
    assert "runtime.app_dir: app leads out of the spec's folder" in str(caught.value)


def test_a_link_inside_the_app_folder_that_leaves_the_spec_folder_is_refused(tmp_path):
    (tmp_path / "ca.key").write_text("KEY")
    app = tmp_path / "specs" / "apps" / "face"
    (app / "lib").mkdir(parents=True)
    (app / "main.py").write_text("print(1)\n")
    (app / "lib" / "key.pem").symlink_to(tmp_path / "ca.key")
    (app / "same.py").symlink_to(app / "main.py")  # a link that stays inside is fine
    specs = str(tmp_path / "specs")
    assert escaping_links(specs, "apps/face") == [os.path.join("apps", "face", "lib", "key.pem")]
    with pytest.raises(DcmError) as caught:
        dcm_spec.resolve_app_dir({"runtime": {"app_dir": "apps/face"}, "app": {"main": "main.py"}}, specs)
    assert "apps/face/lib/key.pem leads out of the spec's folder" in str(caught.value)
    (app / "lib" / "key.pem").unlink()
    assert dcm_spec.resolve_app_dir({"runtime": {"app_dir": "apps/face"}, "app": {"main": "main.py"}}, specs) \
        == os.path.join(specs, "apps", "face")
