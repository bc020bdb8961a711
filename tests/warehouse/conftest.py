"""A real PostgreSQL for the warehouse tests, and staged Parquet in the Glue job's layout.

One server per test session (127.0.0.1, a free port, a temporary data directory), stopped at the
end. Tests that load data start from empty tables (`clean_tables`).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from warehouse_staging import AIRPORTS, AIRPORTS_SCHEMA, BOOKINGS_SCHEMA, RUN_SCHEMA, UTC, write_parquet

from airline_local.warehouse.postgres import PostgresServer
from airline_local.warehouse.statements import Warehouse

StageFn = Callable[..., str]


@pytest.fixture
def stage(tmp_path: Path) -> StageFn:
    """stage(execution_id, bookings, airports=AIRPORTS, run=None) -> the staging URI (file://...)."""

    def _stage(
        execution_id: str,
        bookings: list[dict[str, Any]],
        airports: list[dict[str, Any]] | None = None,
        run: dict[str, Any] | None = None,
    ) -> str:
        root = tmp_path / "staging" / execution_id
        if root.exists():
            shutil.rmtree(root)
        write_parquet(root / "bookings", BOOKINGS_SCHEMA, bookings)
        write_parquet(root / "airports", AIRPORTS_SCHEMA, AIRPORTS if airports is None else airports)
        run_row = {
            "execution_id": execution_id,
            "source_file": f"s3://raw/raw/bookings/{execution_id}.csv",
            "rows_read": len(bookings),
            "rows_quarantined": 0,
            "rows_duplicate": 0,
            "rows_staged": len(bookings),
            "quarantine_uri": None,
            "started_at": dt.datetime(2024, 1, 6, 0, 0, tzinfo=UTC),
        }
        run_row.update(run or {})
        # rows_read adds up unless the test says otherwise (the load checks it)
        if run and "rows_read" in run and "rows_duplicate" not in run:
            run_row["rows_duplicate"] = run_row["rows_read"] - run_row["rows_quarantined"] - run_row["rows_staged"]
        write_parquet(root / "run", RUN_SCHEMA, [run_row])
        return root.as_uri() + "/"

    return _stage


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    # Not pytest's tmp_path: its 0700 root-owned parents would keep the `postgres` user out.
    root = Path(tempfile.mkdtemp(prefix="airline-warehouse-tests-"))
    root.chmod(0o711)
    server = PostgresServer(root / "pgdata")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def warehouse(pg_server: PostgresServer) -> Warehouse:
    wh = Warehouse(pg_server.dsn)
    wh.apply_migrations()
    return wh


@pytest.fixture
def clean_tables(warehouse: Warehouse) -> Warehouse:
    with psycopg.connect(warehouse.dsn) as conn:
        conn.execute("TRUNCATE airline.bookings, airline.airports, airline.ingestion_runs")
    return warehouse
