"""COPY throughput of the local warehouse: staged Parquet in the bookings shape into a temp table.

Run: .venv/bin/python tests/warehouse/bench_copy.py [rows] [files]
(not collected by pytest). Starts its own PostgreSQL in a temporary directory and removes it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from warehouse_staging import bookings_table  # noqa: E402

from airline_local.warehouse.postgres import PostgresServer  # noqa: E402
from airline_local.warehouse.statements import Warehouse  # noqa: E402


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
            warehouse.apply_migrations()
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
