"""Reads the multi-chunk CSV file qfs_write.py wrote and prints the locality level Spark scheduled each
task of the scan at, from the driver's own REST API: LOCALITY NODE_LOCAL=<n> ... total=<n>."""
import collections
import json
import sys
import time
import urllib.request

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("qfs-locality").getOrCreate()
sc = spark.sparkContext
# Every worker's executor registered first, so a task that can be local finds its executor.
deadline = time.time() + 120
while sc._jsc.sc().getExecutorMemoryStatus().size() - 1 < int(sys.argv[2]) and time.time() < deadline:
    time.sleep(1)
sc.setJobGroup("scan", "scan of the wide file")
rows = spark.read.schema("id LONG, pad STRING").csv(f"{sys.argv[1]}/wide").count()
print(f"QFS-SCAN rows={rows}", flush=True)

api = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
levels = collections.Counter()
for job in json.load(urllib.request.urlopen(f"{api}/jobs")):
    if job.get("jobGroup") != "scan":
        continue
    for stage in job["stageIds"]:
        for task in json.load(urllib.request.urlopen(f"{api}/stages/{stage}/0/taskList?length=10000")):
            levels[task["taskLocality"]] += 1
print("LOCALITY " + " ".join(f"{level}={count}" for level, count in sorted(levels.items()))
      + f" total={sum(levels.values())}", flush=True)
spark.stop()
