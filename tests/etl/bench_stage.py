"""Throughput of the Glue job's Spark part (read, validate, quarantine, dedupe, enrich, stage).

    python tests/etl/bench_stage.py --rows 1000000            # generates the file first
    python tests/etl/bench_stage.py --file path/to/bookings.csv

Runs ingest_bookings.stage on local Spark (local[2] by default) and prints rows/s; the
warehouse load is not included. Not a test (no test_ prefix): run it by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import etl_helpers  # noqa: E402,F401  (puts glue_scripts/ on sys.path)

import bookings_load  # noqa: E402
import ingest_bookings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, help="an existing CSV (skips generation)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    work = Path(tempfile.mkdtemp(prefix="bench-stage-"))
    try:
        source = args.file
        if source is None:
            from airline_local.generator import write_csv

            source = work / "bookings.csv"
            started = time.monotonic()
            write_csv(source, args.rows, seed=1)
            print(f"generated {args.rows:,} rows in {time.monotonic() - started:.1f}s")

        from pyspark.sql import SparkSession

        spark = (SparkSession.builder.master(args.master)
                 .config("spark.driver.memory", args.driver_memory)
                 .config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false")
                 .config("spark.sql.shuffle.partitions", "4")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        ingest_bookings.configure(spark)
        job = ingest_bookings.JobArguments(
            source_uri=source.resolve().as_uri(), execution_id="bench",
            data_root_uri=(work / "root").as_uri(),
            target=bookings_load.RedshiftTarget("dev", workgroup="bench"),
            copy_role_arn="arn:aws:iam::123456789012:role/bench", max_reject_ratio=1.0)
        summary = ingest_bookings.RunSummary(execution_id="bench", source_file=job.source_uri,
                                             started_at=datetime.now(timezone.utc))
        started = time.monotonic()
        ingest_bookings.stage(spark, job, summary)
        seconds = time.monotonic() - started
        print(f"stage: {summary.rows_read:,} rows in {seconds:.1f}s = "
              f"{summary.rows_read / seconds:,.0f} rows/s (quarantined {summary.rows_quarantined:,},"
              f" duplicate {summary.rows_duplicate:,}) on {args.master}")
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
