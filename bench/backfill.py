"""Backfill vs one execution per upload (issue 15): N small files ingested by one backfill
execution (Distributed Map), then the same files uploaded one by one under raw/bookings/ (one
execution each, all at once), each into an emptied warehouse of the same local stack.

    python -m bench.backfill --files 20 --rows 50      # a small run; `make bench` runs 200 files

Reports wall seconds and files per minute for both ways.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(BENCH_DIR.parent))

from airline_local.backfill import run_backfill  # noqa: E402
from airline_local.generator import write_csv  # noqa: E402
from airline_local.pipeline import LocalPipeline, temporary_state_dir  # noqa: E402

DEFAULT_FILES = 200
DEFAULT_ROWS = 50


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


def measure(files: list[Path], concurrency: int, state_dir: Path) -> dict[str, Any]:
    """Both ways on one local stack; MaxConcurrency = the job's run limit = the warm workers."""
    context = {"backfillMaxConcurrency": concurrency, "backfillToleratedFailurePercentage": 100}
    with LocalPipeline(state_dir, context=context, warm_workers=concurrency) as pipeline:
        started = time.monotonic()
        backfill = run_backfill(pipeline, files, timeout=6 * 3600)
        backfill_seconds = time.monotonic() - started
        _empty_warehouse(pipeline)
        started = time.monotonic()
        runs = pipeline.run(files, concurrent=True, timeout=6 * 3600)
        per_upload_seconds = time.monotonic() - started

    def way(seconds: float, succeeded: int) -> dict[str, Any]:
        return {"seconds": round(seconds, 1), "files_per_minute": round(60 * len(files) / seconds, 1),
                "files_succeeded": succeeded}

    return {
        "files": len(files), "concurrency": concurrency,
        "backfill": {**way(backfill_seconds, len(backfill.succeeded)), "status": backfill.status},
        "one_per_upload": way(per_upload_seconds, sum(r.status == "SUCCEEDED" for r in runs)),
    }


def run(count: int = DEFAULT_FILES, rows: int = DEFAULT_ROWS, concurrency: int = 2, seed: int = 20_000) -> dict[str, Any]:
    with temporary_state_dir("airline-bench-backfill-") as state_dir:
        files = make_files(state_dir / "files", count, rows, seed)
        result = measure(files, concurrency, state_dir / "stack")
    result["rows_per_file"] = rows
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=DEFAULT_FILES)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.files, args.rows, args.concurrency), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
