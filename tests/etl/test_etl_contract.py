"""The header contract and the airport reference (plain Python, no Spark)."""

from __future__ import annotations

import etl_helpers  # noqa: F401  (puts glue_scripts/ on sys.path)
import pytest

import bookings_contract as contract
from bookings_contract import FileRejected, map_header


def test_columns_match_by_name_in_any_order_ignoring_case_spaces_and_bom():
    header = ["\ufeff Booking_ID", *[f"  {c.upper()} " for c in reversed(contract.CONTRACT_COLUMNS[1:])]]
    mapping = map_header(header)
    assert mapping.positions["booking_id"] == 0
    assert mapping.positions["booking_time"] == len(header) - 1
    assert mapping.positions["sales_channel"] == 1
    assert mapping.header[0] == "Booking_ID"
    assert mapping.unknown_columns == ()


def test_unknown_columns_are_kept_aside_and_reported():
    mapping = map_header([*contract.CONTRACT_COLUMNS, "Notes", ""])
    assert mapping.unknown_columns == ("Notes", "_unnamed_column_17")
    assert mapping.width == len(contract.CONTRACT_COLUMNS) + 2


def test_optional_columns_may_be_absent():
    mapping = map_header(list(contract.REQUIRED_COLUMNS))
    assert "updated_at" not in mapping.positions and "sales_channel" not in mapping.positions


@pytest.mark.parametrize("missing", contract.REQUIRED_COLUMNS)
def test_a_missing_required_column_fails_the_file(missing):
    header = [c for c in contract.CONTRACT_COLUMNS if c != missing]
    with pytest.raises(FileRejected, match=f"missing required column\\(s\\): {missing}$"):
        map_header(header)


def test_duplicate_names_after_normalization_fail_the_file():
    with pytest.raises(FileRejected, match="duplicate column names: 'origin' and 'ORIGIN'"):
        map_header([*contract.CONTRACT_COLUMNS, " ORIGIN "])


@pytest.mark.parametrize("header", [[], [""], ["  ", ""]])
def test_an_empty_header_fails_the_file(header):
    with pytest.raises(FileRejected, match="no header row"):
        map_header(header)


def test_airports_come_from_airportsdata_and_fit_the_warehouse_columns():
    airports = {a.iata_code: a for a in contract.load_airports()}
    assert len(airports) > 5000
    jfk = airports["JFK"]
    assert (jfk.city, jfk.country, jfk.time_zone, jfk.icao_code) == (
        "New York", "US", "America/New_York", "KJFK")
    for airport in airports.values():
        assert len(airport.iata_code) == 3 and len(airport.country) == 2 and airport.time_zone
        assert len(airport.name.encode()) <= 256
        assert airport.city is None or len(airport.city.encode()) <= 128
