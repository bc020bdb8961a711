"""Every validation rule of docs/data-contract.md, on local Spark.

All cases go into one file that is validated once (module scope); each case is one row that
breaks (or bends) one rule, and the test checks the reasons that row gets.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from etl_helpers import GOOD_ROW, rows_csv

import bookings_contract as contract
import bookings_io
import bookings_transform as transform

REJECTED = [
    ({"booking_id": ""}, "booking_id: required"),
    ({"booking_id": "   "}, "booking_id: required"),
    ({"booking_id": "B" * 65}, "booking_id: longer than 64 bytes"),
    ({"booking_id": "é" * 33}, "booking_id: longer than 64 bytes"),  # 33 characters, 66 bytes
    ({"booking_id": "B\tX"}, "booking_id: contains control characters or invalid UTF-8"),
    ({"booking_time": ""}, "booking_time: required"),
    ({"booking_time": "2025-03-01"}, "booking_time: not an ISO 8601 timestamp"),
    ({"booking_time": "2025-02-30T10:00:00"}, "booking_time: not an ISO 8601 timestamp"),
    ({"booking_time": "01/03/2025 10:00"}, "booking_time: not an ISO 8601 timestamp"),
    ({"booking_time": "2025-03-01T10:00:00 Europe/Paris"}, "booking_time: not an ISO 8601 timestamp"),
    ({"updated_at": "soon"}, "updated_at: not an ISO 8601 timestamp"),
    ({"passenger_id": ""}, "passenger_id: required"),
    ({"passenger_id": "P" * 65}, "passenger_id: longer than 64 bytes"),
    ({"carrier_code": ""}, "carrier_code: required"),
    ({"carrier_code": "AAA"}, "carrier_code: not 2 characters [A-Z0-9]"),
    ({"carrier_code": "A-"}, "carrier_code: not 2 characters [A-Z0-9]"),
    ({"flight_number": ""}, "flight_number: required"),
    ({"flight_number": "12a"}, "flight_number: not an integer"),
    ({"flight_number": "-5"}, "flight_number: not an integer"),
    ({"flight_number": "1.0"}, "flight_number: not an integer"),
    ({"flight_number": "0"}, "flight_number: out of range 1-9999"),
    ({"flight_number": "10000"}, "flight_number: out of range 1-9999"),
    ({"flight_number": "99999999999"}, "flight_number: out of range 1-9999"),
    ({"origin": ""}, "origin: required"),
    ({"origin": "QQQ"}, "origin: unknown IATA airport code"),
    ({"origin": "JFKX"}, "origin: unknown IATA airport code"),
    ({"destination": ""}, "destination: required"),
    ({"destination": "ZZZ"}, "destination: unknown IATA airport code"),
    ({"destination": "JFK"}, "destination: same as origin"),
    ({"destination": " jfk "}, "destination: same as origin"),
    ({"departure_time": ""}, "departure_time: required"),
    ({"departure_time": "2025-03-04T07:00:00Z"},
     "departure_time: has a UTC offset (must be local time at the origin)"),
    ({"departure_time": "2025-03-04T07:00:00-05:00"},
     "departure_time: has a UTC offset (must be local time at the origin)"),
    ({"departure_time": "tomorrow"}, "departure_time: not an ISO 8601 timestamp"),
    # 04:00 in New York (EST) is 09:00Z, an hour before the booking at 10:00Z.
    ({"departure_time": "2025-03-01T04:00:00"}, "departure_time: before booking_time"),
    ({"cabin_class": ""}, "cabin_class: required"),
    ({"cabin_class": "coach"}, "cabin_class: not one of economy, premium_economy, business, first"),
    ({"fare_amount": ""}, "fare_amount: required"),
    ({"fare_amount": "abc"}, "fare_amount: not a decimal number"),
    ({"fare_amount": "12,50"}, "fare_amount: not a decimal number"),
    ({"fare_amount": "1e3"}, "fare_amount: not a decimal number"),
    ({"fare_amount": "-1.00"}, "fare_amount: negative"),
    ({"fare_amount": "1.234"},
     "fare_amount: does not fit decimal(12,2) (at most 10 digits and 2 decimals)"),
    ({"fare_amount": "12345678901"},
     "fare_amount: does not fit decimal(12,2) (at most 10 digits and 2 decimals)"),
    ({"currency": ""}, "currency: required"),
    ({"currency": "US"}, "currency: not 3 letters [A-Z]"),
    ({"currency": "U$D"}, "currency: not 3 letters [A-Z]"),
    ({"num_passengers": ""}, "num_passengers: required"),
    ({"num_passengers": "two"}, "num_passengers: not an integer"),
    ({"num_passengers": "0"}, "num_passengers: out of range 1-9"),
    ({"num_passengers": "10"}, "num_passengers: out of range 1-9"),
    ({"booking_status": ""}, "booking_status: required"),
    ({"booking_status": "pending"}, "booking_status: not one of confirmed, cancelled, checked_in"),
    ({"sales_channel": "fax"}, "sales_channel: not one of web, mobile, agency, call_center"),
]

ACCEPTED = [
    # (changes, expected typed values)
    ({}, {"booking_time": datetime(2025, 3, 1, 10), "fare_amount": Decimal("450.10")}),
    ({"booking_time": "2025-03-01T12:00:00+02:00"}, {"booking_time": datetime(2025, 3, 1, 10)}),
    ({"booking_time": "2025-03-01T05:30:00-0430"}, {"booking_time": datetime(2025, 3, 1, 10)}),
    ({"booking_time": "2025-03-01 10:00:00"}, {"booking_time": datetime(2025, 3, 1, 10)}),
    ({"booking_time": "2025-03-01T10:00"}, {"booking_time": datetime(2025, 3, 1, 10)}),
    ({"booking_time": "2025-03-01T10:00:00.123456Z"},
     {"booking_time": datetime(2025, 3, 1, 10, 0, 0, 123456)}),
    ({"updated_at": ""}, {"updated_at": datetime(2025, 3, 1, 10)}),
    ({"updated_at": "2025-03-02T08:00:00Z"}, {"updated_at": datetime(2025, 3, 2, 8)}),
    ({"carrier_code": " b6 "}, {"carrier_code": "B6"}),
    ({"origin": "jfk", "destination": " lhr"}, {"origin": "JFK", "destination": "LHR"}),
    ({"cabin_class": "Premium_Economy"}, {"cabin_class": "premium_economy"}),
    ({"booking_status": "CHECKED_IN"}, {"booking_status": "checked_in"}),
    ({"sales_channel": ""}, {"sales_channel": None}),
    ({"sales_channel": "Call_Center"}, {"sales_channel": "call_center"}),
    ({"currency": "usd"}, {"currency": "USD"}),
    ({"fare_amount": "0"}, {"fare_amount": Decimal("0.00")}),
    ({"fare_amount": "9999999999.99"}, {"fare_amount": Decimal("9999999999.99")}),
    ({"flight_number": "0100", "num_passengers": "9"}, {"flight_number": 100, "num_passengers": 9}),
    ({"booking_id": "é" * 32}, {"booking_id": "é" * 32}),  # exactly 64 bytes
    # Departure exactly at booking time (05:00 EST = 10:00Z) is not before it.
    ({"departure_time": "2025-03-01T05:00:00"}, {"departure_time_utc": datetime(2025, 3, 1, 10)}),
]


@pytest.fixture(scope="module")
def validated(spark, airports, tmp_path_factory):
    cases = [changes for changes, _ in REJECTED] + [changes for changes, _ in ACCEPTED]
    rows = [{**GOOD_ROW, "booking_id": f"B{index}", **changes} for index, changes in enumerate(cases)]
    rows.append({**GOOD_ROW, "booking_id": "MULTI", "carrier_code": "AAA", "fare_amount": "-1"})
    path = tmp_path_factory.mktemp("validation") / "cases.csv"
    path.write_text(rows_csv(rows), encoding="utf-8")
    mapping = contract.map_header(bookings_io.read_header(spark, path.as_uri()))
    raw = bookings_io.read_bookings_csv(spark, path.as_uri(), transform.raw_schema(mapping))
    result = transform.validate(raw, mapping, airports, partitions=2).collect()
    return {row[transform.RECORD_NUMBER]: row for row in result}


@pytest.mark.parametrize(("index", "case"), list(enumerate(REJECTED)),
                         ids=[reason for _, reason in REJECTED])
def test_a_row_breaking_a_rule_gets_that_reason(validated, index, case):
    changes, reason = case
    row = validated[index + 1]
    assert row["reasons"] == [reason], changes
    assert row[transform.QUARANTINE_VALUES] is not None


@pytest.mark.parametrize(("index", "case"), list(enumerate(ACCEPTED)),
                         ids=[str(changes) for changes, _ in ACCEPTED])
def test_a_valid_row_is_parsed_and_normalized(validated, index, case):
    changes, expected = case
    row = validated[len(REJECTED) + index + 1]
    assert row["reasons"] == [], changes
    assert row[transform.QUARANTINE_VALUES] is None  # nothing kept for good rows
    for column, value in expected.items():
        assert row[column] == value, column


def test_a_row_gets_every_reason_it_deserves_in_contract_order(validated):
    row = validated[len(REJECTED) + len(ACCEPTED) + 1]
    assert row["reasons"] == ["carrier_code: not 2 characters [A-Z0-9]", "fare_amount: negative"]


def test_every_row_is_numbered_once_in_file_order(validated):
    assert sorted(validated) == list(range(1, len(REJECTED) + len(ACCEPTED) + 2))
    first_accepted = len(REJECTED) + 1
    assert validated[first_accepted]["booking_id"] == f"B{len(REJECTED)}"
    assert validated[first_accepted + 1]["booking_id"] == f"B{len(REJECTED) + 1}"


def test_the_generator_bad_rules_match_the_validation_reasons():
    from airline_local.generator import BAD_ROW_RULES

    reasons = {reason for _, reason in REJECTED}
    assert {reason for _, _, reason in BAD_ROW_RULES} <= reasons
