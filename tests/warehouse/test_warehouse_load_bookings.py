"""sql/load_bookings.sql, run for real on PostgreSQL with staged Parquet: the MERGE's semantics,
one transaction, idempotence, concurrency, and data that stays data."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warehouse_staging import (
    BOOKINGS_SCHEMA,
    UTC,
    booking,
    fetch,
    load_statements,
)

from airline_local.warehouse.statements import Warehouse, WarehouseError

T0 = dt.datetime(2024, 1, 10, 8, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)
RUN_COUNTS = ("SELECT rows_inserted, rows_updated, rows_unchanged, rows_stale FROM airline.ingestion_runs "
              "WHERE execution_id = %s")
SNAPSHOT = "SELECT * FROM airline.bookings ORDER BY booking_id"


def run_load(warehouse: Warehouse, staging_uri: str) -> tuple[int, int, int, int]:
    """(inserted, updated, unchanged, stale) of one load; checks rows_staged came back too."""
    results = warehouse.execute_batch(load_statements(staging_uri))
    final = results[-1]
    assert final.has_result_set and [c.name for c in final.columns] == [
        "rows_inserted", "rows_updated", "rows_unchanged", "rows_stale", "rows_staged"]
    assert len(final.rows) == 1
    *counts, staged = final.rows[0]
    assert sum(counts) == staged
    return tuple(counts)


def test_applying_the_migrations_again_changes_nothing(warehouse):
    assert warehouse.apply_migrations() == []  # the session's warehouse is at the last one
    versions = fetch(warehouse, "SELECT version FROM airline.schema_migrations ORDER BY 1")
    assert versions == [("0001",), ("0002",), ("0003",)]
    tables = fetch(warehouse, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'airline' ORDER BY 1")
    assert tables == [("airports",), ("bookings",), ("ingestion_runs",), ("load_mutex",), ("schema_migrations",)]


def test_first_load_inserts_everything_with_values_intact(clean_tables, stage):
    warehouse = clean_tables
    rows = [
        booking("B1", T0),
        booking("B2", T0, sales_channel=None, origin_city=""),
        booking("B3", T0, departure_time_utc=dt.datetime(2024, 3, 10, 23, 30, 15, 123456, tzinfo=UTC)),
    ]
    uri = stage("exec-1", rows, run={"rows_read": 5, "rows_quarantined": 2, "quarantine_uri": "s3://raw/quarantine/exec-1/"})
    assert run_load(warehouse, uri) == (3, 0, 0, 0)

    stored = {r[0]: r for r in fetch(warehouse, SNAPSHOT)}
    assert set(stored) == {"B1", "B2", "B3"}
    b1, b2, b3 = stored["B1"], stored["B2"], stored["B3"]
    assert b1[1] == dt.datetime(2024, 1, 5, 9, 30)  # UTC wall clock, no shift
    assert b1[8] == dt.datetime(2024, 3, 1, 10, 15)  # departure_time stays local time
    assert b1[10] == decimal.Decimal("512.40") and b1[19] == 5837.2 and b1[20] is True and b1[5] == 22
    assert b2[14] is None, "NULL stays NULL"
    assert b2[15] == "", "an empty string stays an empty string"
    assert b3[21] == dt.datetime(2024, 3, 10, 23, 30, 15, 123456)

    run = fetch(
        warehouse,
        "SELECT status, rows_read, rows_quarantined, rows_duplicate, rows_staged, rows_inserted, rows_updated, "
        "rows_unchanged, rows_stale, quarantine_uri FROM airline.ingestion_runs WHERE execution_id = 'exec-1'",
    )
    assert run == [("SUCCEEDED", 5, 2, 0, 3, 3, 0, 0, 0, "s3://raw/quarantine/exec-1/")]
    assert fetch(warehouse, "SELECT iata_code FROM airline.airports ORDER BY 1") == [("CDG",), ("JFK",)]


def test_newest_wins_and_rerunning_a_batch_changes_nothing(clean_tables, stage):
    warehouse = clean_tables
    first = [booking("NEWER", T0), booking("OLDER", T0), booking("SAME", T0)]
    assert run_load(warehouse, stage("exec-1", first)) == (3, 0, 0, 0)

    second = [
        booking("NEWER", T0 + HOUR, booking_status="CANCELLED", execution_id="exec-2"),
        booking("OLDER", T0 - HOUR, booking_status="CANCELLED", execution_id="exec-2"),
        booking("SAME", T0),
        booking("FRESH", T0, execution_id="exec-2"),
    ]
    uri = stage("exec-2", second)
    assert run_load(warehouse, uri) == (1, 1, 1, 1), "OLDER is stale, SAME (identical) unchanged"
    status = dict(fetch(warehouse, "SELECT booking_id, booking_status FROM airline.bookings"))
    assert status == {"NEWER": "CANCELLED", "OLDER": "CONFIRMED", "SAME": "CONFIRMED", "FRESH": "CONFIRMED"}
    assert fetch(warehouse, RUN_COUNTS, ("exec-2",)) == [(1, 1, 1, 1)]

    before = fetch(warehouse, SNAPSHOT)
    assert run_load(warehouse, uri) == (0, 0, 3, 1), "a retry of the same execution finds everything loaded"
    assert fetch(warehouse, SNAPSHOT) == before
    assert fetch(warehouse, "SELECT count(*) FROM airline.ingestion_runs WHERE execution_id = 'exec-2'") == [(1,)]
    assert fetch(warehouse, RUN_COUNTS, ("exec-2",)) == [(0, 0, 3, 1)]


def test_a_failing_statement_rolls_back_the_whole_batch(clean_tables, stage):
    warehouse = clean_tables
    run_load(warehouse, stage("exec-1", [booking("KEEP", T0)]))
    before = {t: fetch(warehouse, f"SELECT * FROM airline.{t} ORDER BY 1") for t in ("bookings", "airports", "ingestion_runs")}

    statements = load_statements(stage("exec-2", [booking("NEW", T0)], airports=[]))
    merge_at = next(i for i, s in enumerate(statements) if s.startswith("MERGE"))
    statements.insert(merge_at + 1, "INSERT INTO airline.no_such_table VALUES (1)")
    with pytest.raises(WarehouseError) as failure:
        warehouse.execute_batch(statements)
    assert failure.value.index == merge_at + 1
    assert 'relation "airline.no_such_table" does not exist' in failure.value.message
    assert len(failure.value.results) == merge_at + 1  # the MERGE and the DELETE of airports had run
    after = {t: fetch(warehouse, f"SELECT * FROM airline.{t} ORDER BY 1") for t in before}
    assert after == before


def test_concurrent_loads_of_overlapping_keys_do_not_duplicate(clean_tables, stage):
    warehouse = clean_tables
    uris = [
        stage(f"exec-{n}", [booking(f"K{i}", T0 + n * HOUR, execution_id=f"exec-{n}") for i in range(n, n + 50)])
        for n in (1, 2)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def load(uri: str) -> None:
        try:
            barrier.wait(timeout=10)
            warehouse.execute_batch(load_statements(uri))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(u,)) for u in uris]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert fetch(warehouse, "SELECT count(*), count(DISTINCT booking_id) FROM airline.bookings") == [(51, 51)]
    # both runs are recorded and their counts add up to what is in the table
    counts = fetch(warehouse, "SELECT sum(rows_inserted), sum(rows_updated), sum(rows_stale) FROM airline.ingestion_runs")
    assert counts == [(51, 49, 0)] or counts == [(51, 0, 49)]
    assert fetch(warehouse, "SELECT DISTINCT updated_at FROM airline.bookings WHERE booking_id NOT IN ('K1', 'K51')") == [
        (dt.datetime(2024, 1, 10, 10, 0),)], "newest wins whatever the order"


def test_quotes_and_semicolons_in_staged_data_stay_data(clean_tables, stage):
    warehouse = clean_tables
    evil = "x'; DROP TABLE airline.bookings; --"
    rows = [booking("Q'1;--", T0, source_file=evil, passenger_id='say "hi"; \\ \n next line')]
    uri = stage("exec-evil", rows, run={"source_file": evil})
    assert run_load(warehouse, uri) == (1, 0, 0, 0)
    assert fetch(warehouse, "SELECT booking_id, source_file, passenger_id FROM airline.bookings") == [
        ("Q'1;--", evil, 'say "hi"; \\ \n next line')
    ]
    assert fetch(warehouse, "SELECT source_file FROM airline.ingestion_runs") == [(evil,)]


def test_copy_maps_parquet_by_position_and_checks_the_width(clean_tables, tmp_path):
    warehouse = clean_tables
    narrow = tmp_path / "narrow"
    narrow.mkdir()
    pq.write_table(pa.table({"only": ["one column"]}), narrow / "part-0.parquet")
    statements = [
        "CREATE TEMP TABLE stage_bookings (LIKE airline.bookings)",
        f"COPY stage_bookings FROM '{narrow.as_uri()}/' IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS PARQUET",
    ]
    with pytest.raises(WarehouseError, match=r"has 1 columns, the table has 26 \(COPY from Parquet maps columns by position\)"):
        warehouse.execute_batch(statements)


def test_copy_of_a_missing_prefix_fails_like_redshift(clean_tables, tmp_path):
    statements = [
        "CREATE TEMP TABLE s (a INT)",
        f"COPY s FROM '{tmp_path.as_uri()}/nothing-here/' IAM_ROLE 'r' FORMAT AS PARQUET",
    ]
    with pytest.raises(WarehouseError, match="matches no file"):
        clean_tables.execute_batch(statements)


def test_copy_from_s3_reads_through_the_object_reader(warehouse, tmp_path):
    path = tmp_path / "b.parquet"
    pq.write_table(pa.Table.from_pylist([booking("S3-1", T0), booking("S3-2", T0)], schema=BOOKINGS_SCHEMA), path)
    asked: list[str] = []

    def read_objects(uri: str) -> list[tuple[str, bytes]]:
        asked.append(uri)
        return [
            ("staging/e/bookings/part-0.parquet", path.read_bytes()),
            ("staging/e/bookings/_SUCCESS", b""),
            ("staging/e/bookings/.part-0.parquet.crc", b"crc\x00junk"),
        ]

    s3_warehouse = Warehouse(warehouse.dsn, read_object=read_objects)
    results = s3_warehouse.execute_batch(
        [
            "CREATE TEMP TABLE stage_bookings (LIKE airline.bookings)",
            "COPY stage_bookings FROM 's3://raw/staging/e/bookings/' IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS PARQUET",
            "SELECT booking_id, fare_amount FROM stage_bookings ORDER BY 1",
        ]
    )
    assert asked == ["s3://raw/staging/e/bookings/"]
    assert results[1].rows_affected == 2
    assert results[2].rows == [("S3-1", decimal.Decimal("512.40")), ("S3-2", decimal.Decimal("512.40"))]


def test_copy_csv_with_header_and_gzip(warehouse, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv.gz").write_bytes(gzip.compress(b"id;name\n1;\"semi;colon\"\n2;\n"))
    results = warehouse.execute_batch(
        [
            "CREATE TEMP TABLE s (id INT, name VARCHAR(20))",
            f"COPY s FROM '{(tmp_path / 'in').as_uri()}/' IAM_ROLE 'r' FORMAT AS CSV IGNOREHEADER 1 DELIMITER ';' GZIP",
            "SELECT id, name FROM s ORDER BY id",
        ]
    )
    assert results[1].rows_affected == 2
    assert results[2].rows == [(1, "semi;colon"), (2, None)]


def test_query_is_read_only(clean_tables):
    columns, rows = clean_tables.query("SELECT NVL(NULL, 'x') AS v")
    assert (columns, rows) == (["v"], [("x",)])
    with pytest.raises(Exception, match="read-only"):
        clean_tables.query("DELETE FROM airline.bookings")


def test_copy_counts_varchar_lengths_in_bytes_like_redshift(clean_tables, stage):
    """Redshift VARCHAR(n) holds n bytes of UTF-8, PostgreSQL's n characters: the local COPY
    checks bytes, and fails the load as Redshift's COPY from Parquet does (no TRUNCATECOLUMNS)."""
    warehouse = clean_tables
    assert run_load(warehouse, stage("exec-1", [booking("FITS", T0, currency="€")])) == (1, 0, 0, 0)  # 3 bytes
    with pytest.raises(WarehouseError, match=r"a value of 6 bytes does not fit column currency VARCHAR\(3\)"):
        run_load(warehouse, stage("exec-2", [booking("TOO-LONG", T0, currency="€€")]))  # 2 characters
    assert fetch(warehouse, "SELECT booking_id FROM airline.bookings") == [("FITS",)]


def test_a_tie_on_updated_at_is_won_by_the_later_ingestion_when_the_content_differs(clean_tables, stage):
    """docs/data-contract.md, "Loading": same updated_at + different content -> updated (the later
    file wins); same updated_at + identical content -> unchanged; older -> stale, not applied."""
    warehouse = clean_tables
    first = [booking("CANCEL", T0), booking("SAME", T0), booking("STALE", T0), booking("NOCHANNEL", T0)]
    assert run_load(warehouse, stage("exec-1", first)) == (4, 0, 0, 0)
    second = [
        booking("CANCEL", T0, booking_status="CANCELLED", execution_id="exec-2"),
        booking("SAME", T0, execution_id="exec-2", ingested_at=T0 + HOUR),  # lineage is not content
        booking("STALE", T0 - HOUR, booking_status="CANCELLED", execution_id="exec-2"),
        booking("NOCHANNEL", T0, sales_channel=None, execution_id="exec-2"),  # NULL differs from 'WEB'
    ]
    assert run_load(warehouse, stage("exec-2", second)) == (0, 2, 1, 1)
    stored = {r[0]: r[1:] for r in fetch(
        warehouse, "SELECT booking_id, booking_status, sales_channel, execution_id FROM airline.bookings")}
    assert stored == {"CANCEL": ("CANCELLED", "WEB", "exec-2"), "SAME": ("CONFIRMED", "WEB", "exec-1"),
                      "STALE": ("CONFIRMED", "WEB", "exec-1"), "NOCHANNEL": ("CONFIRMED", None, "exec-2")}
    # and the same file again: everything it says is now in the warehouse
    assert run_load(warehouse, stage("exec-3", second)) == (0, 0, 3, 1)


@pytest.mark.parametrize(("run", "why"), [
    ({"rows_staged": 3}, "COPY loaded 2 rows, the job staged 3"),
    ({"rows_read": 5, "rows_duplicate": 1}, "rows_read 5"),
])
def test_counts_that_do_not_add_up_roll_the_load_back(clean_tables, stage, run, why):
    warehouse = clean_tables
    assert run_load(warehouse, stage("exec-1", [booking("KEEP", T0)])) == (1, 0, 0, 0)
    before = {t: fetch(warehouse, f"SELECT * FROM airline.{t} ORDER BY 1") for t in ("bookings", "ingestion_runs")}
    uri = stage("exec-2", [booking("NEW", T0), booking("KEEP", T0 + HOUR)], airports=[], run=run)
    with pytest.raises(WarehouseError, match="load counts do not add up") as failure:
        warehouse.execute_batch(load_statements(uri))
    assert why in failure.value.message
    assert "load_counts_check" in failure.value.statement
    assert {t: fetch(warehouse, f"SELECT * FROM airline.{t} ORDER BY 1") for t in before} == before
    assert fetch(warehouse, "SELECT count(*) FROM airline.airports") != [(0,)], "airports rolled back too"
