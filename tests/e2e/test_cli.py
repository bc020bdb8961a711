"""The `airline-ingest` command as a data engineer runs it: a real process, real exit codes, and
exactly one JSON document on stdout with --json."""

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


@pytest.fixture(scope="module")
def state_dir():
    directory = Path(tempfile.mkdtemp(prefix="airline-cli-"))
    directory.chmod(0o711)  # PostgreSQL runs as an unprivileged user when the tests run as root
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


def test_a_missing_file_is_a_usage_error_naming_it(tmp_path):
    done = cli("local", "run", str(tmp_path / "nope.csv"), "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert "no such file" in done.stderr and "nope.csv" in done.stderr


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
