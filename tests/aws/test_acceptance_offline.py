"""The AWS acceptance steps (tests/aws/acceptance.py), run against the local pipeline: the same
functions, with clients of the local emulator instead of a session on an account.

Offline they exercise: the upload under raw/bookings/, finding the execution the upload started
by listing the state machine's executions, waiting for it, the notification read from an SQS
queue subscribed to the topic (moto delivers SNS to SQS in-process, next to the patch that writes
the local mailbox), the success text, and the warehouse count through the Redshift Data API
(the emulator routes redshift-data to the local PostgreSQL). Deploying, the bootstrap check and
destroying need an account: test_acceptance_unit.py checks those against stubs, and the
assembly-reading helpers run here on the cloud assembly the local pipeline synthesized.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airline_local.pipeline import LocalPipeline, temporary_state_dir
from tests.aws import acceptance
from tests.aws.acceptance import SAMPLE, Deployment

pytestmark = pytest.mark.slow

SAMPLE_ROWS = 1000


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with temporary_state_dir("airline-acceptance-") as state_dir, LocalPipeline(state_dir) as running:
        yield running


@pytest.fixture(scope="module")
def deployment(pipeline: LocalPipeline) -> Deployment:
    stack = pipeline.stack
    assert stack is not None and len(stack.topic_arns) == 1, stack
    # The local Data API takes any workgroup; the job uses the configured one (cdk.json default).
    return Deployment("AirlineBookingPipeline", stack.raw_bucket, stack.state_machine_arn, stack.topic_arns[0],
                      workgroup_name="airline-bookings", database="dev")


@pytest.fixture(scope="module")
def run(pipeline: LocalPipeline, deployment: Deployment) -> acceptance.RunCheck:
    clients = pipeline.emulator.client
    queue_url, queue_arn, subscription = acceptance.subscribe_queue(
        clients("sqs"), clients("sns"), deployment.topic_arn, "acceptance-notifications")
    assert subscription.startswith(deployment.topic_arn)
    policy = json.loads(clients("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert policy["Statement"][0]["Condition"] == {"ArnEquals": {"aws:SourceArn": deployment.topic_arn}}
    return acceptance.run_file(clients, deployment, SAMPLE, queue_url, rows_read=SAMPLE_ROWS,
                               execution_timeout=300, poll=0.25)


def test_the_upload_starts_one_execution_that_succeeds(run, pipeline, deployment):
    assert run.status == "SUCCEEDED"
    name = run.execution_arn.rsplit(":", 1)[-1]
    # The same execution LocalPipeline's own run summary names.
    summary = pipeline.emulator.client("s3").get_object(Bucket=deployment.raw_bucket, Key=f"runs/{name}.json")
    assert json.loads(summary["Body"].read())["rows_read"] == SAMPLE_ROWS


def test_the_notification_reaches_the_queue_with_the_counts(run, pipeline):
    assert run.notification["subject"] == "Airline booking ingestion succeeded"
    assert "succeeded" in run.notification["message"]
    assert run.counts["rows_read"] == SAMPLE_ROWS
    # The sample carries rejected and duplicate rows on purpose; run_file checked the sum.
    assert 0 < run.counts["rows_inserted"] < SAMPLE_ROWS
    assert run.counts["rows_quarantined"] > 0 and run.counts["rows_duplicate"] > 0
    # The local mailbox got the same text (the queue is an extra subscriber, not a replacement).
    name = run.execution_arn.rsplit(":", 1)[-1]
    mailed = [m.get_body(preferencelist=("plain",)).get_content() for m in pipeline.emulator.mailbox.messages()]
    assert [body.strip() for body in mailed if name in body] == [run.notification["message"].strip()]


def test_the_warehouse_count_through_the_data_api(run, pipeline, deployment):
    assert run.warehouse_rows == run.counts["rows_inserted"]
    assert acceptance.warehouse_count(pipeline.emulator.client("redshift-data"), deployment,
                                      "SELECT COUNT(*) FROM airline.ingestion_runs", poll=0.1) == 1


def test_a_key_nobody_uploaded_finds_no_execution(pipeline, deployment, run):
    from datetime import datetime, timezone

    with pytest.raises(acceptance.AcceptanceError, match="no execution"):
        acceptance.find_execution(pipeline.emulator.client("stepfunctions"), deployment.state_machine_arn,
                                  "raw/bookings/never-uploaded.csv", datetime.now(timezone.utc),
                                  timeout=0.3, poll=0.1)


def test_assembly_helpers_on_the_synthesized_app(pipeline):
    """What the AWS run reads from its own synth: the bootstrap version the stack requires, the
    fixed names it checks before deploying, the database it counts in."""
    assembly = pipeline.cloud_assembly_dir
    assert acceptance.required_bootstrap_version(assembly, "AirlineBookingPipeline") >= 6
    template = acceptance.stack_template(assembly, "AirlineBookingPipeline")
    names = acceptance.fixed_names(template)
    assert names["AWS::Glue::Database"] == ["airline_bookings"]
    assert names["AWS::RedshiftServerless::Namespace"] == ["airline-bookings"]
    assert acceptance.template_database(template) == "dev"
