"""`local status`'s joining of the warehouse's runs and the emulator's executions (pure parts;
the whole command runs against a real pipeline in tests/e2e/test_local_pipeline.py)."""

from __future__ import annotations

from datetime import datetime

from airline_local import status as run_status

COLUMNS = ["execution_id", "source_file", "status", "rows_read", "rows_quarantined", "rows_duplicate",
           "rows_inserted", "rows_updated", "rows_unchanged", "quarantine_uri", "started_at", "loaded_at"]


def _row(execution: str, minute: int, read: int = 10) -> tuple:
    return (execution, f"s3://b/raw/bookings/{execution}.csv", "SUCCEEDED", read, 1, 0, read - 1, 0, 0, None,
            datetime(2026, 1, 1, 0, minute, 0), datetime(2026, 1, 1, 0, minute, 12, 500000))


def test_warehouse_rows_by_column_name_and_a_column_it_lacks_is_empty():
    [run] = run_status.warehouse_runs(COLUMNS, [_row("e1", 5)])
    assert run.execution == "e1" and run.status == "SUCCEEDED" and run.seconds == 12.5
    assert run.started_at == "2026-01-01T00:05:00Z"
    assert run.rows["rows_read"] == 10 and run.rows["rows_inserted"] == 9
    assert "rows_stale" in run.rows and run.rows["rows_stale"] is None  # older warehouse: no column yet
    shuffled = list(reversed(COLUMNS))
    assert run_status.warehouse_runs(shuffled, [tuple(reversed(_row("e1", 5)))]) == [run]


def test_merge_joins_on_the_execution_and_keeps_runs_only_one_side_knows():
    warehouse = run_status.warehouse_runs(COLUMNS, [_row("done", 1), _row("earlier-session", 0)])
    emulator = [
        run_status.RunStatus(execution="done", file="s3://b/raw/bookings/done.csv", status="SUCCEEDED",
                             rows={"rows_read": 10, "rows_stale": 2}, started_at="2026-01-01T00:00:58Z"),
        run_status.RunStatus(execution="running", file="s3://b/raw/bookings/r.csv", status="RUNNING",
                             started_at="2026-01-01T00:09:00Z", current_state="Run ETL job"),
        run_status.RunStatus(execution="failed", file="s3://b/raw/bookings/f.csv", status="FAILED",
                             started_at="2026-01-01T00:08:00Z", error="missing required column(s): currency"),
    ]
    merged = run_status.merge(warehouse, emulator, limit=10)
    assert [r.execution for r in merged] == ["running", "failed", "done", "earlier-session"]
    done = merged[2]
    # The warehouse's committed counts win; what only the summary knew is kept.
    assert done.rows["rows_inserted"] == 9 and done.rows["rows_stale"] == 2
    assert run_status.in_progress(merged) and not run_status.in_progress(merged[1:])
    assert [r.execution for r in run_status.merge(warehouse, emulator, limit=2)] == ["running", "failed"]


def test_the_file_of_an_upload_event_and_of_a_backfill_input():
    event = {"detail": {"bucket": {"name": "b"}, "object": {"key": "raw/bookings/x.csv"}}}
    assert run_status._file_of(event) == "s3://b/raw/bookings/x.csv"
    assert run_status._file_of({"prefix": "raw/backfill/2024/"}) == "prefix raw/backfill/2024/"


def test_no_endpoint_file_means_no_running_pipeline(tmp_path):
    assert run_status.emulator_endpoint(tmp_path) is None
    (tmp_path / "emulator").mkdir()
    (tmp_path / "emulator" / "endpoint").write_text("http://127.0.0.1:5000\n")
    assert run_status.emulator_endpoint(tmp_path) == "http://127.0.0.1:5000"


def test_the_run_history_fills_what_the_stopped_emulator_no_longer_knows(tmp_path):
    from airline_local import history

    history.record(tmp_path, {"execution": "failed", "file": "/data/f.csv", "status": "FAILED",
                              "rows": {"rows_read": 0}, "error": "missing required column(s): currency",
                              "started_at": "2026-01-01T00:08:00Z", "seconds": 3.5})
    history.record(tmp_path, {"execution": "not-started:raw/bookings/n.csv@1", "file": "/data/n.csv",
                              "status": "NOT_STARTED", "error": "no execution started for s3://b/raw/bookings/n.csv",
                              "started_at": "2026-01-01T00:09:00Z", "seconds": 30.0, "unknown key": "ignored"})
    history.record(tmp_path, {"execution": "done", "file": "/data/done.csv", "status": "SUCCEEDED",
                              "rows": {"rows_read": 10}, "started_at": "2026-01-01T00:01:00Z", "seconds": 12.0})
    with history.history_path(tmp_path).open("a") as half_written:  # a writer killed mid-line
        half_written.write('{"execution": "cut')
    entries = history.entries(tmp_path)
    assert [e["execution"] for e in entries] == ["failed", "not-started:raw/bookings/n.csv@1", "done"]

    warehouse = run_status.warehouse_runs(COLUMNS, [_row("done", 1)])
    merged = run_status.merge(warehouse, [], limit=10, history=run_status.history_runs(entries))
    assert [(r.execution, r.status) for r in merged] == [
        ("not-started:raw/bookings/n.csv@1", "NOT_STARTED"), ("failed", "FAILED"), ("done", "SUCCEEDED")]
    not_started, failed, done = merged
    assert not_started.error.startswith("no execution started") and not_started.seconds == 30.0
    assert failed.error == "missing required column(s): currency" and failed.file == "/data/f.csv"
    assert done.rows["rows_inserted"] == 9 and done.file == "s3://b/raw/bookings/done.csv"  # the committed load


def test_the_emulators_view_of_a_running_execution_wins_over_the_history():
    recorded = run_status.RunStatus(execution="e", file="/data/e.csv", status="FAILED", error="old",
                                    started_at="2026-01-01T00:00:00Z")
    live = run_status.RunStatus(execution="e", file="s3://b/raw/bookings/e.csv", status="RUNNING",
                                started_at="2026-01-01T00:00:00Z", current_state="Run ETL job")
    [run] = run_status.merge([], [live], limit=5, history=[recorded])
    assert run.status == "RUNNING" and run.current_state == "Run ETL job" and run.error is None
