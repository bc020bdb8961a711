"""The longest source URI S3 allows, through the real job and the local warehouse.

An S3 key is up to 1,024 bytes of UTF-8 and a bucket name up to 63 characters, so the job stores
source_file values of up to len("s3://") + 63 + 1 + 1,024 = 1,093 bytes; Redshift counts VARCHAR
lengths in bytes and COPY from Parquet cannot truncate. The local COPY counts bytes as Redshift
does (airline_local.warehouse.statements), so this test fails if a source_file column is too narrow.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from etl_helpers import GOOD_ROW, REPO_ROOT, rows_csv

BUCKET = "airline-bookings-raw-123456789012-eu-west-1-abcdefghijklmnopqrs"  # 63 characters
MAX_KEY_BYTES = 1024
NAME_MAX = 255  # bytes per path segment on the local file system (not an S3 limit)


def longest_key() -> str:
    """raw/bookings/<multi-byte segments>.csv, exactly 1,024 bytes of UTF-8 (3- and 4-byte
    characters), cut into segments a local file system can hold."""
    prefix, suffix = "raw/bookings/", ".csv"
    budget = MAX_KEY_BYTES - len(prefix) - len(suffix)
    segments: list[str] = []
    while budget > 0:
        room = min(budget, NAME_MAX - len(suffix))
        segment = "日" * (room // 3)  # 3 bytes each
        rest = room - 3 * len(segment)
        if rest:  # 1 or 2 bytes left: trade one 3-byte character for a 4-byte one (+1 byte)
            segment = segment[:-rest] + "🛫" * rest  # 🛫 is 4 bytes
        segments.append(segment)
        budget -= len(segment.encode()) + 1  # and the "/" after it (none after the last)
    key = prefix + "/".join(segments) + suffix
    assert len(key.encode("utf-8")) == MAX_KEY_BYTES, len(key.encode("utf-8"))
    return key


@pytest.fixture(scope="module")
def pg_dsn():
    from airline_local.warehouse.postgres import PostgresServer
    from airline_local.warehouse.statements import Warehouse

    # Not pytest's tmp_path: its 0700 parents keep out the unprivileged PostgreSQL user.
    state = Path(tempfile.mkdtemp(prefix="airline-etl-long-key-"))
    state.chmod(0o711)
    server = PostgresServer(state / "pgdata").start()
    try:
        Warehouse(server.dsn).apply_migrations()
        yield server.dsn
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_a_1024_byte_multibyte_key_is_stored_intact(spark, pg_dsn, tmp_path):
    import bookings_load
    import ingest_bookings

    from airline_local.warehouse.statements import Warehouse

    key = longest_key()
    mirror = tmp_path / "s3"  # the bucket as the local job runner mirrors it
    source = mirror / BUCKET / key
    source.parent.mkdir(parents=True)
    source.write_text(rows_csv([GOOD_ROW]))
    args = ingest_bookings.JobArguments(
        # As the job runner hands it over: file:// + the path, not percent-encoded.
        source_uri=f"file://{source}", execution_id="exec-long-key",
        data_root_uri=f"file://{mirror / BUCKET}",
        target=bookings_load.RedshiftTarget(database="dev", workgroup="wg-local"),
        copy_role_arn="arn:aws:iam::123456789012:role/copy", max_reject_ratio=0.1)
    summary = ingest_bookings.RunSummary(execution_id=args.execution_id, source_file=args.source_uri,
                                         started_at=datetime.now(timezone.utc))
    ingest_bookings.stage(spark, args, summary)
    assert (summary.rows_read, summary.rows_quarantined) == (1, 0)

    # The warehouse gives the staged values back their s3:// form, as in the local pipeline.
    warehouse = Warehouse(pg_dsn, restore_uris=(rf"^file:(?://)?{re.escape(str(mirror))}/", "s3://"))
    statements = bookings_load.build_statements(
        bookings_load.read_load_sql(REPO_ROOT / "sql" / "load_bookings.sql"), args.staging_uri,
        args.copy_role_arn)
    counts = warehouse.execute_batch(statements)[-1].rows
    assert counts == [(1, 0, 0, 0, 1)]  # inserted, updated, unchanged, stale, staged

    expected = f"s3://{BUCKET}/{key}"
    assert len(expected.encode("utf-8")) == 5 + 63 + 1 + 1024
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT source_file FROM airline.bookings").fetchall() == [(expected,)]
        assert conn.execute("SELECT source_file FROM airline.ingestion_runs").fetchall() == [(expected,)]
