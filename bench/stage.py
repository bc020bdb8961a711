"""The Glue job's stage phase against a bare Spark CSV -> Parquet job, and across core counts.

    .venv/bin/python -m bench.stage FILE [--masters local[1],local[2]] [--repeat 1] [--event-log DIR]

Each measurement runs in a fresh process (its own JVM, as a Glue job run has) with the job
runner's Spark settings and driver memory. In that process a small warm-up file goes through
the stage phase first (JIT, class loading: not measured), then, on the same warm session:
- ``bare``: read the CSV (header, all strings, splittable) and write it as Parquet: the floor
  for "read and write these bytes with Spark here";
- ``stage``: ingest_bookings.stage (read, validate, quarantine, dedupe, enrich, write Parquet).
Issue 14 targets 1 (stage rows/s >= 0.5 x bare) and 2 (local[1] / local[2] stage time >= 1.7).
``--fresh``: no warm-up, each mode in its own process (the measured job is its JVM's first, as in
every Glue run): issue 25's stage/bare ratio on a fresh JVM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import jvm_threads, memory

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
GLUE_SCRIPTS = PROJECT_ROOT / "glue_scripts"
WARM_UP_ROWS = 2_000


MEASURED_JOB_GROUP = "bench-stage-measured"


def _session(master: str, driver_memory: str, event_log: Path | None = None):
    from pyspark.sql import SparkSession

    from airline_local.glue.spark_conf import local_spark_conf

    builder = SparkSession.builder.master(master).config("spark.driver.memory", driver_memory)
    if event_log is not None:
        event_log.mkdir(parents=True, exist_ok=True)
        builder = builder.config("spark.eventLog.enabled", "true").config("spark.eventLog.dir", event_log.as_uri())
    for key, value in local_spark_conf().items():  # the job runner's, JVM options included
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _bare(spark, source: Path, target: Path) -> None:
    (spark.read.option("header", "true").csv(source.resolve().as_uri())
     .write.mode("overwrite").parquet(target.as_uri()))


def _stage(spark, source: Path, root: Path):
    import bookings_load
    import ingest_bookings

    from datetime import datetime, timezone

    from airline_local.aws.cfn import ACCOUNT_ID

    job = ingest_bookings.JobArguments(
        source_uri=source.resolve().as_uri(), execution_id="bench", data_root_uri=root.as_uri(),
        target=bookings_load.RedshiftTarget("dev", workgroup="bench"),
        copy_role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/bench", max_reject_ratio=1.0)
    summary = ingest_bookings.RunSummary(execution_id="bench", source_file=job.source_uri,
                                         started_at=datetime.now(timezone.utc))
    ingest_bookings.stage(spark, job, summary)
    return summary


def _jvm_pid() -> int:
    """This process's Spark JVM (PySpark starts it as a descendant)."""
    processes = list(memory.all_processes())
    for pid in sorted(memory.descendants_of(os.getpid(), processes)):
        if (memory.PROC / str(pid) / "comm").read_text().strip() == "java":
            return pid
    raise RuntimeError("no Spark JVM among this process's descendants")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One process: warm up, then time the bare job and the stage phase on ``args.file``."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # BENCH_GLUE_SCRIPTS: another copy of the stage modules (a before/after comparison, e.g.
    # tests/etl/reference_stage), in front of glue_scripts/ (which has the rest)
    sys.path.insert(0, str(GLUE_SCRIPTS))
    if os.environ.get("BENCH_GLUE_SCRIPTS"):
        sys.path.insert(0, os.environ["BENCH_GLUE_SCRIPTS"])
    import ingest_bookings

    from airline_local.generator import write_csv

    work = Path(tempfile.mkdtemp(prefix="bench-stage-"))
    try:
        spark = _session(args.master, args.driver_memory, args.event_log)
        ingest_bookings.configure(spark)
        if not args.fresh:
            warm = work / "warm.csv"
            write_csv(warm, WARM_UP_ROWS, seed=3)
            _stage(spark, warm, work / "warm-root")
            _bare(spark, warm, work / "warm-bare")
        result: dict[str, Any] = {"master": args.master, "file": str(args.file),
                                  "jvm": "fresh" if args.fresh else "warm"}
        if "bare" in args.modes:
            started = time.perf_counter()
            _bare(spark, args.file, work / "bare")
            result["bare_seconds"] = round(time.perf_counter() - started, 3)
        if "stage" in args.modes:
            spark.sparkContext.setJobGroup(MEASURED_JOB_GROUP, "the measured stage phase")
            jvm = _jvm_pid()
            threads_before = jvm_threads.thread_cpu_by_role(jvm)
            started = time.perf_counter()
            summary = _stage(spark, args.file, work / "root")
            result["stage_seconds"] = round(time.perf_counter() - started, 3)
            result["stage_jvm_cpu_seconds"] = jvm_threads.difference(
                jvm_threads.thread_cpu_by_role(jvm), threads_before)
            result["rows"] = summary.rows_read
            result["rows_quarantined"] = summary.rows_quarantined
            result["rows_duplicate"] = summary.rows_duplicate
        log_file = f"{spark.sparkContext.applicationId}" if args.event_log else None
        spark.stop()
        if log_file:
            from bench import spark_stages

            result["spark_stages"] = spark_stages.stage_breakdown(
                spark_stages.read_event_log(args.event_log / log_file), MEASURED_JOB_GROUP)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(file: Path, master: str, modes: tuple[str, ...] = ("bare", "stage"),
            driver_memory: str = "1g", event_log: Path | None = None, fresh: bool = False,
            scripts: Path | None = None) -> dict[str, Any]:
    """Run :func:`child` in a fresh Python process; its JSON result. ``fresh``: no warm-up,
    the measured job is the JVM's first (as in every Glue run); ``scripts``: the stage modules
    from that directory instead of glue_scripts/."""
    command = [sys.executable, "-m", "bench.stage", str(file), "--child", "--master", master,
               "--modes", ",".join(modes), "--driver-memory", driver_memory]
    command += ["--event-log", str(event_log)] if event_log else []
    command += ["--fresh"] if fresh else []
    environment = {**os.environ, "BENCH_GLUE_SCRIPTS": str(scripts.resolve())} if scripts else None
    output = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, env=environment)
    if output.returncode != 0:
        raise RuntimeError(f"{master} {modes} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """Best (least disturbed) time per master and mode, and the two ratios of issue 14."""
    fresh = [run for run in runs if run.get("jvm") == "fresh"]
    runs = [run for run in runs if run.get("jvm") != "fresh"]
    best: dict[str, dict[str, float]] = {}
    for run in runs:
        for mode in ("bare", "stage"):
            seconds = run.get(f"{mode}_seconds")
            if seconds is not None:
                slot = best.setdefault(run["master"], {})
                slot[mode] = min(slot.get(mode, seconds), seconds)
    out: dict[str, Any] = {"rows": rows, "seconds": best}
    # The JVM's CPU by thread role in each master's best stage run.
    threads = {master: run["stage_jvm_cpu_seconds"] for master in best for run in runs
               if run["master"] == master and "stage_jvm_cpu_seconds" in run
               and run.get("stage_seconds") == best[master].get("stage")}
    if threads:
        out["stage_jvm_cpu_seconds"] = threads
    two = best.get("local[2]", {})
    if "bare" in two and "stage" in two:
        out["stage_rows_per_second"] = round(rows / two["stage"])
        out["bare_rows_per_second"] = round(rows / two["bare"])
        out["stage_to_bare_ratio"] = round(two["bare"] / two["stage"], 3)
    one = best.get("local[1]", {})
    if "stage" in one and "stage" in two:
        out["cores_speedup"] = round(one["stage"] / two["stage"], 3)
    # Each in its own fresh JVM, measured first (no warm-up): as every Glue run is (issue 25).
    fresh_best = {mode: min(run[f"{mode}_seconds"] for run in fresh if f"{mode}_seconds" in run)
                  for mode in ("bare", "stage") if any(f"{mode}_seconds" in run for run in fresh)}
    if fresh_best:
        out["fresh_jvm_seconds"] = fresh_best
    if len(fresh_best) == 2:
        out["fresh_stage_to_bare_ratio"] = round(fresh_best["bare"] / fresh_best["stage"], 3)
    return out


def measure_fresh(file: Path, master: str = "local[2]", repeat: int = 1) -> list[dict[str, Any]]:
    """The bare copy and the stage phase, each in its own fresh JVM, alternating."""
    return [measure(file, master, (mode,), fresh=True) for _ in range(repeat) for mode in ("bare", "stage")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--masters", default="local[2],local[1]")
    parser.add_argument("--modes", default="bare,stage")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--event-log", type=Path, help="keep Spark's event log here and print the stage "
                        "phase's time per Spark stage (tasks, run, CPU and GC seconds)")
    parser.add_argument("--fresh", action="store_true", help="no warm-up: the measured job is "
                        "the JVM's first, as in a Glue run (each mode in its own process)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--master", default="local[2]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.modes = tuple(m for m in args.modes.split(",") if m)
    args.event_log = args.event_log.resolve() if args.event_log else None
    if args.child:
        print(json.dumps(child(args)))
        return 0
    runs = []
    for _ in range(args.repeat):
        for master in args.masters.split(","):
            # local[1] only needs the stage time (the bare ratio is taken at local[2]).
            modes = args.modes if master == "local[2]" else ("stage",)
            if args.fresh:  # each mode first in its own JVM
                runs += [measure(args.file, master, (mode,), args.driver_memory, args.event_log, fresh=True)
                         for mode in modes]
            else:
                runs.append(measure(args.file, master, modes, args.driver_memory, args.event_log))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "spark_stages"}), file=sys.stderr, flush=True)
            if "stage_jvm_cpu_seconds" in runs[-1]:
                print(f"{master} stage phase, JVM CPU seconds by thread role: "
                      f"{runs[-1]['stage_jvm_cpu_seconds']}", file=sys.stderr, flush=True)
            if "spark_stages" in runs[-1]:
                from bench import spark_stages

                print(f"{master} stage phase by Spark stage:\n{spark_stages.format_breakdown(runs[-1]['spark_stages'])}",
                      file=sys.stderr, flush=True)
    rows = next((r["rows"] for r in runs if "rows" in r), 0)
    print(json.dumps(summarize(runs, rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
