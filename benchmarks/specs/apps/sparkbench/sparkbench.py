"""The two workloads of the paper's evaluation, run the same way on a DCSpark cluster and on native
Spark standalone (benchmarks/bench_spark.py submits this file to both).

    spark-submit sparkbench.py lr   [--rows N] [--features F] [--iterations I] [--partitions P]
    spark-submit sparkbench.py sort [--records N] [--partitions P]

lr    logistic regression with MLlib (iterative, CPU-bound): a synthetic, seeded data set of N rows
      and F features whose labels follow a known weight vector is generated and cached
      ("generate"), then LogisticRegression trains for exactly I iterations ("train"); the model
      must reach a training accuracy of 0.9 (the labels are 95 % consistent with the weights).
sort  TeraSort-style (shuffle-heavy): N records of a 10-byte key (20 hex digits) and a 90-byte
      value, seeded, stored on the executors' disks ("generate"); a total sort by key into P
      ranges, stored on disk again ("sort"); then TeraValidate's checks ("validate"): every
      partition sorted, the partitions in key order, and the same record count and checksum as
      the input.

Prints one line, ``SPARKBENCH {json}``, with the seconds of each phase as the driver measured them
(the JVM's start and the cluster's executor allocation are not in them), and exits 1 when a
check fails: a benchmark whose result is wrong measures nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

SEED = 20261204
EXECUTOR_WAIT = 120


def wait_for_executors(spark: SparkSession, wanted: int) -> int:
    """The number of executors registered, once it reaches ``wanted`` (or after EXECUTOR_WAIT s)."""
    deadline = time.monotonic() + EXECUTOR_WAIT
    while True:
        # the driver's own block manager is in the map too
        count = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # noqa: SLF001
        if count >= wanted or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def timed(phases: dict, name: str, action):
    start = time.perf_counter()
    value = action()
    phases[name] = round(time.perf_counter() - start, 3)
    return value


def logistic_regression(spark: SparkSession, args, phases: dict) -> dict:
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    weights = [((index * 7919) % 13 - 6) / 3.0 for index in range(args.features)]
    columns = [(F.rand(SEED + index) * 2 - 1).alias(f"x{index}") for index in range(args.features)]
    data = spark.range(0, args.rows, numPartitions=args.partitions).select(*columns)
    margin = sum((F.col(f"x{index}") * weight for index, weight in enumerate(weights)), F.lit(0.0))
    # 5 % of the labels flipped, so the problem is not separable and every iteration does work
    data = data.withColumn("label", ((margin > 0) != (F.rand(SEED - 1) < 0.05)).cast("double"))
    assembled = VectorAssembler(inputCols=[f"x{index}" for index in range(args.features)],
                                outputCol="features").transform(data).select("features", "label")
    assembled = assembled.persist(StorageLevel.MEMORY_AND_DISK)
    rows = timed(phases, "generate", assembled.count)
    model = timed(phases, "train", lambda: LogisticRegression(
        maxIter=args.iterations, regParam=0.001, tol=0.0, standardization=False).fit(assembled))
    accuracy = model.summary.accuracy
    iterations = model.summary.totalIterations
    assembled.unpersist()
    ok = rows == args.rows and accuracy >= 0.9
    return {"ok": ok, "rows": rows, "features": args.features, "iterations": iterations,
            "accuracy": round(accuracy, 4)}


def _check_partition(index, rows):
    count, first, last, unsorted, previous = 0, None, None, 0, None
    for row in rows:
        key = row[0]
        if previous is not None and key < previous:
            unsorted += 1
        if first is None:
            first = key
        previous = last = key
        count += 1
    yield index, count, first, last, unsorted


def terasort(spark: SparkSession, args, phases: dict) -> dict:
    key = F.substring(F.sha2(F.concat(F.lit(f"{SEED}:"), F.col("id").cast("string")), 256), 1, 20)
    value = F.rpad(F.concat(F.col("id").cast("string"), F.lit(":")), 90, "x")
    generated = (spark.range(0, args.records, numPartitions=args.partitions)
                 .select(key.alias("key"), value.alias("value"))
                 .persist(StorageLevel.DISK_ONLY))
    checksum = F.sum(F.crc32(F.concat("key", "value"))).alias("checksum")

    def generate():
        row = generated.agg(F.count(F.lit(1)).alias("records"), checksum).first()
        return row["records"], row["checksum"]

    records, input_sum = timed(phases, "generate", generate)
    ordered = generated.orderBy("key").persist(StorageLevel.DISK_ONLY)
    timed(phases, "sort", ordered.count)

    def validate():
        row = ordered.agg(F.count(F.lit(1)).alias("records"), checksum).first()
        parts = ordered.select("key").rdd.mapPartitionsWithIndex(_check_partition).collect()
        return row["records"], row["checksum"], sorted(parts)

    output_records, output_sum, parts = timed(phases, "validate", validate)
    bounds = [(first, last) for _index, count, first, last, _unsorted in parts if count]
    in_order = all(bounds[i][1] <= bounds[i + 1][0] for i in range(len(bounds) - 1))
    unsorted = sum(part[4] for part in parts)
    ok = (records == output_records == args.records and input_sum == output_sum
          and in_order and unsorted == 0 and len(bounds) > 1)
    generated.unpersist()
    ordered.unpersist()
    return {"ok": ok, "records": records, "bytes": records * 100, "partitions": len(parts),
            "non_empty_partitions": len(bounds), "checksum_equal": input_sum == output_sum,
            "unsorted_pairs": unsorted, "partitions_in_order": in_order}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("workload", choices=("lr", "sort"))
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--executors", type=int, default=1,
                        help="wait for this many executors before the clock starts")
    parser.add_argument("--executor-java-options", default="",
                        help="JVM options of this application's executors (e.g. -XX:+UseG1GC)")
    parser.add_argument("--label", default="", help="free text copied into the result (who ran it)")
    args = parser.parse_args()
    spark = (SparkSession.builder.appName(f"sparkbench-{args.workload}")
             # the sort's output is P key ranges (TeraSort's reduce count), not Spark's default 200
             .config("spark.sql.shuffle.partitions", str(args.partitions)))
    if args.executor_java_options:
        # part of the conf the context starts with, so every executor it launches gets it
        spark = spark.config("spark.executor.extraJavaOptions", args.executor_java_options)
    spark = spark.getOrCreate()
    phases: dict = {}
    try:
        if wait_for_executors(spark, args.executors) < args.executors:
            print(f"sparkbench: fewer than {args.executors} executors after {EXECUTOR_WAIT} s", file=sys.stderr)
            return 1
        run = logistic_regression if args.workload == "lr" else terasort
        result = run(spark, args, phases)
        executors = wait_for_executors(spark, 0)
        result.update(workload=args.workload, phases=phases, seconds=round(sum(phases.values()), 3),
                      spark=spark.version, executors=executors, label=args.label)
    finally:
        spark.stop()
    print("SPARKBENCH " + json.dumps(result, sort_keys=True), flush=True)
    if not result["ok"]:
        print(f"sparkbench: the {args.workload} result is wrong: {result}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
