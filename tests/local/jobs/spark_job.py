"""A tiny PySpark job: proves the job runner's Spark environment (local master, file:// mirror)."""

import sys

from awsglue.utils import getResolvedOptions
from pyspark.sql import SparkSession


def main() -> None:
    args = getResolvedOptions(sys.argv, ["JOB_NAME", "source_uri", "output_uri"])
    spark = SparkSession.builder.appName(args["JOB_NAME"]).getOrCreate()
    conf = spark.sparkContext.getConf()
    print("master", spark.sparkContext.master)
    print("shuffle", conf.get("spark.sql.shuffle.partitions"))
    frame = spark.read.option("header", True).csv(args["source_uri"])
    frame.groupBy("route").count().coalesce(1).write.mode("overwrite").parquet(args["output_uri"])
    spark.stop()


if __name__ == "__main__":
    main()
