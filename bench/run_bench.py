"""The benchmark: `make bench` (or `.venv/bin/python -m bench.run_bench`).

In one run, on generated files (fixed seed, 1% bad rows):
1. throughput of the Glue job + load for each size (wall seconds, rows/s, MB/s, peak RSS of the
   job's process tree and of PostgreSQL), started directly through the JobRunner and the Data API
   emulator;
2. the floor: PostgreSQL COPY of the same file into a table of text columns, same server;
3. latency: a small file through the whole local stack, upload to email, by state;
4. scaling: rows/s at the largest size against 1M rows, peak job memory by rows;
5. the stage phase against a bare Spark CSV -> Parquet job, at local[2] and local[1]
   (bench.stage), and the emulated COPY against a plain text COPY (bench.copy_path);
6. the developer loop (bench.loop): a first `local run` in a fresh state directory, re-runs on a
   stack kept up by `local up`;
7. results as JSON and a PNG chart in bench/results/, and the table on stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(BENCH_DIR.parent))

from airline_local.glue.job_runner import JobSpec  # noqa: E402
from airline_local.glue.spark_conf import DEFAULT_SPARK_CONF  # noqa: E402
from airline_local.pipeline import (  # noqa: E402
    DEFAULT_WARM_WORKERS,
    LocalPipeline,
    temporary_state_dir,
)
from bench import copy_path, crawler, datasets, iam_overhead, latency, report, stage, throughput  # noqa: E402

DEFAULT_SIZES = (100_000, 1_000_000, 5_000_000)
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="comma-separated row counts for the throughput runs (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bad-ratio", type=float, default=0.01)
    parser.add_argument("--latency-rows", type=int, default=1000)
    parser.add_argument("--latency-runs", type=int, default=3, help="0 skips the latency part")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="skip the unmeasured first job run (JVM, page cache and jar warm-up)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--name", default="bench", help="results file names: <name>.json, <name>.png")
    parser.add_argument("--cache-dir", type=Path, default=datasets.DEFAULT_CACHE_DIR)
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--stage-repeat", type=int, default=2,
                        help="runs of the stage-phase comparison per master (best kept); 0 skips it")
    parser.add_argument("--backfill-files", type=int, default=200,
                        help="files of the backfill vs one-per-upload comparison (bench.backfill); 0 skips it")
    parser.add_argument("--copy-repeat", type=int, default=3,
                        help="runs of the emulated vs plain COPY comparison (best kept); 0 skips it")
    parser.add_argument("--crawler-uploads", type=int, default=crawler.DEFAULT_UPLOADS,
                        help="uploads of the per-upload crawl comparison, 1st vs last (bench.crawler); 0 skips it")
    parser.add_argument("--loop-runs", type=int, default=3,
                        help="re-runs of the sample on a running `local up` stack, after a first `local run` "
                        "in a fresh state dir (bench.loop); 0 skips it")
    parser.add_argument("--iam-overhead-runs", type=int, default=3,
                        help="measured runs per mode of the IAM check on/off latency (bench.iam_overhead); 0 skips it")
    args = parser.parse_args(argv)
    args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if not args.sizes or min(args.sizes) <= 0:
        parser.error("--sizes needs at least one positive row count")
    return args


def machine_info() -> dict[str, Any]:
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_kb / 1e6, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": throughput.load_average(),
    }


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    document: dict[str, Any] = {
        "benchmark": "airline booking pipeline, local mode",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "make bench" if args.sizes == list(DEFAULT_SIZES) else
                   "python -m bench.run_bench " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "settings": {
            "sizes": args.sizes, "seed": args.seed, "bad_ratio": args.bad_ratio,
            "spark_master": "local[2]", "spark_driver_memory": JobSpec.__dataclass_fields__["driver_memory"].default,
            "spark_conf": dict(DEFAULT_SPARK_CONF),
            "latency_rows": args.latency_rows, "latency_runs": args.latency_runs,
            "latency_warm_workers": DEFAULT_WARM_WORKERS,
        },
    }
    files = {}
    for rows in args.sizes:
        started = time.monotonic()
        files[rows], generated = datasets.ensure_dataset(rows, args.seed, args.bad_ratio, args.cache_dir)
        _say(f"{rows:,} rows: {files[rows].name} ({'generated in %.0f s' % (time.monotonic() - started) if generated else 'cached'})")
    latency_files = [datasets.ensure_dataset(args.latency_rows, args.seed + 1000 + n, args.bad_ratio, args.cache_dir)[0]
                     for n in range(max(args.latency_runs, 1))]

    clock = latency.EmailClock()
    with temporary_state_dir("airline-bench-") as state_dir:
        _say("starting the local stack (synth, PostgreSQL, emulator)")
        # Throughput and the cold latency: a fresh process (and JVM) per job run, as on Glue.
        with LocalPipeline(state_dir, on_email=clock, warm_workers=0) as pipeline:
            bench = throughput.ThroughputBench(pipeline, state_dir / "bench")
            try:
                if not args.no_warm_up:
                    _say("warm-up job run (not measured)")
                    bench.run_job(latency_files[0], args.latency_rows)
                entries = []
                for rows in args.sizes:
                    bench.empty_warehouse()
                    _say(f"{rows:,} rows: COPY floor")
                    copy = bench.run_copy_floor(files[rows])
                    bench.empty_warehouse()
                    _say(f"{rows:,} rows: pipeline (Glue job + load)")
                    job = bench.run_job(files[rows], rows)
                    shutil.rmtree(state_dir / "bench" / "job-root", ignore_errors=True)
                    entry = report.throughput_entry(throughput.as_dict(job), throughput.as_dict(copy))
                    _say(f"{rows:,} rows: pipeline {job.seconds:.1f} s ({job.rows_per_second:,.0f} rows/s), "
                         f"COPY {copy.seconds:.2f} s ({copy.rows_per_second:,.0f} rows/s), "
                         f"ratio {entry['pipeline_to_copy_ratio']:.3f}")
                    entries.append(entry)
                document["throughput"] = entries
                document["scaling"] = report.scaling(entries)
                if args.latency_runs > 0:
                    latency_inputs = latency_files[:args.latency_runs]
                    _say(f"latency, cold: {args.latency_runs} x {args.latency_rows:,} rows, upload -> email, "
                         "a fresh job process each")
                    document["latency_cold"] = latency.summarize(
                        latency.measure(pipeline, clock, latency_inputs, args.latency_rows))
                    runner = pipeline.emulator.job_runner  # type: ignore[union-attr]
                    runner.use_warm_workers(DEFAULT_WARM_WORKERS)
                    _say(f"latency, warm (the local default): {DEFAULT_WARM_WORKERS} warm Spark workers")
                    if not runner.wait_for_workers(timeout=300):
                        raise RuntimeError("the warm Spark workers did not start")
                    document["latency"] = latency.summarize(
                        latency.measure(pipeline, clock, latency_inputs, args.latency_rows))
            finally:
                bench.close()
    # Issue 14, targets 1-3: the stage phase against bare Spark and across cores, and the
    # emulated COPY against a plain one, at the reference size (else the largest measured).
    reference = min(args.sizes, key=lambda rows: (rows != report.SCALING_REFERENCE_ROWS, -rows))
    if args.stage_repeat > 0:
        _say(f"{reference:,} rows: stage phase vs bare Spark, local[2] and local[1]")
        runs = [stage.measure(files[reference], master, ("bare", "stage") if master == "local[2]" else ("stage",))
                for _ in range(args.stage_repeat) for master in ("local[2]", "local[1]")]
        runs += stage.measure_fresh(files[reference], "local[2]", args.stage_repeat)  # issue 25
        document["stage"] = {**stage.summarize(runs, reference), "repeat": args.stage_repeat, "runs": runs}
    if args.copy_repeat > 0:
        _say(f"{reference:,} rows: emulated COPY vs plain COPY")
        document["copy_path"] = copy_path.measure(reference, 4, args.copy_repeat)
    if args.backfill_files > 0:
        from bench import backfill

        _say(f"backfill of {args.backfill_files} small files vs one execution per upload")
        document["backfill"] = backfill.run(args.backfill_files)
    if args.crawler_uploads > 0:  # issue 14: the crawl after the 1st upload vs after the last
        document["crawler"] = crawler.run(args.crawler_uploads)
        _say(crawler.format_summary(document["crawler"]))
    if args.iam_overhead_runs > 0:  # issue 12: latency with the IAM check on vs off
        document["iam_overhead"] = iam_overhead.measure(args.latency_rows, args.iam_overhead_runs, rounds=2)
        _say(iam_overhead.format_summary(document["iam_overhead"]))
    if args.loop_runs > 0:  # issue 24: the developer loop, `airline-ingest` commands in their own processes
        from bench import loop

        document["loop"] = loop.run(args.loop_runs)
        _say(loop.format_summary(document["loop"]))
    document["machine"]["load_average_after"] = throughput.load_average()
    document["targets"] = report.targets(document)
    return document


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    document = run(args)
    json_path = report.write_json(document, args.results_dir / f"{args.name}.json")
    print(report.format_table(document))
    print(f"results: {json_path}")
    if not args.no_chart:
        print(f"chart:   {report.write_chart(document, args.results_dir / f'{args.name}.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
