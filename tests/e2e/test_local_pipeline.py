"""The whole pipeline, locally: upload → EventBridge → state machine → crawler → Glue script on
Spark → COPY + MERGE in PostgreSQL → run summary → email. Real moto server, Spark and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airline_local.iam_calls import render, report_of
from airline_local.local_stack import CloudAssembly
from e2e_helpers import read_rows, scalar, write_rows

pytestmark = pytest.mark.slow

COUNTS = ("rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated", "rows_unchanged", "rows_stale")


def assert_conserved(summary: dict) -> None:
    assert summary["rows_read"] == sum(summary[k] for k in COUNTS), summary


SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "bookings_sample.csv"
IAM_CALLS_DOC = Path(__file__).resolve().parents[2] / "docs" / "iam-calls.md"


@pytest.fixture(scope="module")
def sample_run(pipeline):
    """The module's first run, the bundled sample, and the IAM calls report of the pipeline's calls
    up to then (the deploy and this run: what `make iam-calls` writes to docs/iam-calls.md)."""
    [result] = pipeline.run([SAMPLE])
    return result, report_of(pipeline)


def test_sample_file_is_loaded_and_reported(pipeline, sample_run):
    result, report = sample_run

    assert result.status == "SUCCEEDED", result.error
    summary = result.summary
    assert_conserved(summary)
    assert summary["rows_read"] == len(read_rows(SAMPLE))
    assert summary["rows_quarantined"] > 0  # the sample carries a few bad rows on purpose
    assert summary["rows_inserted"] > 0
    loaded = scalar(pipeline, f"SELECT COUNT(*) FROM airline.bookings WHERE execution_id = '{result.execution_name}'")
    assert loaded == summary["rows_inserted"]
    # Lineage names the object in S3, as on AWS (not the job runner's local mirror of it).
    sources = pipeline.query("SELECT DISTINCT source_file FROM airline.bookings "
                             f"WHERE execution_id = '{result.execution_name}'")[1]
    assert sources == [(summary["source_file"],)]
    assert summary["source_file"] == f"s3://{pipeline.stack.raw_bucket}/raw/bookings/bookings_sample.csv"
    audit = pipeline.query(
        "SELECT rows_read, rows_quarantined, rows_duplicate, rows_inserted, rows_updated, rows_unchanged, "
        f"rows_stale FROM airline.ingestion_runs WHERE execution_id = '{result.execution_name}'")[1]
    assert audit == [tuple(summary[k] for k in ("rows_read", *COUNTS))]
    # The email carries the counts of the run summary.
    assert "succeeded" in result.notification["subject"].lower()
    assert f"rows_inserted={summary['rows_inserted']}" in result.notification["message"]
    assert f"rows_quarantined={summary['rows_quarantined']}" in result.notification["message"]
    # Local mode checks IAM by default: each actor called as its own role session, none was denied.
    assert pipeline.iam is not None
    actors = {"EventBridgeTarget", "StepFunctionsExecution", "AWS-Crawler", "GlueJobRunnerSession",
              "RedshiftIamRoleSession"}  # the last: the COPY, reading staging/ as its IAM_ROLE
    sessions = {identity.arn.rsplit("/", 1)[-1] for identity in pipeline.iam.registry.identities()}
    assert actors <= sessions
    assert not [entry for entry in pipeline.iam.log if entry[3] == "denied"]
    # docs/iam-calls.md from the same decisions: each actor's calls, each cited to a template statement.
    calls = {c.session: c for c in report}
    assert actors <= set(calls)
    roles = set(pipeline.template.resources_of_type("AWS::IAM::Role"))
    assert {c.role for c in calls.values()} <= roles
    actions = {session: {row.action for row in c.rows.values()} for session, c in calls.items()}
    assert {"states:StartExecution"} == actions["EventBridgeTarget"]
    assert {"glue:StartCrawler", "glue:GetCrawler", "glue:StartJobRun", "sns:Publish"} <= actions["StepFunctionsExecution"]
    assert {"s3:GetObject", "s3:PutObject", "redshift-data:BatchExecuteStatement"} <= actions["GlueJobRunnerSession"]
    # The COPY read this run's staged Parquet from S3 as the namespace's COPY role (not the mirror).
    copy = calls["RedshiftIamRoleSession"]
    assert copy.role in pipeline.template.resources_of_type("AWS::IAM::Role") and copy.role.startswith("WarehouseCopyRole")
    assert ("s3:GetObject", f"arn:aws:s3:::<{raw_bucket_id(pipeline)}>/staging/…") in copy.rows
    for principal in calls.values():
        for row in principal.rows.values():
            assert row.allowed_by and all(" policy " in cited for cited in row.allowed_by), row
            assert result.execution_name not in row.resource and pipeline.stack.raw_bucket not in row.resource, row
    assert render(list(calls.values()), "test").count("\n## `") == len(calls)


def raw_bucket_id(pipeline) -> str:
    (bucket,) = [lid for lid in pipeline.template.resources_of_type("AWS::S3::Bucket") if lid.startswith("StorageRawBucket")]
    return bucket


def test_the_committed_iam_calls_table_is_the_sample_runs(sample_run):
    """docs/iam-calls.md is what `make iam-calls` writes from a run of the sample: compare it with
    this module's run of the sample (the same deploy and run, the same IAM check's decisions)."""
    _, report = sample_run
    expected = render(report, f"one run of {SAMPLE.name}") + "\n"
    assert IAM_CALLS_DOC.read_text(encoding="utf-8") == expected, (
        "docs/iam-calls.md differs from the calls of this run of the sample: regenerate it with "
        "`python -m airline_local.iam_calls docs/iam-calls.md` (make iam-calls) and commit it")


def test_state_sequence_follows_the_synthesized_definition(pipeline, sample_run):
    result, _ = sample_run
    assert result.status == "SUCCEEDED", result.error

    assembly = CloudAssembly.load(pipeline.cloud_assembly_dir)
    definition = _pipeline_definition(assembly)
    for current, following in zip(result.states, result.states[1:]):
        assert following in _transitions(definition["States"][current]), (current, following)
    assert result.states[0] == definition["StartAt"] == "Identify delivery"
    assert result.states[1:4] == ["Claim delivery", "Start crawler", "Wait for crawler"]
    for state in ("Get crawler", "Crawler finished?", "Crawl succeeded?", "Run ETL job", "Job succeeded?",
                  "Read run summary", "Notify success"):
        assert state in result.states
    assert result.states[-1] == "Succeeded"


def test_reupload_of_the_same_file_adds_no_rows(pipeline, sample_run):
    first, _ = sample_run  # the sample, loaded by the module's first run
    [second] = pipeline.run([SAMPLE])

    assert first.status == second.status == "SUCCEEDED"
    assert first.execution_name != second.execution_name
    # A re-upload is a new object version: a new delivery, not a duplicate at the gate.
    assert first.states[-1] == second.states[-1] == "Succeeded"
    assert second.notification is not None and second.execution_name in second.notification["message"]
    assert second.summary["rows_inserted"] == second.summary["rows_updated"] == 0
    assert second.summary["rows_unchanged"] == first.summary["rows_inserted"] + first.summary["rows_updated"]
    assert scalar(pipeline, "SELECT COUNT(*) FROM airline.bookings WHERE booking_id LIKE 'BK42-%'") == (
        first.summary["rows_inserted"])


def test_newer_data_wins_and_an_older_file_changes_nothing(pipeline, make_file, tmp_path):
    original = make_file("v1.csv", 60, seed=103, duplicate_ratio=0.0, update_ratio=0.0)
    rows = read_rows(original)
    newer = [dict(r, updated_at="2030-01-01T00:00:00Z", fare_amount="999.99") for r in rows]
    newer_file = write_rows(tmp_path / "v2.csv", newer)
    older_again = write_rows(tmp_path / "v1-late.csv", rows)

    [v1] = pipeline.run([original])
    [v2] = pipeline.run([newer_file])
    [late] = pipeline.run([older_again])

    assert (v1.status, v2.status, late.status) == ("SUCCEEDED",) * 3
    assert v2.summary["rows_updated"] == v1.summary["rows_inserted"] == len(rows)
    assert late.summary["rows_stale"] == len(rows), "older than the warehouse's version: counted apart"
    assert late.summary["rows_unchanged"] == late.summary["rows_updated"] == 0
    fares = pipeline.query("SELECT DISTINCT fare_amount FROM airline.bookings WHERE booking_id LIKE 'BK103-%'")[1]
    assert [str(f) for (f,) in fares] == ["999.99"]


def test_a_later_file_with_the_same_updated_at_wins_when_its_content_differs(pipeline, make_file, tmp_path):
    """docs/data-contract.md, "Loading": a later file whose rows carry no updated_at (so booking_time,
    a tie with the warehouse) updates the rows whose content differs, leaves identical ones
    unchanged; rows older than the warehouse's are stale. Counted in the summary, the audit row
    and the email."""
    rows = read_rows(make_file("tie-v1.csv", 40, seed=104, duplicate_ratio=0.0, update_ratio=0.0))
    first = [dict(r, updated_at=r["booking_time"]) for r in rows[:30]]
    first += [dict(r, updated_at="2031-01-01T00:00:00Z") for r in rows[30:]]
    repriced = [dict(r, updated_at="", fare_amount="1234.56") for r in rows[:10]]
    same = [dict(r, updated_at="") for r in rows[10:30]]
    older = [dict(r, updated_at=r["booking_time"], fare_amount="1234.56") for r in rows[30:]]
    [v1] = pipeline.run([write_rows(tmp_path / "tie-v1-explicit.csv", first)])
    [v2] = pipeline.run([write_rows(tmp_path / "tie-v2.csv", repriced + same + older)])

    assert (v1.status, v2.status) == ("SUCCEEDED",) * 2, v2.error
    assert v1.summary["rows_inserted"] == len(rows)
    counts = {k: v2.summary[k] for k in ("rows_inserted", "rows_updated", "rows_unchanged", "rows_stale")}
    assert counts == {"rows_inserted": 0, "rows_updated": 10, "rows_unchanged": 20, "rows_stale": 10}
    assert_conserved(v2.summary)
    assert v2.summary["rows_staged"] == len(rows)
    audit = pipeline.query("SELECT rows_staged, rows_updated, rows_unchanged, rows_stale FROM airline.ingestion_runs "
                           f"WHERE execution_id = '{v2.execution_name}'")[1]
    assert audit == [(len(rows), 10, 20, 10)]
    assert "rows_stale=10" in v2.notification["message"] and "rows_updated=10" in v2.notification["message"]
    repriced_ids = scalar(pipeline, "SELECT COUNT(*) FROM airline.bookings "
                                    "WHERE booking_id LIKE 'BK104-%' AND fare_amount = 1234.56")
    assert repriced_ids == 10, "the tie went to the later file; the stale rows were not applied"


def _pipeline_definition(assembly: CloudAssembly) -> dict:
    template = assembly.template
    for lid in template.resources_of_type("AWS::StepFunctions::StateMachine"):
        definition = json.loads(template.properties(lid)["DefinitionString"])
        if "Start crawler" in definition.get("States", {}):
            return definition
    raise AssertionError("no pipeline state machine in the template")


def _transitions(state: dict) -> set[str]:
    targets = {state.get("Next"), state.get("Default")}
    targets |= {choice["Next"] for choice in state.get("Choices", [])}
    targets |= {catch["Next"] for catch in state.get("Catch", [])}
    return {t for t in targets if t}


# -- `airline-ingest local status` on this pipeline's state directory -------------------------

def test_local_status_follows_a_run_live_then_shows_its_committed_counts(pipeline, make_file):
    import os
    import subprocess
    import sys
    import time

    from airline_local import status as run_status

    cli = [sys.executable, "-m", "airline_local.cli", "local", "status", "--state-dir", str(pipeline.state_dir)]
    assert run_status.emulator_endpoint(pipeline.state_dir) == pipeline.emulator.endpoint_url
    upload = pipeline.upload(make_file("status.csv", 30, seed=1501, duplicate_ratio=0.0, update_ratio=0.0))

    def current() -> list:
        return run_status.collect(pipeline.state_dir, query=pipeline.query, client=pipeline.emulator.client)

    deadline = time.monotonic() + 60
    while not [r for r in current() if r.file.endswith("/status.csv") and r.status == "RUNNING"]:
        assert time.monotonic() < deadline, "the upload's execution never showed as RUNNING"
        time.sleep(0.2)
    [running] = [r for r in current() if r.file.endswith("/status.csv")]
    assert running.current_state and running.state_machine and running.seconds is not None
    # The operator's view from another terminal while the run is in progress: a live table that
    # ends when the run does.
    wide = {**os.environ, "COLUMNS": "200"}  # rich's width off a terminal: room for every column
    watcher = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=wide)
    result = pipeline.wait(upload)
    out, err = watcher.communicate(timeout=180)
    assert result.status == "SUCCEEDED", result.error
    assert watcher.returncode == 0, err
    assert "in progress: the table stays live until they end" in err
    [line] = [x for x in out.splitlines() if "status.csv" in x]
    assert "SUCCEEDED" in line and "RUNNING" not in line

    done = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["live"] is True
    [run] = [r for r in document["runs"] if r["execution"] == result.execution_name]
    assert run["status"] == "SUCCEEDED" and run["current_state"] is None and run["error"] is None
    assert run["file"] == result.summary["source_file"]
    assert {k: run["rows"][k] for k in ("rows_read", "rows_inserted", "rows_quarantined")} == {
        k: result.summary[k] for k in ("rows_read", "rows_inserted", "rows_quarantined")}
    assert run["rows"]["rows_read"] == 30 and run["seconds"] > 0
