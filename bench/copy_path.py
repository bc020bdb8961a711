"""The emulated Redshift COPY (staged Parquet -> PostgreSQL) against a plain text COPY of the
same rows into the same table, on one PostgreSQL server.

    .venv/bin/python -m bench.copy_path [--rows 1000000] [--files 4]

Both load a temp table LIKE airline.bookings. The plain COPY is PostgreSQL's own best case for
text input: the rows already rendered as CSV (outside the timing), streamed from this process.
The emulated COPY is the warehouse adapter's whole path: read the Parquet files, check them,
convert, stream. Issue 14 target: emulated rows/s >= 0.5 x plain.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "warehouse"))

from warehouse_staging import bookings_table  # noqa: E402

from airline_local.aws.cfn import ACCOUNT_ID  # noqa: E402
from airline_local.warehouse.postgres import PostgresServer  # noqa: E402
from airline_local.warehouse.statements import CSV_WRITE_OPTIONS, Warehouse  # noqa: E402

STAGE = "CREATE TEMP TABLE stage_bookings (LIKE airline.bookings)"
BLOCK = 1 << 20


def measure(rows: int, files: int, repeat: int = 3) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="airline-bench-copy-"))
    root.chmod(0o711)  # PostgreSQL's own user runs the server below
    try:
        staged = root / "staging" / "bookings"
        staged.mkdir(parents=True)
        per_file = rows // files
        tables = [bookings_table(per_file, n * per_file) for n in range(files)]
        for n, table in enumerate(tables):
            pq.write_table(table, staged / f"part-{n:05d}.snappy.parquet")
        text = io.BytesIO()
        for table in tables:
            pacsv.write_csv(table.cast(table.schema), text, CSV_WRITE_OPTIONS)
        csv_bytes = text.getvalue()
        emulated, plain = [], []
        with PostgresServer(root / "pgdata") as server:
            warehouse = Warehouse(server.dsn)
            warehouse.apply_migrations()
            copy = (f"COPY stage_bookings FROM '{staged.as_uri()}/' "
                    f"IAM_ROLE 'arn:aws:iam::{ACCOUNT_ID}:role/r' FORMAT AS PARQUET")
            for _ in range(repeat):
                started = time.perf_counter()
                loaded = warehouse.execute_batch([STAGE, copy])[1].rows_affected
                emulated.append(time.perf_counter() - started)
                with warehouse.connect() as conn, conn.cursor() as cur:
                    started = time.perf_counter()
                    cur.execute(STAGE)
                    with cur.copy("COPY stage_bookings FROM STDIN (FORMAT csv)") as pipe:
                        for offset in range(0, len(csv_bytes), BLOCK):
                            pipe.write(csv_bytes[offset:offset + BLOCK])
                    plain_rows = cur.rowcount
                    plain.append(time.perf_counter() - started)
        if loaded != plain_rows:
            raise RuntimeError(f"emulated COPY loaded {loaded} rows, plain COPY {plain_rows}")
        best_emulated, best_plain = min(emulated), min(plain)
        return {
            "rows": loaded, "files": files,
            "emulated_seconds": round(best_emulated, 3), "plain_seconds": round(best_plain, 3),
            "emulated_rows_per_second": round(loaded / best_emulated),
            "plain_rows_per_second": round(loaded / best_plain),
            "emulated_to_plain_ratio": round(best_plain / best_emulated, 3),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.copy_path", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.rows, args.files, args.repeat), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
