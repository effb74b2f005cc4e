"""Reads the multi-chunk CSV file qfs_write.py wrote and prints, for every task of the scan that read
the file, the locality level Spark scheduled it at (from the driver's own REST API), and the hosts
the file system names for each chunk: LOCALITY NODE_LOCAL=<n> ... total=<n> eligible=<n> eligible_local=<n>,
where eligible counts the tasks whose chunk has a replica on a host with a worker of this cluster (QFS
places replicas where it likes; a chunk with none next to a worker cannot be read locally by anyone)."""
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

jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
folder = jvm.org.apache.hadoop.fs.Path(f"{sys.argv[1]}/wide")
fs = folder.getFileSystem(conf)
blocks = []
for status in fs.listStatus(folder):
    if status.getPath().getName().startswith("part-"):
        for block in fs.getFileBlockLocations(status, 0, status.getLen()):
            blocks.append((block.getOffset(), block.getLength(), list(block.getHosts())))
            print(f"BLOCK {block.getOffset()} {block.getLength()} {','.join(block.getHosts())}", flush=True)
split = int(spark.conf.get("spark.sql.files.maxPartitionBytes").rstrip("m")) << 20  # "16m" in the test


def could_be_local(index: int) -> bool:
    """Task ``index`` reads from offset index * split (one file, splits of maxPartitionBytes): could it run
    on a worker of this cluster next to a replica of its chunk, i.e. does that chunk name a worker?"""
    offset = index * split
    return any(start <= offset < start + length and any(host.startswith("spark-worker-") for host in hosts)
               for start, length, hosts in blocks)


sc.setJobGroup("scan", "scan of the wide file")
rows = spark.read.schema("id LONG, pad STRING").csv(f"{sys.argv[1]}/wide").count()
print(f"QFS-SCAN rows={rows}", flush=True)

api = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
levels, eligible, eligible_local = collections.Counter(), 0, 0
for job in json.load(urllib.request.urlopen(f"{api}/jobs")):
    if job.get("jobGroup") != "scan":
        continue
    for stage in job["stageIds"]:
        for task in json.load(urllib.request.urlopen(f"{api}/stages/{stage}/0/taskList?length=10000")):
            read = ((task.get("taskMetrics") or {}).get("inputMetrics") or {}).get("bytesRead", 0)
            if read > 0:  # a task of the scan (the count's final task reads shuffle output, not the file)
                levels[task["taskLocality"]] += 1
                if could_be_local(task["index"]):
                    eligible += 1
                    eligible_local += task["taskLocality"] in ("NODE_LOCAL", "PROCESS_LOCAL")
                print(f"TASK {task['index']} {task['taskLocality']} {task['host']} read={read}", flush=True)
print("LOCALITY " + " ".join(f"{level}={count}" for level, count in sorted(levels.items()))
      + f" total={sum(levels.values())} eligible={eligible} eligible_local={eligible_local}", flush=True)
spark.stop()
