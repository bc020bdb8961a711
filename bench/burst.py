"""A burst of uploads through the whole local stack: `.venv/bin/python -m bench.burst [--files 20]`.

Prints the wall time from the first upload to the last run's end, and the CPU seconds of this
process over the same span: the AWS emulator (moto in server mode, the Step Functions
interpreter, the crawler, the Data API) and the followers run here, while the Spark workers and
PostgreSQL are other processes. It is the figure to watch when changing how the local stack
polls or serves the API; the runs' own Spark time barely moves it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(BENCH_DIR.parent))

from airline_local.generator import write_csv  # noqa: E402
from airline_local.pipeline import LocalPipeline, temporary_state_dir  # noqa: E402


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class Burst:
    results: list[Any]  # the runs' RunResults, in upload order
    wall_seconds: float  # first upload to the last run's end
    cpu_seconds: float  # of this process (the emulator's) over the same span

    def summary(self, rows: int) -> str:
        succeeded = sum(result.status == "SUCCEEDED" for result in self.results)
        return (f"burst of {len(self.results)} files x {rows} rows: {succeeded} succeeded, "
                f"{self.wall_seconds:.1f} s wall, {self.cpu_seconds:.1f} CPU-s in the emulator's process "
                f"(load average now {os.getloadavg()[0]:.1f})")


def run_burst(pipeline: LocalPipeline, files: list[tuple[Path, str]], timeout: float = 1800) -> Burst:
    """Upload every (file, key) at once, then follow each run to its end."""
    cpu, started = _cpu_seconds(), time.monotonic()
    uploads = [pipeline.upload(path, key) for path, key in files]
    with ThreadPoolExecutor(max_workers=len(uploads)) as followers:
        results = list(followers.map(lambda upload: pipeline.wait(upload, timeout=timeout), uploads))
    return Burst(results, time.monotonic() - started, _cpu_seconds() - cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20, help="files uploaded at once (default 20)")
    parser.add_argument("--rows", type=int, default=25, help="rows per file (default 25)")
    args = parser.parse_args(argv)

    with temporary_state_dir("airline-burst-") as state_dir, LocalPipeline(state_dir / "state") as pipeline:
        files = [state_dir / f"burst-{index:03d}.csv" for index in range(args.files)]
        for index, path in enumerate(files):
            write_csv(path, args.rows, seed=1000 + index, bad_ratio=0)
        pipeline.emulator.job_runner.wait_for_workers(timeout=300)  # measure the burst, not start-up
        burst = run_burst(pipeline, [(path, f"raw/bookings/{path.name}") for path in files])
    print(burst.summary(args.rows))
    if any(result.status != "SUCCEEDED" for result in burst.results):
        sys.exit(1)


if __name__ == "__main__":
    main()
