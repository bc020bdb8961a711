"""ingest_bookings.stage on whole files: row conservation, quarantine, staging, file-level failures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from etl_helpers import GOOD_ROW, HEADER, rows_csv

import bookings_contract as contract
from airline_local.generator import BAD_ROW_RULES, write_csv
from bookings_contract import FileRejected

REASON_BY_RULE = {rule: reason for rule, _, reason in BAD_ROW_RULES}


def _local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def _quarantine(args) -> list[dict]:
    files = sorted(_local(args.quarantine_uri).glob("part-*.json"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("generated") / "bookings.csv"
    kinds = write_csv(path, 2000, seed=7, bad_ratio=0.03, duplicate_ratio=0.03, update_ratio=0.05)
    return path, kinds


def test_generated_file_rows_are_conserved_and_land_where_they_should(generated, job_args, run_stage):
    path, kinds = generated
    args = job_args(path)
    summary = run_stage(args)
    bad = sum(count for kind, count in kinds.items() if kind.startswith("bad:"))
    assert (summary.rows_read, summary.rows_quarantined, summary.rows_duplicate) == (
        2000, bad, kinds["duplicate"] + kinds["update"])
    staged = pq.read_table(_local(args.staging_uri) / "bookings")
    assert staged.num_rows == kinds["new"]
    assert summary.rows_read == summary.rows_quarantined + summary.rows_duplicate + staged.num_rows
    assert staged.column_names == [name for name, _ in contract.BOOKINGS_TABLE]
    assert len(set(staged.column("booking_id").to_pylist())) == staged.num_rows

    quarantined = _quarantine(args)
    assert len(quarantined) == bad and summary.quarantine_uri == args.quarantine_uri
    assert [q["record_number"] for q in quarantined] == sorted(q["record_number"] for q in quarantined)
    assert {tuple(q["reasons"]) for q in quarantined} == {(r,) for r in REASON_BY_RULE.values()}
    first = quarantined[0]
    assert set(first) == {"source_file", "record_number", "reasons", "values", "raw"}
    assert first["source_file"] == args.source_uri and list(first["values"]) == list(contract.CONTRACT_COLUMNS)

    airports = pq.read_table(_local(args.staging_uri) / "airports")
    assert airports.column_names == [name for name, _ in contract.AIRPORTS_TABLE] and airports.num_rows > 5000
    (run,) = pq.read_table(_local(args.staging_uri) / "run").to_pylist()
    assert list(run) == [name for name, _ in contract.RUN_TABLE]
    assert (run["rows_read"], run["rows_quarantined"], run["rows_duplicate"], run["rows_staged"]) == (
        2000, bad, summary.rows_duplicate, staged.num_rows)
    assert summary.rows_staged == staged.num_rows
    assert not list(_local(args.staging_uri).rglob("_SUCCESS"))  # COPY loads the whole prefix


def test_quarantine_keeps_the_original_text(write_file, job_args, run_stage):
    rows = [GOOD_ROW, {**GOOD_ROW, "booking_id": "B2"}]
    text = rows_csv(rows).replace("\n", ",note\n").replace(HEADER + ",note", HEADER + ", Notes ", 1)
    text += "B3, 2025-03-01T10:00:00Z ,,P1,aa,100,JFK,LHR,2025-03-04T07:00:00,economy,-5,USD,2,confirmed,web,\"x, y\"\n"
    args = job_args(write_file(text), max_reject_ratio=0.5)
    summary = run_stage(args)
    assert summary.unknown_columns == ["Notes"]
    (record,) = _quarantine(args)
    assert record["record_number"] == 3 and record["reasons"] == ["fare_amount: negative"]
    assert record["values"]["booking_time"] == " 2025-03-01T10:00:00Z "
    assert record["values"]["carrier_code"] == "aa" and record["values"]["Notes"] == "x, y"
    assert record["values"]["updated_at"] is None and record["raw"] is None


def test_too_many_rejected_rows_fail_the_file_after_writing_the_quarantine(write_file, job_args, run_stage):
    rows = [GOOD_ROW] + [{**GOOD_ROW, "booking_id": f"X{i}", "currency": "??"} for i in range(2)]
    args = job_args(write_file(rows_csv(rows)), max_reject_ratio=0.5)
    with pytest.raises(FileRejected, match=r"2 of 3 rows rejected \(66.7%\), more than max_reject_ratio 0.5"):
        run_stage(args)
    assert len(_quarantine(args)) == 2
    assert not _local(args.staging_uri).exists()


def test_header_only_file_stages_zero_rows(write_file, job_args, run_stage):
    args = job_args(write_file("\ufeff" + HEADER + "\r\n"))
    summary = run_stage(args)
    assert (summary.rows_read, summary.rows_quarantined, summary.rows_duplicate) == (0, 0, 0)
    assert summary.quarantine_uri is None and not _local(args.quarantine_uri).exists()
    staged = pq.read_table(_local(args.staging_uri) / "bookings")
    assert staged.num_rows == 0 and staged.column_names[0] == "booking_id"


def test_a_truncated_gzip_file_fails_as_unreadable(tmp_path, job_args, run_stage):
    # Large enough that the header probe (first MiB) succeeds and Spark meets the cut.
    text = rows_csv([{**GOOD_ROW, "booking_id": f"B{i}"} for i in range(20000)])
    data = gzip.compress(text.encode())
    path = tmp_path / "truncated.csv.gz"
    path.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(FileRejected, match="cannot read the file as CSV: .*(EOF|end of)"):
        run_stage(job_args(path))


def test_a_missing_required_column_fails_before_reading_rows(write_file, job_args, run_stage):
    columns = tuple(c for c in contract.CONTRACT_COLUMNS if c != "currency")
    args = job_args(write_file(rows_csv([GOOD_ROW], columns)))
    with pytest.raises(FileRejected, match=r"^missing required column\(s\): currency$"):
        run_stage(args)


@pytest.mark.parametrize(("input_mb", "parallelism", "compressed", "partitions"), [
    (1, 2, False, 2),        # a small file: every core
    (135, 2, False, 4),      # the 1M-row file: 4 x 34 MB on 2 cores, not 3 (the third alone)
    (679, 2, False, 12),     # the 5M-row file: 6 waves of 2
    (128, 2, False, 2),      # exactly 64 MB a core
    (129, 2, False, 4),
    (135, 8, False, 8),      # more cores (Glue workers) than 64 MB blocks
    (30, 2, True, 4),        # gzip counts at 6 x its size: 180 MB
])
def test_validation_partitions_are_whole_waves_of_at_most_64_mb(input_mb, parallelism, compressed, partitions):
    import ingest_bookings

    got = ingest_bookings.validation_partitions(input_mb << 20, parallelism, compressed)
    assert got == partitions
    assert got % parallelism == 0
    size = (input_mb << 20) * (ingest_bookings.GZIP_RATIO if compressed else 1)
    assert size / got <= ingest_bookings.INPUT_BYTES_PER_PARTITION
