"""The stage phase before and after issue 25, compared record by record on the same files.

    .venv/bin/python -m bench.stage_diff [--rows 100000] [--bad-ratio 0.05]

tests/etl/reference_stage/ is a frozen copy of the three stage modules as they were before
issue 25 (bookings_transform, bookings_io, ingest_bookings). Both stages run in one Spark session on
generator files (bad rows of every kind, duplicates, updates) with hand-written edge rows added
(quoted line breaks, malformed records, blank lines, control characters and invalid UTF-8,
timestamps of every form, DST gaps and overlaps, numbers at their limits), as plain CSV, gzip,
and (without the records spanning lines, in 1 MiB splits) the splittable line-by-line read. The quarantine
records (source_file, record number, reasons, values, raw text), the staged bookings, airports
and run rows, and the run summary's counts must be identical. ``make test`` runs a small file
(tests/etl/test_etl_stage_equivalence.py); this command runs the 100k-row version.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from airline_local.aws.cfn import ACCOUNT_ID  # the emulator's account (the diff never calls AWS)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GLUE_SCRIPTS = PROJECT_ROOT / "glue_scripts"
REFERENCE_DIR = PROJECT_ROOT / "tests" / "etl" / "reference_stage"
STAGE_MODULES = ("bookings_transform", "bookings_io", "ingest_bookings")
STARTED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
HEADER = ("booking_id,booking_time,updated_at,passenger_id,carrier_code,flight_number,origin,"
          "destination,departure_time,cabin_class,fare_amount,currency,num_passengers,"
          "booking_status,sales_channel")
GOOD = ["E0", "2025-03-01T10:00:00Z", "2025-03-01T10:00:00Z", "P1", "AA", "100", "JFK", "LHR",
        "2025-03-04T07:00:00", "economy", "450.10", "USD", "2", "confirmed", "web"]
COLUMN = {name: index for index, name in enumerate(HEADER.split(","))}

# One change to GOOD per edge row: (column, raw CSV field text as written to the file).
EDGE_VALUES: list[tuple[str, str]] = [
    ("passenger_id", '"P\n1"'), ("passenger_id", '"P,1"'), ("booking_id", '"B""Q"'),
    ("passenger_id", '"multi\r\nline"'), ("booking_id", " spaced "), ("booking_id", "tab\there"),
    ("booking_id", "repl\ufffdchar"), ("booking_id", "é" * 32), ("booking_id", "é" * 33),
    ("booking_id", "x" * 64), ("booking_id", "x" * 65), ("passenger_id", "\u0085nel"),
    ("carrier_code", "aa"), ("carrier_code", "A1"), ("carrier_code", "A"), ("carrier_code", "ÄA"),
    ("carrier_code", "A-"), ("carrier_code", " b6 "),
    ("origin", "jfk"), ("origin", "XXX"), ("destination", "jfk"), ("destination", " lhr "),
    ("cabin_class", "Economy"), ("cabin_class", " BUSINESS "), ("cabin_class", "coach"),
    ("booking_status", "CHECKED_IN"), ("sales_channel", ""), ("sales_channel", "Call_Center"),
    ("sales_channel", "fax"), ("updated_at", ""), ("updated_at", "2025-02-01T00:00:00Z"),
    ("currency", "usd"), ("currency", "US1"), ("currency", "ÜSD"), ("currency", "USDD"),
    ("flight_number", "0"), ("flight_number", "9999"), ("flight_number", "10000"),
    ("flight_number", "+5"), ("flight_number", "-1"), ("flight_number", " 12 "),
    ("flight_number", "1e3"), ("flight_number", "0012"), ("flight_number", "99999999999999999999"),
    ("flight_number", "١٢"), ("flight_number", "12.0"), ("num_passengers", "0"),
    ("num_passengers", "9"), ("num_passengers", "10"), ("num_passengers", "٣"),
    ("fare_amount", "-0"), ("fare_amount", "-0.00"), ("fare_amount", "1234567890.99"),
    ("fare_amount", "12345678901.00"), ("fare_amount", "1.999"), ("fare_amount", "1.5e2"),
    ("fare_amount", ".5"), ("fare_amount", "5."), ("fare_amount", "+5"), ("fare_amount", "1,000"),
    ("fare_amount", "00000000000001.00"), ("fare_amount", "-"), ("fare_amount", "0.001"),
    ("fare_amount", "-5"), ("fare_amount", "٣.5"), ("fare_amount", "99999999999999999999999999999999999999999"),
    ("booking_time", "2025-03-01T10:00:00+02:00"), ("booking_time", "2025-03-01T10:00:00+0200"),
    ("booking_time", "2025-03-01T10:00:00+02"), ("booking_time", "2025-03-01T10:00:00-0530"),
    ("booking_time", "2025-03-01 10:00:00"), ("booking_time", "2025-03-01T10:00"),
    ("booking_time", "2025-03-01T10:00:00.123456789Z"), ("booking_time", "2025-03-01T10:00:00.1234567891Z"),
    ("booking_time", "2025-03-01T10:00:00."), ("booking_time", "2025-02-30T10:00:00Z"),
    ("booking_time", "2025-13-01T10:00:00Z"), ("booking_time", "2025-03-01T24:00:00Z"),
    ("booking_time", "2025-03-01T10:60:00Z"), ("booking_time", "2025-3-1T10:00:00Z"),
    ("booking_time", "2025-03-01"), ("booking_time", "2025-03-01T10:00:00z"),
    ("booking_time", "2025-03-01t10:00:00Z"), ("booking_time", "2025-03-01T10:00:00+2:00"),
    ("booking_time", "2025-03-01T10:00:00+19:00"), ("booking_time", "2025-03-01T10:00:00 Z"),
    ("booking_time", "0001-01-01T00:00:00Z"), ("booking_time", "1900-01-01T00:00:00Z"),
    ("booking_time", "2024-02-29T23:59:59.999999Z"), ("booking_time", "2025-03-01T10:00:00UTC"),
    ("updated_at", "2025-03-01T11:00:00+05:45"), ("updated_at", "garbage"),
    ("departure_time", "2025-03-04T07:00:00Z"), ("departure_time", "2025-03-04T07:00:00+01:00"),
    ("departure_time", "2025-03-04T07:00"), ("departure_time", "2025-03-04 07:00:00.5"),
    ("departure_time", "2025-03-09T02:30:00"), ("departure_time", "2025-11-02T01:30:00"),
    ("departure_time", "2025-11-02T01:00:00"), ("departure_time", "2025-11-02T02:00:00"),
    ("departure_time", "2025-03-09T02:00:00"), ("departure_time", "2025-03-09T03:00:00"),
    ("departure_time", "2025-03-09T01:59:59.999999"), ("departure_time", "2025-02-30T07:00:00"),
    ("departure_time", "2025-03-01T04:59:59"), ("departure_time", "2025-03-01T05:00:00"),
    ("departure_time", "2099-07-01T12:00:00"), ("departure_time", "9999-12-31T23:59:59"),
    ("departure_time", "1950-06-01T12:00:00"), ("departure_time", "not a time"),
]
# Whole rows: (origin, destination, departure_time) across zones with unusual rules.
EDGE_ZONES = [
    ("KTM", "DEL", "2025-06-01T10:00:00"), ("LHR", "JFK", "2025-03-30T01:30:00"),
    ("LHR", "JFK", "2025-10-26T01:30:00"), ("SYD", "AKL", "2025-04-06T02:30:00"),
    ("SYD", "AKL", "2025-10-05T02:30:00"), ("LHR", "CDG", "2025-03-30T00:59:59"),
    ("ADL", "SYD", "2025-10-05T02:15:00"), ("CCS", "MIA", "2025-06-01T10:00:00"),
    ("APW", "LAX", "2025-06-01T10:00:00"), ("LDH", "SYD", "2025-10-05T02:15:00"),
    ("CXI", "HNL", "2025-06-01T10:00:00"), ("THR", "DXB", "2025-03-21T12:00:00"),
]
# Raw lines: malformed records and blank lines (each replaces nothing: appended as written).
EDGE_LINES = [
    "E-short,2025-03-01T10:00:00Z", ",".join(GOOD + ["extra"]), "   ", "",
    ",".join(["E-unterminated", '"2025-03-01T10:00:00Z'] + GOOD[2:]),
]


def edge_rows() -> list[str]:
    """The hand-written rows as CSV lines (raw field text, quoting as written)."""
    lines = []
    for number, (column, value) in enumerate(EDGE_VALUES):
        row = list(GOOD)
        row[COLUMN["booking_id"]] = f"E{number}"
        row[COLUMN[column]] = value
        lines.append(",".join(row))
    for number, (origin, destination, departure) in enumerate(EDGE_ZONES):
        row = list(GOOD)
        row[COLUMN["booking_id"]], row[COLUMN["origin"]] = f"Z{number}", origin
        row[COLUMN["destination"]], row[COLUMN["departure_time"]] = destination, departure
        row[COLUMN["booking_time"]] = "2020-01-01T00:00:00Z"
        lines.append(",".join(row))
    # Same booking twice with the same updated_at: the later record wins.
    lines += [",".join(["T1"] + GOOD[1:]), ",".join(["T1"] + GOOD[1:3] + ["P-later"] + GOOD[4:])]
    return lines + EDGE_LINES


def write_files(directory: Path, rows: int, bad_ratio: float, seed: int = 25) -> dict[str, Path]:
    """The generated file with the edge rows spread through it: plain and gzip."""
    from airline_local.generator import write_csv

    generated = directory / "generated.csv"
    write_csv(generated, rows, seed=seed, bad_ratio=bad_ratio, duplicate_ratio=0.03, update_ratio=0.05)
    body = generated.read_bytes().decode("utf-8").split("\n")
    header, records = body[0], [line for line in body[1:] if line]
    edges = edge_rows()
    step = max(1, len(records) // (len(edges) + 1))
    for index, line in enumerate(edges):
        records.insert(min(len(records), (index + 1) * step + index), line)
    data = ("\n".join([header] + records) + "\n").encode("utf-8")
    data += b"E-badutf8,2025-03-01T10:00:00Z,,P\xff\xfe1,AA,1,JFK,LHR,2025-03-04T07:00:00,economy,1,USD,1,confirmed,web\n"
    plain, packed = directory / "bookings.csv", directory / "bookings.csv.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    # Without the records that span lines and the blank lines: the splittable read takes it.
    lines = directory / "bookings-lines.csv"
    lines.write_bytes(b"\n".join(line for line in data.split(b"\n")
                                  if line.strip() and line.count(b'"') % 2 == 0) + b"\n")
    return {"plain": plain, "gzip": packed, "lines": lines}


def load_reference() -> ModuleType:
    """The frozen ingest_bookings (with its own bookings_io and bookings_transform), imported
    beside the current ones: the three flat names are swapped in sys.modules while it loads."""
    saved = {name: sys.modules.pop(name, None) for name in STAGE_MODULES}
    sys.path.insert(0, str(REFERENCE_DIR))
    try:
        return importlib.import_module("ingest_bookings")
    finally:
        sys.path.remove(str(REFERENCE_DIR))
        for name in STAGE_MODULES:
            sys.modules.pop(name, None)
            if saved[name] is not None:
                sys.modules[name] = saved[name]


def current_stage() -> ModuleType:
    if str(GLUE_SCRIPTS) not in sys.path:
        sys.path.insert(0, str(GLUE_SCRIPTS))
    return importlib.import_module("ingest_bookings")


@dataclass
class StageResult:
    counts: dict[str, Any]
    quarantine: list[dict[str, Any]]
    bookings: list[dict[str, Any]]
    airports: list[dict[str, Any]]
    run: list[dict[str, Any]]
    error: str | None


def run_stage(module: ModuleType, spark, source: Path, root: Path,
              split_min_bytes: int | None = None, max_reject_ratio: float = 1.0,
              revalidate_all: bool = False) -> StageResult:
    """``module.stage`` on ``source`` into ``root``; what it wrote, read back in a stable order.
    ``revalidate_all``: the quarantine pass validates the whole file again (as it does for more
    rejected records than ingest_bookings.MAX_RECORD_NUMBERS_FILTER)."""
    limit = getattr(module, "MAX_RECORD_NUMBERS_FILTER", None)
    if revalidate_all and limit is not None:
        module.MAX_RECORD_NUMBERS_FILTER = 0
    import pyarrow as pa
    import pyarrow.parquet as pq

    import bookings_load

    io = module.bookings_io
    defaults = io.read_bookings_csv.__defaults__
    if split_min_bytes is not None:  # and splits of 1 MiB: several per file
        io.read_bookings_csv.__defaults__ = (split_min_bytes,)
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(1 << 20))
    args = module.JobArguments(
        source_uri=source.resolve().as_uri(), execution_id="diff", data_root_uri=root.as_uri(),
        target=bookings_load.RedshiftTarget("dev", workgroup="diff"),
        copy_role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/diff", max_reject_ratio=max_reject_ratio)
    summary = module.RunSummary(execution_id="diff", source_file=args.source_uri, started_at=STARTED_AT)
    error = None
    try:
        module.stage(spark, args, summary)
    except Exception as failure:  # compared like the rest: same class name and message
        error = f"{type(failure).__name__}: {failure}"
    finally:
        io.read_bookings_csv.__defaults__ = defaults
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        if limit is not None:
            module.MAX_RECORD_NUMBERS_FILTER = limit
    staging = root / "staging" / "diff"

    def table(name: str, key: str) -> list[dict[str, Any]]:
        if not (staging / name).exists():
            return []
        data = pq.read_table(staging / name)
        # timestamps as their integers: a local time near year 9999 is past Python's datetime
        data = pa.table({field.name: (
            column.cast(pa.int64()) if pa.types.is_timestamp(field.type) else column)
            for field, column in zip(data.schema, data.columns)})
        return sorted(data.to_pylist(), key=lambda row: str(row[key]))

    quarantine_dir = root / "quarantine" / "diff"
    quarantine = [json.loads(line) for path in sorted(quarantine_dir.glob("part-*.json"))
                  for line in path.read_text(encoding="utf-8").split("\n") if line]
    counts = {name: getattr(summary, name) for name in (
        "rows_read", "rows_quarantined", "rows_duplicate", "rows_staged", "quarantine_uri",
        "unknown_columns")}
    return StageResult(counts, quarantine, table("bookings", "booking_id"),
                       table("airports", "iata_code"), table("run", "execution_id"), error)


def differences(old: StageResult, new: StageResult) -> list[str]:
    """What differs between the two results (empty: identical)."""
    found = []
    for name in ("error", "counts", "quarantine", "bookings", "airports", "run"):
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            only_old = [row for row in a if row not in b][:3]
            only_new = [row for row in b if row not in a][:3]
            found.append(f"{name}: {len(a)} rows before, {len(b)} after; only before "
                         f"{only_old}; only after {only_new}")
        else:
            found.append(f"{name}: before {a!r}, after {b!r}")
    return found


def compare(spark, source: Path, work: Path, **options) -> tuple[StageResult, list[str]]:
    """Run the reference and the current stage on ``source``; the new result and the differences."""
    reference, current = load_reference(), current_stage()
    # The same data root for both (its URI is in the summary and the run row), emptied between.
    old = run_stage(reference, spark, source, work / "root", **options)
    shutil.rmtree(work / "root")
    new = run_stage(current, spark, source, work / "root", **options)
    shutil.rmtree(work / "root")
    return new, differences(old, new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_diff", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--bad-ratio", type=float, default=0.05)
    args = parser.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from bench.stage import _session

    current_stage()
    spark = _session("local[2]", "2g")
    sys.modules["ingest_bookings"].configure(spark)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="stage-diff-") as temp:
        work = Path(temp)
        files = write_files(work, args.rows, args.bad_ratio)
        cases = [("plain", files["plain"], {}), ("gzip", files["gzip"], {}),
                 ("split", files["lines"], {"split_min_bytes": 0}),
                 ("rejected file", files["plain"], {"max_reject_ratio": 0.01}),
                 ("quarantine pass over the whole file", files["gzip"], {"revalidate_all": True})]
        for label, path, options in cases:
            new, found = compare(spark, path, work / label.replace(" ", "-"), **options)
            print(json.dumps({"case": label, **new.counts, "quarantine_records": len(new.quarantine),
                              "bookings": len(new.bookings), "error": new.error,
                              "identical": not found}))
            for line in found:
                print(f"  DIFFERENT {line}")
            failures += bool(found)
    spark.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
