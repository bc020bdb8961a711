"""The object key EventBridge names, read right under both readings of AWS's docs (issue 21):
the key as given when it exists, else its URL-decoded form, said in the run summary. Real Spark
(the Hadoop file system the job reads with; one whole ingest_bookings.stage for the decoded key),
on files named as the local job runner hands them over (file:// + the path, not percent-encoded)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from etl_helpers import GOOD_ROW, rows_csv

import bookings_io
from bookings_contract import FileRejected

# A space, `+`, `%` and non-ASCII: as stored, and as a URL-encoded event would name it.
STORED_KEY = "raw/bookings/vol 2024+été 100%.csv"
ENCODED_KEY = "raw/bookings/vol+2024%2B%C3%A9t%C3%A9+100%25.csv"


def _uri(path: Path) -> str:
    return f"file://{path}"


def _write(root: Path, key: str, booking_id: str) -> Path:
    path = root / "bucket" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rows_csv([{**GOOD_ROW, "booking_id": booking_id}]), encoding="utf-8")
    return path


def _staged(args) -> list[dict]:
    return pq.read_table(Path(args.staging_uri.removeprefix("file://")) / "bookings").to_pylist()


def test_the_key_as_given_is_read_when_it_exists(spark, tmp_path):
    """Even when its URL-decoded twin exists too (a stored key with a literal `+` or `%2B`)."""
    given = _write(tmp_path, ENCODED_KEY, "AS-GIVEN")
    _write(tmp_path, STORED_KEY, "DECODED")
    assert bookings_io.resolve_source_uri(spark, _uri(given)) == (_uri(given), False)


def test_only_the_decoded_key_exists_it_is_read_and_the_summary_says_so(tmp_path, job_args, run_stage):
    stored = _write(tmp_path, STORED_KEY, "DECODED")
    given = tmp_path / "bucket" / ENCODED_KEY
    assert not given.exists()
    args = job_args(given, source_uri=_uri(given))
    summary = run_stage(args)
    [row] = _staged(args)
    assert row["booking_id"] == "DECODED" and row["source_file"] == _uri(stored)
    assert summary.source_key_decoded is True and summary.source_file == _uri(stored)
    document = json.loads(summary.to_json(datetime.now(timezone.utc)))
    assert document["source_key_decoded"] is True and document["source_file"] == _uri(stored)


def test_neither_key_exists_the_key_as_given_is_the_one_named(spark, tmp_path):
    given = _uri(tmp_path / "bucket" / ENCODED_KEY)
    assert bookings_io.resolve_source_uri(spark, given) == (given, False)


def test_a_decoded_key_that_would_name_another_object_is_not_taken(spark, tmp_path):
    """`%2E%2E` decodes to `..`: never followed (Hadoop would resolve it to another object)."""
    _write(tmp_path, "raw/x.csv", "ELSEWHERE")
    given = _uri(tmp_path / "bucket" / "raw/bookings/%2E%2E/x.csv")
    assert bookings_io.resolve_source_uri(spark, given) == (given, False)
    with pytest.raises(FileRejected, match=r"'\.\.' path segment"):
        bookings_io.resolve_source_uri(spark, _uri(tmp_path / "bucket" / "raw/bookings/../x.csv"))
