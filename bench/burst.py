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
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(BENCH_DIR.parent))

from airline_local.generator import write_csv  # noqa: E402
from airline_local.pipeline import LocalPipeline, temporary_state_dir  # noqa: E402


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


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
        cpu, started = _cpu_seconds(), time.monotonic()
        uploads = [pipeline.upload(path, f"raw/bookings/{path.name}") for path in files]
        with ThreadPoolExecutor(max_workers=len(uploads)) as followers:
            results = list(followers.map(lambda upload: pipeline.wait(upload, timeout=1800), uploads))
        wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    succeeded = sum(result.status == "SUCCEEDED" for result in results)
    print(f"burst of {args.files} files x {args.rows} rows: {succeeded} succeeded, {wall:.1f} s wall, "
          f"{cpu:.1f} CPU-s in the emulator's process (load average now {os.getloadavg()[0]:.1f})")
    if succeeded != len(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
