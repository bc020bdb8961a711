"""The airport reference and time zones (issue 13, section 5), on real Spark.

- Every airport's IANA zone must resolve in Python and in the JVM (Spark converts departure times
  with java.time): one that does not is dropped with a warning, and its bookings are quarantined
  as `unknown IATA airport code` instead of failing the file.
- A local departure time in a DST gap or overlap at the origin converts as docs/data-contract.md
  says: a gap moves forward by the gap, an overlap takes the earlier offset (Python's fold=0 gives
  the same instants, so the two runtimes agree).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from etl_helpers import GOOD_ROW, rows_csv

import bookings_contract as contract
import bookings_io
import bookings_transform as transform

# The contract's promise, as instants (UTC) for a local departure time at the origin.
DST_EDGE_CASES = [
    # New York springs forward at 02:00 EST on 9 March 2025: 02:30 does not exist -> 03:30 EDT.
    ("gap", "JFK", "2025-03-09T02:30:00", datetime(2025, 3, 9, 7, 30)),
    # ... and falls back at 02:00 EDT on 2 November 2025: 01:30 happens twice -> the first (EDT).
    ("overlap", "JFK", "2025-11-02T01:30:00", datetime(2025, 11, 2, 5, 30)),
    # London: 01:30 on 30 March 2025 does not exist (-> 02:30 BST); on 26 October it is twice.
    ("gap", "LHR", "2025-03-30T01:30:00", datetime(2025, 3, 30, 1, 30)),
    ("overlap", "LHR", "2025-10-26T01:30:00", datetime(2025, 10, 26, 0, 30)),
]


def _airport(code: str, zone: str) -> contract.Airport:
    return contract.Airport(code, None, f"{code} airport", "City", None, "US", 40.0, -73.0, zone)


@pytest.fixture(scope="module")
def jvm_zones(spark) -> frozenset[str]:
    return contract.jvm_time_zone_ids(spark)


def test_the_jvm_and_python_resolve_every_zone_of_the_shipped_reference(jvm_zones, caplog):
    with caplog.at_level(logging.WARNING, logger=contract.LOG.name):
        airports = contract.load_airports(jvm_zones)
    assert len(airports) > 5000 and not caplog.records
    assert "America/New_York" in jvm_zones and all(a.time_zone in jvm_zones for a in airports)


def test_a_zone_unknown_to_the_jvm_or_to_python_drops_its_airports_with_a_warning(jvm_zones, caplog):
    ok, jvm_lacks, python_lacks, both_lack = (
        _airport("AAA", "America/New_York"), _airport("BBB", "America/Ciudad_Juarez"),
        _airport("CCC", "SystemV/AST4"), _airport("DDD", "Mars/Olympus_Mons"))
    jvm = (jvm_zones | {"SystemV/AST4"}) - {"America/Ciudad_Juarez"}
    with caplog.at_level(logging.WARNING, logger=contract.LOG.name):
        usable = contract.resolvable_airports([ok, jvm_lacks, python_lacks, both_lack], jvm)
    assert usable == [ok]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all(r.levelno == logging.WARNING for r in caplog.records)
    assert any("'America/Ciudad_Juarez' does not resolve in the JVM; dropped BBB" in m for m in messages)
    assert any("'SystemV/AST4' does not resolve in Python; dropped CCC" in m for m in messages)
    assert any("'Mars/Olympus_Mons' does not resolve in Python and the JVM; dropped DDD" in m for m in messages)


def _validate(spark, airports_frame, tmp_path, rows):
    """The validated rows of a file with these rows, and its URI."""
    path = tmp_path / "bookings.csv"
    path.write_text(rows_csv(rows), encoding="utf-8")
    uri = path.as_uri()
    mapping = contract.map_header(bookings_io.read_header(spark, uri))
    raw = bookings_io.read_bookings_csv(spark, uri, transform.raw_schema(mapping))
    return transform.validate(raw, mapping, airports_frame, partitions=2), uri


def test_bookings_from_a_dropped_airport_are_quarantined_and_the_file_still_loads(spark, jvm_zones, tmp_path):
    reference = [a for a in contract.load_airports(jvm_zones) if a.iata_code in ("JFK", "LHR", "CDG")]
    broken = [dataclasses.replace(a, time_zone="Mars/Olympus_Mons") if a.iata_code == "JFK" else a
              for a in reference]
    rows = [{**GOOD_ROW, "booking_id": "FROM-JFK"},
            {**GOOD_ROW, "booking_id": "FROM-LHR", "origin": "LHR", "destination": "CDG"}]

    # Unchecked, Spark cannot convert JFK's departure time and the whole file fails.
    validated, _ = _validate(spark, transform.airports_frame(spark, broken), tmp_path, rows)
    with pytest.raises(Exception, match="Mars/Olympus_Mons"):
        validated.collect()

    checked = transform.airports_frame(spark, contract.resolvable_airports(broken, jvm_zones))
    validated, uri = _validate(spark, checked, tmp_path, rows)
    quarantined = {r["values"]["booking_id"]: r["reasons"]
                   for r in transform.quarantine_records(validated, uri).collect()}
    assert quarantined == {"FROM-JFK": ["origin: unknown IATA airport code"]}
    assert [r["booking_id"] for r in transform.accepted_rows(validated).collect()] == ["FROM-LHR"]


@pytest.mark.parametrize(("kind", "origin", "local", "expected_utc"), DST_EDGE_CASES,
                         ids=[f"{kind}-{origin}" for kind, origin, _, _ in DST_EDGE_CASES])
def test_a_departure_in_a_dst_gap_or_overlap_converts_as_the_contract_says(
        spark, airports, tmp_path, kind, origin, local, expected_utc):
    row = {**GOOD_ROW, "origin": origin, "destination": "CDG", "booking_time": "2025-01-01T00:00:00Z",
           "updated_at": "", "departure_time": local}
    validated, uri = _validate(spark, airports, tmp_path, [row])
    [staged] = transform.enrich(transform.deduplicate(transform.accepted_rows(validated)), airports, uri,
                                "exec-dst", datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)).collect()
    assert staged["departure_time"] == datetime.fromisoformat(local)  # stored as given
    assert staged["departure_time_utc"] == expected_utc
    # Python reads the same wall time with fold=0 (the earlier offset; in a gap, the offset
    # before the change): the same instant, so the JVM and Python agree.
    zone = {"JFK": "America/New_York", "LHR": "Europe/London"}[origin]
    as_python = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone), fold=0)
    assert as_python.astimezone(timezone.utc).replace(tzinfo=None) == expected_utc


def test_record_number_counts_records_not_lines_after_empty_lines_and_quoted_breaks(spark, airports, tmp_path):
    """docs/data-contract.md's example: B3 sits on line 6 and is record 3 (an empty line is no
    record; a quoted line break does not end one). Python's csv module counts the same way."""
    import csv

    columns = (*contract.CONTRACT_COLUMNS, "notes")
    bad = {**GOOD_ROW, "carrier_code": "AAA", "notes": ""}
    lines = rows_csv([{**bad, "booking_id": "B1"}], columns).splitlines()
    lines += [""] + rows_csv([{**bad, "booking_id": "B2", "notes": "two\nlines"},
                              {**bad, "booking_id": "B3"}], columns).splitlines()[1:]
    path = tmp_path / "lines.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert lines[5].startswith("B3,")  # physical line 6
    uri = path.as_uri()
    mapping = contract.map_header(bookings_io.read_header(spark, uri))
    raw = bookings_io.read_bookings_csv(spark, uri, transform.raw_schema(mapping))
    validated = transform.validate(raw, mapping, airports, partitions=2)
    numbers = {r["values"]["booking_id"]: r["record_number"]
               for r in transform.quarantine_records(validated, uri).collect()}
    assert numbers == {"B1": 1, "B2": 2, "B3": 3}
    with path.open(newline="", encoding="utf-8") as handle:
        records = [row for row in csv.reader(handle) if row][1:]
    assert [row[0] for row in records] == ["B1", "B2", "B3"]


def test_the_airports_frame_holds_the_reference_exactly_in_table_order(spark):
    reference = contract.load_airports()
    odd = contract.Airport("ZZZ", None, 'Quote " and back\\slash, comma', None, None, "XX",
                           -33.946111111111, 151.177222222222, "Australia/Sydney")
    frame = transform.airports_frame(spark, reference + [odd])
    assert [(f.name, f.dataType) for f in frame.schema.fields] == [
        (f.name, f.dataType) for f in transform.table_schema(contract.AIRPORTS_TABLE).fields]
    expected = sorted(dataclasses.astuple(a) for a in reference + [odd])
    assert sorted(tuple(row) for row in frame.collect()) == expected  # doubles and nulls exact
    assert transform.airports_frame(spark, []).count() == 0
