"""Benchmark of the pure DCM core: scheduling at scale and GC planning.

Targets on the project's machines (2 cores): plan a 1,000-worker cluster over
10,000 hosts in <= 50 ms, and a GC plan over 5,000 images in <= 100 ms.
Each figure is the median of repeated runs, reported with its spread and as a
ratio against a baseline measured in the same run: one bare pass over the
same input (the least any algorithm must spend to look at every host/image).
Not a test: timings are noisy, so nothing here asserts.

    make bench   (or: .venv/bin/python benchmarks/bench_core.py) [--repeat 15] [--json benchmarks/results/core.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins"))

from module_utils.policy.gc import ImageInfo, plan_image_gc  # noqa: E402
from module_utils.policy.scheduler import Host, Request, schedule  # noqa: E402

G = 1 << 30


def make_hosts(count: int, rng: random.Random) -> list:
    hosts = []
    for index in range(count):
        cpus = rng.choice([8, 16, 32, 64]) * 1000
        memory = rng.choice([32, 64, 128, 256]) * G
        used = rng.random() * 0.7
        hosts.append(Host(
            name=f"node{index:05d}", cpus=cpus, memory=memory,
            requested_cpus=int(cpus * used) // 1000 * 1000, requested_memory=int(memory * used) // G * G,
            nodes=rng.randint(0, 6), live=rng.random() > 0.01, cordoned=rng.random() < 0.005,
        ))
    return hosts


def make_images(count: int, rng: random.Random) -> list:
    return [
        ImageInfo(
            id=f"sha256:{index:064x}", unique_size=rng.randint(1 << 20, 2 * G), last_used=rng.uniform(0, 1e9),
            dcspark=rng.random() > 0.2, in_use=rng.random() < 0.1, tags=(f"reg:5000/dcspark-worker:{index}",),
        )
        for index in range(count)
    ]


def timed(fn, repeat: int) -> list:
    samples = []
    for _run in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list) -> dict:
    return {
        "median_ms": round(statistics.median(samples), 3),
        "min_ms": round(min(samples), 3),
        "max_ms": round(max(samples), 3),
        "stdev_ms": round(statistics.pstdev(samples), 3),
        "runs": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1_000)
    parser.add_argument("--images", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "results", "core.json"))
    args = parser.parse_args()
    rng = random.Random(20261122)

    hosts = make_hosts(args.hosts, rng)
    requests = {"master": Request(1000, 2 * G), "driver": Request(2000, 4 * G), "worker": Request(2000, 4 * G)}

    def plan():
        return schedule("bench", requests, args.workers, hosts)

    def plan_and_report():
        return plan().to_dict()

    def host_baseline():  # one bare pass: every host's Eq. 2 rate
        return min((h.requested_cpus / h.cpus + h.requested_memory / h.memory, h.name) for h in hosts)

    images = make_images(args.images, rng)
    protected = {f"reg:5000/dcspark-worker:{i}" for i in range(0, args.images, 50)}
    used = sum(i.unique_size for i in images)

    def gc_plan():
        return plan_image_gc(images, used=used, capacity=int(used / 0.9), threshold=0.8, protected=protected)

    def image_baseline():  # one bare pass: sort by last use
        return sorted(images, key=lambda i: i.last_used)

    placed = plan()
    results = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "schedule": dict(summary(timed(plan, args.repeat)), hosts=args.hosts, workers=args.workers,
                         hosts_used=len(set(placed.workers)), target_ms=50),
        "schedule_with_report": summary(timed(plan_and_report, max(3, args.repeat // 3))),
        "schedule_baseline_one_pass": summary(timed(host_baseline, args.repeat)),
        "gc_plan": dict(summary(timed(gc_plan, args.repeat)), images=args.images,
                        selected=len(gc_plan().selected), target_ms=100),
        "gc_baseline_sort": summary(timed(image_baseline, args.repeat)),
    }
    results["schedule"]["ratio_to_baseline"] = round(
        results["schedule"]["median_ms"] / results["schedule_baseline_one_pass"]["median_ms"], 2)
    results["gc_plan"]["ratio_to_baseline"] = round(
        results["gc_plan"]["median_ms"] / results["gc_baseline_sort"]["median_ms"], 2)

    for name in ("schedule", "gc_plan"):
        entry = results[name]
        verdict = "within" if entry["median_ms"] <= entry["target_ms"] else "OVER"
        print(f"{name:10s} median {entry['median_ms']:8.2f} ms  (min {entry['min_ms']:.2f}, max {entry['max_ms']:.2f}, "
              f"{entry['runs']} runs)  {entry['ratio_to_baseline']}x one bare pass  -> {verdict} target "
              f"{entry['target_ms']} ms")
    print(f"schedule + per-host report: median {results['schedule_with_report']['median_ms']:.2f} ms "
          f"({args.hosts} host entries); workers on {results['schedule']['hosts_used']} hosts")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    print(f"results: {os.path.relpath(args.json, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
