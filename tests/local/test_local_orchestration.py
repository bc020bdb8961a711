"""The five orchestration faults (DESIGN.md section 4) through the emulator, end to end.

A state machine shaped like the real one (emulator_helpers.pipeline_definition), a real crawl, the
job runner with a trivial Python job, SNS into the mailbox: each test checks the outcome AWS would
give, including what must NOT happen (a job started after a failed crawl, a second execution).
"""

from __future__ import annotations

import json
import time

import pytest
from emulator_helpers import create_pipeline, entered_states, history, wait_for, wait_for_execution

from airline_local.moto_patches import CrawlerSettings

CSV = b"booking_id,route\n1,AB\n2,CD\n3,EF\n"


@pytest.fixture()
def pipeline(emulator):
    return create_pipeline(emulator)


def only_execution(pipeline) -> dict:
    [execution] = wait_for(pipeline.executions, what="an execution")
    return execution


def crawler_states_seen(sfn, execution_arn: str) -> list[tuple[float, str]]:
    """(time, State) of every GetCrawler result in the execution history."""
    seen = []
    for event in history(sfn, execution_arn):
        details = event.get("taskSucceededEventDetails")
        if details and details["resource"] == "getCrawler":
            seen.append((event["timestamp"].timestamp(), json.loads(details["output"])["Crawler"]["State"]))
    return seen


def job_runs(emulator, job: str) -> list[dict]:
    return emulator.client("glue").get_job_runs(JobName=job)["JobRuns"]


def test_upload_crawls_runs_the_job_and_mails_success(emulator, pipeline, record_property):
    started = time.monotonic()
    pipeline.upload("raw/bookings/day1.csv", CSV)
    execution = only_execution(pipeline)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])
    seconds = time.monotonic() - started
    record_property("upload_to_end_seconds", round(seconds, 2))
    print(f"\nS3 put -> execution end (trivial job): {seconds:.2f} s")

    assert result["status"] == "SUCCEEDED", result
    assert entered_states(sfn, execution["executionArn"])[-4:] == [
        "Job succeeded?", "Read run summary", "Notify success", "Succeeded"
    ]
    [run] = job_runs(emulator, pipeline.job)
    assert run["JobRunState"] == "SUCCEEDED"
    assert run["Arguments"]["--execution_id"] == execution["name"]
    [mail] = pipeline.mails_to_recipient()
    assert mail["Subject"] == "Bookings loaded"
    assert mail.get_content().strip() == f"Loaded s3://{pipeline.bucket}/raw/bookings/day1.csv: 3 rows read"
    table = emulator.client("glue").get_table(DatabaseName=pipeline.database, Name="bookings")["Table"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["booking_id", "route"]
    assert seconds < 15


def test_uploads_outside_the_prefix_or_suffix_start_nothing(emulator, pipeline):
    pipeline.upload("raw/other/day1.csv", CSV)
    pipeline.upload("raw/bookings/notes.txt", b"hello")
    pipeline.upload("staging/x/raw/bookings/day1.csv", CSV)
    pipeline.upload("raw/bookings/control.csv.gz", b"not really gzip")  # the control: matches the rule
    wait_for(pipeline.executions, what="the control execution")
    time.sleep(0.3)
    assert len(pipeline.executions()) == 1


def test_failed_crawl_mails_failure_never_starts_the_job_and_fails(emulator, pipeline):
    emulator.crawler_settings.fail_next_crawl("Internal Service Exception")
    pipeline.upload("raw/bookings/day2.csv", CSV)
    execution = only_execution(pipeline)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])

    assert result["status"] == "FAILED"
    assert result["error"] == "PipelineFailed"
    states = entered_states(sfn, execution["executionArn"])
    assert "Crawl failed" in states and "Run ETL job" not in states
    assert job_runs(emulator, pipeline.job) == []
    [mail] = pipeline.mails_to_recipient()
    assert mail["Subject"] == "Bookings load FAILED"
    body = mail.get_content()
    assert "Step Crawl failed" in body and "Internal Service Exception" in body and '"Status":"FAILED"' in body


def test_crawler_already_running_is_waited_for_then_the_run_goes_on(emulator, pipeline):
    emulator.crawler_settings = CrawlerSettings(running_seconds=2.0, stopping_seconds=0.3)
    glue = emulator.client("glue")
    glue.start_crawler(Name=pipeline.crawler)  # someone else's crawl
    pipeline.upload("raw/bookings/day3.csv", CSV)
    execution_arn = only_execution(pipeline)["executionArn"]
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution_arn)

    assert result["status"] == "SUCCEEDED", result
    busy = [e for e in history(sfn, execution_arn) if e.get("taskFailedEventDetails", {}).get("error") == "Glue.CrawlerRunningException"]
    assert len(busy) == 1
    seen = [state for _, state in crawler_states_seen(sfn, execution_arn)]
    assert seen[0] in ("RUNNING", "STOPPING") and seen[-1] == "READY"
    assert [r["JobRunState"] for r in job_runs(emulator, pipeline.job) if r["Arguments"]["--execution_id"] in execution_arn] == ["SUCCEEDED"]


def test_job_starts_only_once_the_crawler_is_ready_after_stopping(emulator, pipeline):
    emulator.crawler_settings = CrawlerSettings(running_seconds=0.2, stopping_seconds=2.5)
    pipeline.upload("raw/bookings/day4.csv", CSV)
    execution = only_execution(pipeline)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])

    assert result["status"] == "SUCCEEDED", result
    seen = crawler_states_seen(sfn, execution["executionArn"])
    assert "STOPPING" in [state for _, state in seen] and seen[-1][1] == "READY"
    last_stopping = max(at for at, state in seen if state == "STOPPING")
    [run] = job_runs(emulator, pipeline.job)
    assert run["StartedOn"].timestamp() > last_stopping


def test_failed_job_mails_failure_quoting_the_job_error_and_fails(emulator, pipeline):
    pipeline.upload("raw/bookings/day5.csv", b"booking_id,route\nFAIL,AB\n")
    execution = only_execution(pipeline)
    sfn = emulator.client("stepfunctions")
    result = wait_for_execution(sfn, execution["executionArn"])

    assert result["status"] == "FAILED"
    states = entered_states(sfn, execution["executionArn"])
    assert "Job failed" in states and "Notify success" not in states
    [run] = job_runs(emulator, pipeline.job)
    expected = f"BookingFileError: s3://{pipeline.bucket}/raw/bookings/day5.csv: the file asks to fail"
    assert run["JobRunState"] == "FAILED" and run["ErrorMessage"] == expected
    [mail] = pipeline.mails_to_recipient()
    body = mail.get_content()
    assert mail["Subject"] == "Bookings load FAILED"
    assert "Step Run ETL job failed. Error: States.TaskFailed" in body
    assert expected in body
    # the job wrote its failure summary, uploaded to S3 under runs/ as on AWS
    summary = json.loads(emulator.client("s3").get_object(Bucket=pipeline.bucket, Key=f"runs/{execution['name']}.json")["Body"].read())
    assert summary["status"] == "FAILED"
