"""The paper's evaluation, side by side: a DCSpark cluster against native Spark standalone.

One run, one machine, the same resources. The DCSpark side is the cluster of
benchmarks/specs/sparkbench.json, deployed with deploy_cluster.yml on the sandbox's simulated hosts
(containers of the runtime image under the agent's CPU and memory limits, nested in the hosts'
own Docker engines, Spark authentication and RPC encryption on). The native side is the same
Spark version (the pyspark 4.0.1 distribution, with the same numpy) run as plain host processes:
a master, as many workers as the spec has, each offering the cores and memory the DCSpark workers
offer (read from the running containers' environment), and a driver whose spark-defaults.conf is
the DCSpark driver's own (the same security settings, executor sizes and driver memory; only the
master URL, the driver's host name and the secret differ).

Workloads (benchmarks/specs/apps/sparkbench/sparkbench.py, the same file on both sides):
  lr    logistic regression with MLlib, iterative and CPU-bound (figure: the training phase);
  sort  TeraSort-style generate / sort / validate, shuffle-heavy (figure: the three phases).
Each side runs one unmeasured warm-up of each workload, then --repeat measured runs, interleaved
(native and DCSpark alternate which goes first), so drift on the machine hits both sides. Each
ratio is DCSpark / native of one repetition's pair; the report gives the median ratio with its
spread (min and max over the pairs). Targets (the issue): lr <= 1.05x, sort <= 1.15x. Nothing here
asserts: the figures and whether the targets are met are printed and written to --json.

Needs the sandbox (`make sandbox`, or sandbox_up.yml + site.yml) and Java 17 on this machine;
`make bench-spark` sees to the rest (the native distribution in .build/bench-native).

    .venv/bin/python benchmarks/bench_spark.py [--repeat 3] [--lr-rows 400000] [--sort-records 1000000]
        [--keep] [--json benchmarks/results/spark.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_deploy import run as run_playbook  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(REPO, "benchmarks", "specs", "sparkbench.json")
APP = os.path.join(REPO, "benchmarks", "specs", "apps", "sparkbench", "sparkbench.py")
NATIVE_VENV = os.path.join(REPO, ".build", "bench-native")
TARGETS = {"lr": 1.05, "sort": 1.15}
# The figure each workload is judged by: lr's training (the iterative, CPU-bound part; generating
# the data set is the same Spark SQL on both sides), sort's whole generate / sort / validate.
FIGURE_PHASES = {"lr": ("train",), "sort": ("generate", "sort", "validate")}
# Settings that name the DCSpark cluster itself: the native driver gets its own.
CLUSTER_SETTINGS = ("spark.master", "spark.driver.host", "spark.authenticate.secret")


def say(message: str) -> None:
    print(f"bench_spark: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    sys.exit(f"bench_spark: {message}")


def result_line(output: str, what: str) -> dict:
    for line in reversed(output.splitlines()):
        if line.startswith("SPARKBENCH "):
            return json.loads(line[len("SPARKBENCH "):])
    fail(f"{what} printed no SPARKBENCH line:\n{output[-4000:]}")
    return {}  # not reached


class DCSpark:
    """The benchmark cluster on the sandbox, reached through the simulated hosts' Docker engines."""

    def __init__(self, inventory: str, sandbox: str, name: str) -> None:
        self.inventory, self.sandbox, self.name = inventory, sandbox, name
        self.containers: dict = {}  # node -> (box, container)

    def boxes(self) -> list:
        out = subprocess.run(["docker", "ps", "--filter", f"label=org.dcspark.sandbox={self.sandbox}",
                              "--filter", "status=running", "--format", "{{.Names}}"],
                             capture_output=True, text=True, check=True).stdout.split()
        if not out:
            fail(f"no running host of the sandbox {self.sandbox!r}: run `make sandbox` "
                 "(or playbooks/sandbox_up.yml and site.yml) first")
        return sorted(out)

    def box(self, box: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", box, *command], capture_output=True, text=True, check=check)

    def deploy(self) -> None:
        say(f"deploying {self.name} (deploy_cluster.yml, run_app=false; the first run builds its images)")
        seconds = run_playbook(self.inventory, os.path.join(REPO, "playbooks", "deploy_cluster.yml"),
                               "-e", f"spec={SPEC}", "-e", "run_app=false")
        say(f"{self.name} deployed in {seconds:.0f} s")
        for box in self.boxes():
            listing = self.box(box, "docker", "ps", "--filter", f"label=org.dcspark.cluster={self.name}",
                               "--format", '{{.Names}}\t{{.Label "org.dcspark.node"}}').stdout
            for line in listing.splitlines():
                container, node = line.split("\t")
                self.containers[node] = (box, container)
        if "driver" not in self.containers or "master" not in self.containers:
            fail(f"{self.name}'s driver or master is not running after the deploy: {self.containers}")

    def env(self, node: str) -> dict:
        box, container = self.containers[node]
        raw = self.box(box, "docker", "inspect", "--format", "{{json .Config.Env}}", container).stdout
        return dict(item.split("=", 1) for item in json.loads(raw))

    def driver_conf(self) -> dict:
        box, container = self.containers["driver"]
        text = self.box(box, "docker", "exec", container, "cat", "/opt/dcspark/conf/spark-defaults.conf").stdout
        pairs = {}
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _sep, value = line.strip().partition(" ")
                pairs[key] = value.strip()
        return pairs

    def workers(self) -> list:
        return sorted(node for node in self.containers if node.startswith("worker-"))

    def submit(self, args: list) -> tuple:
        box, container = self.containers["driver"]
        start = time.monotonic()
        proc = self.box(box, "docker", "exec", container, "dcspark-submit", *args, check=False)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            fail(f"the DCSpark run {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return result_line(proc.stdout, "the DCSpark run"), wall

    def undeploy(self) -> None:
        run_playbook(self.inventory, os.path.join(REPO, "playbooks", "undeploy_cluster.yml"), "-e", f"cluster={self.name}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Native:
    """Spark standalone as host processes: what this class starts, it stops (by its own handles)."""

    def __init__(self, workdir: str) -> None:
        site = subprocess.run([os.path.join(NATIVE_VENV, "bin", "python"), "-c",
                               "import pyspark, os; print(os.path.dirname(pyspark.__file__))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        self.spark_home = site
        self.workdir = workdir
        self.processes: list = []
        self.secret = secrets.token_hex(32)
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.conf_dir = os.path.join(workdir, "conf")
        os.makedirs(self.conf_dir)
        self.env = dict(os.environ, SPARK_HOME=site, SPARK_CONF_DIR=self.conf_dir, SPARK_LOCAL_IP="127.0.0.1",
                        PYSPARK_PYTHON=os.path.join(NATIVE_VENV, "bin", "python"),
                        PYSPARK_DRIVER_PYTHON=os.path.join(NATIVE_VENV, "bin", "python"),
                        SPARK_LOCAL_DIRS=os.path.join(workdir, "local"), _SPARK_AUTH_SECRET=self.secret,
                        OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")

    def _daemon(self, name: str, env: dict, *args: str) -> None:
        log = open(os.path.join(self.workdir, f"{name}.log"), "wb")  # noqa: SIM115 (kept open while it runs)
        proc = subprocess.Popen([os.path.join(self.spark_home, "bin", "spark-class"), *args],  # noqa: S603
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((name, proc, log))

    def start(self, conf: dict, workers: list, daemon_env: dict) -> None:
        with open(os.path.join(self.conf_dir, "spark-defaults.conf"), "w", encoding="utf-8") as handle:
            for key, value in sorted(conf.items()):
                if key not in CLUSTER_SETTINGS:
                    handle.write(f"{key} {value}\n")
            handle.write(f"spark.master {self.url}\nspark.driver.host 127.0.0.1\n"
                         f"spark.authenticate.secret {self.secret}\n")
        os.chmod(os.path.join(self.conf_dir, "spark-defaults.conf"), 0o600)
        master_env = dict(self.env, SPARK_DAEMON_MEMORY=daemon_env["master"]["SPARK_DAEMON_MEMORY"])
        self._daemon("master", master_env, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(self.port), "--webui-port", str(self.ui_port))
        for index, worker in enumerate(workers, start=1):
            wenv = daemon_env[worker]
            env = dict(self.env, SPARK_DAEMON_MEMORY=wenv["SPARK_DAEMON_MEMORY"],
                       SPARK_WORKER_DIR=os.path.join(self.workdir, f"worker-{index}"))
            self._daemon(worker, env, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                         "--cores", wenv["SPARK_WORKER_CORES"], "--memory", wenv["SPARK_WORKER_MEMORY"],
                         "--webui-port", "0", self.url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as response:  # noqa: S310
                    state = json.load(response)
                if state.get("aliveworkers", 0) >= len(workers):
                    return
            except OSError:
                pass
            for name, proc, _log in self.processes:
                if proc.poll() is not None:
                    fail(f"the native {name} exited ({proc.returncode}); its log: {self.workdir}/{name}.log")
            time.sleep(0.5)
        fail(f"the native workers did not register within 120 s; logs in {self.workdir}")

    def submit(self, args: list) -> tuple:
        start = time.monotonic()
        proc = subprocess.run([os.path.join(self.spark_home, "bin", "spark-submit"), APP, *args],
                              env=self.env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            fail(f"the native run {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return result_line(proc.stdout, "the native run"), wall

    def stop(self) -> None:
        for _name, proc, log in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
        self.processes = []


def figure(result: dict, workload: str) -> float:
    return sum(result["phases"][phase] for phase in FIGURE_PHASES[workload])


def spread(values: list) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": len(values)}


def summarize(runs: list, workload: str) -> dict:
    pairs = [run for run in runs if run["workload"] == workload and not run["warmup"]]
    by_rep: dict = {}
    for run in pairs:
        by_rep.setdefault(run["repetition"], {})[run["side"]] = run

    def per_side(value) -> dict:
        return {side: spread([value(r) for r in pairs if r["side"] == side]) for side in ("native", "dcspark")}

    def ratio_of(value) -> dict:
        return spread([value(rep["dcspark"]) / value(rep["native"]) for rep in by_rep.values()])

    phases = {}
    for phase in pairs[0]["result"]["phases"]:
        phases[phase] = per_side(lambda r, p=phase: r["result"]["phases"][p])
        phases[phase]["ratio"] = ratio_of(lambda r, p=phase: r["result"]["phases"][p])
    ratio = ratio_of(lambda r: r["figure_s"])
    figures = per_side(lambda r: r["figure_s"])
    return {"figure": "+".join(FIGURE_PHASES[workload]), "target_ratio": TARGETS[workload],
            "met": ratio["median"] <= TARGETS[workload], "ratio": ratio,
            "native_s": figures["native"], "dcspark_s": figures["dcspark"],
            "submit_wall_s": per_side(lambda r: r["wall_s"]), "phases": phases}


def image_disk_cost(cluster: DCSpark) -> dict:
    """Bytes of the three node images against the one runtime image they are built on, read on the
    host that built them (the only one holding the runtime image: the others pull the node images)."""
    for box in cluster.boxes():
        refs = cluster.box(box, "docker", "images", "--filter", f"label=org.dcspark.cluster={cluster.name}",
                           "--filter", "label=org.dcspark.role=runtime", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        refs = [ref for ref in refs if not ref.endswith(":<none>")]
        if not refs:
            continue
        repo, _sep, tag = refs[0].rpartition(":")
        prefix = repo[: -len("runtime")]
        sizes = {}
        for role in ("runtime", "master", "worker", "driver"):
            proc = cluster.box(box, "docker", "image", "inspect", "--format", "{{.Size}}", f"{prefix}{role}:{tag}", check=False)
            sizes[role] = int(proc.stdout.strip()) if proc.returncode == 0 else None
        if None in sizes.values():
            continue
        runtime = sizes["runtime"]
        extra = sum(sizes[role] - runtime for role in ("master", "worker", "driver"))
        return {"host": box, "tag": tag, "images": sizes, "runtime_bytes": runtime,
                "three_images_bytes": runtime + extra, "extra_bytes_for_three": extra,
                "ratio": round((runtime + extra) / runtime, 4)}
    return {"note": f"no host holds all four images of {cluster.name} (the runtime is kept where it was built)"}


def measure(sides: dict, workloads: list, workload_args: dict, repeat: int) -> list:
    """One warm-up, then ``repeat`` runs of each workload on both sides, which goes first alternating."""
    runs = []
    for repetition in range(repeat + 1):  # repetition 0 is the warm-up
        for index, workload in enumerate(workloads):
            order = ["native", "dcspark"] if (repetition + index) % 2 == 0 else ["dcspark", "native"]
            for side in order:
                result, wall = sides[side].submit(workload_args[workload] + ["--label", side])
                entry = {"side": side, "workload": workload, "repetition": repetition, "warmup": repetition == 0,
                         "figure_s": round(figure(result, workload), 3), "wall_s": round(wall, 3), "result": result}
                runs.append(entry)
                say(f"{'warm-up' if repetition == 0 else f'run {repetition}/{repeat}'} {workload:4} "
                    f"{side:7} {entry['figure_s']:7.2f} s  phases {result['phases']}")
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("-i", "--inventory", default="inventories/sandbox")
    parser.add_argument("--sandbox", default="dcspark-sandbox", help="dcm_sandbox_name of the inventory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lr-rows", type=int, default=400_000)
    parser.add_argument("--lr-iterations", type=int, default=30)
    parser.add_argument("--sort-records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workloads", default="lr,sort")
    parser.add_argument("--executor-java-options", default="",
                        help="JVM options for both sides' executors, e.g. -XX:+UseG1GC: in a 1-CPU container "
                             "the JVM picks the serial collector, on the host G1")
    parser.add_argument("--keep", action="store_true", help="leave the DCSpark cluster deployed")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "results", "spark.json"))
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    if not set(workloads) <= set(TARGETS):
        fail(f"--workloads: unknown {sorted(set(workloads) - set(TARGETS))}; known: {sorted(TARGETS)}")
    if not shutil.which("java"):
        fail("no java on this machine: the native side needs Java 17 (apt-get install openjdk-17-jre-headless)")
    if not os.path.isfile(os.path.join(NATIVE_VENV, "bin", "python")):
        fail(f"{NATIVE_VENV} is missing: `make bench-spark` creates it (pyspark and numpy as in {SPEC})")

    with open(SPEC, encoding="utf-8") as handle:
        spec = json.load(handle)
    cluster = DCSpark(args.inventory, args.sandbox, spec["name"])
    try:
        cluster.deploy()
        workers = cluster.workers()
        daemon_env = {node: cluster.env(node) for node in ["master", *workers]}
        conf = cluster.driver_conf()
        common = ["--partitions", str(args.partitions), "--executors", str(len(workers))]
        if args.executor_java_options:
            common += [f"--executor-java-options={args.executor_java_options}"]  # one word: it starts with -
        workload_args = {"lr": ["lr", "--rows", str(args.lr_rows), "--iterations", str(args.lr_iterations), *common],
                         "sort": ["sort", "--records", str(args.sort_records), *common]}
        with tempfile.TemporaryDirectory(prefix="dcspark-bench-native-") as workdir:
            native = Native(workdir)
            try:
                say(f"native Spark standalone: master {native.url}, {len(workers)} workers "
                    f"({', '.join(daemon_env[w]['SPARK_WORKER_CORES'] + ' cores/' + daemon_env[w]['SPARK_WORKER_MEMORY'] for w in workers)})")
                native.start(conf, workers, daemon_env)
                runs = measure({"native": native, "dcspark": cluster}, workloads, workload_args, args.repeat)
            finally:
                native.stop()
        report = {"spec": spec["name"], "spark": runs[-1]["result"]["spark"], "repeat": args.repeat,
                  "sizes": {"lr_rows": args.lr_rows, "lr_features": 20, "lr_iterations": args.lr_iterations,
                            "sort_records": args.sort_records, "sort_bytes": args.sort_records * 100,
                            "partitions": args.partitions},
                  "executor_java_options": args.executor_java_options,
                  "resources": {"workers": len(workers),
                                "worker_cores": daemon_env[workers[0]]["SPARK_WORKER_CORES"],
                                "worker_memory": daemon_env[workers[0]]["SPARK_WORKER_MEMORY"],
                                "executor_memory": conf.get("spark.executor.memory"),
                                "driver_memory": conf.get("spark.driver.memory"),
                                "host_cpus": os.cpu_count()},
                  "workloads": {workload: summarize(runs, workload) for workload in workloads},
                  "image_disk_cost": image_disk_cost(cluster), "runs": runs}
    finally:
        if not args.keep:  # a failed run leaves nothing deployed either
            say(f"undeploying {cluster.name}")
            cluster.undeploy()
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    for workload, figures in report["workloads"].items():
        ratio = figures["ratio"]
        print(f"{workload}: DCSpark/native {ratio['median']:.3f}x (min {ratio['min']:.3f}, max {ratio['max']:.3f}, "
              f"{ratio['runs']} pairs; target {figures['target_ratio']}x: {'met' if figures['met'] else 'MISSED'}); "
              f"native {figures['native_s']['median']} s, DCSpark {figures['dcspark_s']['median']} s")
    cost = report["image_disk_cost"]
    if "ratio" in cost:
        print(f"disk: runtime image {cost['runtime_bytes'] / 1e6:.0f} MB; master+worker+driver images "
              f"{cost['three_images_bytes'] / 1e6:.0f} MB in all ({cost['ratio']}x one runtime image)")
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
