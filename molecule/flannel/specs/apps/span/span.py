"""A job whose every step crosses hosts on the flannel network (molecule/flannel).

It waits for its executors, checks that they run in containers on different hosts, then runs a
shuffle (reduceByKey: executors fetch each other's blocks) and a collect to the driver, and checks
both results exactly. Exit 0 and "SPAN OK" only when everything matched.
"""

import argparse
import socket
import sys
import time

from pyspark.sql import SparkSession


def wait_for_executors(sc, wanted, timeout):
    deadline = time.time() + timeout
    while True:
        count = len(sc._jsc.sc().statusTracker().getExecutorInfos()) - 1  # minus the driver's
        if count >= wanted or time.time() >= deadline:
            return count
        time.sleep(0.5)


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--executors", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=2, help="distinct worker containers the tasks must run in")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("span").getOrCreate()
    sc = spark.sparkContext
    executors = wait_for_executors(sc, args.executors, args.timeout)
    print("executors: %d (wanted %d)" % (executors, args.executors))
    failures = []
    workers = sorted(set(sc.parallelize(range(64), 16).map(lambda _: socket.gethostname()).collect()))
    print("tasks ran in: %s" % ", ".join(workers))
    if len(workers) < args.hosts:
        failures.append("tasks ran in %d worker containers, wanted %d" % (len(workers), args.hosts))
    counts = dict(sc.parallelize(range(200000), 8).map(lambda x: (x % 97, 1)).reduceByKey(lambda a, b: a + b, 6)
                  .collect())
    expected = {key: len(range(key, 200000, 97)) for key in range(97)}
    if counts != expected:
        failures.append("the shuffle's counts are wrong")
    print("shuffle: %d keys, %d records" % (len(counts), sum(counts.values())))
    spark.stop()
    for failure in failures:
        print("FAIL: " + failure)
    if failures:
        return 1
    print("SPAN OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
