"""The `airline-ingest` command as a data engineer runs it: a real process, real exit codes, and
exactly one JSON document on stdout with --json.

The module's state directory starts with the warehouse of the 2026-12-01 release (its schema,
sql/migrations/0001, and a run it loaded): its `local run` is also the upgrade of issue 22, the
deploy migrating that warehouse before the load."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "airline_local.cli"]
RUN_KEYS = {"file", "key", "execution_name", "status", "summary", "notification", "error"}


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


RELEASE_2026_12_01_DATA = [
    "INSERT INTO airline.bookings (booking_id, booking_time, updated_at, passenger_id, carrier_code, flight_number, "
    "origin, destination, departure_time, cabin_class, fare_amount, currency, num_passengers, booking_status, "
    "sales_channel, origin_city, origin_country, destination_city, destination_country, distance_km, "
    "is_international, departure_time_utc, lead_time_days, source_file, execution_id, ingested_at) VALUES "
    "('OLD-1', '2026-11-20 10:00:00', '2026-11-20 10:00:00', 'P-1', 'BA', 117, 'LHR', 'JFK', '2026-12-24 08:30:00', "
    "'ECONOMY', 512.30, 'GBP', 2, 'CONFIRMED', 'WEB', 'London', 'GB', 'New York', 'US', 5540.1, TRUE, "
    "'2026-12-24 08:30:00', 34, 's3://raw/raw/bookings/old.csv', 'exec-2026-12-01', '2026-12-01 10:01:00')",
    "INSERT INTO airline.ingestion_runs (execution_id, source_file, status, rows_read, rows_quarantined, "
    "rows_duplicate, rows_inserted, rows_updated, rows_unchanged, quarantine_uri, started_at, loaded_at) VALUES "
    "('exec-2026-12-01', 's3://raw/raw/bookings/old.csv', 'SUCCEEDED', 1, 0, 0, 1, 0, 0, NULL, "
    "'2026-12-01 10:00:00', '2026-12-01 10:01:00')",
]


@pytest.fixture(scope="module")
def state_dir():
    from airline_local.warehouse.postgres import PostgresServer
    from airline_local.warehouse.statements import Warehouse
    from stacks.migrations import load_migrations

    directory = Path(tempfile.mkdtemp(prefix="airline-cli-"))
    directory.chmod(0o711)  # PostgreSQL runs as an unprivileged user when the tests run as root
    # The local warehouse as the 2026-12-01 release left it (no airline.schema_migrations).
    with PostgresServer(directory / "postgres") as server:
        Warehouse(server.dsn).execute_batch([*load_migrations()[0].statements, *RELEASE_2026_12_01_DATA])
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_local_run_json_then_local_sql_on_the_same_warehouse(state_dir, tmp_path):
    bookings = tmp_path / "cli bookings.csv"
    assert cli("generate", "--rows", "40", "--seed", "301", "--bad-ratio", "0", "--out", str(bookings)).returncode == 0
    headless = tmp_path / "no-columns.csv"
    headless.write_text("booking_id\nBK-1\n", encoding="utf-8")

    done = cli("local", "run", str(bookings), str(headless), "--state-dir", str(state_dir), "--json")

    assert done.returncode == 1, done.stdout[-3000:]  # not every run succeeded
    document = json.loads(done.stdout)  # exactly one JSON document, nothing else on stdout
    [run, failed] = document["runs"]
    assert set(run) == RUN_KEYS
    assert run["status"] == "SUCCEEDED" and run["error"] is None
    assert run["key"] == "raw/bookings/cli bookings.csv"
    assert run["summary"]["rows_read"] == 40
    assert run["execution_name"] in run["notification"]["message"]
    assert failed["status"] == "FAILED" and "missing required column(s): booking_time" in failed["error"]
    assert "FAILED at step: Run ETL job" in failed["notification"]["message"]
    # The emulator's interpreter logs each Fail state with its parse tree; none of it reaches stderr.
    assert "Exception=" not in done.stderr and "FailureEventException" not in done.stderr, done.stderr[-2000:]

    queried = cli("local", "sql", "SELECT COUNT(*) AS n FROM airline.bookings WHERE booking_id LIKE 'BK301-%'",
                  "--state-dir", str(state_dir), "--json")
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout) == {"columns": ["n"], "rows": [[run["summary"]["rows_inserted"]]]}

    # The upgrade: that run's deploy baselined the 2026-12-01 warehouse at 0001 and migrated it.
    migrated = cli("local", "sql", "SELECT version, applied_by LIKE '%baseline%' AS baseline "
                   "FROM airline.schema_migrations ORDER BY version", "--state-dir", str(state_dir), "--json")
    assert json.loads(migrated.stdout)["rows"] == [["0001", True], ["0002", False], ["0003", False]]
    kept = cli("local", "sql", "SELECT r.execution_id, r.rows_read, r.rows_staged, r.rows_stale, (SELECT "
               "CAST(fare_amount AS VARCHAR) || ' ' || passenger_id FROM airline.bookings WHERE booking_id = 'OLD-1') "
               "AS old_booking FROM airline.ingestion_runs r ORDER BY r.started_at", "--state-dir", str(state_dir),
               "--json")
    assert json.loads(kept.stdout)["rows"] == [  # both runs: the old one with its counts derived, and the new
        ["exec-2026-12-01", 1, 1, 0, "512.30 P-1"],
        [run["execution_name"], 40, run["summary"]["rows_staged"], 0, "512.30 P-1"]]


def test_a_missing_file_is_a_usage_error_naming_it(tmp_path, monkeypatch):
    # A terminal narrower than the path: the error still names it whole (make test once failed
    # when pytest's tmp path crossed rich's 80 columns and the name was wrapped).
    monkeypatch.setenv("COLUMNS", "40")
    missing = tmp_path / "a-path-longer-than-the-terminal-is-wide" / "nope.csv"
    done = cli("local", "run", str(missing), "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert f"no such file: {missing}" in done.stderr


def test_an_unknown_option_is_a_usage_error(tmp_path):
    done = cli("local", "run", "x.csv", "--no-such-option")
    assert done.returncode == 2
    assert "No such option" in done.stderr


def test_a_port_already_taken_is_named(tmp_path):
    bookings = tmp_path / "b.csv"
    bookings.write_text("booking_id\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("local", "run", str(bookings), "--state-dir", str(tmp_path / "state"), "--aws-port", str(port))
    assert done.returncode == 1
    assert f"port {port}" in done.stderr and "already in use" in done.stderr


def test_local_sql_without_a_warehouse_says_how_to_make_one(tmp_path):
    done = cli("local", "sql", "SELECT 1", "--state-dir", str(tmp_path / "empty"))
    assert done.returncode == 1
    assert "no local warehouse" in done.stderr and "airline-ingest local run" in done.stderr


def test_generate_is_deterministic_for_a_seed(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (first, second):
        assert cli("generate", "--rows", "25", "--seed", "9", "--out", str(path)).returncode == 0
    assert first.read_bytes() == second.read_bytes()
    with first.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 25


# -- errors in one paragraph (issue 24): no stack needed --------------------------------------

def test_a_file_the_rule_ignores_is_refused_at_once_naming_the_rules_filter(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("booking_id\nBK-1\n", encoding="utf-8")
    done = cli("local", "run", str(notes), "--state-dir", str(tmp_path / "state"), timeout=120)
    assert done.returncode == 2, done.stderr
    # The filter as the synthesized template's rule has it, with the rule's logical id.
    assert "raw/bookings/notes.txt would start no execution" in done.stderr
    assert '"raw/bookings/*.csv"' in done.stderr and '"raw/bookings/*.csv.gz"' in done.stderr, done.stderr
    assert "OrchestrationBookingFileUploaded" in done.stderr
    assert not (tmp_path / "state" / "postgres").exists()  # refused before anything started


def test_bad_sql_prints_the_databases_error_and_position_not_a_traceback(state_dir):
    done = cli("local", "sql", "SELECT booking_id, nosuch FROM airline.bookings", "--state-dir", str(state_dir))
    assert done.returncode == 1
    assert 'column "nosuch" does not exist' in done.stderr and "at character 20" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 6, done.stderr


def test_sql_the_local_parser_refuses_is_one_paragraph_with_line_and_column(state_dir):
    done = cli("local", "sql", "SELECT 1\nFROM airline.bookings WHERE (1 =", "--state-dir", str(state_dir))
    assert done.returncode == 1
    assert "not Redshift SQL" in done.stderr and "at line 2" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 6, done.stderr


def test_sql_dash_reads_the_query_from_stdin(state_dir):
    done = subprocess.run([*CLI, "local", "sql", "-", "--state-dir", str(state_dir), "--json"], input=
                          "SELECT booking_id\nFROM airline.bookings WHERE booking_id = 'OLD-1'\n",
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"columns": ["booking_id"], "rows": [["OLD-1"]]}


def test_down_with_nothing_running_says_so_and_succeeds(tmp_path):
    done = cli("local", "down", "--state-dir", str(tmp_path))
    assert done.returncode == 0 and "no local stack is running" in done.stderr, done.stderr
