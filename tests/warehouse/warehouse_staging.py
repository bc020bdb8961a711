"""Staged Parquet in the Glue job's layout and helpers shared by the warehouse tests."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from airline_local.warehouse.statements import Warehouse
from airline_local.warehouse.redshift_sql import split_statements

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO / "sql" / "migrations"
MIGRATION_FILES = sorted(MIGRATIONS_DIR.glob("*.sql"))  # the schema, 0001 first
SCHEMA_SQL = MIGRATION_FILES[0]  # 0001: the tables COPY loads (bookings, airports) as created
LOAD_SQL = REPO / "sql" / "load_bookings.sql"
IAM_ROLE = "arn:aws:iam::123456789012:role/airline-redshift-copy"
UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 10, 8, 0, tzinfo=UTC)  # a default updated_at

TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")  # UTC-adjusted timestamps; the job stages timestamp("us") (NTZ): COPY loads both
BOOKINGS_SCHEMA = pa.schema(
    [
        ("booking_id", pa.string()),
        ("booking_time", TIMESTAMP_UTC),
        ("updated_at", TIMESTAMP_UTC),
        ("passenger_id", pa.string()),
        ("carrier_code", pa.string()),
        ("flight_number", pa.int16()),
        ("origin", pa.string()),
        ("destination", pa.string()),
        ("departure_time", pa.timestamp("us")),  # local wall-clock time at the origin
        ("cabin_class", pa.string()),
        ("fare_amount", pa.decimal128(12, 2)),
        ("currency", pa.string()),
        ("num_passengers", pa.int16()),
        ("booking_status", pa.string()),
        ("sales_channel", pa.string()),
        ("origin_city", pa.string()),
        ("origin_country", pa.string()),
        ("destination_city", pa.string()),
        ("destination_country", pa.string()),
        ("distance_km", pa.float64()),
        ("is_international", pa.bool_()),
        ("departure_time_utc", TIMESTAMP_UTC),
        ("lead_time_days", pa.int32()),
        ("source_file", pa.string()),
        ("execution_id", pa.string()),
        ("ingested_at", TIMESTAMP_UTC),
    ]
)
AIRPORTS_SCHEMA = pa.schema(
    [
        ("iata_code", pa.string()),
        ("icao_code", pa.string()),
        ("name", pa.string()),
        ("city", pa.string()),
        ("subdivision", pa.string()),
        ("country", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("time_zone", pa.string()),
    ]
)
RUN_SCHEMA = pa.schema(
    [
        ("execution_id", pa.string()),
        ("source_file", pa.string()),
        ("rows_read", pa.int64()),
        ("rows_quarantined", pa.int64()),
        ("rows_duplicate", pa.int64()),
        ("rows_staged", pa.int64()),
        ("quarantine_uri", pa.string()),
        ("started_at", TIMESTAMP_UTC),
    ]
)
AIRPORTS = [
    {"iata_code": "CDG", "icao_code": "LFPG", "name": "Charles de Gaulle International Airport", "city": "Paris",
     "subdivision": "Ile-de-France", "country": "FR", "latitude": 49.0128, "longitude": 2.55, "time_zone": "Europe/Paris"},
    {"iata_code": "JFK", "icao_code": "KJFK", "name": "John F Kennedy International Airport", "city": "New York",
     "subdivision": "New York", "country": "US", "latitude": 40.6398, "longitude": -73.7789,
     "time_zone": "America/New_York"},
]


def booking(booking_id: str, updated_at: dt.datetime, **overrides: Any) -> dict[str, Any]:
    """One staged booking row (the enriched shape the Glue job writes)."""
    row = {
        "booking_id": booking_id,
        "booking_time": dt.datetime(2024, 1, 5, 9, 30, tzinfo=UTC),
        "updated_at": updated_at,
        "passenger_id": f"P-{booking_id}",
        "carrier_code": "AF",
        "flight_number": 22,
        "origin": "CDG",
        "destination": "JFK",
        "departure_time": dt.datetime(2024, 3, 1, 10, 15),
        "cabin_class": "ECONOMY",
        "fare_amount": decimal.Decimal("512.40"),
        "currency": "EUR",
        "num_passengers": 1,
        "booking_status": "CONFIRMED",
        "sales_channel": "WEB",
        "origin_city": "Paris",
        "origin_country": "FR",
        "destination_city": "New York",
        "destination_country": "US",
        "distance_km": 5837.2,
        "is_international": True,
        "departure_time_utc": dt.datetime(2024, 3, 1, 9, 15, tzinfo=UTC),
        "lead_time_days": 55,
        "source_file": "s3://raw/raw/bookings/day1.csv",
        "execution_id": "exec-1",
        "ingested_at": dt.datetime(2024, 1, 6, 0, 0, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def write_parquet(directory: Path, schema: pa.Schema, rows: list[dict[str, Any]], *, spark_markers: bool = True) -> None:
    """Parquet as Spark leaves it: a part file, plus the _SUCCESS and .crc files COPY must skip."""
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, directory / "part-00000-0000.snappy.parquet")
    if spark_markers:
        (directory / "_SUCCESS").write_bytes(b"")
        (directory / ".part-00000-0000.snappy.parquet.crc").write_bytes(b"crc\x00garbage")


def load_statements(staging_uri: str, role: str = IAM_ROLE) -> list[str]:
    """sql/load_bookings.sql split into statements with the job's placeholders filled."""
    text = LOAD_SQL.read_text().replace("{staging_uri}", staging_uri).replace("{iam_role}", role)
    return split_statements(text)


def bookings_table(rows: int, offset: int) -> pa.Table:
    """``rows`` staged bookings BK<offset>..., each booking_id with its own timestamps (built column
    by column: fast for a million rows)."""
    ids = pa.array([f"BK{offset + i:09d}" for i in range(rows)])
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    seconds = pa.array(range(offset, offset + rows), pa.int64())
    ts = pc.add(pa.scalar(base, pa.timestamp("us", tz="UTC")), pc.multiply(seconds, pa.scalar(1_000_000)).cast(pa.duration("us")))
    ts = ts.cast(pa.timestamp("us", tz="UTC"))

    def const(value, type_):
        return pa.array([value] * rows, type_)

    columns = {
        "booking_id": ids, "booking_time": ts, "updated_at": ts, "passenger_id": ids,
        "carrier_code": const("AF", pa.string()), "flight_number": const(22, pa.int16()),
        "origin": const("CDG", pa.string()), "destination": const("JFK", pa.string()),
        "departure_time": ts.cast(pa.timestamp("us")), "cabin_class": const("ECONOMY", pa.string()),
        "fare_amount": const(decimal.Decimal("512.40"), pa.decimal128(12, 2)), "currency": const("EUR", pa.string()),
        "num_passengers": const(1, pa.int16()), "booking_status": const("CONFIRMED", pa.string()),
        "sales_channel": const(None, pa.string()), "origin_city": const("Paris", pa.string()),
        "origin_country": const("FR", pa.string()), "destination_city": const("New York", pa.string()),
        "destination_country": const("US", pa.string()), "distance_km": const(5837.2, pa.float64()),
        "is_international": const(True, pa.bool_()), "departure_time_utc": ts,
        "lead_time_days": const(55, pa.int32()), "source_file": const("s3://raw/raw/bookings/big.csv", pa.string()),
        "execution_id": const("bench", pa.string()), "ingested_at": ts,
    }
    return pa.Table.from_pydict(columns, schema=BOOKINGS_SCHEMA)


def fetch(warehouse: Warehouse, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(warehouse.dsn, options="-c TimeZone=UTC") as conn:
        return conn.execute(query, params).fetchall()


class DataApiClient:
    """A boto3-shaped redshift-data client on a DataApiEmulator in this process: keyword
    arguments in, the emulator's response dicts out (its errors raised as they are)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def __getattr__(self, action: str) -> Any:
        method = getattr(self.api, action)
        return lambda **request: method(request)
