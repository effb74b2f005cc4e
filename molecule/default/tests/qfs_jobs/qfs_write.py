"""Writes to QFS from a DCSpark cluster: a small Parquet table another cluster reads back, a multi-chunk
CSV file for the locality measurement, and the folder for event logs. Prints what it wrote."""
import sys

from pyspark.sql import SparkSession

base, rows = sys.argv[1], int(sys.argv[2])
spark = SparkSession.builder.appName("qfs-write").getOrCreate()
table = spark.range(0, 100000).selectExpr("id", "id * 7 % 1000 AS value")
table.write.mode("overwrite").parquet(f"{base}/table")
written = table.selectExpr("count(*) AS n", "sum(value) AS s").first()
print(f"QFS-WRITE rows={written.n} sum={written.s}", flush=True)

# One CSV file of several 64 MiB chunks (QFS's chunk size): ~40 bytes a row.
wide = spark.range(0, rows, numPartitions=4).selectExpr("id", "repeat('x', 32) AS pad")
wide.coalesce(1).write.mode("overwrite").option("compression", "none").csv(f"{base}/wide")

jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
folder = jvm.org.apache.hadoop.fs.Path(f"{base}/events")
folder.getFileSystem(conf).mkdirs(folder)
files = folder.getFileSystem(conf).listStatus(jvm.org.apache.hadoop.fs.Path(f"{base}/wide"))
sizes = [status.getLen() for status in files if status.getPath().getName().startswith("part-")]
print(f"QFS-WIDE files={len(sizes)} bytes={sum(sizes)}", flush=True)
spark.stop()
