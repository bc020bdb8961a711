"""IAM check, wiring steps 4-6 (issue 12), through a real local pipeline (moto server, PostgreSQL,
Spark) checked against the REAL synthesized template and mutated copies of it: the state machine's
tasks call AWS as its role (states.amazonaws.com, aws:SourceArn = the state machine), EventBridge
starts it as the rule target's role, the crawler reads S3 as its role; and an added Deny wins."""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airline_local.aws.cfn import ACCOUNT_ID
from airline_local.aws.patches.events import EVENTBRIDGE_SESSION_NAME
from airline_local.aws.patches.glue_crawler import CRAWLER_SESSION_NAME
from airline_local.aws.patches.runtime import RUNTIME
from airline_local.aws.patches.stepfunctions import STATE_MACHINE_SESSION_NAME, state_machine_modules_using_moto_client
from airline_local.generator import write_csv
from airline_local.pipeline import LocalPipeline, temporary_state_dir
from tests.local.iam_mutations import actor_role, add_deny, remove_action, remove_service_grant


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with temporary_state_dir("airline-iam-pipeline-") as state_dir, \
            LocalPipeline(state_dir, iam_check=True, warm_workers=0) as running:
        running.emulator.wait_time_scale = 0.2
        yield running


@pytest.fixture
def mutate(pipeline: LocalPipeline) -> Iterator[Any]:
    """mutate(fn): the IAM check of the running pipeline reads the template as edited by fn; the
    synthesized template is back in force after the test."""
    yield pipeline.check_iam_with
    pipeline.check_iam_with(None)


@pytest.fixture
def booking_file(tmp_path):
    def make(name: str) -> Any:
        path = tmp_path / name
        write_csv(path, 20, seed=7)
        return path
    return make


def role_name(pipeline: LocalPipeline, actor: str) -> str:
    return pipeline.template.name_of(actor_role(pipeline.template.body, actor))


def session_arn(pipeline: LocalPipeline, actor: str, session: str) -> str:
    return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name(pipeline, actor)}/{session}"


def test_no_interpreter_module_keeps_motos_client_and_tasks_sign_as_the_role(pipeline):
    from moto.stepfunctions.parser import asl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
    from moto.stepfunctions.parser.asl.utils import boto_client

    ours = boto_client.boto_client_for
    moto_original = ours.__wrapped_moto__
    assert state_machine_modules_using_moto_client(pkgutil, importlib, asl, moto_original) == []
    assert state_task_service_aws_sdk.boto_client_for is ours

    machine = pipeline.stack.state_machine_arn
    role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name(pipeline, 'state_machine')}"
    credentials = type("Creds", (), {"role_arn": role_arn, "state_machine_arn": machine})()
    identity = ours("us-east-1", "sts", credentials).get_caller_identity()
    assert identity["Arn"] == session_arn(pipeline, "state_machine", STATE_MACHINE_SESSION_NAME)
    # With the check off: moto's own client, its fixed key.
    check, RUNTIME.iam_check = RUNTIME.iam_check, None
    try:
        assert ours("us-east-1", "sts", credentials)._request_signer._credentials.access_key == "ak"
    finally:
        RUNTIME.iam_check = check


def test_without_get_crawler_the_catch_sees_access_denied_and_the_email_names_it(pipeline, mutate, booking_file):
    mutate(lambda body: remove_action(body, actor_role(body, "state_machine"), "glue:GetCrawler"))
    [result] = pipeline.run([booking_file("no-get-crawler.csv")], timeout=300)
    assert result.status == "FAILED", result
    assert "Get crawler failed" in result.states and "Notify failure" in result.states
    assert result.notification is not None, result
    crawler_arn = f"arn:aws:glue:us-east-1:{ACCOUNT_ID}:crawler/{pipeline.stack.crawler_names[0]}"
    for part in ("Glue.AccessDeniedException",
                 f"User: {session_arn(pipeline, 'state_machine', STATE_MACHINE_SESSION_NAME)} is not authorized "
                 f"to perform: glue:GetCrawler on resource: {crawler_arn}"):
        assert part in result.notification["message"], result.notification["message"]


def test_without_generate_data_key_on_the_topic_key_no_email_is_sent_and_the_run_names_the_kms_denial(
        pipeline, mutate, booking_file):
    mutate(lambda body: remove_action(body, actor_role(body, "state_machine"), "kms:GenerateDataKey*"))
    before = len(pipeline.emulator.mailbox.messages())
    [result] = pipeline.run([booking_file("no-data-key.csv")], timeout=600)
    assert result.status == "FAILED" and result.notification is None, result
    assert len(pipeline.emulator.mailbox.messages()) == before
    key_arn = pipeline.iam.store.encryption_of(pipeline.stack.topic_arns[0]).key_arn
    for part in ("no notification was sent; last task failure: Notify",
                 f"{session_arn(pipeline, 'state_machine', STATE_MACHINE_SESSION_NAME)} is not authorized to perform: "
                 f"kms:GenerateDataKey on resource: {key_arn}",
                 f"on behalf of sns:Publish on {pipeline.stack.topic_arns[0]}"):
        assert part in result.error, result.error


def test_without_put_object_on_deliveries_the_claim_fails_loudly_and_nothing_runs(pipeline, mutate, booking_file):
    """A claim refused for another reason than 412 (here AccessDenied) is not a duplicate: the
    execution mails "Claim delivery failed" with S3's error and FAILS, before the crawl."""
    mutate(lambda body: remove_action(body, actor_role(body, "state_machine"), "s3:PutObject", "/deliveries/*"))
    [result] = pipeline.run([booking_file("no-claim.csv")], timeout=300)
    assert result.status == "FAILED", result
    # Named S3.AccessDeniedException here, S3.S3Exception on AWS (through "Delivery already
    # claimed?", whose 412 rule it fails): "Claim delivery failed" either way.
    assert result.states[:2] == ["Identify delivery", "Claim delivery"], result.states
    assert result.states[-3:] == ["Claim delivery failed", "Notify failure", "Failed"], result.states
    assert not {"Read delivery marker", "Duplicate delivery", "Start crawler"} & set(result.states)
    message = result.notification["message"]
    assert f"Ingestion of s3://{pipeline.stack.raw_bucket}/{result.key} FAILED at step: Claim delivery." in message
    for part in ("Error: S3.", "Status Code: 403",
                 f"{session_arn(pipeline, 'state_machine', STATE_MACHINE_SESSION_NAME)} is not authorized "
                 f"to perform: s3:PutObject on resource: arn:aws:s3:::{pipeline.stack.raw_bucket}/deliveries/"):
        assert part in message, message
    assert result.summary is None  # the job never ran
    # The upload's event still waits in the crawler's queue (nothing crawled it): crawl it now, with
    # the template's own grants, so that the next test's crawl reads only its own file.
    mutate(None)
    glue = pipeline.emulator.client("glue")
    glue.start_crawler(Name=pipeline.stack.crawler_names[0])
    deadline = time.monotonic() + 60
    while glue.get_crawler(Name=pipeline.stack.crawler_names[0])["Crawler"]["State"] != "READY":
        assert time.monotonic() < deadline, "the clean-up crawl did not end"
        time.sleep(0.2)


# --- step 5: EventBridge starts the state machine as the rule target's role ------------------


def test_without_start_execution_the_rule_starts_nothing_and_the_result_names_the_denial(pipeline, mutate, booking_file):
    mutate(lambda body: remove_action(body, actor_role(body, "rule"), "states:StartExecution"))
    sfn = pipeline.emulator.client("stepfunctions")
    before = len(sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn)["executions"])
    [result] = pipeline.run([booking_file("no-start-execution.csv")], timeout=60)
    assert result.status == "NOT_STARTED" and result.execution_name is None, result
    assert len(sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn)["executions"]) == before
    for part in (f"EventBridge rule arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/",
                 f"{session_arn(pipeline, 'rule', EVENTBRIDGE_SESSION_NAME)} was denied states:StartExecution "
                 f"on {pipeline.stack.state_machine_arn}",
                 "because no identity-based policy allows the states:StartExecution action"):
        assert part in result.error, result.error


# --- step 6: the crawler reads S3 as its role --------------------------------------------------


def test_without_get_object_the_crawl_fails_naming_the_denial(pipeline, mutate, booking_file):
    mutate(lambda body: remove_action(body, actor_role(body, "crawler"), "s3:GetObject*"))
    [result] = pipeline.run([booking_file("no-crawler-read.csv")], timeout=300)
    assert result.status == "FAILED" and "Crawl failed" in result.states, result
    glue = pipeline.emulator.client("glue")
    last_crawl = glue.get_crawler(Name=pipeline.stack.crawler_names[0])["Crawler"]["LastCrawl"]
    assert last_crawl["Status"] == "FAILED"
    object_arn = f"arn:aws:s3:::{pipeline.stack.raw_bucket}/{result.key}"
    for text in (last_crawl["ErrorMessage"], result.notification["message"]):
        assert f"{session_arn(pipeline, 'crawler', CRAWLER_SESSION_NAME)} is not authorized to perform: " \
               f"s3:GetObject on resource: {object_arn}" in text, text


# --- an added explicit Deny wins over the template's Allow --------------------------------------


def test_an_added_explicit_deny_wins_over_the_allow_through_the_pipeline(pipeline, mutate, booking_file):
    crawler_arn = f"arn:aws:glue:us-east-1:{ACCOUNT_ID}:crawler/{pipeline.stack.crawler_names[0]}"
    mutate(lambda body: add_deny(body, actor_role(body, "state_machine"), "glue:StartCrawler", crawler_arn,
                                 sid="NoCrawlsToday"))
    [result] = pipeline.run([booking_file("denied-crawl.csv")], timeout=300)
    assert result.status == "FAILED" and "Start crawler failed" in result.states, result
    message = result.notification["message"]
    for part in ("Glue.AccessDeniedException", f"glue:StartCrawler on resource: {crawler_arn}",
                 "with an explicit deny in an identity-based policy", "NoCrawlsToday"):
        assert part in message, message


def test_a_state_machine_target_without_a_role_starts_nothing_and_is_recorded(pipeline):
    from moto.events.models import events_backends

    from airline_local.aws.patches.events import _start_execution_as_target_role

    (rule,) = events_backends[ACCOUNT_ID]["us-east-1"].event_buses["default"].rules.values()
    event = {"detail": {"object": {"key": "raw/bookings/roleless.csv"}}}
    _start_execution_as_target_role(RUNTIME.iam_check, rule, {"Id": "t", "Arn": pipeline.stack.state_machine_arn}, event)
    denial = RUNTIME.denials[-1]
    assert (denial.object_key, denial.action, denial.resource) == (
        "raw/bookings/roleless.csv", "states:StartExecution", pipeline.stack.state_machine_arn)
    assert "needs a RoleArn" in denial.describe()


# --- services acting on the account's behalf: CloudWatch alarm actions, S3 -> SQS (issue 21) -----


def alarm_names(pipeline: LocalPipeline) -> list[str]:
    return [pipeline.template.name_of(lid) for lid in pipeline.template.resources_of_type("AWS::CloudWatch::Alarm")]


def emails_of_alarm(pipeline: LocalPipeline, name: str) -> list[Any]:
    return [m for m in pipeline.emulator.mailbox.messages() if f'"{name}"' in str(m["Subject"])]


def test_every_alarm_of_the_template_emails_once_when_it_enters_alarm(pipeline):
    """CloudWatch publishes as cloudwatch.amazonaws.com, through the topic policy and the key policy."""
    cloudwatch = pipeline.emulator.client("cloudwatch")
    names = alarm_names(pipeline)
    assert len(names) >= 6, names  # every alarm of the template, whatever their number
    denials_before = len(RUNTIME.denials)
    try:
        for name in names:
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="issue 21: every alarm")
        for name in names:
            [email] = emails_of_alarm(pipeline, name)
            notification = json.loads(email.get_content())
            (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
            assert (notification["AlarmArn"], notification["NewStateValue"]) == (alarm["AlarmArn"], "ALARM")
            assert email["X-SNS-Topic-Arn"] in alarm["AlarmActions"] == notification["AlarmActions"]
        assert list(RUNTIME.denials)[denials_before:] == []
        publishes = [e for e in pipeline.iam.log if e[0] == "cloudwatch.amazonaws.com"]
        assert {(e[1], e[3]) for e in publishes} == {("sns:Publish", "allowed")}, publishes
    finally:
        for name in names:  # back to OK (no OKActions: no email), for the next test
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="reset")


def test_without_the_topic_policy_statement_for_cloudwatch_no_alarm_email_and_a_denial(pipeline, mutate):
    mutate(lambda body: remove_service_grant(body, "cloudwatch.amazonaws.com", "sns:Publish"))
    cloudwatch = pipeline.emulator.client("cloudwatch")
    name = alarm_names(pipeline)[0]
    before = len(emails_of_alarm(pipeline, name))
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="issue 21: no topic policy")
    try:
        assert len(emails_of_alarm(pipeline, name)) == before
        denial = RUNTIME.denials[-1]
        alarm_arn = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT_ID}:alarm:{name}"
        assert (denial.actor, denial.principal, denial.action, denial.resource) == (
            f"CloudWatch alarm {alarm_arn}", "cloudwatch.amazonaws.com", "sns:Publish", pipeline.stack.topic_arns[0])
        assert "because no resource-based policy allows the sns:Publish action" in denial.message, denial.message
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="reset")


def test_without_the_key_policy_statement_for_cloudwatch_no_alarm_email_and_a_kms_denial(pipeline, mutate):
    mutate(lambda body: remove_service_grant(body, "cloudwatch.amazonaws.com", "kms:GenerateDataKey*"))
    cloudwatch = pipeline.emulator.client("cloudwatch")
    name = alarm_names(pipeline)[-1]
    before = len(emails_of_alarm(pipeline, name))
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="issue 21: no key policy")
    try:
        assert len(emails_of_alarm(pipeline, name)) == before
        denial = RUNTIME.denials[-1]
        assert (denial.principal, denial.action) == ("cloudwatch.amazonaws.com", "sns:Publish"), denial
        assert "not authorized to perform: kms:GenerateDataKey" in denial.message, denial.message
        assert f"on behalf of sns:Publish on {pipeline.stack.topic_arns[0]}" in denial.message, denial.message
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="reset")


def test_s3_delivers_to_the_crawler_queue_only_as_its_queue_policy_allows(pipeline, mutate):
    """S3 -> the crawler's event queue is judged as s3.amazonaws.com (aws:SourceArn = the bucket).
    A .txt key: under the queue's prefix, outside the EventBridge rule's suffixes (no execution)."""
    s3, sqs = pipeline.emulator.client("s3"), pipeline.emulator.client("sqs")
    (queue_url,) = [u for u in sqs.list_queues()["QueueUrls"]
                    if "CrawlerEvents" in u and "Dlq" not in u]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bucket = pipeline.stack.raw_bucket

    def queued() -> int:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    before = queued()
    try:
        pipeline.check_iam_with(lambda body: remove_service_grant(body, "s3.amazonaws.com", "sqs:SendMessage"))
        s3.put_object(Bucket=bucket, Key="raw/bookings/refused.txt", Body=b"not a booking file")
        assert queued() == before
        denial = RUNTIME.denials[-1]
        assert (denial.actor, denial.principal, denial.action, denial.resource, denial.object_key) == (
            f"S3 bucket arn:aws:s3:::{bucket}", "s3.amazonaws.com", "sqs:SendMessage", queue_arn,
            "raw/bookings/refused.txt")
        assert "because no resource-based policy allows the sqs:SendMessage action" in denial.message, denial.message

        pipeline.check_iam_with(None)  # the template as synthesized: its queue policy lets S3 send
        s3.put_object(Bucket=bucket, Key="raw/bookings/allowed.txt", Body=b"not a booking file")
        assert queued() == before + 1
        assert ("s3.amazonaws.com", "sqs:SendMessage", queue_arn, "allowed") in pipeline.iam.log
    finally:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "raw/bookings/refused.txt"},
                                                             {"Key": "raw/bookings/allowed.txt"}]})
        sqs.purge_queue(QueueUrl=queue_url)  # the crawler never sees these test objects
