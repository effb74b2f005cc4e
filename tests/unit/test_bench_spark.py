"""The arithmetic of benchmarks/bench_spark.py: pairs, ratios, spread and the targets.

The benchmark itself needs the sandbox and minutes of Spark; what it concludes from its runs is
checked here on runs whose answer is known.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import bench_spark  # noqa: E402


def run(side: str, workload: str, repetition: int, phases: dict) -> dict:
    return {"side": side, "workload": workload, "repetition": repetition, "warmup": repetition == 0,
            "figure_s": bench_spark.figure({"phases": phases}, workload), "wall_s": 1.0,
            "result": {"phases": phases}}


def test_ratios_pair_each_repetition_and_the_warm_up_is_left_out():
    runs = [run("native", "lr", 0, {"generate": 1, "train": 100}),  # the warm-up: 100x, ignored
            run("dcspark", "lr", 0, {"generate": 1, "train": 10_000})]
    for repetition, (native, dcspark) in enumerate([(10, 10.2), (12, 12.0), (8, 8.8)], start=1):
        runs += [run("native", "lr", repetition, {"generate": 5, "train": native}),
                 run("dcspark", "lr", repetition, {"generate": 50, "train": dcspark})]
    summary = bench_spark.summarize(runs, "lr")
    # lr is judged by its training phase only: ratios 1.02, 1.0 and 1.1
    assert summary["ratio"] == {"median": 1.02, "min": 1.0, "max": 1.1, "runs": 3}
    assert summary["met"] is True and summary["target_ratio"] == 1.05
    assert summary["native_s"]["median"] == 10 and summary["dcspark_s"]["median"] == 10.2
    assert summary["phases"]["generate"]["ratio"]["median"] == 10.0


def test_sort_is_judged_by_its_three_phases_and_a_miss_is_reported():
    runs = []
    for repetition in (1, 2):
        runs += [run("native", "sort", repetition, {"generate": 10, "sort": 10, "validate": 10}),
                 run("dcspark", "sort", repetition, {"generate": 12, "sort": 12, "validate": 12})]
    summary = bench_spark.summarize(runs, "sort")
    assert summary["figure"] == "generate+sort+validate"
    assert summary["ratio"]["median"] == 1.2
    assert summary["met"] is False  # 1.2 > 1.15


def test_a_run_without_its_result_line_stops_the_benchmark_with_the_output():
    assert bench_spark.result_line('noise\nSPARKBENCH {"ok": true}\n', "x") == {"ok": True}
    with pytest.raises(SystemExit, match="the native run printed no SPARKBENCH line:\nTraceback"):
        bench_spark.result_line("Traceback (most recent call last): ...", "the native run")


def test_the_benchmark_spec_is_a_valid_spec_whose_app_is_in_its_folder():
    from ansible_collections.dcspark.dcm.plugins.module_utils.spec.model import load_spec_file  # noqa: PLC0415

    spec = load_spec_file(bench_spark.SPEC)
    assert spec["worker"]["count"] >= 2
    app = os.path.join(os.path.dirname(bench_spark.SPEC), spec["runtime"]["app_dir"], spec["app"]["main"])
    assert os.path.samefile(app, bench_spark.APP)
