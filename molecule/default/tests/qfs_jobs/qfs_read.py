"""Reads back from QFS what another cluster wrote (qfs_write.py): prints its row count and checksum."""
import sys

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("qfs-read").getOrCreate()
read = spark.read.parquet(f"{sys.argv[1]}/table").selectExpr("count(*) AS n", "sum(value) AS s").first()
print(f"QFS-READ spark={spark.version} rows={read.n} sum={read.s}", flush=True)
spark.stop()
