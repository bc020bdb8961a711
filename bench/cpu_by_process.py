"""Where a command's CPU goes, by kind of process: the Spark JVMs, the warm workers, node, ...

    .venv/bin/python -m bench.cpu_by_process [--json OUT] -- make test

Samples /proc every half second while the command runs and keeps, for every process seen (the
command's and any other: run it on an otherwise idle machine), its CPU time (user + system) at the
last sample, less what it had used before the command started. Prints CPU-s and process counts by
kind (``kind_of``), and the machine's busy CPU-s from /proc/stat beside them: over a `make test`
the kinds held 813 of 857 busy CPU-s; the rest is processes that lived less than an interval, and
the kernel's own work.

Processes are told apart by pid and start time, not by pid alone as bench.memory.PeakSampler does
(its groups live seconds): a `make test` starts enough processes to wrap pid_max (32,768 here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.memory import CLOCK_TICKS, PROC, split_stat, stat_cpu_seconds


def kind_of(argv: list[str]) -> str:
    """A process's kind, from its command line."""
    if not argv or not argv[0]:
        return "other"
    program, line = Path(argv[0]).name, " ".join(argv)
    if program == "java":
        return "java (Spark JVMs)"
    for marker, kind in (("airline_local.glue.spark_worker", "warm Spark workers (Python)"),
                         ("pyspark.daemon", "PySpark Python workers"),
                         ("-u -c", "pytest-xdist workers (tests, moto, emulator)"),
                         ("airline_local.cli", "airline-ingest CLI"),
                         ("airline_local.background", "local stacks in the background"),
                         ("pytest", "pytest and its subprocesses")):
        if marker in line:
            return kind
    if program.startswith("postgres") or program in ("initdb", "pg_ctl"):
        return "PostgreSQL"
    if program == "node":
        return "node (CDK synth)"
    return "python (other)" if program.startswith("python") else "other"


def busy_cpu_seconds() -> float:
    """The machine's busy CPU-s since boot (user, nice, system, irq, softirq), from /proc/stat."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    return (values[0] + values[1] + values[2] + values[5] + values[6]) / CLOCK_TICKS


class Sampler:
    """CPU-s by process since the sampler started; call ``sample`` until done, then ``by_kind``."""

    def __init__(self) -> None:
        self.processes: dict[tuple[str, str], dict] = {}  # (pid, start time) -> base, cpu, argv
        self.sample(first=True)

    def sample(self, first: bool = False) -> None:
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                _, fields = split_stat((entry / "stat").read_text())
                cpu = stat_cpu_seconds(fields)
                seen = self.processes.setdefault((entry.name, fields[19]), {"base": cpu if first else 0.0})
                seen["cpu"] = cpu
                if "argv" not in seen or Path(seen["argv"][0]).name in ("", "bash", "sh"):  # a fork not yet exec'd
                    seen["argv"] = (entry / "cmdline").read_text().split("\0")
            except OSError:  # ended meanwhile
                continue

    def by_kind(self) -> dict[str, tuple[float, int]]:
        cpu, count = Counter(), Counter()
        for seen in self.processes.values():
            used = seen["cpu"] - seen["base"]
            if used > 0:
                kind = kind_of(seen.get("argv", []))
                cpu[kind] += used
                count[kind] += 1
        return {kind: (round(cpu[kind], 1), count[kind]) for kind, _ in cpu.most_common()}


def measure(command: list[str], interval: float = 0.5) -> dict:
    """Run ``command`` and return its exit code, wall seconds, busy CPU-s and CPU-s by kind."""
    sampler, done = Sampler(), threading.Event()

    def keep_sampling() -> None:
        while not done.wait(interval):
            sampler.sample()

    thread = threading.Thread(target=keep_sampling, daemon=True)
    busy, started = busy_cpu_seconds(), time.monotonic()
    thread.start()
    try:
        exit_code = subprocess.call(command)
    finally:
        done.set()
        thread.join()
    sampler.sample()
    return {"command": command, "exit_code": exit_code, "wall_seconds": round(time.monotonic() - started, 1),
            "busy_cpu_seconds": round(busy_cpu_seconds() - busy, 1), "by_kind": sampler.by_kind()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command given (after --)")
    result = measure(command)
    print(f"\n{' '.join(command)}: exit {result['exit_code']}, {result['wall_seconds']} s wall, "
          f"{result['busy_cpu_seconds']} busy CPU-s on the machine", file=sys.stderr)
    for kind, (seconds, processes) in result["by_kind"].items():
        print(f"  {seconds:8.1f} CPU-s  {processes:5d} processes  {kind}", file=sys.stderr)
    if options.json:
        options.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
