"""The stage phase before and after issue 25 against bare Spark, interleaved on the same file.

    .venv/bin/python -m bench.stage_ab FILE [--repeat 3] [--warm]

Each round runs, each in a fresh process (its own JVM, as every Glue run has, no warm-up): a bare
Spark CSV -> Parquet copy, the stage phase of the frozen pre-change modules
(tests/etl/reference_stage/) and the current stage phase, in that order; with ``--warm`` also
both stages warm (bench.stage's small warm-up file first) beside a warm bare copy. Interleaving
spreads the machine's load over both versions alike; the load average is printed with each round.
Ratios are bare seconds / stage seconds (1.0: the stage costs what the bare copy costs), from the
median of each column.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from bench import stage

REFERENCE = stage.PROJECT_ROOT / "tests" / "etl" / "reference_stage"
VERSIONS = {"before": REFERENCE, "after": None}


def _load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_ab", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--warm", action="store_true", help="also the warm comparison")
    args = parser.parse_args(argv)
    columns: dict[str, list[float]] = {}
    loads = []

    def record(name: str, seconds: float) -> None:
        columns.setdefault(name, []).append(seconds)

    for round_number in range(1, args.repeat + 1):
        loads.append(_load())
        line = {"round": round_number, "load_average_1min": round(loads[-1], 2)}
        line["fresh bare"] = stage.measure(args.file, args.master, ("bare",), fresh=True)["bare_seconds"]
        for version, scripts in VERSIONS.items():
            run = stage.measure(args.file, args.master, ("stage",), fresh=True, scripts=scripts)
            line[f"fresh stage {version}"] = run["stage_seconds"]
            # the JVM's CPU seconds (all threads): less disturbed by the machine's load than wall time
            line[f"fresh stage {version} JVM CPU"] = round(sum(run["stage_jvm_cpu_seconds"].values()), 2)
        if args.warm:
            for version, scripts in VERSIONS.items():
                run = stage.measure(args.file, args.master, ("bare", "stage"), scripts=scripts)
                line[f"warm bare ({version})"] = run["bare_seconds"]
                line[f"warm stage {version}"] = run["stage_seconds"]
        for name, value in line.items():
            if name not in ("round", "load_average_1min"):
                record(name, value)
        print(json.dumps(line), flush=True)
    median = {name: statistics.median(values) for name, values in columns.items()}
    summary = {"file": str(args.file), "master": args.master, "rounds": args.repeat,
               "load_average_1min": [round(value, 2) for value in loads],
               "median_seconds": median}
    for version in VERSIONS:
        summary[f"fresh stage/bare {version}"] = round(median["fresh bare"] / median[f"fresh stage {version}"], 3)
        if args.warm:
            summary[f"warm stage/bare {version}"] = round(
                median[f"warm bare ({version})"] / median[f"warm stage {version}"], 3)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
