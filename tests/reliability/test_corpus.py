"""The bad-input corpus (corpus.py) through the whole local pipeline: for each case, the execution's
status, the notification's reason, the run summary's counts, the quarantine, and the invariant
rows_read = quarantined + duplicate + inserted + updated + unchanged in the warehouse.

All cases run once, a few at a time (module fixture); each test then checks one case's outcome.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from .checks import (
    LoadRecorder,
    assert_accounted_in_warehouse,
    assert_nothing_loaded,
    executions_for_key,
    quarantine_records,
    rows_with_prefix,
    run_keyed,
    sql,
)
from .corpus import IGNORED_CASES, PIPELINE_CASES, Case

pytestmark = [pytest.mark.slow, pytest.mark.reliability]
# Where a `..` key would land if the local job runner resolved it while mirroring S3.
ESCAPE_TARGET = Path("/tmp/rl-dotdot-escape.csv")


@pytest.fixture(scope="module")
def outcomes(pipeline, tmp_path_factory):
    """Every pipeline case uploaded under its key and followed to its end: {case id: RunResult}."""
    folder = tmp_path_factory.mktemp("corpus")
    ESCAPE_TARGET.unlink(missing_ok=True)
    files = []
    # Largest first: the long runs start early and the short ones fill the gaps.
    for case in sorted(PIPELINE_CASES, key=lambda c: -len(c.body())):
        path = folder / f"{case.id}.bin"
        path.write_bytes(case.body())
        files.append((case, path))
    started = time.monotonic()
    with LoadRecorder(pipeline) as recorder:
        results = run_keyed(pipeline, [(path, case.object_key) for case, path in files])
    seconds = time.monotonic() - started
    print(f"\ncorpus: {len(files)} executions in {seconds:.0f} s")
    for (case, _), result in zip(files, results):
        print(f"  {case.id:45} {result.status:10} {result.seconds:6.1f} s  {result.error or ''}"[:160])
    outcome = {case.id: result for (case, _), result in zip(files, results)}
    outcome_load_batches[:] = recorder.batches
    return outcome


outcome_load_batches: list[dict] = []  # the Data API batches of the corpus run (LoadRecorder)


@pytest.mark.parametrize("case", PIPELINE_CASES, ids=lambda c: c.id)
def test_case_outcome(case: Case, outcomes, pipeline):
    result = outcomes[case.id]
    assert result.status == case.status, (result.error, result.states)
    assert result.summary is not None, f"no run summary for {case.object_key}: {result.error}"
    summary = result.summary
    assert summary["status"] == case.status
    assert summary["source_file"] == f"s3://{pipeline.stack.raw_bucket}/{case.object_key}"
    for name, expected in case.counts.items():
        assert summary[name] == expected, (name, summary)
    if case.unknown_columns is not None:
        assert summary["unknown_columns"] == list(case.unknown_columns)

    notification = result.notification
    assert notification is not None, f"no email for {case.object_key}"
    assert case.object_key in notification["message"]
    if case.status == "FAILED":
        assert "FAILED" in notification["subject"]
        assert case.reason in summary["error"], summary["error"]
        assert case.reason in notification["message"], notification["message"]
        # the job's error from its run summary, not the failed job run as JSON
        assert "Job failed" in result.states and '"JobRunState"' not in notification["message"]
        assert f"Cause: {summary['error']} (execution" in notification["message"]
        assert_nothing_loaded(pipeline, result, f"RL-{case.tag}-" if case.tag else None)
    else:
        assert "succeeded" in notification["subject"]
        assert f"rows_read={summary['rows_read']}," in notification["message"]
        if case.reason:
            assert case.reason in notification["message"]
        audit = assert_accounted_in_warehouse(pipeline, result)
        if case.tag:
            assert rows_with_prefix(pipeline, f"RL-{case.tag}-") == audit["rows_inserted"]

    records = quarantine_records(pipeline, result.execution_name)
    assert len(records) == summary["rows_quarantined"]
    assert all(r["source_file"] == summary["source_file"] for r in records)
    if case.reasons_by_record is not None:
        assert {r["record_number"]: r["reasons"] for r in records} == case.reasons_by_record

    for booking_id, columns in case.stored.items():
        names = list(columns)
        found = sql(pipeline, f"SELECT {', '.join(names)} FROM airline.bookings WHERE booking_id = %s", booking_id)
        assert found == [tuple(columns[n] for n in names)], booking_id


def test_every_case_is_accounted_for(outcomes):
    """The corpus is as broad as promised: at least 30 distinct cases, every outcome represented."""
    ids = [c.id for c in (*PIPELINE_CASES, *IGNORED_CASES)]
    assert len(ids) == len(set(ids)) >= 30
    assert {c.status for c in PIPELINE_CASES} == {"SUCCEEDED", "FAILED"}
    assert set(outcomes) == {c.id for c in PIPELINE_CASES}


def test_a_dot_dot_key_never_escapes_the_local_mirror(outcomes):
    assert outcomes["key_with_dot_dot"].status == "FAILED"
    assert not ESCAPE_TARGET.exists(), "the job runner wrote the object outside its run directory"


def test_values_are_stored_verbatim_and_never_executed(outcomes, pipeline):
    from .corpus import FORMULA_VALUES, SQL_INJECTION_IDS

    result = outcomes["sql_and_formula_injection_values"]
    stored = sql(pipeline, "SELECT booking_id, passenger_id FROM airline.bookings WHERE execution_id = %s",
                 result.execution_name)
    ids = {booking_id for booking_id, _ in stored}
    assert set(SQL_INJECTION_IDS) <= ids
    assert set(FORMULA_VALUES) <= {passenger for _, passenger in stored}
    # The payloads did nothing: the schema and every other case's rows are still there.
    assert sql(pipeline, "SELECT COUNT(*) FROM airline.ingestion_runs")[0][0] >= sum(
        1 for r in outcomes.values() if r.status == "SUCCEEDED")
    [quarantined] = quarantine_records(pipeline, result.execution_name)
    assert quarantined["values"]["fare_amount"] == "=1+1"  # JSON text, not a spreadsheet cell


def test_time_zones_are_converted_to_utc(outcomes, pipeline):
    result = outcomes["time_zone_offsets"]
    found = dict(sql(pipeline, "SELECT booking_id, to_char(booking_time, 'YYYY-MM-DD HH24:MI:SS.US') "
                               "FROM airline.bookings WHERE execution_id = %s", result.execution_name))
    for number in (1, 2, 3, 4, 6, 7, 8):
        assert found[f"RL-TZ-{number:04d}"] == "2025-03-01 10:00:00.000000"
    assert found["RL-TZ-0005"] == "2025-03-01 10:00:00.123456"  # nanoseconds truncated
    [(updated_at, departure_utc)] = sql(
        pipeline, "SELECT to_char(updated_at, 'YYYY-MM-DD HH24:MI'), to_char(departure_time_utc, 'HH24:MI') "
                  "FROM airline.bookings WHERE booking_id = 'RL-TZ-0007'")
    assert updated_at == "2025-03-01 10:00"  # +14:00 on 2 March is still 1 March in UTC
    assert departure_utc == "08:30"  # 09:30 in London in June (BST)


def test_date_line_uses_utc_instants(outcomes, pipeline):
    result = outcomes["departure_before_booking_across_date_line"]
    found = dict(sql(pipeline, "SELECT booking_id, lead_time_days FROM airline.bookings "
                               "WHERE booking_id IN ('RL-DATE-0001', 'RL-DATE-0002', 'RL-DATE-0003')"))
    assert found == {"RL-DATE-0001": 0, "RL-DATE-0003": 0}
    assert result.summary["rows_quarantined"] == 1


def test_keys_the_rule_ignores_start_nothing(pipeline, tmp_path):
    for case in IGNORED_CASES:
        path = tmp_path / f"{case.id}.bin"
        path.write_bytes(case.body())
        pipeline.upload(path, case.object_key)
    # S3 -> EventBridge -> StartExecution happens within the PUT; a short grace covers any lag.
    time.sleep(1.5)
    for case in IGNORED_CASES:
        assert executions_for_key(pipeline, case.object_key) == [], case.object_key
    assert rows_with_prefix(pipeline, "RL-IGN-") == 0


def test_no_key_or_value_reaches_the_sql_text(outcomes, pipeline):
    """Every load the corpus caused ran the same statements; only the run's own staging prefix
    (bucket + execution id, from a safe alphabet) differs. So no hostile key or value from the
    corpus, quoted or not, can change what a statement does."""
    succeeded = [r for r in outcomes.values() if r.status == "SUCCEEDED"]
    assert len(outcome_load_batches) == len(succeeded)
    templates = set()
    for batch in outcome_load_batches:
        execution = batch["name"].removeprefix("airline-bookings-load-")
        assert execution in {r.execution_name for r in succeeded}
        # Locally the job's data root is its run's mirror of the bucket: file://<run dir>/s3/.
        templates.add(tuple(re.sub(r"file://[^']*?/s3/", "s3://", sql_text).replace(execution, "<execution>")
                            for sql_text in batch["sqls"]))
    assert len(templates) == 1, "the load SQL differed between files"
    [template] = templates
    text = "\n".join(template)
    assert f"s3://{pipeline.stack.raw_bucket}/staging/<execution>/bookings/" in text
    for case in PIPELINE_CASES:
        assert case.object_key.rsplit("/", 1)[-1] not in text
    for fragment in ("DROP", "TRUNCATE", "RL-", "--.csv", "$$"):
        assert fragment not in text

