"""Where the Spark task threads' CPU goes, from a Java Flight Recorder recording of a stage run.

    JAVA_TOOL_OPTIONS="-XX:FlightRecorderOptions=stackdepth=1024 \
        -XX:StartFlightRecording=filename=/tmp/stage.jfr,settings=profile" \
        .venv/bin/python -m bench.stage FILE --masters 'local[2]' --modes stage
    .venv/bin/python -m bench.jfr_profile /tmp/stage.jfr

JFR samples each running Java thread's stack every 10-20 ms. Each sample of a Spark task thread
("Executor task launch worker-N") is put in one part of the job: in the validation (the stage
that builds the in-memory cache, CachedRDDBuilder) or elsewhere, and by the work at its leaf end
(what the generated code was calling when sampled), in the order of ``CATEGORIES``; a sample whose
leaf is the generated code itself counts as "generated code". The recording includes the small
warm-up file bench.stage runs first (a few percent of the samples on a 1M-row file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CATEGORIES = (  # (label, substrings of "package/Class.method"), first match wins
    ("to_utc_timestamp's zone id lookup (two regex compiles a row)", ("SparkDateTimeUtils.getZoneId",)),
    ("timestamp parsing (try_cast)", ("stringToTimestamp",)),
    ("regular expressions (rlike)", ("java/util/regex",)),
    ("in-memory cache: column encoding", ("/columnar/",)),
    ("broadcast join lookups", ("HashedRelation",)),
    ("CSV parsing", ("univocity", "UnivocityParser", "LineRecordReader")),
    ("Parquet writing", ("org/apache/parquet",)),
    ("shuffle and sort", ("shuffle", "ExternalSorter", "UnsafeInMemorySorter")),
    ("decimals", ("Decimal",)),
    ("string functions", ("UTF8String",)),
    ("row writing", ("UnsafeWriter", "UnsafeRow", "Platform")),
)
GENERATED = ("GeneratedIteratorForCodegenStage", "GeneratedClass$SpecificUnsafeProjection")
GENERATED_CODE = "generated code (the checks, casts, trims)"
OTHER = "other"
VALIDATION = "validation (with the cache it fills)"
REST = "the other stages"


def _frame_name(frame: dict[str, Any]) -> str:
    method = frame["method"]
    return f"{method['type']['name']}.{method['name']}"


def classify(frames: list[str]) -> tuple[str, str]:
    """(part, category) of one sample; ``frames`` leaf first, as JFR lists them."""
    part = VALIDATION if any("CachedRDDBuilder" in name for name in frames) else REST
    leaf: list[str] = []
    for name in frames:
        if any(marker in name for marker in GENERATED):
            break
        leaf.append(name)
    category = GENERATED_CODE if len(leaf) < len(frames) else OTHER
    for label, patterns in CATEGORIES:
        if any(pattern in name for name in leaf for pattern in patterns):
            category = label
            break
    return part, category


def profile(samples: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{part: {category: samples}} over the Spark task threads' execution samples."""
    found: dict[str, Counter[str]] = {VALIDATION: Counter(), REST: Counter()}
    for sample in samples:
        values = sample["values"]
        if not values["sampledThread"]["javaName"].startswith("Executor task"):
            continue
        part, category = classify([_frame_name(f) for f in values["stackTrace"]["frames"]])
        found[part][category] += 1
    return {part: dict(counts.most_common()) for part, counts in found.items()}


def read_samples(recording: Path) -> list[dict[str, Any]]:
    """The recording's jdk.ExecutionSample events, through the JDK's `jfr` tool."""
    printed = subprocess.run(["jfr", "print", "--json", "--stack-depth", "200", "--events",
                              "jdk.ExecutionSample", str(recording)], capture_output=True, text=True, check=True)
    return json.loads(printed.stdout)["recording"]["events"]


def format_profile(found: dict[str, dict[str, int]]) -> str:
    total = sum(sum(counts.values()) for counts in found.values()) or 1
    lines = []
    for part, counts in found.items():
        in_part = sum(counts.values())
        lines.append(f"{part}: {in_part} samples, {100 * in_part / total:.0f} % of the task threads'")
        for category, count in counts.items():
            lines.append(f"  {100 * count / max(in_part, 1):5.1f} %  {category}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jfr_profile", description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path, help="a .jfr file")
    args = parser.parse_args(argv)
    print(format_profile(profile(read_samples(args.recording))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
