"""The developer loop (issue 24), as a data engineer runs it: `airline-ingest` commands in their own
processes on the bundled sample.

    python -m bench.loop [--runs 3]

1. first `local run` in a fresh state directory (no stack up; the synth of this checkout cached,
   as after any earlier run): the command's wall time;
2. `local up`, then `--runs` re-runs of the sample on the running stack: each command's wall time
   and its execution's upload -> email seconds (from the state directory's run history);
3. `local down`.
Prints the numbers with the load average (the machine may be shared: say so when quoting them).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airline_local import history
from airline_local.pipeline import LOCAL_CONTEXT, temporary_state_dir

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "bookings_sample.csv"
CLI = [sys.executable, "-m", "airline_local.cli"]


def _timed(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"`airline-ingest {' '.join(args)}` failed ({done.returncode}): {done.stderr[-2000:]}")
    return round(seconds, 2)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run(runs: int = 3) -> dict[str, Any]:
    from airline_local.cli import user_synth_cache
    from airline_local.local_stack import SYNTH_CACHE_ENV, synthesize

    os.environ.setdefault(SYNTH_CACHE_ENV, str(user_synth_cache()))
    with temporary_state_dir("bench-loop-") as scratch:
        synthesize(scratch / "cdk.out", LOCAL_CONTEXT)  # cached: what a developer's earlier run left
    result: dict[str, Any] = {"file": SAMPLE.name, "load_average_before": _load()}
    with temporary_state_dir("bench-loop-") as fresh:
        result["first_run_seconds"] = _timed("local", "run", str(SAMPLE), "--state-dir", str(fresh / "state"))
    with temporary_state_dir("bench-loop-") as directory:
        state = str(directory / "state")
        result["up_seconds"] = _timed("local", "up", "--state-dir", state)
        try:
            result["rerun_seconds"] = [_timed("local", "run", str(SAMPLE), "--state-dir", state) for _ in range(runs)]
            result["rerun_upload_to_email_seconds"] = [e["seconds"] for e in history.entries(directory / "state")]
        finally:
            result["down_seconds"] = _timed("local", "down", "--state-dir", state)
    result["load_average_after"] = _load()
    if runs:
        result["rerun_median_seconds"] = statistics.median(result["rerun_seconds"])
        result["rerun_upload_to_email_median_seconds"] = statistics.median(result["rerun_upload_to_email_seconds"])
    return result


def format_summary(result: dict[str, Any]) -> str:
    line = (f"loop: first `local run` in a fresh state dir {result['first_run_seconds']:.1f} s; "
            f"`local up` {result['up_seconds']:.1f} s; ")
    if "rerun_median_seconds" in result:
        line += (f"re-run on the running stack {result['rerun_median_seconds']:.1f} s per command "
                 f"(median of {len(result['rerun_seconds'])}), upload -> email "
                 f"{result['rerun_upload_to_email_median_seconds']:.1f} s; ")
    return line + (f"`local down` {result['down_seconds']:.1f} s (load average {result['load_average_before']} "
                   f"before, {result['load_average_after']} after)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="re-runs on the running stack")
    args = parser.parse_args(argv)
    result = run(args.runs)
    print(json.dumps(result))
    print(format_summary(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
