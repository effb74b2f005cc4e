"""A spec is untrusted input: the attacks a spec author can try, tried for real on the scenario's pool.

Each spec below would switch a defence off if it were built; deploy_cluster.yml must refuse it before
anything is built or reserved, naming the field, and leave etcd, the hosts' containers and networks
as they were. (The defences of running nodes - no secret in docker inspect, user 185, DCM's own
entrypoint, no way to the registry - are checked on the deployed clusters in test_clusters.py.)
"""

from __future__ import annotations

import json
import os
import shutil

from test_clusters import REPO, playbook


def _face_spec() -> dict:
    with open(os.path.join(REPO, "specs", "face.json"), encoding="utf-8") as handle:
        spec = json.load(handle)
    spec["name"] = "intruder"
    return spec


def _said(run) -> str:
    return " ".join((run.stdout + run.stderr).split())


def _images_of(pool, cluster: str) -> list:
    return pool.hosts[pool.first].check_output(
        f"docker images -q --filter label=org.dcspark.cluster={cluster}").split()


def _spec_folder(tmp_path, spec: dict) -> str:
    """The spec in a folder of its own with a copy of face's application, as a spec author has it."""
    folder = tmp_path / "specs"
    shutil.copytree(os.path.join(REPO, "specs", "apps", "face"), folder / "apps" / "face")
    path = folder / "intruder.json"
    path.write_text(json.dumps(spec))
    return str(path)


def _deploy_is_refused(pool, path: str) -> str:
    """deploy_cluster.yml of ``path`` fails and changes nothing; returns what it said."""
    before = pool.state()
    run = playbook(pool.inventory, "deploy_cluster.yml", "-e", f"spec={path}", "-e", "run_app=false")
    said = _said(run)
    assert run.returncode != 0, said[-3000:]
    assert pool.state() == before
    assert _images_of(pool, "intruder") == []  # nothing was built
    return said


def test_a_spec_that_would_switch_security_off_is_refused_naming_each_field(pool, tmp_path):
    spec = _face_spec()
    spec["runtime"]["dockerfile"] = ["RUN true", "ONBUILD USER 0000", "USER root", 'ENTRYPOINT ["/bin/sh"]']
    spec["runtime"]["env"] = {"JAVA_TOOL_OPTIONS": "-Dspark.authenticate=false", "LD_PRELOAD": "/tmp/x.so",
                              "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=true"}
    spec["spark_conf"] = {"spark.authenticate": "false", "spark.redaction.regex": "nothing"}
    said = _deploy_is_refused(pool, _spec_folder(tmp_path, spec))
    for field in ("runtime.dockerfile[1]: ONBUILD is not allowed", "runtime.dockerfile[2]: USER is not allowed",
                  "runtime.dockerfile[3]: ENTRYPOINT is not allowed", "runtime.env.JAVA_TOOL_OPTIONS: is not allowed",
                  "runtime.env.LD_PRELOAD: is not allowed", "runtime.env.SPARK_MASTER_OPTS: is not allowed",
                  'spark_conf["spark.authenticate"]: is managed by DCM',
                  'spark_conf["spark.redaction.regex"]: is managed by DCM'):
        assert field in said, f"{field!r} not said:\n{said[-4000:]}"
    assert "runtime.dockerfile[0]" not in said  # a plain RUN line is the spec's right


def test_an_app_dir_that_leads_out_of_the_specs_folder_is_refused(pool, tmp_path):
    """A link in the spec's folder to the pool's CA key (here: a stand-in file) must not ship it in an image."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ca.key").write_text("a stand-in for a key outside the spec's folder\n")
    spec = _face_spec()
    path = _spec_folder(tmp_path, spec)
    os.symlink(elsewhere / "ca.key", tmp_path / "specs" / "apps" / "face" / "ca.key")
    said = _deploy_is_refused(pool, path)
    assert "apps/face/ca.key leads out of the spec's folder" in said, said[-4000:]
