"""Faults injected into the running local stack: each run fails loudly (FAILED, a failure email
naming the cause) or recovers, and the warehouse is never half-loaded.

The hooks reach into the real components, never replace them: PostgreSQL is stopped for real in
the middle of the load transaction, the Glue job's process group is killed with SIGKILL, the
emulated Glue refuses one StartJobRun, the crawler's next crawl fails, EventBridge receives
the same S3 event twice and both executions claim it at once (one ends at the idempotency gate),
S3 loses its reply to a stored claim (the execution finds its own marker and goes on), and S3
refuses the claim past its retries (mailed as "Claim delivery failed").
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from .checks import (
    assert_accounted_in_warehouse,
    assert_nothing_loaded,
    audit_row,
    rows_with_prefix,
    run_keyed,
    scalar,
)
from .corpus import rows, to_csv

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


def booking_file(folder: Path, tag: str, count: int) -> Path:
    path = folder / f"rl-{tag.lower()}.csv"
    path.write_text(to_csv(rows(tag, count)), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# PostgreSQL stopped in the middle of the load transaction
# --------------------------------------------------------------------------------------------


def test_postgres_stopped_during_the_load_fails_loudly_then_a_rerun_loads_once(pipeline, tmp_path):
    path = booking_file(tmp_path, "PGDOWN", 30)
    key = f"raw/bookings/{path.name}"
    warehouse, server = pipeline.warehouse, pipeline.postgres
    port = server.port
    airports_before = scalar(pipeline, "SELECT COUNT(*) FROM airline.airports")
    stopped_at: list[str] = []
    original = warehouse.execute_batch

    def execute_batch(statements, **kwargs):
        inner = kwargs.get("on_statement")

        def on_statement(index: int) -> None:
            if inner is not None:
                inner(index)
            # The load has already replaced the airports and written its audit row, uncommitted:
            # stop the server (fast shutdown terminates the session) before the MERGE runs.
            if statements[index].lstrip().upper().startswith("MERGE") and not stopped_at:
                stopped_at.append(statements[index].split("\n", 1)[0])
                server.stop()

        return original(statements, **{**kwargs, "on_statement": on_statement})

    warehouse.execute_batch = execute_batch
    try:
        [failed] = run_keyed(pipeline, [(path, key)])
    finally:
        del warehouse.execute_batch
        server.start()

    assert stopped_at, "the load never reached its MERGE"
    assert server.port == port, "PostgreSQL came back on another port: the warehouse DSN went stale"
    assert failed.status == "FAILED", failed.states
    assert "FAILED" in failed.notification["subject"]
    message = failed.notification["message"]
    assert key in message and "LoadError" in message, message
    assert failed.summary["status"] == "FAILED" and "LoadError" in failed.summary["error"]
    assert f"Cause: {failed.summary['error']} (execution" in message, message  # quoted from the summary
    # Nothing of the transaction survived: no rows, no audit row, the airports as before.
    assert_nothing_loaded(pipeline, failed, "RL-PGDOWN-")
    assert scalar(pipeline, "SELECT COUNT(*) FROM airline.airports") == airports_before

    [rerun] = run_keyed(pipeline, [(path, key)])
    assert rerun.status == "SUCCEEDED", rerun.error
    assert assert_accounted_in_warehouse(pipeline, rerun)["rows_inserted"] == 30
    assert rows_with_prefix(pipeline, "RL-PGDOWN-") == 30


# --------------------------------------------------------------------------------------------
# the Glue job's process killed mid-run
# --------------------------------------------------------------------------------------------


def _run_dir_for(pipeline, key: str) -> Path | None:
    mirror_name = Path(pipeline.stack.raw_bucket) / key
    for run_dir in pipeline.emulator.job_runner.work_dir.glob("*/*"):
        if (run_dir / "s3" / mirror_name).is_file():
            return run_dir
    return None


def _processes_in(work_dir: Path) -> list[int]:
    """PIDs whose working directory is the run's `work` folder (the job script and its JVM)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == work_dir:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_glue_job_killed_mid_run_fails_loudly_and_loads_nothing(pipeline, tmp_path):
    path = booking_file(tmp_path, "KILL", 20_000)
    key = f"raw/bookings/{path.name}"
    loads: list[str] = []
    data_api = pipeline.data_api
    original = data_api.batch_execute_statement

    def batch_execute_statement(params, caller=None):
        loads.append(params.get("StatementName", ""))
        return original(params, caller)

    data_api.batch_execute_statement = batch_execute_statement
    killed: dict[str, object] = {}
    try:
        upload = pipeline.upload(path, key)
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            run_dir = _run_dir_for(pipeline, key)
            # Mid-run: Spark is writing the staged Parquet; the load has not been submitted.
            if run_dir is not None and (run_dir / "s3" / pipeline.stack.raw_bucket / "staging").is_dir():
                pids = _processes_in(run_dir / "work")
                if pids:
                    group = os.getpgid(min(pids))
                    os.killpg(group, signal.SIGKILL)
                    killed.update(run_dir=run_dir, pids=pids)
            time.sleep(0.02)
        result = pipeline.wait(upload)
    finally:
        del data_api.batch_execute_statement

    assert killed, "the job never reached its staging step"
    assert loads == [], "the job submitted its load before it was killed: the kill came too late"
    assert result.status == "FAILED", result.states
    message = result.notification["message"]
    assert key in message and "killed by SIGKILL" in message, message
    # No run summary to quote: the job run's own error (its JSON, with the ErrorMessage).
    assert result.states[-4:] == ["Read failure summary", "Run ETL job failed", "Notify failure", "Failed"]
    assert result.summary is None  # the process had no chance to write one
    assert_nothing_loaded(pipeline, result, "RL-KILL-")
    assert _processes_in(killed["run_dir"] / "work") == [], "the job's JVM outlived the kill"


# --------------------------------------------------------------------------------------------
# a failing crawler
# --------------------------------------------------------------------------------------------


def test_a_failed_crawl_takes_the_failure_path(pipeline, tmp_path):
    path = booking_file(tmp_path, "CRAWL", 5)
    injected = "Internal Service Exception: injected by the reliability tests"
    pipeline.emulator.crawler_settings.fail_next_crawl(injected)
    try:
        [result] = run_keyed(pipeline, [(path, f"raw/bookings/{path.name}")])
    finally:
        pipeline.emulator.crawler_settings.clear_injected_failures()

    assert result.status == "FAILED"
    assert "Crawl failed" in result.states and "Run ETL job" not in result.states
    assert "FAILED" in result.notification["subject"]
    assert injected in result.notification["message"]
    assert result.summary is None
    assert_nothing_loaded(pipeline, result, "RL-CRAWL-")


# --------------------------------------------------------------------------------------------
# Glue refuses to start the job run
# --------------------------------------------------------------------------------------------


def test_a_job_run_glue_refuses_to_start_is_mailed_with_glues_error(pipeline, tmp_path, monkeypatch):
    """An error Glue raises at StartJobRun that no Retry covers: the failure path, with the error
    as Glue named it, and nothing loaded."""
    from moto.glue.exceptions import ResourceNumberLimitExceededException
    from moto.glue.models import FakeJob

    refusal = "injected by the reliability tests: too many job runs in this account"
    original = FakeJob.start_job_run
    refused: list[str] = []

    def start_job_run(self, *args, **kwargs):
        if not refused:
            refused.append(self.name)
            raise ResourceNumberLimitExceededException(refusal)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FakeJob, "start_job_run", start_job_run)
    path = booking_file(tmp_path, "REFUSED", 5)
    [result] = run_keyed(pipeline, [(path, f"raw/bookings/{path.name}")])

    assert refused and result.status == "FAILED", result.states
    assert result.states[-4:] == ["Read failure summary", "Run ETL job failed", "Notify failure", "Failed"]
    message = result.notification["message"]
    assert "at step: Run ETL job. Error: Glue.ResourceNumberLimitExceededException" in message, message
    assert refusal in message, message
    assert result.summary is None  # the job never ran
    assert_nothing_loaded(pipeline, result, "RL-REFUSED-")


# --------------------------------------------------------------------------------------------
# the same S3 event delivered twice, both executions claiming the upload at the same moment
# --------------------------------------------------------------------------------------------


@pytest.fixture
def claims_meet(monkeypatch):
    """The first PutObject of a delivery marker waits at the S3 front door until a second one has
    arrived (or 60 s), and storing a marker takes 0.2 s: both claims of one upload are checked
    against S3 at the same moment, as two executions started together would be. Only S3's
    atomic conditional write (airline_local/aws/patches/s3.py) lets exactly one through."""
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    meet = threading.Barrier(2, timeout=60)
    arrived: list[str] = []
    put_object, store = S3Response.put_object, S3Backend.put_object

    def at_the_door(self):
        key = self.parse_key_name()
        if key.startswith("deliveries/"):
            arrived.append(key)
            try:
                if len(arrived) <= 2:  # the two first claims; the loser's retries pass
                    meet.wait()
            except threading.BrokenBarrierError:
                pass
        return put_object(self)

    def slow_store(self, bucket_name, key_name, *args, **kwargs):
        if key_name.startswith("deliveries/"):
            time.sleep(0.2)
        return store(self, bucket_name, key_name, *args, **kwargs)

    monkeypatch.setattr(S3Response, "put_object", at_the_door)
    monkeypatch.setattr(S3Backend, "put_object", slow_store)
    return arrived


def test_a_duplicated_s3_event_claimed_at_once_loads_and_mails_once(pipeline, tmp_path, claims_meet):
    """EventBridge delivers the same Object Created event twice (at-least-once) and both
    executions claim the upload at the same moment: exactly one proceeds; the other gets 412,
    reads the marker, finds another execution's ARN and ends in "Duplicate delivery", before the
    crawl and the job; it loads nothing and sends no email."""
    path = booking_file(tmp_path, "DUPEV", 40)
    key = f"raw/bookings/{path.name}"
    sfn, events = pipeline.emulator.client("stepfunctions"), pipeline.emulator.client("events")
    upload = pipeline.upload(path, key)
    # The event EventBridge delivered for this upload, as the execution received it.
    event = None
    deadline = time.monotonic() + 30
    while event is None and time.monotonic() < deadline:
        for execution in sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn)["executions"]:
            received = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
            if received["detail"]["object"]["key"] == key:
                event = received
        time.sleep(0.1)
    assert event is not None
    sent = events.put_events(Entries=[{
        "Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
    }])
    assert sent["FailedEntryCount"] == 0

    results: list = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, pipeline.wait(upload))) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(claims_meet) >= 2 and len(set(claims_meet)) == 1, claims_meet  # both claimed one marker
    assert [r.status for r in results] == ["SUCCEEDED", "SUCCEEDED"], [r.error for r in results]
    assert sorted(r.states[-1] for r in results) == ["Duplicate delivery", "Succeeded"], [r.states for r in results]
    [loaded] = [r for r in results if r.states[-1] == "Succeeded"]
    [duplicate] = [r for r in results if r.states[-1] == "Duplicate delivery"]
    assert duplicate.states == ["Identify delivery", "Claim delivery", "Delivery already claimed?",
                                "Read delivery marker", "Claimed by this execution?", "Duplicate delivery"]
    assert assert_accounted_in_warehouse(pipeline, loaded)["rows_inserted"] == 40
    assert_nothing_loaded(pipeline, duplicate)
    assert duplicate.summary is None and duplicate.notification is None
    assert rows_with_prefix(pipeline, "RL-DUPEV-") == 40
    # One email about this file, and the duplicate ended quickly (the gate retries twice, <= 3 s).
    mails = [m for m in pipeline.emulator.mailbox.messages() if key in m.get_body(("plain",)).get_content()]
    assert len(mails) == 1, [m["Subject"] for m in mails]
    described = sfn.describe_execution(executionArn=_execution_arn(pipeline, duplicate.execution_name))
    assert (described["stopDate"] - described["startDate"]).total_seconds() < 15
    # The marker names the execution that owns the upload.
    s3 = pipeline.emulator.client("s3")
    markers = s3.list_objects_v2(Bucket=pipeline.stack.raw_bucket, Prefix="deliveries/").get("Contents", [])
    owners = {s3.get_object(Bucket=pipeline.stack.raw_bucket, Key=m["Key"])["Body"].read().decode() for m in markers}
    assert _execution_arn(pipeline, loaded.execution_name) in owners
    assert _execution_arn(pipeline, duplicate.execution_name) not in owners


# --------------------------------------------------------------------------------------------
# the reply to the claim lost: S3 stored the marker, the execution saw a 5xx and retried
# --------------------------------------------------------------------------------------------


def test_a_lost_reply_to_the_claim_still_loads_the_file_once_and_mails_success(pipeline, tmp_path):
    """The first PutObject of the marker is stored but answered 500: "Claim delivery" retries,
    gets 412 for its own marker, reads it back, finds its own execution's ARN and goes on."""
    from airline_local.aws.patches.s3 import S3_FAULTS

    path = booking_file(tmp_path, "LOSTREPLY", 25)
    key = f"raw/bookings/{path.name}"
    S3_FAULTS.lose_reply_of_next_put("deliveries/")
    try:
        [result] = run_keyed(pipeline, [(path, key)])
        lost = list(S3_FAULTS.lost)
    finally:
        S3_FAULTS.clear()

    assert len(lost) == 1, lost  # the fault did happen, to the claim
    assert result.status == "SUCCEEDED", (result.states, result.error)
    assert result.states[:6] == ["Identify delivery", "Claim delivery", "Delivery already claimed?",
                                 "Read delivery marker", "Claimed by this execution?", "Start crawler"]
    assert result.states[-1] == "Succeeded"
    assert assert_accounted_in_warehouse(pipeline, result)["rows_inserted"] == 25
    assert rows_with_prefix(pipeline, "RL-LOSTREPLY-") == 25
    mails = [m for m in pipeline.emulator.mailbox.messages() if key in m.get_body(("plain",)).get_content()]
    assert [m["Subject"] for m in mails] == ["Airline booking ingestion succeeded"]
    marker = pipeline.emulator.client("s3").get_object(Bucket=pipeline.stack.raw_bucket, Key=lost[0])
    assert marker["Body"].read().decode() == _execution_arn(pipeline, result.execution_name)


# --------------------------------------------------------------------------------------------
# the claim refused by S3 with a non-412 error, past its retries
# --------------------------------------------------------------------------------------------


def test_a_claim_s3_keeps_refusing_is_mailed_as_claim_delivery_failed(pipeline, tmp_path):
    """503 on the claim and on both retries: S3.S3Exception without `Status Code: 412`, so "Delivery
    already claimed?" sends it to "Claim delivery failed": an email naming S3's answer, FAILED,
    nothing crawled or loaded (not a silent duplicate)."""
    from airline_local.aws.patches.s3 import S3_FAULTS

    path = booking_file(tmp_path, "CLAIM503", 5)
    key = f"raw/bookings/{path.name}"
    S3_FAULTS.refuse_next_puts("deliveries/", 3)
    try:
        [result] = run_keyed(pipeline, [(path, key)])
        refused = list(S3_FAULTS.refused)
    finally:
        S3_FAULTS.clear()

    assert len(refused) == 3 and len(set(refused)) == 1, refused  # the claim, then its two retries
    assert result.status == "FAILED", result.states
    assert result.states == ["Identify delivery", "Claim delivery", "Delivery already claimed?",
                             "Claim delivery failed", "Notify failure", "Failed"], result.states
    message = result.notification["message"]
    assert f"{key} FAILED at step: Claim delivery. Error: S3.S3Exception" in message, message
    assert "Status Code: 503" in message and "Please reduce your request rate" in message, message
    assert result.summary is None
    assert_nothing_loaded(pipeline, result, "RL-CLAIM503-")
    s3 = pipeline.emulator.client("s3")
    assert "Contents" not in s3.list_objects_v2(Bucket=pipeline.stack.raw_bucket, Prefix=refused[0])
    # Its upload event still waits in the crawler's queue: the next test's crawl reads this file
    # too, which is harmless (a valid file); the execution never crawled it.


def _execution_arn(pipeline, name: str) -> str:
    return pipeline.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
