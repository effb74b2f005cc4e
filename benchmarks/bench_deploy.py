"""Benchmark of the cluster lifecycle on a provisioned pool (the sandbox by default).

Measures, for one spec (face.json by default), with the real playbooks:

- cold:     deploy_cluster.yml of a spec whose content hash is new (a build label in runtime.env
            changes), from no cluster to every worker ALIVE: the images are really built and
            pushed, then pulled by every host; Docker's layer cache is whatever the pool holds
            (the first run on a fresh pool is a cold build from the base image);
- warm:     deploy_cluster.yml after an undeploy, images already in the registry and on the hosts,
            from the start of the playbook until the Spark master reports every worker ALIVE
            (run_app=false, so the time is the cluster's, not the application's);
- no-op:    the same deploy again, nothing to do;
- baseline: a playbook that only gathers facts on the same hosts and reads etcd once — what any
            playbook run against this pool costs. Every figure is also given as a ratio to it.

Targets: warm deploy to ALIVE <= 30 s for a
master, 3 workers and a driver; no-op redeploy <= 10 s. Not a test: nothing here asserts.

    .venv/bin/python benchmarks/bench_deploy.py [-i inventories/sandbox] [--spec face.json]
        [--repeat 3] [--json benchmarks/results/deploy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, ".venv", "bin")

BASELINE = """
- hosts: dcm_masters[0]
  gather_facts: true
  roles: [dcspark.dcm.dcm]
  tasks:
    - dcspark.dcm.dcm_pool_info:
        etcd_endpoints: "{{ dcm_etcd_endpoints }}"
        etcd_ca_cert: "{{ dcm_etcd_ca_cert }}"
        etcd_client_cert: "{{ dcm_etcd_client_cert }}"
        etcd_client_key: "{{ dcm_etcd_client_key }}"
"""


def run(inventory: str, playbook: str, *args: str) -> float:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    start = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, playbook, *args],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{os.path.basename(playbook)} {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def summary(samples: list, baseline: float) -> dict:
    median = statistics.median(samples)
    return {"median_s": round(median, 2), "min_s": round(min(samples), 2), "max_s": round(max(samples), 2),
            "runs": len(samples), "ratio_to_baseline": round(median / baseline, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("-i", "--inventory", default="inventories/sandbox")
    parser.add_argument("--spec", default="face.json")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-build", action="store_true", help="do not measure a cold deploy (a build)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "results", "deploy.json"))
    args = parser.parse_args()
    playbooks = os.path.join(REPO, "playbooks")
    spec_path = args.spec if os.path.isfile(args.spec) else os.path.join(REPO, "specs", args.spec)
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    name = spec["name"]
    deploy = os.path.join(playbooks, "deploy_cluster.yml")
    undeploy = os.path.join(playbooks, "undeploy_cluster.yml")

    with tempfile.TemporaryDirectory() as tmp:
        baseline_playbook = os.path.join(tmp, "baseline.yml")
        with open(baseline_playbook, "w", encoding="utf-8") as handle:
            handle.write(BASELINE)
        baseline = statistics.median(run(args.inventory, baseline_playbook) for _attempt in range(args.repeat))
        results = {"spec": name, "inventory": args.inventory, "baseline_s": round(baseline, 2)}

        if not args.skip_build:
            variant = json.loads(json.dumps(spec))
            variant["runtime"].setdefault("env", {})["DCSPARK_BENCH_BUILD"] = str(int(time.time()))
            if spec["runtime"].get("app_dir"):  # a spec's app_dir lies inside its own folder: copy it
                shutil.copytree(os.path.join(os.path.dirname(os.path.abspath(spec_path)), spec["runtime"]["app_dir"]),
                                os.path.join(tmp, "app"))
                variant["runtime"]["app_dir"] = "app"
            variant_path = os.path.join(tmp, "variant.json")
            with open(variant_path, "w", encoding="utf-8") as handle:
                json.dump(variant, handle)
            run(args.inventory, undeploy, "-e", f"cluster={name}")
            results["cold_deploy_to_alive"] = summary(
                [run(args.inventory, deploy, "-e", f"spec={variant_path}", "-e", "run_app=false")], baseline)
            run(args.inventory, undeploy, "-e", f"cluster={name}")
            print(f"cold deploy (new content hash: build, push, pull, start): "
                  f"{results['cold_deploy_to_alive']['median_s']} s", flush=True)

    run(args.inventory, deploy, "-e", f"spec={args.spec}", "-e", "run_app=false")  # images present everywhere
    warm, noop = [], []
    for _attempt in range(args.repeat):
        run(args.inventory, undeploy, "-e", f"cluster={name}")
        warm.append(run(args.inventory, deploy, "-e", f"spec={args.spec}", "-e", "run_app=false"))
        noop.append(run(args.inventory, deploy, "-e", f"spec={args.spec}", "-e", "run_app=false"))
    results["warm_deploy_to_alive"] = summary(warm, baseline)
    results["noop_redeploy"] = summary(noop, baseline)
    results["targets"] = {"warm_deploy_to_alive_s": 30, "noop_redeploy_s": 10}
    for key in ("cold_deploy_to_alive", "warm_deploy_to_alive", "noop_redeploy"):
        if key not in results:
            continue
        figure = results[key]
        print(f"{key}: median {figure['median_s']} s (min {figure['min_s']}, max {figure['max_s']}), "
              f"{figure['ratio_to_baseline']}x the baseline playbook ({baseline:.1f} s)")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
