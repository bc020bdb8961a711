"""Deduplication within a file, and each enrichment."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from etl_helpers import GOOD_ROW, rows_csv

import bookings_contract as contract
import bookings_io
import bookings_transform as transform

INGESTED_AT = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def pipeline(spark, airports, write_file):
    """pipeline(rows) -> (validated rows, deduplicated + enriched rows by booking_id)."""

    def run(rows: list[dict[str, str]]):
        path = write_file(rows_csv([{**GOOD_ROW, **row} for row in rows]))
        uri = path.as_uri()
        mapping = contract.map_header(bookings_io.read_header(spark, uri))
        raw = bookings_io.read_bookings_csv(spark, uri, transform.raw_schema(mapping))
        validated = transform.validate(raw, mapping, airports, partitions=2).cache()
        staged = transform.enrich(transform.deduplicate(transform.accepted_rows(validated)),
                                  airports, uri, "exec-42", INGESTED_AT)
        result = validated.collect(), staged
        return result

    return run


def test_latest_updated_at_wins_and_a_tie_goes_to_the_later_line(pipeline):
    validated, staged = pipeline([
        {"booking_id": "B1", "updated_at": "2025-03-01T10:00:00Z", "booking_status": "confirmed"},
        {"booking_id": "B1", "updated_at": "2025-03-01T12:00:00Z", "booking_status": "cancelled"},
        {"booking_id": "B1", "updated_at": "2025-03-01T11:00:00Z", "booking_status": "checked_in"},
        {"booking_id": "B2", "updated_at": "2025-03-02T10:00:00Z", "fare_amount": "1.00"},
        {"booking_id": "B2", "updated_at": "2025-03-02T12:00:00+02:00", "fare_amount": "2.00"},
        # No updated_at value: booking_time (10:00Z) stands in, older than the 10:30Z update.
        {"booking_id": "B3", "updated_at": "", "flight_number": "1"},
        {"booking_id": "B3", "updated_at": "2025-03-01T10:30:00Z", "flight_number": "2"},
        # A later but invalid version is quarantined, not chosen.
        {"booking_id": "B3", "updated_at": "2025-03-09T10:00:00Z", "flight_number": "0"},
    ])
    rows = {row["booking_id"]: row for row in staged.collect()}
    assert len(validated) == 8 and staged.count() == 3
    assert rows["B1"]["booking_status"] == "cancelled"
    assert str(rows["B2"]["fare_amount"]) == "2.00"  # 12:00+02:00 == 10:00Z: a tie, later line
    assert rows["B3"]["flight_number"] == 2


DST_CASES = [
    ("JFK", "2025-03-08T10:00:00", datetime(2025, 3, 8, 15, 0)),   # EST, UTC-5
    ("JFK", "2025-03-10T10:00:00", datetime(2025, 3, 10, 14, 0)),  # EDT from 9 March, UTC-4
    ("LHR", "2025-03-29T10:00:00", datetime(2025, 3, 29, 10, 0)),  # GMT
    ("LHR", "2025-03-31T10:00:00", datetime(2025, 3, 31, 9, 0)),   # BST from 30 March
    ("SYD", "2025-04-05T10:00:00", datetime(2025, 4, 4, 23, 0)),   # AEDT, UTC+11
    ("SYD", "2025-04-07T10:00:00", datetime(2025, 4, 7, 0, 0)),    # AEST from 6 April, UTC+10
]
LEAD_TIME_CASES = [  # JFK local departure -> whole days after the 1 March 10:00Z booking
    ("2025-03-01T05:00:00", 0),   # 10:00Z: at booking time
    ("2025-03-02T04:59:00", 0),   # 09:59Z next day: 23h59m
    ("2025-03-02T05:00:00", 1),   # exactly 24h
    ("2025-03-31T06:00:00", 30),  # EDT: 10:00Z, 30 days
]


@pytest.fixture(scope="module")
def enriched(spark, airports, tmp_path_factory):
    """All enrichment cases in one file, run once: staged rows by booking_id, and the schema."""
    rows = [{**GOOD_ROW, "booking_id": "JFK-LHR"},
            {**GOOD_ROW, "booking_id": "JFK-LAX", "destination": "LAX"}]
    rows += [{**GOOD_ROW, "booking_id": f"DST{i}", "origin": origin, "destination": "CDG",
              "booking_time": "2025-01-01T00:00:00Z", "updated_at": "", "departure_time": local}
             for i, (origin, local, _) in enumerate(DST_CASES)]
    rows += [{**GOOD_ROW, "booking_id": f"LEAD{i}", "departure_time": local}
             for i, (local, _) in enumerate(LEAD_TIME_CASES)]
    path = tmp_path_factory.mktemp("enrich") / "bookings.csv"
    path.write_text(rows_csv(rows), encoding="utf-8")
    uri = path.as_uri()
    mapping = contract.map_header(bookings_io.read_header(spark, uri))
    raw = bookings_io.read_bookings_csv(spark, uri, transform.raw_schema(mapping))
    validated = transform.validate(raw, mapping, airports, partitions=2)
    staged = transform.enrich(transform.deduplicate(transform.accepted_rows(validated)),
                              airports, uri, "exec-42", INGESTED_AT)
    return {row["booking_id"]: row for row in staged.collect()}, staged.schema


def test_enrichment_jfk_to_lhr(enriched):
    row = enriched[0]["JFK-LHR"]
    assert row["distance_km"] == pytest.approx(5540, abs=15)
    assert (row["origin_city"], row["origin_country"]) == ("New York", "US")
    assert (row["destination_city"], row["destination_country"]) == ("London", "GB")
    assert row["is_international"] is True
    # 07:00 in New York on 4 March (EST, UTC-5) is 12:00Z; booked 1 March 10:00Z.
    assert row["departure_time"] == datetime(2025, 3, 4, 7, 0)
    assert row["departure_time_utc"] == datetime(2025, 3, 4, 12, 0)
    assert row["lead_time_days"] == 3
    assert row["source_file"].endswith("bookings.csv") and row["execution_id"] == "exec-42"
    assert row["ingested_at"] == datetime(2025, 6, 1, 12, 0)


def test_domestic_flight_is_not_international(enriched):
    row = enriched[0]["JFK-LAX"]
    assert row["is_international"] is False
    assert row["distance_km"] == pytest.approx(3983, abs=15)


@pytest.mark.parametrize(("index", "case"), list(enumerate(DST_CASES)),
                         ids=[f"{o}-{t}" for o, t, _ in DST_CASES])
def test_departure_time_utc_follows_the_origin_time_zone_across_dst(enriched, index, case):
    assert enriched[0][f"DST{index}"]["departure_time_utc"] == case[2]


@pytest.mark.parametrize(("index", "case"), list(enumerate(LEAD_TIME_CASES)),
                         ids=[t for t, _ in LEAD_TIME_CASES])
def test_lead_time_is_whole_days_from_booking_to_departure(enriched, index, case):
    assert enriched[0][f"LEAD{index}"]["lead_time_days"] == case[1]


def test_staged_rows_have_the_bookings_table_columns_in_order(enriched):
    schema = enriched[1]
    assert [(f.name, f.dataType.simpleString()) for f in schema.fields] == [
        (name, {"short": "smallint"}.get(kind, kind)) for name, kind in contract.BOOKINGS_TABLE]
    ddl = next((Path(__file__).resolve().parents[2] / "sql" / "migrations").glob("0001_*.sql")).read_text()
    table = ddl.split("CREATE TABLE IF NOT EXISTS airline.bookings (")[1].split(")\nDISTSTYLE")[0]
    columns = [line.split()[0] for line in table.strip().splitlines()
               if line.strip() and not line.strip().startswith("PRIMARY KEY")]
    assert columns == [name for name, _ in contract.BOOKINGS_TABLE]
