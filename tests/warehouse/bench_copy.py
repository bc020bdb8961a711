"""COPY throughput of the local warehouse: staged Parquet in the bookings shape into a temp table.

Run: .venv/bin/python tests/warehouse/bench_copy.py [rows] [files]
(not collected by pytest). Starts its own PostgreSQL in a temporary directory and removes it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from warehouse_staging import BOOKINGS_SCHEMA, SCHEMA_SQL  # noqa: E402

from airline_local.warehouse.postgres import PostgresServer  # noqa: E402
from airline_local.warehouse.redshift_data import Warehouse  # noqa: E402


def bookings_table(rows: int, offset: int) -> pa.Table:
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


def main(rows: int = 1_000_000, files: int = 4) -> None:
    root = Path(tempfile.mkdtemp(prefix="airline-bench-copy-"))
    root.chmod(0o711)
    try:
        staged = root / "staging" / "bookings"
        staged.mkdir(parents=True)
        per_file = rows // files
        for n in range(files):
            pq.write_table(bookings_table(per_file, n * per_file), staged / f"part-{n:05d}.snappy.parquet")
        (staged / "_SUCCESS").write_bytes(b"")
        size = sum(p.stat().st_size for p in staged.iterdir())
        with PostgresServer(root / "pgdata") as server:
            warehouse = Warehouse(server.dsn)
            warehouse.apply_schema(SCHEMA_SQL)
            started = time.perf_counter()
            results = warehouse.execute_batch(
                [
                    "CREATE TEMP TABLE stage_bookings (LIKE airline.bookings)",
                    f"COPY stage_bookings FROM '{staged.as_uri()}/' IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS PARQUET",
                ]
            )
            elapsed = time.perf_counter() - started
        loaded = results[1].rows_affected
        print(f"COPY {loaded} rows from {files} Parquet files ({size / 1e6:.1f} MB) in {elapsed:.2f} s: "
              f"{loaded / elapsed:,.0f} rows/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
