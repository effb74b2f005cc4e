"""dcm_image_record against the session's real etcd: a deploy reuses a tag's images only when the pool's own
build recorded exactly the digests the registry serves (whoever pushes first must not decide what runs)."""

from __future__ import annotations

import json

from support import run_module

from ansible_collections.dcspark.dcm.plugins.module_utils.state import keys

PUSHED = {role: "sha256:" + char * 64 for role, char in
          (("runtime", "1"), ("master", "2"), ("worker", "3"), ("driver", "4"))}


def _args(clean_etcd, **extra):
    return {"cluster": "face", "tag": "3f2a9c0d1e2f3a4b5c6d", "images": PUSHED, **clean_etcd.module_args(), **extra}


def test_a_tag_nobody_recorded_is_not_trusted(clean_etcd):
    result = run_module("dcm_image_record", _args(clean_etcd))
    assert result.get("failed") is not True, result
    assert (result["changed"], result["trusted"], result["recorded"]) == (False, False, None)
    assert "etcd records no build of this pool" in result["reason"]


def test_recorded_digests_are_trusted_and_a_foreign_push_is_not(clean_etcd):
    planned = run_module("dcm_image_record", _args(clean_etcd, state="present"), check=True)
    assert planned["changed"] is True and clean_etcd.client.get(keys.images_key("face", "3f2a9c0d1e2f3a4b5c6d")) is None
    written = run_module("dcm_image_record", _args(clean_etcd, state="present"))
    assert written.get("failed") is not True and written["changed"] is True, written
    stored = json.loads(clean_etcd.client.get(keys.images_key("face", "3f2a9c0d1e2f3a4b5c6d")).value)
    assert stored["images"] == PUSHED and stored["cluster"] == "face" and stored["built_at"]
    assert run_module("dcm_image_record", _args(clean_etcd, state="present"))["changed"] is False

    assert run_module("dcm_image_record", _args(clean_etcd))["trusted"] is True
    foreign = dict(PUSHED, master="sha256:" + "f" * 64)
    refused = run_module("dcm_image_record", _args(clean_etcd, images=foreign))
    assert refused["trusted"] is False and refused["changed"] is False
    assert f"dcspark-master sha256:{'f' * 64}" in refused["reason"] and PUSHED["master"] in refused["reason"]


def test_only_the_newest_records_of_a_cluster_are_kept(clean_etcd):
    for index in range(4):
        result = run_module("dcm_image_record", _args(clean_etcd, tag=f"tag{index}", state="present", keep=2))
        assert result["changed"] is True, result
    kvs, _rev = clean_etcd.client.get_prefix(keys.images_prefix("face"), keys_only=True)
    assert sorted(kv.key.rsplit("/", 1)[1] for kv in kvs) == ["tag2", "tag3"]


def test_digests_that_are_not_digests_are_refused_naming_them(clean_etcd):
    result = run_module("dcm_image_record", _args(clean_etcd, images={"master": "latest", "gateway": "sha256:0"},
                                                  state="present"))
    assert result.get("failed") is True and "['gateway']" in result["msg"] and "['master']" in result["msg"], result
    assert clean_etcd.client.get(keys.images_key("face", "3f2a9c0d1e2f3a4b5c6d")) is None


def test_a_record_that_does_not_parse_is_an_error_not_an_absence(clean_etcd):
    clean_etcd.client.put(keys.images_key("face", "3f2a9c0d1e2f3a4b5c6d"), "{broken")
    result = run_module("dcm_image_record", _args(clean_etcd))
    assert result.get("failed") is True and "does not hold JSON" in result["msg"], result
