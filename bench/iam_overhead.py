"""The IAM check's cost on a whole run (issue 12): latency, upload to email, of a small file on
warm workers, with the check on and off. The target: on <= 1.10 x off.

moto holds one emulator per process, so each mode runs in its own process (`--child on|off`);
the modes alternate (on, off, on, off, ...) so that a change in the machine's load hits both.

    python -m bench.iam_overhead [--rows 1000] [--runs 3] [--rounds 2] [--write-into bench/results/bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import datasets, latency, memory, report

TARGET_RATIO = 1.10


def child(mode: str, rows: int, runs: int, seed: int) -> dict[str, Any]:
    """One process, one pipeline (check on or off), warm workers ready, `runs` files in sequence."""
    from airline_local.pipeline import LocalPipeline, temporary_state_dir

    files = [datasets.ensure_dataset(rows, seed + n, 0.01, datasets.DEFAULT_CACHE_DIR)[0] for n in range(runs + 1)]
    clock = latency.EmailClock()
    with temporary_state_dir(f"airline-bench-iam-{mode}-") as state_dir, \
            LocalPipeline(state_dir, on_email=clock, iam_check=(mode == "on")) as pipeline:
        if not pipeline.emulator.job_runner.wait_for_workers(timeout=300):  # type: ignore[union-attr]
            raise RuntimeError("the warm Spark workers did not start")
        latency.measure(pipeline, clock, files[:1], rows)  # not measured: the first run on each worker's JVM
        # Where the CPU goes, per process group: a check that costs little per call but slows the job
        # shows up as emulator CPU competing with Spark for the two cores.
        postmaster = memory.postmaster_pid(pipeline.postgres.data_dir)  # type: ignore[union-attr]
        with memory.PeakSampler({
            "emulator": lambda ps: [p for p in ps if p.pid == os.getpid()],
            "glue_workers": memory.job_tree,
            "postgres": lambda ps: memory.tree(postmaster, ps),
        }, interval=0.5) as sampler:
            measured = latency.summarize(latency.measure(pipeline, clock, files[1:], rows))
        measured["cpu_seconds_per_run"] = {name: round(cpu / runs, 2) for name, cpu in sampler.cpu_seconds.items()}
        if mode == "on":
            measured["checked_calls"] = sum(1 for entry in pipeline.iam.log if entry[3] == "allowed")
    return measured


def measure(rows: int, runs: int, rounds: int, seed: int = 4242) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {"on": [], "off": []}
    checked_calls = []
    cpu: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    phases: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for _ in range(rounds):
        for mode in ("on", "off"):
            done = subprocess.run([sys.executable, "-m", "bench.iam_overhead", "--child", mode, "--rows", str(rows),
                                   "--runs", str(runs), "--seed", str(seed)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"the {mode} run failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            seconds[mode] += [run["seconds"] for run in result["all_runs"]]
            checked_calls += [result["checked_calls"]] if "checked_calls" in result else []
            cpu[mode].append(result["cpu_seconds_per_run"])
            phases[mode].append(result["median_phases"])
    on, off = statistics.median(seconds["on"]), statistics.median(seconds["off"])
    return {
        "rows": rows, "runs_per_mode": len(seconds["on"]), "rounds": rounds,
        "median_seconds_on": round(on, 3), "median_seconds_off": round(off, 3),
        "ratio": round(on / off, 3), "target_ratio": TARGET_RATIO, "met": on / off <= TARGET_RATIO,
        "seconds_on": seconds["on"], "seconds_off": seconds["off"],
        "checked_calls_per_process": checked_calls,
        # Per process: CPU seconds per run by process group, and the median of each latency phase.
        "cpu_seconds_per_run": cpu, "median_phases": phases,
    }


def format_summary(result: dict[str, Any]) -> str:
    return (f"IAM check overhead, {result['rows']:,} rows upload -> email on warm workers, "
            f"{result['runs_per_mode']} runs a mode in {result['rounds']} alternating rounds: "
            f"on {result['median_seconds_on']:.2f} s, off {result['median_seconds_off']:.2f} s (medians), "
            f"ratio {result['ratio']:.3f}, target <= {result['target_ratio']}: {'met' if result['met'] else 'not met'}"
            + "".join(f"\n  CPU s per run, {group}: on {on:.2f}, off {off:.2f}"
                      for group, (on, off) in _median_cpu(result).items()))


def _median_cpu(result: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Each process group's CPU seconds per run, median over the processes of each mode."""
    per_mode = result.get("cpu_seconds_per_run") or {}
    if not (per_mode.get("on") and per_mode.get("off")):
        return {}
    groups = sorted({g for runs in per_mode.values() for run in runs for g in run})
    return {g: (statistics.median(run.get(g, 0.0) for run in per_mode["on"]),
                statistics.median(run.get(g, 0.0) for run in per_mode["off"])) for g in groups}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.iam_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="measured runs per process (after one unmeasured)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--write-into", type=Path, help="a bench results JSON to record the result in (key 'iam_overhead')")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.runs, args.seed)))
        return 0
    result = measure(args.rows, args.runs, args.rounds, args.seed)
    print(format_summary(result))
    if args.write_into:
        report.record_into(args.write_into, "iam_overhead", result)
        print(f"results: {args.write_into} (iam_overhead)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
