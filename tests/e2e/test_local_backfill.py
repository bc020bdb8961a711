"""The backfill, end to end in local mode (issue 15): small files (6 here, to keep make test
within its budget; BACKFILL_E2E_FILES=50 runs the issue's 50), some with bad rows, one
unreadable, bookings repeated across files, and one object that is not a booking file (skipped),
through the synthesized backfill state machine; then the same files one per upload through the
per-file pipeline into an emptied warehouse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from airline_local.backfill import run_backfill
from airline_local.generator import write_csv
from airline_local.pipeline import LocalPipeline, temporary_state_dir
from e2e_helpers import read_rows, write_rows

pytestmark = pytest.mark.slow
FILES = int(os.environ.get("BACKFILL_E2E_FILES", "6"))
# Run-specific columns: everything else of a booking must not depend on how it was loaded.
RUN_COLUMNS = ("source_file", "execution_id", "ingested_at")
# The run summary's counts, in the order the email's "Rows by outcome" line names them.
COUNTS = ("rows_read", "rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated", "rows_unchanged",
          "rows_stale")
MAX_REJECT_RATIO = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]["maxRejectRatio"]


@pytest.fixture(scope="module")
def pipeline():
    # Failures are expected here (bad files): tolerate them so that the map run completes.
    # glueMaxConcurrentRuns: the one-by-one half starts every job at once (they queue for the
    # warm workers) instead of retrying refused starts, whose local budget (2 s intervals, 25
    # attempts: ~3.5 min) a loaded machine outlasts (bench.backfill: 5 of 24 files lost so).
    context = {"backfillToleratedFailurePercentage": 50, "backfillMaxConcurrency": 4,
               "glueMaxConcurrentRuns": FILES}
    with temporary_state_dir("airline-backfill-") as state_dir, LocalPipeline(state_dir, context=context) as running:
        yield running


def make_files(directory: Path) -> tuple[list[Path], str, dict[str, int]]:
    """FILES (at least 6) files: clean ones, two with many bad rows (quarantined, or past
    maxRejectRatio: the file fails), one unreadable, and bookings repeated across files. Returns
    (files, unreadable, {file name: bad rows written})."""
    directory.mkdir()
    files, bad = [], {}
    for i in range(FILES - 1):
        path = directory / f"bookings_{i:02d}.csv"
        kinds = write_csv(path, 6, seed=15_000 + i, bad_ratio=0.5 if i in (2, FILES - 3) else 0.0)
        bad[path.name] = sum(n for kind, n in kinds.items() if kind.startswith("bad:"))
        files.append(path)
    # Duplicates across files: the last readable file repeats file 1's bookings.
    last = FILES - 2
    files[last] = write_rows(directory / f"bookings_{last:02d}.csv", read_rows(files[1]))
    bad[files[last].name] = bad[files[1].name]
    unreadable = directory / f"bookings_{FILES - 1:02d}.csv.gz"
    unreadable.write_bytes(b"not gzip at all")
    files.append(unreadable)
    return files, unreadable.name, bad


def bookings(pipeline: LocalPipeline) -> list[tuple]:
    columns, _ = pipeline.query("SELECT * FROM airline.bookings LIMIT 0")
    kept = [c for c in columns if c not in RUN_COLUMNS]
    return pipeline.query(f"SELECT {', '.join(kept)} FROM airline.bookings ORDER BY {', '.join(kept)}")[1]


def test_backfill_accounts_for_every_file_sends_one_email_and_loads_as_one_by_one(pipeline, tmp_path):
    files, unreadable, bad = make_files(tmp_path / "history")
    # Not a booking file (given by name, so uploaded under the prefix): skipped, not failed.
    notes = tmp_path / "notes.txt"
    notes.write_text("exported by the old system\n")
    mails_before = len(pipeline.emulator.mailbox.messages())
    executions_before = pipeline.emulator.client("stepfunctions").list_executions(
        stateMachineArn=pipeline.stack.state_machine_arn)["executions"]

    result = run_backfill(pipeline, [tmp_path / "history", notes], timeout=1800)

    assert result.status == "SUCCEEDED", result.error
    # Every object accounted for: a result per object, the failing files failed with their cause:
    # exactly the unreadable one and those with more bad rows than maxRejectRatio allows.
    assert sorted(Path(f.file).name for f in result.files) == sorted([*(f.name for f in files), notes.name])
    assert {Path(f.file).name: f.status for f in result.files if f.status not in ("SUCCEEDED", "FAILED")} == \
        {notes.name: "SKIPPED"}
    failed = {Path(f.file).name: f for f in result.files if f.status == "FAILED"}
    rejecting = {name for name, count in bad.items() if count / 6 > MAX_REJECT_RATIO}
    assert set(failed) == {unreadable} | rejecting, (sorted(failed), bad)
    assert rejecting, "no file had too many bad rows: the generated files no longer test a rejected file"
    assert all(f.error.startswith(("IngestionFailed: ", "JobRunFailed: ")) for f in failed.values())
    for name in rejecting:
        assert f"{bad[name]} of 6 rows rejected" in failed[name].error, failed[name].error
    # Every count cross-checked: each file's summary adds up and matches its audit row and what it
    # wrote, the totals are the sums of the files', and the warehouse holds the rows inserted.
    succeeded = result.succeeded
    assert len(succeeded) == len(files) - len(failed)
    for file in succeeded:
        summary = file.summary
        assert summary["rows_read"] == 6 and summary["rows_quarantined"] == bad[Path(file.file).name]
        assert summary["rows_read"] == sum(summary[k] for k in COUNTS[1:]), summary
        audit = pipeline.query(f"SELECT {', '.join(COUNTS)} FROM airline.ingestion_runs "
                               f"WHERE execution_id = '{file.execution_id}'")[1]
        assert audit == [tuple(summary[k] for k in COUNTS)], (file.file, audit)
    assert result.rows == {k: sum(f.summary[k] for f in succeeded) for k in COUNTS}
    assert result.rows["rows_duplicate"] + result.rows["rows_unchanged"] + result.rows["rows_updated"] > 0
    assert pipeline.query("SELECT count(*) FROM airline.bookings")[1] == [(result.rows["rows_inserted"],)]
    # One email, naming the counts (every outcome), the failed files, the skipped object and where
    # the per-file results are.
    mails = pipeline.emulator.mailbox.messages()[mails_before:]
    assert len(mails) == 1
    assert result.notification is not None and result.notification["subject"] == "Airline booking backfill finished"
    body = result.notification["message"]
    assert f"{len(succeeded)} file(s) succeeded, {len(failed)} failed, 1 other object(s) skipped." in body
    assert "Rows by outcome: " + ", ".join(f"{k}={result.rows[k]}" for k in COUNTS) in body
    assert all(name in body for name in failed) and result.results_uri in body
    # The backfill's uploads started no per-file execution (the rule matches raw/bookings/ only).
    after = pipeline.emulator.client("stepfunctions").list_executions(
        stateMachineArn=pipeline.stack.state_machine_arn)["executions"]
    assert len(after) == len(executions_before)

    backfilled = bookings(pipeline)
    assert backfilled
    # The same files one per upload, into an emptied warehouse: the same bookings.
    with psycopg.connect(pipeline.postgres.dsn, autocommit=True) as connection:
        connection.execute("TRUNCATE airline.bookings")
    one_by_one = pipeline.run(files, concurrent=True, timeout=900)
    assert {Path(r.file).name for r in one_by_one if r.status != "SUCCEEDED"} == set(failed)  # the same files fail
    assert bookings(pipeline) == backfilled


# -- the payload limit: a backfill whose results are larger than a state may hold -------------
# Objects that are not booking files are skipped by the children without a job run, so a large
# map run costs little here; their keys are long so that 150 of them give ResultWriter files of
# ~350 KB, over Step Functions' 256 KiB payload limit (each entry repeats the key).
MANY_OBJECTS = 150
OLD_SUMMARY_STATES = Path(__file__).parent / "old_backfill_summary.asl.json"  # stacks/backfill.py before issue 21


@pytest.fixture(scope="module")
def large_backfill(pipeline):
    """One backfill of MANY_OBJECTS skipped objects: (execution description, its history)."""
    import json
    import uuid

    from stacks.storage import BACKFILL_PREFIX

    s3, sfn = pipeline.emulator.client("s3"), pipeline.emulator.client("stepfunctions")
    name = f"large-{uuid.uuid4().hex[:8]}"
    prefix = f"{BACKFILL_PREFIX}{name}/"
    for index in range(MANY_OBJECTS):
        s3.put_object(Bucket=pipeline.stack.raw_bucket, Key=f"{prefix}{index:04d}-{'n' * 900}.txt", Body=b"not bookings")
    arn = sfn.start_execution(stateMachineArn=pipeline.stack.backfill_state_machine_arn, name=name,
                              input=json.dumps({"prefix": prefix}))["executionArn"]
    return wait_for_end(sfn, arn), sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def wait_for_end(sfn, execution_arn: str, timeout: float = 300) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while (description := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{execution_arn} still running after {timeout} s"
        time.sleep(0.3)
    return description


def mails_naming(pipeline: LocalPipeline, execution_name: str) -> list:
    from airline_local.pipeline import _body

    return [m for m in pipeline.emulator.mailbox.messages() if f"execution {execution_name}" in _body(m)]


def test_a_backfill_whose_results_exceed_256_kib_succeeds_with_one_email(pipeline, large_backfill):
    import json

    from airline_local.aws.patches.stepfunctions_data_limit import PAYLOAD_LIMIT_BYTES, payload_bytes

    description, events = large_backfill
    assert description["status"] == "SUCCEEDED", description
    output = json.loads(description["output"])
    assert (output["files_succeeded"], output["files_failed"], output["objects_skipped"]) == (0, 0, MANY_OBJECTS)
    # The results really are larger than a state may hold...
    bucket, key = output["results"].removeprefix("s3://").split("/", 1)
    s3 = pipeline.emulator.client("s3")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert sum(f["Size"] for f in manifest["ResultFiles"]["SUCCEEDED"]) > PAYLOAD_LIMIT_BYTES
    # ...and no state's input or output held them (the summary function read them, as its role).
    payloads = [d.get("input") or d.get("output") for e in events for k, d in e.items()
                if k in ("stateEnteredEventDetails", "stateExitedEventDetails")]
    assert payloads and max(payload_bytes(json.loads(p)) for p in payloads) < 16_384
    [mail] = mails_naming(pipeline, description["name"])
    assert f"0 file(s) succeeded, 0 failed, {MANY_OBJECTS} other object(s) skipped" in mail.get_body().get_content()
    assert output["results"] in mail.get_body().get_content()


def test_the_old_design_fails_that_backfill_with_data_limit_exceeded_and_no_email(pipeline, large_backfill):
    """The states that followed the map before issue 21 (read the result files into the state,
    then sum them in one Pass), on the same results: a terminal States.DataLimitExceeded that the
    Catch on States.ALL does not take, so the execution fails with no email."""
    import json
    import uuid

    from airline_local.aws.cfn import Template
    from airline_local.local_stack import _create_state_machine

    description, events = large_backfill
    [summarize_input] = [e["stateEnteredEventDetails"]["input"] for e in events
                         if e.get("stateEnteredEventDetails", {}).get("name") == "Summarize"]
    sfn = pipeline.emulator.client("stepfunctions")
    machine = pipeline.stack.backfill_state_machine_arn
    deployed = json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"])
    old = json.loads(OLD_SUMMARY_STATES.read_text())
    tail = ("Notify backfill done", "Notify backfill failure", "Succeeded", "Failed")
    definition = {"StartAt": old["StartAt"], "States": {**old["States"], **{n: deployed["States"][n] for n in tail}}}

    template = pipeline.template
    [lid] = [lid for lid in template.resources_of_type("AWS::StepFunctions::StateMachine") if template.ref(lid) == machine]
    body = json.loads(json.dumps(template.body))
    properties = body["Resources"][lid]["Properties"]
    properties.pop("DefinitionSubstitutions", None)
    properties.update(DefinitionString=json.dumps(definition), StateMachineName=f"old-summary-{uuid.uuid4().hex[:6]}")
    old_machine = _create_state_machine(Template(body, region=template.region, stack_name=template.stack_name), lid, sfn)
    name = description["name"] + "-old"
    try:
        arn = sfn.start_execution(stateMachineArn=old_machine, name=name, input=summarize_input)["executionArn"]
        failed = wait_for_end(sfn, arn)
    finally:  # one state machine per role: the backfill's map run finds its machine by its role
        sfn.delete_state_machine(stateMachineArn=old_machine)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.DataLimitExceeded"), failed
    assert mails_naming(pipeline, name) == []


def backfill_roles(body: dict) -> tuple[str, str]:
    """(the backfill state machine's role, the summary function's role): logical ids."""
    from airline_local.aws.cfn import Template

    template = Template(body)
    roles = {template.get_att(lid, "Arn"): lid for lid in template.resources_of_type("AWS::IAM::Role")}
    machine = body["Outputs"]["BackfillStateMachineArn"]["Value"]["Ref"]
    [function] = [lid for lid in template.resources_of_type("AWS::Lambda::Function") if lid.startswith("BackfillSummaryFunction")]
    return roles[template.properties(machine)["RoleArn"]], roles[template.properties(function)["Role"]]


@pytest.mark.parametrize("denied, error, cause", [
    ("invoke", "Lambda.AccessDeniedException", "lambda:InvokeFunction"),
    ("read", "AccessDenied", "s3:GetObject"),
    ("decrypt", "AccessDenied", "kms:Decrypt"),
])
def test_the_summary_is_authorized_as_aws_would(pipeline, denied, error, cause):
    """Without the state machine's lambda:InvokeFunction, or the function role's s3:GetObject or
    kms:Decrypt, the backfill mails its failure with the denial (the function runs as its role)."""
    import json
    import uuid

    from stacks.storage import BACKFILL_PREFIX
    from tests.local.iam_mutations import remove_action

    def mutation(body: dict) -> None:
        machine_role, function_role = backfill_roles(body)
        if denied == "invoke":
            remove_action(body, machine_role, "lambda:InvokeFunction")
        else:
            remove_action(body, function_role, {"read": "s3:GetObject", "decrypt": "kms:Decrypt"}[denied])

    s3, sfn = pipeline.emulator.client("s3"), pipeline.emulator.client("stepfunctions")
    name = f"denied-{denied}-{uuid.uuid4().hex[:6]}"
    prefix = f"{BACKFILL_PREFIX}{name}/"
    s3.put_object(Bucket=pipeline.stack.raw_bucket, Key=f"{prefix}readme.txt", Body=b"not bookings")
    pipeline.check_iam_with(mutation)
    try:
        arn = sfn.start_execution(stateMachineArn=pipeline.stack.backfill_state_machine_arn, name=name,
                                  input=json.dumps({"prefix": prefix}))["executionArn"]
        description = wait_for_end(sfn, arn)
    finally:
        pipeline.check_iam_with(None)
    assert (description["status"], description["error"]) == ("FAILED", "BackfillFailed"), description
    [mail] = mails_naming(pipeline, name)
    body = mail.get_body().get_content()
    assert mail["Subject"] == "Airline booking backfill FAILED"
    assert f"Error: {error}." in body and cause in body, body
