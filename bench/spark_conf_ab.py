"""What a Spark SQL setting costs a warm worker: the stage phase of one small file, run after run in
one warm JVM, the settings alternating run by run.

    .venv/bin/python -m bench.spark_conf_ab FILE [--runs 24] [--warm-up 4] \
        --setting spark.sql.adaptive.enabled=true --setting spark.sql.adaptive.enabled=false

Local mode's warm workers run many small files in one JVM, and a small file's run is mostly the
driver's work (planning, code generation, scheduling), which a setting can change. Runs in separate
processes at different times compare the host's speed as much as the settings (it drifts by a
quarter over an hour here); alternating in one JVM puts both under the same conditions. Each run
gets its own ``newSession`` (as the warm worker gives each job run) with its setting applied to
it, so only runtime SQL settings can be compared this way. The session starts with the job
runner's settings (airline_local.glue.spark_conf); the first ``--warm-up`` runs are not counted.
Prints, per setting: the JVM's CPU-s a run (mean and range over its counted runs, by thread role),
the wall seconds and the Spark jobs a run; the rows of every run must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import jvm_threads
from bench.stage import GLUE_SCRIPTS, _jvm_pid, _session, _stage


def parse_setting(text: str) -> dict[str, str]:
    """``key=value[,key=value...]`` -> {key: value}; `-` is the session's settings unchanged."""
    if text.strip() == "-":
        return {}
    pairs = [part.split("=", 1) for part in text.split(",")]
    if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected key=value[,key=value...] or -, got {text!r}")
    return {key.strip(): value.strip() for key, value in pairs}


def measure(spark, source: Path, settings: list[dict[str, str]], runs: int, warm_up: int,
            work: Path) -> list[dict[str, Any]]:
    """``runs`` stage phases of ``source``, run i with ``settings[i % len(settings)]``; one record
    per run: its setting's index, whether it counts (past the warm-up), wall seconds, the JVM's
    CPU-s by thread role, the Spark jobs it ran and the summary's counts."""
    import ingest_bookings

    jvm = _jvm_pid()
    tracker = spark.sparkContext.statusTracker()
    records = []
    for run in range(runs):
        index = run % len(settings)
        session = spark.newSession()
        ingest_bookings.configure(session)
        for key, value in settings[index].items():
            session.conf.set(key, value)
        before = jvm_threads.thread_cpu_by_role(jvm)
        jobs_before = set(tracker.getJobIdsForGroup(None))
        started = time.perf_counter()
        summary = _stage(session, source, work / f"run-{run}")
        records.append({
            "spark_jobs": len(set(tracker.getJobIdsForGroup(None)) - jobs_before),
            "setting": index, "counted": run >= warm_up,
            "wall_seconds": time.perf_counter() - started,
            "jvm_cpu_seconds": dict(jvm_threads.difference(jvm_threads.thread_cpu_by_role(jvm), before)),
            "rows": (summary.rows_read, summary.rows_quarantined, summary.rows_duplicate, summary.rows_staged),
        })
    return records


def summarize(records: list[dict[str, Any]], settings: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per setting, over its counted runs: JVM CPU-s a run (mean, min, max, by role), wall s."""
    out = []
    for index, setting in enumerate(settings):
        counted = [r for r in records if r["setting"] == index and r["counted"]]
        if not counted:
            continue
        totals = [sum(r["jvm_cpu_seconds"].values()) for r in counted]
        roles: Counter[str] = Counter()
        for r in counted:
            roles.update(r["jvm_cpu_seconds"])
        out.append({
            "setting": setting or "session default", "runs": len(counted),
            "jvm_cpu_seconds_mean": round(statistics.mean(totals), 3),
            "jvm_cpu_seconds_range": [round(min(totals), 3), round(max(totals), 3)],
            "jvm_cpu_seconds_by_role": {role: round(v / len(counted), 3) for role, v in roles.items()},
            "wall_seconds_mean": round(statistics.mean(r["wall_seconds"] for r in counted), 3),
            "spark_jobs_a_run": sorted({r["spark_jobs"] for r in counted}),
        })
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spark_conf_ab", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--setting", dest="settings", type=parse_setting, action="append", required=True,
                        help="key=value[,key=value...] applied to alternate runs' sessions (repeat; - for none)")
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--warm-up", type=int, default=4)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    sys.path.insert(0, str(GLUE_SCRIPTS))
    spark = _session(args.master, "1g")
    with tempfile.TemporaryDirectory(prefix="bench-conf-ab-") as work:
        records = measure(spark, args.file, args.settings, args.runs, args.warm_up, Path(work))
    spark.stop()
    if len({r["rows"] for r in records}) != 1:
        print(f"the settings staged different rows: {sorted({r['rows'] for r in records})}", file=sys.stderr)
        return 1
    for line in summarize(records, args.settings):
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
