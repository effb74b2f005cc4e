"""Gather the benchmark results into docs/: one JSON file and one plot.

Reads whatever of benchmarks/results/ exists (spark.json from bench_spark.py, deploy.json from
bench_deploy.py, core.json from bench_core.py, faults.json from the sandbox suite's fault tests),
writes docs/benchmarks.json (every figure, each with where it came from and when it was
gathered) and docs/benchmarks.png, and prints a Markdown summary for docs/benchmarks.md.

    .venv/bin/python benchmarks/report.py [--results benchmarks/results] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = {
    "spark": "benchmarks/bench_spark.py",
    "spark_same_gc": "benchmarks/bench_spark.py --executor-java-options=-XX:+UseG1GC --json benchmarks/results/spark_same_gc.json",
    "deploy": "benchmarks/bench_deploy.py",
    "core": "benchmarks/bench_core.py",
    "faults": "molecule/default/tests/test_faults.py",
}


def load(results: str) -> dict:
    found = {}
    for name, source in SOURCES.items():
        path = os.path.join(results, f"{name}.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            stamp = datetime.datetime.fromtimestamp(os.path.getmtime(path), tz=datetime.timezone.utc)
            found[name] = {"source": source, "gathered": stamp.isoformat(timespec="seconds"), "figures": data}
    return found


def plot(report: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415 (only the plot needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    spark = report["spark"]["figures"]
    workloads = spark["workloads"]
    deploy = report.get("deploy", {}).get("figures")
    panels = 3 if deploy else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6), constrained_layout=True)

    # 1. the ratios with their spread, against the targets (and with one collector on both sides)
    ax = axes[0]
    names = list(workloads)
    variants = [("JVM's own GC", workloads, None)]
    same_gc = report.get("spark_same_gc", {}).get("figures", {}).get("workloads")
    if same_gc:
        variants.append(("G1 on both sides", same_gc, "//"))
    width = 0.8 / len(variants)
    lowest = 0.8
    for offset, (label, figures_of, hatch) in enumerate(variants):
        for index, name in enumerate(names):
            if name not in figures_of:
                continue
            ratio = figures_of[name]["ratio"]
            lowest = min(lowest, ratio["min"] - 0.05)
            x = index - 0.4 + width * (offset + 0.5)
            ax.bar(x, ratio["median"], width=width * 0.9, hatch=hatch, edgecolor="white",
                   color="#4c72b0" if figures_of[name]["met"] else "#dd8452",
                   label=label if index == 0 else None)
            ax.errorbar(x, ratio["median"], yerr=[[ratio["median"] - ratio["min"]], [ratio["max"] - ratio["median"]]],
                        color="black", capsize=4)
            ax.annotate(f"{ratio['median']:.3f}x", (x, ratio["max"]), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=8)
    for index, name in enumerate(names):
        ax.hlines(workloads[name]["target_ratio"], index - 0.45, index + 0.45, colors="#c44e52", linestyles="--")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(names)), [f"{n}\n({workloads[n]['figure']})" for n in names])
    ax.set_ylabel("DCSpark / native (median, min-max)")
    highest = max(f["ratio"]["max"] for v in variants for f in v[1].values())
    ax.set_ylim(lowest, max(1.3, highest + 0.1))
    ax.set_title("Slowdown against native Spark\n(dashed: the issue's target; orange: missed)")
    ax.legend(fontsize=8, loc="upper right")

    # 2. the phases' seconds, side by side
    ax = axes[1]
    labels, native, dcspark = [], [], []
    for name in names:
        for phase, figures in workloads[name]["phases"].items():
            labels.append(f"{name}\n{phase}")
            native.append(figures["native"]["median"])
            dcspark.append(figures["dcspark"]["median"])
    positions = range(len(labels))
    ax.bar([p - 0.2 for p in positions], native, width=0.4, label="native (host processes)", color="#8c8c8c")
    ax.bar([p + 0.2 for p in positions], dcspark, width=0.4, label="DCSpark (containers)", color="#4c72b0")
    ax.set_xticks(list(positions), labels, fontsize=8)
    ax.set_ylabel("seconds (median)")
    resources = spark["resources"]
    ax.set_title(f"Phases: {resources['workers']} workers x {resources['worker_cores']} core, "
                 f"Spark {spark['spark']}")
    ax.legend(fontsize=8)

    # 3. deploy latency against its targets
    if deploy:
        ax = axes[2]
        bars = [(key, deploy[key]) for key in ("cold_deploy_to_alive", "warm_deploy_to_alive", "noop_redeploy")
                if key in deploy]
        for index, (key, figures) in enumerate(bars):
            ax.bar(index, figures["median_s"], color="#55a868", width=0.55)
            ax.errorbar(index, figures["median_s"], yerr=[[figures["median_s"] - figures["min_s"]],
                                                          [figures["max_s"] - figures["median_s"]]],
                        color="black", capsize=6)
            target = deploy.get("targets", {}).get(f"{key}_s")
            if target:
                ax.hlines(target, index - 0.4, index + 0.4, colors="#c44e52", linestyles="--")
            ax.annotate(f"{figures['median_s']:.1f} s", (index, figures["max_s"]), textcoords="offset points",
                        xytext=(0, 6), ha="center")
        ax.axhline(deploy["baseline_s"], color="grey", linewidth=0.8, linestyle=":")
        ax.set_xticks(range(len(bars)), [key.replace("_", " ").replace(" to alive", "\nto ALIVE") for key, _figures in bars],
                      fontsize=8)
        ax.set_ylabel("seconds (median, min-max)")
        ax.set_title(f"Deploy of {deploy['spec']} (dotted: a bare playbook)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spark_table(spark: dict | None) -> list:
    if not spark:
        return []
    options = spark.get("executor_java_options") or "the JVM's own choice"
    lines = [f"\nExecutor JVM options: {options}\n",
             "| workload | figure | native (s) | DCSpark (s) | ratio median (min-max) | target | met |",
             "|---|---|---|---|---|---|---|"]
    for name, figures in spark["workloads"].items():
        ratio = figures["ratio"]
        lines.append(f"| {name} | {figures['figure']} | {figures['native_s']['median']} | "
                     f"{figures['dcspark_s']['median']} | {ratio['median']:.3f} ({ratio['min']:.3f}-{ratio['max']:.3f}) | "
                     f"<= {figures['target_ratio']} | {'yes' if figures['met'] else 'no'} |")
    cost = spark.get("image_disk_cost", {})
    if "ratio" in cost:
        lines.append(f"\nDisk: runtime image {cost['runtime_bytes'] / 1e6:.1f} MB; the three node images "
                     f"{cost['three_images_bytes'] / 1e6:.1f} MB together ({cost['extra_bytes_for_three']} bytes "
                     f"more, {cost['ratio']}x).")
    return lines


def markdown(report: dict) -> str:
    lines = []
    for key in ("spark", "spark_same_gc"):
        lines += _spark_table(report.get(key, {}).get("figures"))
    deploy = report.get("deploy", {}).get("figures")
    if deploy:
        lines.append("")
        for key in ("cold_deploy_to_alive", "warm_deploy_to_alive", "noop_redeploy"):
            if key in deploy:
                fig = deploy[key]
                lines.append(f"- {key}: {fig['median_s']} s (min {fig['min_s']}, max {fig['max_s']}, {fig['runs']} runs, "
                             f"{fig['ratio_to_baseline']}x a bare playbook of {deploy['baseline_s']} s)")
    core = report.get("core", {}).get("figures")
    if core:
        for key in ("schedule", "gc_plan"):
            fig = core[key]
            lines.append(f"- {key}: {fig['median_ms']} ms (min {fig['min_ms']}, max {fig['max_ms']}; target "
                         f"{fig['target_ms']} ms; {fig['ratio_to_baseline']}x one bare pass)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--results", default=os.path.join(REPO, "benchmarks", "results"))
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks"))
    args = parser.parse_args()
    report = load(args.results)
    if "spark" not in report:
        sys.exit(f"report: {args.results}/spark.json is missing: run `make bench-spark` first")
    with open(f"{args.out}.json", "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
        handle.write("\n")
    plot(report, f"{args.out}.png")
    print(markdown(report))
    print(f"\nwritten: {args.out}.json, {args.out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
