"""Shared helpers for the emulator tests: polling, and a small pipeline shaped like the real one.

The state machine below is hand-written in the shape of the CDK one (docs/architecture.md): the
same states, integrations and error handling, so the five orchestration faults can be tested here
against the emulator without waiting for the CDK app.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from airline_local.emulator import Emulator
from airline_local.job_runner import JobSpec

JOBS_DIR = Path(__file__).parent / "jobs"
ROLE_ARN = "arn:aws:iam::123456789012:role/local"
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll until check() returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 40.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        description = sfn.describe_execution(executionArn=execution_arn)
        return description if description["status"] != "RUNNING" else None

    return wait_for(finished, timeout, 0.2, f"execution {execution_arn} to finish")


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    return sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


def entered_states(sfn: Any, execution_arn: str) -> list[str]:
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history(sfn, execution_arn)
        if "stateEnteredEventDetails" in event
    ]


def pipeline_definition(crawler: str, job: str, topic_arn: str, bucket: str, max_polls: int = 30) -> dict[str, Any]:
    """An ASL definition with the states and error handling of the real pipeline."""

    def notify_failure_step(step: str) -> dict[str, Any]:
        return {"Type": "Pass", "Result": step, "ResultPath": "$.failed_step", "Next": "Notify failure"}

    return {
        "Comment": "airline bookings ingestion (test double of the CDK state machine)",
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Result": {"count": 0}, "ResultPath": "$.polls", "Next": "Start crawler"},
            "Start crawler": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:glue:startCrawler",
                "Parameters": {"Name": crawler},
                "ResultPath": None,
                "Catch": [
                    {"ErrorEquals": ["Glue.CrawlerRunningException"], "ResultPath": None, "Next": "Wait for crawler"},
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Crawler start failed"},
                ],
                "Next": "Wait for crawler",
            },
            "Crawler start failed": notify_failure_step("Start crawler"),
            "Wait for crawler": {"Type": "Wait", "Seconds": 1, "Next": "Get crawler"},
            "Get crawler": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:glue:getCrawler",
                "Parameters": {"Name": crawler},
                "ResultSelector": {"Crawler.$": "$.Crawler"},
                "ResultPath": "$.crawler",
                "Next": "Crawler finished?",
            },
            "Crawler finished?": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Or": [
                            {"Variable": "$.crawler.Crawler.State", "StringEquals": "RUNNING"},
                            {"Variable": "$.crawler.Crawler.State", "StringEquals": "STOPPING"},
                        ],
                        "Next": "Count poll",
                    },
                    {"Variable": "$.crawler.Crawler.State", "StringEquals": "READY", "Next": "Crawl succeeded?"},
                ],
                "Default": "Crawl failed",
            },
            "Count poll": {
                "Type": "Pass",
                "Parameters": {"count.$": "States.MathAdd($.polls.count, 1)"},
                "ResultPath": "$.polls",
                "Next": "Too many polls?",
            },
            "Too many polls?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.polls.count", "NumericGreaterThan": max_polls, "Next": "Crawl failed"}],
                "Default": "Wait for crawler",
            },
            "Crawl succeeded?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.crawler.Crawler.LastCrawl.Status", "StringEquals": "SUCCEEDED", "Next": "Run ETL job"}
                ],
                "Default": "Crawl failed",
            },
            "Crawl failed": {
                "Type": "Pass",
                "Parameters": {"Error": "CrawlFailed", "Cause.$": "States.JsonToString($.crawler.Crawler)"},
                "ResultPath": "$.error",
                "Next": "Crawl failed step",
            },
            "Crawl failed step": notify_failure_step("Crawl"),
            "Run ETL job": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {
                    "JobName": job,
                    "Arguments": {
                        "--source_uri.$": "States.Format('s3://{}/{}', $.detail.bucket.name, $.detail.object.key)",
                        "--execution_id.$": "$$.Execution.Name",
                    },
                },
                "ResultPath": "$.job",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Job failed"}],
                "Next": "Job succeeded?",
            },
            "Job failed": notify_failure_step("Run ETL job"),
            "Job succeeded?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.job.JobRunState", "StringEquals": "SUCCEEDED", "Next": "Read run summary"}],
                "Default": "Job failed",
            },
            "Read run summary": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": bucket, "Key.$": "States.Format('runs/{}.json', $$.Execution.Name)"},
                "ResultSelector": {"summary.$": "States.StringToJson($.Body)"},
                "ResultPath": "$.run",
                "Next": "Notify success",
            },
            "Notify success": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject": "Bookings loaded",
                    "Message.$": "States.Format('Loaded {}: {} rows read', $.run.summary.source_file, $.run.summary.rows_read)",
                },
                "ResultPath": None,
                "Next": "Succeeded",
            },
            "Succeeded": {"Type": "Succeed"},
            "Notify failure": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject": "Bookings load FAILED",
                    "Message.$": "States.Format('Step {} failed. Error: {}. Cause: {}', $.failed_step, $.error.Error, $.error.Cause)",
                },
                "ResultPath": None,
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "Error": "PipelineFailed", "Cause": "See the failure notification"},
        },
    }


@dataclass
class LocalPipeline:
    """The resources of one test pipeline in the emulator (unique names per test)."""

    emulator: Emulator
    bucket: str
    database: str
    crawler: str
    job: str
    topic_arn: str
    state_machine_arn: str
    recipient: str

    def upload(self, key: str, body: bytes) -> None:
        self.emulator.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body)

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.emulator.client("stepfunctions")
        return sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]

    def mails_to_recipient(self) -> list[Any]:
        return [m for m in self.emulator.mailbox.messages() if self.recipient in m["To"]]


def create_pipeline(emulator: Emulator, *, max_polls: int = 30, with_rule: bool = True) -> LocalPipeline:
    suffix = uuid.uuid4().hex[:8]
    bucket, database = f"raw-{suffix}", f"db_{suffix}"
    crawler, job = f"crawler-{suffix}", f"ingest-{suffix}"
    s3, glue = emulator.client("s3"), emulator.client("glue")
    sns, sfn, events = emulator.client("sns"), emulator.client("stepfunctions"), emulator.client("events")

    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_crawler(
        Name=crawler, Role=ROLE_ARN, DatabaseName=database,
        Targets={"S3Targets": [{"Path": f"s3://{bucket}/raw/bookings/"}]},
    )
    default_arguments = {"--data_root_uri": f"s3://{bucket}"}
    glue.create_job(
        Name=job, Role=ROLE_ARN, GlueVersion="5.0",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/trivial_job.py"},
        DefaultArguments=default_arguments,
    )
    emulator.job_runner.register_job(
        job, JobSpec(script=JOBS_DIR / "trivial_job.py", default_arguments=default_arguments, needs_java=False)
    )
    topic_arn = sns.create_topic(Name=f"notifications-{suffix}")["TopicArn"]
    recipient = f"data-team-{suffix}@example.com"
    sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=recipient)
    definition = pipeline_definition(crawler, job, topic_arn, bucket, max_polls)
    state_machine_arn = sfn.create_state_machine(
        name=f"pipeline-{suffix}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    if with_rule:
        rule = f"on-upload-{suffix}"
        events.put_rule(
            Name=rule,
            EventPattern=json.dumps({
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [bucket]},
                    "object": {"key": [{"wildcard": "raw/bookings/*.csv"}, {"wildcard": "raw/bookings/*.csv.gz"}]},
                },
            }),
        )
        events.put_targets(Rule=rule, Targets=[{"Id": "pipeline", "Arn": state_machine_arn, "RoleArn": ROLE_ARN}])
    return LocalPipeline(emulator, bucket, database, crawler, job, topic_arn, state_machine_arn, recipient)


# -- the synthesized pipeline -------------------------------------------------------------------
# The orchestration tests drive the state machine of the synthesized CDK app (the one local mode
# deploys), not the hand-written double above: deployed with airline_local.local_stack.deploy, with
# the Glue job swapped for a plain-Python stand-in that writes the real job's RunSummary.

PROJECT_DIR = Path(__file__).resolve().parents[2]

STAND_IN_JOB = '''\
"""Stand-in for the ETL job (orchestration tests): no Spark, no warehouse; the real job's arguments
and its RunSummary (glue_scripts/ingest_bookings.py), written under --data_root_uri/runs/ on success
and on failure (with `error`), as the real job does. A file containing FAIL fails the run."""
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, {glue_scripts!r})
from awsglue.utils import getResolvedOptions  # noqa: E402
from ingest_bookings import RunSummary  # noqa: E402


class BookingFileError(Exception):
    pass


def local_path(uri):
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(unquote(parsed.path))


args = getResolvedOptions(sys.argv, ["JOB_NAME", "source_uri", "execution_id", "data_root_uri"])
text = local_path(args["source_uri"]).read_text(encoding="utf-8")
summary = RunSummary(execution_id=args["execution_id"], source_file=args["source_uri"],
                     started_at=datetime.now(timezone.utc))
summary.rows_read = len(text.splitlines()[1:])
out = local_path(args["data_root_uri"].rstrip("/") + "/runs/" + args["execution_id"] + ".json")
out.parent.mkdir(parents=True, exist_ok=True)
if "FAIL" in text:
    error = BookingFileError(args["source_uri"] + ": the file asks to fail")
    summary.status, summary.error = "FAILED", type(error).__name__ + ": " + str(error)
    out.write_text(summary.to_json(datetime.now(timezone.utc)))
    raise error
summary.status, summary.rows_inserted = "SUCCEEDED", summary.rows_read
out.write_text(summary.to_json(datetime.now(timezone.utc)))
'''


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """The input EventBridge gives the state machine for an S3 Object Created event (the fields read)."""
    return {"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


@dataclass
class SynthesizedPipeline:
    """The synthesized stack deployed into the emulator, with its job replaced by STAND_IN_JOB."""

    emulator: Emulator
    assembly: Any  # airline_local.local_stack.CloudAssembly
    stack: Any  # airline_local.local_stack.DeployedStack
    crawler: str
    job: str

    @property
    def bucket(self) -> str:
        return self.stack.raw_bucket

    @property
    def state_machine_arn(self) -> str:
        return self.stack.state_machine_arn

    def definition(self) -> dict[str, Any]:
        """The definition as deployed (read back from the emulator)."""
        sfn = self.emulator.client("stepfunctions")
        return json.loads(sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)["definition"])

    def upload(self, key: str, body: bytes) -> None:
        self.emulator.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body)

    def executions_for(self, key: str, state_machine_arn: str | None = None) -> list[dict[str, Any]]:
        """Executions (describe_execution results) whose event names this object key."""
        sfn = self.emulator.client("stepfunctions")
        found = []
        for listed in sfn.list_executions(stateMachineArn=state_machine_arn or self.state_machine_arn)["executions"]:
            described = sfn.describe_execution(executionArn=listed["executionArn"])
            if json.loads(described.get("input") or "{}").get("detail", {}).get("object", {}).get("key") == key:
                found.append(described)
        return found

    def execution_for(self, key: str) -> dict[str, Any]:
        [execution] = wait_for(lambda: self.executions_for(key), what=f"an execution for {key}")
        return execution

    def job_runs_for(self, execution_name: str) -> list[dict[str, Any]]:
        runs = self.emulator.client("glue").get_job_runs(JobName=self.job)["JobRuns"]
        return [r for r in runs if r.get("Arguments", {}).get("--execution_id") == execution_name]

    def mails_for(self, execution_name: str) -> list[Any]:
        """The notifications about one execution (the pipeline's messages name it)."""
        return [m for m in self.emulator.mailbox.messages() if f"execution {execution_name}" in m.get_content()]

    def create_variant(self, name: str, mutate: Callable[[dict[str, Any]], None]) -> str:
        """A second state machine: the deployed definition changed by `mutate`, created through
        local_stack's own state-machine step (same role, type and settings). Returns its ARN."""
        from airline_local.cfn import Template
        from airline_local.local_stack import _create_state_machine

        definition = self.definition()
        mutate(definition)
        template = self.assembly.template
        [lid] = [lid for lid in template.resources_of_type("AWS::StepFunctions::StateMachine")
                 if template.ref(lid) == self.state_machine_arn]
        body = json.loads(json.dumps(template.body))
        properties = body["Resources"][lid]["Properties"]
        properties.pop("DefinitionSubstitutions", None)
        properties.update(DefinitionString=json.dumps(definition), StateMachineName=name)
        variant = Template(body, region=template.region, stack_name=template.stack_name)
        return _create_state_machine(variant, lid, self.emulator.client("stepfunctions"))

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Every execution of every state machine finished and the crawler READY (stopping a crawl
        a test left running), so the next test starts from a quiet stack."""
        sfn, glue = self.emulator.client("stepfunctions"), self.emulator.client("glue")

        def idle() -> bool:
            for machine in sfn.list_state_machines()["stateMachines"]:
                if sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")["executions"]:
                    return False
            state = glue.get_crawler(Name=self.crawler)["Crawler"]["State"]
            if state == "RUNNING":
                glue.stop_crawler(Name=self.crawler)
            return state == "READY"

        wait_for(idle, timeout, 0.2, "the stack to be idle")


def deploy_synthesized_pipeline(emulator: Emulator, cdk_out: Path, work_dir: Path) -> SynthesizedPipeline:
    """Deploy the cloud assembly in cdk_out as local mode does, then swap its Glue job's script
    for STAND_IN_JOB (written into work_dir) through the job runner."""
    from airline_local.local_stack import CloudAssembly, deploy

    assembly = CloudAssembly.load(cdk_out)
    stack = deploy(assembly, emulator.client, emulator.job_runner)
    [crawler], [job] = stack.crawler_names, stack.job_names
    script = Path(work_dir) / "stand_in_job.py"
    script.write_text(STAND_IN_JOB.format(glue_scripts=str(PROJECT_DIR / "glue_scripts")))
    emulator.job_runner.register_job(job, JobSpec(
        script=script, default_arguments={"--data_root_uri": f"s3://{stack.raw_bucket}"}, needs_java=False,
    ))
    return SynthesizedPipeline(emulator, assembly, stack, crawler, job)
