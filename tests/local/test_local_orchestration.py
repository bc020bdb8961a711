"""The five orchestration faults (DESIGN.md section 4) through the emulator, on the SYNTHESIZED
state machine: the CDK app is synthesized once for the module (as local mode does it, with
LOCAL_CONTEXT) and deployed with airline_local.local_stack.deploy, so these tests fail when the
deployed definition does. Only the Glue job's script is swapped (emulator_helpers.STAND_IN_JOB: no
Spark, the real RunSummary); crawler timing and failures come from the emulator's crawler controls.

Each test checks the outcome AWS would give, including what must NOT happen (a job started after a
failed crawl, a second execution). The module shares one deployed stack: every test uploads its own
key and looks only at its own execution, job runs and notifications, and leaves the stack idle.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from emulator_helpers import (
    deploy_synthesized_pipeline,
    entered_states,
    history,
    s3_event,
    wait_for,
    wait_for_execution,
)

from airline_local.local_stack import synthesize
from airline_local.aws.patches.runtime import CrawlerSettings
from airline_local.pipeline import LOCAL_CONTEXT

CSV = b"booking_id,route\n1,AB\n2,CD\n3,EF\n"
SUCCEEDED_SUBJECT = "Airline booking ingestion succeeded"
FAILED_SUBJECT = "Airline booking ingestion FAILED"


@pytest.fixture(scope="module")
def pipeline(emulator, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("orchestration")
    cdk_out = synthesize(work_dir / "cdk.out", LOCAL_CONTEXT)
    sfn = emulator.client("stepfunctions")
    if sfn.list_state_machines()["stateMachines"]:
        pytest.skip("the emulator is shared with a suite that already deployed a stack into it")
    return deploy_synthesized_pipeline(emulator, cdk_out, work_dir)


@pytest.fixture(autouse=True)
def idle_stack_after(pipeline):
    yield
    pipeline.wait_until_idle()


def crawler_states_seen(sfn, execution_arn: str) -> list[tuple[float, str]]:
    """(time, State) of every GetCrawler result in the execution history."""
    seen = []
    for event in history(sfn, execution_arn):
        details = event.get("taskSucceededEventDetails")
        if details and details["resource"] == "getCrawler":
            seen.append((event["timestamp"].timestamp(), json.loads(details["output"])["Crawler"]["State"]))
    return seen


def key(name: str) -> str:
    return f"raw/bookings/{name}-{uuid.uuid4().hex[:6]}.csv"


def test_upload_crawls_runs_the_job_and_mails_success(emulator, pipeline, record_property):
    object_key = key("day1")
    started = time.monotonic()
    pipeline.upload(object_key, CSV)
    execution = pipeline.execution_for(object_key)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])
    seconds = time.monotonic() - started
    record_property("upload_to_end_seconds", round(seconds, 2))
    print(f"\nS3 put -> execution end (stand-in job): {seconds:.2f} s")

    assert result["status"] == "SUCCEEDED", result
    assert entered_states(sfn, execution["executionArn"])[-4:] == [
        "Job succeeded?", "Read run summary", "Notify success", "Succeeded"
    ]
    [run] = pipeline.job_runs_for(execution["name"])
    assert run["JobRunState"] == "SUCCEEDED"
    assert run["Arguments"]["--source_uri"] == f"s3://{pipeline.bucket}/{object_key}"
    [mail] = pipeline.mails_for(execution["name"])
    assert mail["Subject"] == SUCCEEDED_SUBJECT
    body = mail.get_content()
    assert f"Ingestion of s3://{pipeline.bucket}/{object_key} succeeded" in body
    assert "rows_read=3," in body and "rows_inserted=3," in body
    table = emulator.client("glue").get_table(DatabaseName="airline_bookings", Name="bookings")["Table"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["booking_id", "route"]
    assert seconds < 15


def test_uploads_outside_the_prefix_or_suffix_start_nothing(emulator, pipeline):
    control = key("control") + ".gz"  # matches the rule: raw/bookings/*.csv.gz
    ignored = ["raw/other/day1.csv", "raw/bookings/notes.txt", "staging/x/raw/bookings/day1.csv"]
    before = len(emulator.client("stepfunctions").list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"])
    for ignored_key in ignored:
        pipeline.upload(ignored_key, CSV)
    pipeline.upload(control, CSV)
    pipeline.execution_for(control)
    time.sleep(0.3)
    after = emulator.client("stepfunctions").list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"]
    assert len(after) == before + 1
    assert all(pipeline.executions_for(k) == [] for k in ignored)


def test_failed_crawl_mails_failure_never_starts_the_job_and_fails(emulator, pipeline):
    emulator.crawler_settings.fail_next_crawl("Internal Service Exception")
    object_key = key("day2")
    pipeline.upload(object_key, CSV)
    execution = pipeline.execution_for(object_key)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])

    assert result["status"] == "FAILED"
    assert result["error"] == "IngestionFailed"
    states = entered_states(sfn, execution["executionArn"])
    assert "Crawl failed" in states and "Run ETL job" not in states
    assert pipeline.job_runs_for(execution["name"]) == []
    [mail] = pipeline.mails_for(execution["name"])
    assert mail["Subject"] == FAILED_SUBJECT
    body = mail.get_content()
    assert "FAILED at step: Get crawler. Error: CrawlFailed." in body
    assert "The last crawl ended FAILED" in body and "Internal Service Exception" in body


def test_crawler_already_running_is_waited_for_then_the_run_goes_on(emulator, pipeline):
    # Someone else's crawl runs 5 s: on a loaded machine the execution's first GetCrawler (after
    # the claim, the refused StartCrawler and a Wait) came after a 2 s crawl had ended (make test).
    emulator.crawler_settings = CrawlerSettings(running_seconds=5.0, stopping_seconds=0.3)
    emulator.client("glue").start_crawler(Name=pipeline.crawler)  # someone else's crawl
    object_key = key("day3")
    pipeline.upload(object_key, CSV)
    execution = pipeline.execution_for(object_key)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])

    assert result["status"] == "SUCCEEDED", result
    busy = [e for e in history(sfn, execution["executionArn"])
            if e.get("taskFailedEventDetails", {}).get("error") == "Glue.CrawlerRunningException"]
    assert len(busy) == 1
    seen = [state for _, state in crawler_states_seen(sfn, execution["executionArn"])]
    assert seen[0] in ("RUNNING", "STOPPING") and seen[-1] == "READY"
    assert [r["JobRunState"] for r in pipeline.job_runs_for(execution["name"])] == ["SUCCEEDED"]


def test_job_starts_only_once_the_crawler_is_ready_after_stopping(emulator, pipeline):
    emulator.crawler_settings = CrawlerSettings(running_seconds=0.2, stopping_seconds=2.5)
    object_key = key("day4")
    pipeline.upload(object_key, CSV)
    execution = pipeline.execution_for(object_key)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])

    assert result["status"] == "SUCCEEDED", result
    seen = crawler_states_seen(sfn, execution["executionArn"])
    assert "STOPPING" in [state for _, state in seen] and seen[-1][1] == "READY"
    last_stopping = max(at for at, state in seen if state == "STOPPING")
    [run] = pipeline.job_runs_for(execution["name"])
    assert run["StartedOn"].timestamp() > last_stopping


def test_failed_job_mails_failure_quoting_the_job_error_and_fails(emulator, pipeline):
    object_key = key("day5")
    pipeline.upload(object_key, b"booking_id,route\nFAIL,AB\n")
    execution = pipeline.execution_for(object_key)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])

    assert result["status"] == "FAILED"
    states = entered_states(sfn, execution["executionArn"])
    assert "Job failed" in states and "Notify success" not in states
    [run] = pipeline.job_runs_for(execution["name"])
    expected = f"BookingFileError: s3://{pipeline.bucket}/{object_key}: the file asks to fail"
    assert run["JobRunState"] == "FAILED" and run["ErrorMessage"] == expected
    [mail] = pipeline.mails_for(execution["name"])
    body = mail.get_content()
    assert mail["Subject"] == FAILED_SUBJECT
    assert "FAILED at step: Run ETL job." in body
    assert "the file asks to fail" in body and "BookingFileError" in body
    # the job wrote its failure summary, uploaded to S3 under runs/ as on AWS
    summary = json.loads(emulator.client("s3").get_object(
        Bucket=pipeline.bucket, Key=f"runs/{execution['name']}.json")["Body"].read())
    assert summary["status"] == "FAILED" and "the file asks to fail" in summary["error"]


# -- the poll limit: a crawler that never finishes ---------------------------------------------

FAST_WAITS = 0.01  # Wait states at 1/100: the definition's 1 s poll interval becomes 10 ms


def poll_limit(definition: dict) -> int:
    [choice] = definition["States"]["Too many polls?"]["Choices"]
    assert choice["Variable"] == "$polls" and choice["Next"] == "Crawler timed out", choice
    return int(choice["NumericGreaterThanEquals"])


def assert_crawler_times_out(pipeline, state_machine_arn: str, object_key: str, polls: int, within: float) -> None:
    """The execution gives up on a crawler that stays RUNNING after `polls` polls: FAILED, the
    job never started, a CrawlerTimeout notification. An execution still polling past `polls` fails
    the check at once (no need to wait for `within`, a safety net for a stuck execution)."""
    sfn = pipeline.emulator.client("stepfunctions")
    [execution] = wait_for(lambda: pipeline.executions_for(object_key, state_machine_arn), what="the execution")

    def ended_or_past_the_limit() -> dict | None:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return described
        made = len(crawler_states_seen(sfn, execution["executionArn"]))
        if made > polls:
            raise AssertionError(f"still polling after {made} polls, past the limit of {polls}")
        return None

    result = wait_for(ended_or_past_the_limit, within, 0.5, "the execution to end")
    assert result["status"] == "FAILED", result
    states = entered_states(sfn, execution["executionArn"])
    assert "Crawler timed out" in states and "Run ETL job" not in states
    assert [state for _, state in crawler_states_seen(sfn, execution["executionArn"])] == ["RUNNING"] * polls
    [mail] = pipeline.mails_for(execution["name"])
    assert f"Error: CrawlerTimeout. Cause: The crawler was still RUNNING after {polls} polls" in mail.get_content()


def test_a_crawler_that_never_finishes_fails_the_run_after_the_poll_limit(emulator, pipeline):
    polls = poll_limit(pipeline.definition())
    emulator.wait_time_scale = FAST_WAITS
    emulator.crawler_settings = CrawlerSettings(running_seconds=600, stopping_seconds=0.2)
    object_key = key("stuck")
    started = time.monotonic()
    pipeline.upload(object_key, CSV)
    assert_crawler_times_out(pipeline, pipeline.state_machine_arn, object_key, polls, within=60)
    print(f"\n{polls} polls -> CrawlerTimeout in {time.monotonic() - started:.2f} s")
    assert pipeline.job_runs_for(pipeline.executions_for(object_key)[0]["name"]) == []


def test_a_definition_whose_poll_limit_is_never_reached_fails_the_timeout_check(emulator, pipeline):
    """The check above on a mutated copy of the deployed definition (its limit raised out of
    reach): the execution keeps polling, so the check must fail. Proves the timeout test reads the
    definition's behaviour, not a copy of it."""
    polls = poll_limit(pipeline.definition())

    def unreachable_limit(definition: dict) -> None:
        definition["States"]["Too many polls?"]["Choices"][0]["NumericGreaterThanEquals"] = 10**9

    variant = pipeline.create_variant(f"never-times-out-{uuid.uuid4().hex[:6]}", unreachable_limit)
    emulator.wait_time_scale = FAST_WAITS
    emulator.crawler_settings = CrawlerSettings(running_seconds=600, stopping_seconds=0.2)
    object_key = key("stuck-variant")
    sfn = emulator.client("stepfunctions")
    execution_arn = sfn.start_execution(stateMachineArn=variant, input=json.dumps(s3_event(pipeline.bucket, object_key)))["executionArn"]
    try:
        with pytest.raises(AssertionError, match=f"past the limit of {polls}"):
            assert_crawler_times_out(pipeline, variant, object_key, polls, within=60)
    finally:
        sfn.stop_execution(executionArn=execution_arn, error="TestCleanup")
