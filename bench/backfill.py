"""Backfill vs one execution per upload (issue 15): N small files ingested by one backfill
execution (Distributed Map), then the same files uploaded one by one under raw/bookings/ (one
execution each, all at once), each into an emptied warehouse of the same local stack.

    python -m bench.backfill --files 20 --rows 50      # a small run; `make bench` runs 200 files
    python -m bench.backfill --files 200 --write-results   # also into bench/results/bench.json
    python -m bench.backfill --files 20 --stand-in-job 2   # orchestration only: a 2 s job, no Spark
    python -m bench.backfill --files 1000 --rows 5 --stand-in-job 0 --backfill-only   # a large backfill

Both ways get the same limits, the deployed defaults: the job's max concurrent runs
(glueMaxConcurrentRuns; the backfill's MaxConcurrency defaults to it) and the same warm Spark
workers, ready before each way starts. Reports, for each way, wall seconds and files per minute,
and the profile that explains them: the job's own seconds (run summaries), how busy the warm
workers were, each file's time outside its job run, the backfill's phases, and how often the
per-upload executions were refused a job run (Glue.ConcurrentRunsExceededException), and the CPU
seconds of this process (the emulator: moto, its state machine interpreter, the local crawler and
job runner; the Spark workers and PostgreSQL are other processes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(BENCH_DIR.parent))

from airline_local.backfill import BackfillResult, per_file_results, run_backfill  # noqa: E402
from airline_local.generator import write_csv  # noqa: E402
from airline_local.pipeline import (  # noqa: E402
    DEFAULT_WARM_WORKERS,
    LocalPipeline,
    RunResult,
    _body,
    temporary_state_dir,
)
from stacks.backfill import INGEST_FILES  # noqa: E402
from bench import report  # noqa: E402

DEFAULT_FILES = 200
DEFAULT_ROWS = 50
DEFAULT_RESULTS = BENCH_DIR / "results" / "bench.json"
GLUE_SCRIPTS = BENCH_DIR.parent / "glue_scripts"


def make_files(directory: Path, count: int, rows: int, seed: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        path = directory / f"bookings_{index:04d}.csv"
        write_csv(path, rows, seed=seed + index, bad_ratio=0.01)
        files.append(path)
    return files


def _empty_warehouse(pipeline: LocalPipeline) -> None:
    import psycopg

    with psycopg.connect(pipeline.postgres.dsn, autocommit=True) as connection:  # type: ignore[union-attr]
        connection.execute("TRUNCATE airline.bookings, airline.ingestion_runs")


def _ready(pipeline: LocalPipeline) -> None:
    """Each way starts alike: an empty warehouse and warm workers whose JVM is up."""
    _empty_warehouse(pipeline)
    if not pipeline.emulator.job_runner.wait_for_workers(timeout=600):  # type: ignore[union-attr]
        raise RuntimeError("the warm Spark workers did not start")


def _time(value: Any) -> float:
    """Epoch seconds of an ISO-8601 text ("...Z") or a datetime."""
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _run_summary(pipeline: LocalPipeline, execution_id: str | None) -> dict[str, Any] | None:
    if not execution_id:
        return None
    return pipeline._run_summary(execution_id)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def profile(files: list[tuple[float, float, dict[str, Any] | None]], seconds: float, workers: int) -> dict[str, Any]:
    """What the wall time was spent on. ``files``: each file's (start, end) epoch seconds (the
    backfill's map item, or the upload's execution) and its job's run summary (None: no run)."""
    jobs = [summary for _, _, summary in files if summary and summary.get("duration_seconds") is not None]
    job_seconds = [float(s["duration_seconds"]) for s in jobs]
    file_seconds = [end - start for start, end, _ in files]
    outside = [end - start - float(s["duration_seconds"]) for start, end, s in files
               if s and s.get("duration_seconds") is not None]
    phases: dict[str, list[float]] = {}
    for summary in jobs:
        for phase, value in (summary.get("timings") or {}).items():
            phases.setdefault(phase, []).append(float(value))
    return {
        "job_runs": len(jobs),
        "job_seconds_total": round(sum(job_seconds), 1),
        "job_seconds_median": _median(job_seconds),
        "job_phase_seconds_median": {phase: _median(values) for phase, values in sorted(phases.items())},
        # The share of the warm workers' time spent running the job (the rest: idle or between runs).
        "worker_busy_ratio": round(sum(job_seconds) / (workers * seconds), 3) if seconds > 0 else None,
        "file_seconds_median": _median(file_seconds),
        "file_seconds_outside_job_median": _median(outside),
    }


def run_backfill_way(pipeline: LocalPipeline, files: list[Path], workers: int) -> dict[str, Any]:
    started = time.monotonic()
    result = run_backfill(pipeline, files, timeout=6 * 3600)
    seconds = time.monotonic() - started
    s3 = pipeline.emulator.client("s3")  # type: ignore[union-attr]
    entries = per_file_results(s3, pipeline.stack.raw_bucket, result.prefix)  # type: ignore[union-attr]
    items = []
    for entry in entries.values():
        execution_id = json.loads(entry["Input"]).get("execution_id")
        items.append((_time(entry["StartDate"]), _time(entry["StopDate"]), _run_summary(pipeline, execution_id)))
    return {
        **_way(len(files), seconds, len(result.succeeded)), "status": result.status,
        # One email per backfill, whatever its size (stacks/backfill.py).
        "emails": sum(f"execution {result.execution_name}" in _body(m)
                      for m in pipeline.emulator.mailbox.messages()),  # type: ignore[union-attr]
        # Uploading under the backfill prefix comes first (on AWS the files are in S3 already).
        "upload_seconds": round(seconds - result.seconds, 1),
        "phases_seconds": _backfill_phases(pipeline, result),
        "profile": profile(items, seconds, workers),
    }


def _backfill_phases(pipeline: LocalPipeline, result: BackfillResult) -> dict[str, float]:
    """Crawl (execution start -> map), the map, results and email (map -> execution end)."""
    sfn = pipeline.emulator.client("stepfunctions")  # type: ignore[union-attr]
    arn = pipeline.stack.backfill_state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + result.execution_name  # type: ignore[union-attr]
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    start, end = _time(events[0]["timestamp"]), _time(events[-1]["timestamp"])
    map_entered = next(_time(e["timestamp"]) for e in events
                       if e.get("stateEnteredEventDetails", {}).get("name") == INGEST_FILES)
    map_exited = next(_time(e["timestamp"]) for e in events
                      if e.get("stateExitedEventDetails", {}).get("name") == INGEST_FILES)
    return {"before_map": round(map_entered - start, 1), "map": round(map_exited - map_entered, 1),
            "after_map": round(end - map_exited, 1)}


def run_per_upload_way(pipeline: LocalPipeline, files: list[Path], workers: int) -> dict[str, Any]:
    started = time.monotonic()
    runs: list[RunResult] = pipeline.run(files, concurrent=True, timeout=6 * 3600)
    seconds = time.monotonic() - started
    sfn = pipeline.emulator.client("stepfunctions")  # type: ignore[union-attr]
    names = {r.execution_name for r in runs}
    executions = {e["name"]: e for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=pipeline.stack.state_machine_arn) for e in page["executions"] if e["name"] in names}  # type: ignore[union-attr]
    refusals = 0
    items = []
    for run in runs:
        execution = executions.get(run.execution_name or "")
        if execution is None or execution.get("stopDate") is None:
            continue
        items.append((_time(execution["startDate"]), _time(execution["stopDate"]), run.summary))
        events = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        refusals += sum(1 for e in events if "ConcurrentRunsExceeded" in
                        str((e.get("taskFailedEventDetails") or {}).get("error", "")))
    return {
        **_way(len(files), seconds, sum(r.status == "SUCCEEDED" for r in runs)),
        "job_start_refusals": refusals,
        "profile": profile(items, seconds, workers),
    }


def _way(count: int, seconds: float, succeeded: int) -> dict[str, Any]:
    # Both rates: a file that failed (e.g. refused a job run too often) took no job time.
    return {"seconds": round(seconds, 1), "files_per_minute": round(60 * count / seconds, 1),
            "files_succeeded": succeeded, "succeeded_files_per_minute": round(60 * succeeded / seconds, 1)}


def use_stand_in_job(pipeline: LocalPipeline, seconds: float) -> None:
    """The deployed job's runs execute bench/stand_in_job.py (a plain-Python process per run,
    sleeping ``seconds``) instead of the Glue script on Spark."""
    from airline_local.glue.job_runner import JobSpec

    [job] = pipeline.stack.job_names  # type: ignore[union-attr]
    deployed = pipeline.emulator.client("glue").get_job(JobName=job)["Job"]  # type: ignore[union-attr]
    pipeline.emulator.job_runner.register_job(job, JobSpec(  # type: ignore[union-attr]
        script=BENCH_DIR / "stand_in_job.py", extra_py_files=sorted(GLUE_SCRIPTS.glob("*.py")),
        default_arguments={**deployed.get("DefaultArguments", {}), "--stand_in_seconds": str(seconds)},
        needs_java=False))


def _timed(way: Any, pipeline: LocalPipeline, files: list[Path], workers: int) -> dict[str, Any]:
    _ready(pipeline)
    cpu = time.process_time()  # every thread of this process: the emulator and the local runtime
    result = way(pipeline, files, workers)
    result["emulator_cpu_seconds"] = round(time.process_time() - cpu, 1)
    # A long run's first half is not lost if the second is stopped.
    print(f"[bench.backfill] {way.__name__}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def measure(files: list[Path], state_dir: Path, *, workers: int = DEFAULT_WARM_WORKERS,
            in_flight: int | None = None, stand_in_job: float | None = None,
            backfill_only: bool = False) -> dict[str, Any]:
    """Both ways on one local stack. ``in_flight``: the job's max concurrent runs for both (None:
    the stack's own, cdk.json), which the backfill's MaxConcurrency defaults to. ``stand_in_job``:
    seconds of a stand-in job run instead of Spark (the warm workers are then unused: every run
    is a process of its own, up to the job's max concurrent runs at once)."""
    context: dict[str, Any] = {"backfillToleratedFailurePercentage": 100}
    if in_flight is not None:
        context["glueMaxConcurrentRuns"] = in_flight
    workers = 0 if stand_in_job is not None else workers
    with LocalPipeline(state_dir, context=context, warm_workers=workers) as pipeline:
        resources = pipeline.template.body["Resources"].values()  # type: ignore[union-attr]
        job_limit = next(r["Properties"]["ExecutionProperty"]["MaxConcurrentRuns"] for r in resources
                         if r["Type"] == "AWS::Glue::Job")
        if stand_in_job is not None:
            use_stand_in_job(pipeline, stand_in_job)
        runners = workers or job_limit  # what runs jobs at once: the warm workers, else Glue's limit
        backfill = _timed(run_backfill_way, pipeline, files, runners)
        per_upload = None if backfill_only else _timed(run_per_upload_way, pipeline, files, runners)
    result = {"files": len(files), "warm_workers": workers, "job_max_concurrent_runs": job_limit,
              **({"stand_in_job_seconds": stand_in_job} if stand_in_job is not None else {}),
              "backfill": backfill}
    if per_upload is not None:
        result.update(one_per_upload=per_upload, backfill_speedup=round(per_upload["seconds"] / backfill["seconds"], 2))
    return result


def run(count: int = DEFAULT_FILES, rows: int = DEFAULT_ROWS, workers: int = DEFAULT_WARM_WORKERS,
        in_flight: int | None = None, stand_in_job: float | None = None, seed: int = 20_000,
        backfill_only: bool = False) -> dict[str, Any]:
    with temporary_state_dir("airline-bench-backfill-") as state_dir:
        files = make_files(state_dir / "files", count, rows, seed)
        result = measure(files, state_dir / "stack", workers=workers, in_flight=in_flight,
                         stand_in_job=stand_in_job, backfill_only=backfill_only)
    result["rows_per_file"] = rows
    return result


def _load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_results(result: dict[str, Any], path: Path, command: str) -> None:
    """Into the benchmark's results (bench/run_bench.py writes the same key in `make bench`)."""
    report.record_into(path, "backfill", {**result, "command": command,
                                          "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=DEFAULT_FILES)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--workers", type=int, default=DEFAULT_WARM_WORKERS, help="warm Spark workers (both ways)")
    parser.add_argument("--in-flight", type=int, default=None,
                        help="the job's max concurrent runs for both ways (default: the stack's, cdk.json)")
    parser.add_argument("--stand-in-job", type=float, default=None, metavar="SECONDS",
                        help="run a stand-in job of SECONDS (no Spark) to measure the orchestration alone")
    parser.add_argument("--backfill-only", action="store_true",
                        help="measure the backfill alone (not the same files one per upload)")
    parser.add_argument("--write-results", nargs="?", const=DEFAULT_RESULTS, type=Path, default=None,
                        help=f"also write the result under 'backfill' in this JSON file (default {DEFAULT_RESULTS})")
    args = parser.parse_args(argv)
    load_before = _load_average()
    result = run(args.files, args.rows, args.workers, args.in_flight, args.stand_in_job,
                 backfill_only=args.backfill_only)
    result["load_average"] = {"before": load_before, "after": _load_average()}
    print(json.dumps(result, indent=1))
    if args.write_results is not None:
        write_results(result, args.write_results, "python -m bench.backfill " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
