"""Issue 13, section 1: a load never blocks the warehouse's readers.

A reader counts each table a load writes (`airline.bookings`, `airline.airports`,
`airline.ingestion_runs`) over and over while a large load runs on the real PostgreSQL; every
answer is the table's count before or after the load, the reader's backend is never seen waiting
for a lock (pg_stat_activity, polled every few milliseconds on a third connection), and each
table's slowest answer takes a small fraction of the load's time. The same load with the old `LOCK
airline.bookings` put back shows that the test sees blocking when there is some (a LOCK or a
TRUNCATE of any of the three fails it too: on PostgreSQL both hold readers off until the commit;
on Redshift TRUNCATE also commits at once).

The lock waits are the direct evidence; the time is the reader's view of it. A quarter of the load
is allowed to the slowest answer: on a busy machine (make test's three workers on two cores) a
count of 190,000 rows took 12 % of a 2 s load without waiting for anything, while a reader held off
by a lock waits for most of the load (the control).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import NamedTuple

import psycopg
import pyarrow.parquet as pq
from warehouse_staging import AIRPORTS, AIRPORTS_SCHEMA, RUN_SCHEMA, UTC, bookings_table, fetch, load_statements, write_parquet

from airline_local.warehouse.statements import Warehouse

BEFORE_ROWS = 60_000
LOAD_ROWS = 150_000  # 20,000 of them already in the warehouse (identical: unchanged)
LOAD_OFFSET = 40_000
# The slowest reader answer may take at most this share of the load's duration.
READER_SHARE = 0.25


def stage_rows(root: Path, execution_id: str, rows: int, offset: int) -> str:
    staging = root / execution_id
    (staging / "bookings").mkdir(parents=True)
    pq.write_table(bookings_table(rows, offset), staging / "bookings" / "part-00000.snappy.parquet")
    write_parquet(staging / "airports", AIRPORTS_SCHEMA, AIRPORTS)
    write_parquet(staging / "run", RUN_SCHEMA, [{
        "execution_id": execution_id, "source_file": f"s3://raw/raw/bookings/{execution_id}.csv",
        "rows_read": rows, "rows_quarantined": 0, "rows_duplicate": 0, "rows_staged": rows,
        "quarantine_uri": None, "started_at": dt.datetime(2024, 1, 6, tzinfo=UTC)}])
    return staging.as_uri() + "/"


# The tables a load writes, all of which readers query (docs/architecture.md).
READ_TABLES = ("airline.bookings", "airline.airports", "airline.ingestion_runs")


class Reading(NamedTuple):
    load_seconds: float
    answers: dict[str, list[tuple[float, int]]]  # table -> (seconds, count) per query
    lock_waits: int  # times the reader's backend was seen waiting for a lock


def load_while_reading(warehouse: Warehouse, statements: list[str]) -> Reading:
    """Run the load batch while a reader counts each of READ_TABLES in a loop on its own
    connection (and for a moment after the commit), and a monitor watches the reader's backend
    for lock waits."""
    answers: dict[str, list[tuple[float, int]]] = {table: [] for table in READ_TABLES}
    done = threading.Event()
    reader_ready = threading.Event()
    failures: list[BaseException] = []
    reader_pid: list[int] = []
    lock_waits = [0]

    def read() -> None:
        try:
            with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
                reader_pid.append(conn.info.backend_pid)
                reader_ready.set()
                while not done.is_set():
                    for table in READ_TABLES:
                        started = time.perf_counter()
                        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                        answers[table].append((time.perf_counter() - started, count))
                    time.sleep(0.01)
        except BaseException as exc:  # asserted below
            failures.append(exc)
            reader_ready.set()

    def watch() -> None:
        try:
            with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
                while not done.is_set():
                    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                       reader_pid).fetchone()
                    lock_waits[0] += row is not None and row[0] == "Lock"
                    time.sleep(0.005)
        except BaseException as exc:  # asserted below
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    reader_ready.wait(timeout=30)
    monitor = threading.Thread(target=watch)
    monitor.start()
    started = time.perf_counter()
    try:
        warehouse.execute_batch(statements)
    finally:
        load_seconds = time.perf_counter() - started
        time.sleep(0.3)
        done.set()
        reader.join(timeout=120)
        monitor.join(timeout=120)
    assert failures == []
    return Reading(load_seconds, answers, lock_waits[0])


def test_readers_see_the_tables_before_or_after_a_load_without_waiting_for_it(clean_tables, tmp_path):
    warehouse = clean_tables
    warehouse.execute_batch(load_statements(stage_rows(tmp_path, "exec-before", BEFORE_ROWS, 0)))
    before = {table: fetch(warehouse, f"SELECT count(*) FROM {table}")[0][0] for table in READ_TABLES}
    after = {**before, "airline.bookings": LOAD_OFFSET + LOAD_ROWS, "airline.ingestion_runs": 2}
    assert before["airline.bookings"] == BEFORE_ROWS and before["airline.airports"] > 0

    load_seconds, answers, lock_waits = load_while_reading(
        warehouse, load_statements(stage_rows(tmp_path, "exec-big", LOAD_ROWS, LOAD_OFFSET)))
    slowest = {table: max(seconds for seconds, _ in seen) for table, seen in answers.items()}
    print(f"\nload of {LOAD_ROWS:,} rows: {load_seconds:.2f} s; {len(answers['airline.bookings'])} reader rounds, "
          + ", ".join(f"{table} slowest {seconds * 1000:.0f} ms" for table, seconds in slowest.items()))
    assert fetch(warehouse, "SELECT rows_inserted, rows_unchanged FROM airline.ingestion_runs "
                            "WHERE execution_id = 'exec-big'") == [(LOAD_OFFSET + LOAD_ROWS - BEFORE_ROWS,
                                                                   BEFORE_ROWS - LOAD_OFFSET)]
    assert lock_waits == 0, f"the reader waited for a lock {lock_waits} times during the load"
    waited = {table: seconds for table, seconds in slowest.items() if seconds >= READER_SHARE * load_seconds}
    assert waited == {}, f"readers waited (seconds) for the load of {load_seconds:.2f} s: {waited}"
    for table, seen in answers.items():
        assert {count for _, count in seen} <= {before[table], after[table]}, f"never a partial load of {table}"
        assert len(seen) >= 10, f"the reader of {table} ran all along the load"
    assert {count for _, count in answers["airline.bookings"]} == {before["airline.bookings"], after["airline.bookings"]}

    # The control: the same kind of load holding LOCK airline.bookings (the old first statement)
    # keeps the reader waiting for most of the load, and the measurement above would catch it.
    statements = load_statements(stage_rows(tmp_path, "exec-locked", LOAD_ROWS, LOAD_OFFSET))
    statements.insert(1, "LOCK airline.bookings")
    locked_seconds, locked_answers, locked_waits = load_while_reading(warehouse, statements)
    locked_slowest = max(seconds for seconds, _ in locked_answers["airline.bookings"])
    print(f"control with LOCK airline.bookings: load {locked_seconds:.2f} s, slowest reader query "
          f"{locked_slowest * 1000:.0f} ms")
    assert locked_slowest > 0.5 * locked_seconds
    assert locked_waits > 0, "the monitor did not see the reader wait for the LOCK"
