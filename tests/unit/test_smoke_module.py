from support import run_module


def test_dcm_schedule_runs_through_ansible():
    result = run_module("dcm_schedule", {
        "spec": {"name": "t", "runtime": {"spark_version": "4.0.1"}, "worker": {"count": 2}},
        "hosts": [{"name": "a", "cpus": 4, "memory": "8g"}],
    })
    assert result.get("failed") is not True, result
    assert result["placement"] == {"master": "a", "driver": "a", "workers": ["a", "a"]}
