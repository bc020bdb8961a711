"""The AWS acceptance steps (tests/aws/acceptance.py), run against the local pipeline: the same
functions, with clients of the local emulator instead of a session on an account.

`run_acceptance` itself runs here, its success path whole: the account-facing calls (STS, the
bootstrap check, the fixed-name lookups, CloudFormation's template, resources and outputs) are
answered by botocore Stubbers as AWS would answer them for the local pipeline's deployment, built
from its synthesized template; `describe_deployment` reads the Deployment from those outputs (a
renamed output fails here, not after a billed deploy); the CDK CLI is an injected runner whose
synth hands over the pipeline's own cloud assembly. The run's clients are the emulator's: the
upload under raw/bookings/, finding the execution the upload started by listing the state
machine's executions, waiting for it, the notification read from an SQS queue subscribed to the
topic (moto delivers SNS to SQS in-process, next to the patch that writes the local mailbox), the
success text, and the warehouse count through the Redshift Data API (the emulator routes
redshift-data to the local PostgreSQL). test_acceptance_unit.py checks the failure paths.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from airline_local.aws.cfn import ACCOUNT_ID, Template
from airline_local.pipeline import LocalPipeline, temporary_state_dir
from tests.aws import acceptance
from tests.aws.acceptance import SAMPLE, AcceptanceResult, CdkCli, Deployment

pytestmark = pytest.mark.slow

SAMPLE_ROWS = 1000
STACK = "AirlineBookingPipeline"
ACCOUNT_SERVICES = ("sts", "cloudformation", "ssm", "glue", "redshift-serverless")


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with temporary_state_dir("airline-acceptance-") as state_dir, LocalPipeline(state_dir) as running:
        yield running


class OfflineAccount:
    """The boto3 Session run_acceptance gets offline. Account-facing clients: Stubbers answering,
    in run_acceptance's order, as AWS would for the local pipeline deployed as STACK (its
    template's outputs and resources with the local physical names). Every other client: the
    local emulator's."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.pipeline = pipeline
        self.region_name = pipeline.template.region
        self.clients: dict[str, object] = {}
        self.stubs: dict[str, Stubber] = {}
        for service in ACCOUNT_SERVICES:
            client = boto3.client(service, region_name=self.region_name, aws_access_key_id="offline",
                                  aws_secret_access_key="offline")
            self.clients[service], self.stubs[service] = client, Stubber(client)
        # moto 5.2.5 has no ValidateStateMachineDefinition: a Stubber answers it, for each rendered
        # definition as run_acceptance must send it (the rest of Step Functions is the emulator's).
        validation = boto3.client("stepfunctions", region_name=self.region_name, aws_access_key_id="offline",
                                  aws_secret_access_key="offline")
        self.clients["stepfunctions-validation"] = validation
        self.stubs["stepfunctions-validation"] = Stubber(validation)
        self._answer_as_aws()
        for stub in self.stubs.values():
            stub.activate()

    def client(self, service: str):
        if service == "stepfunctions":
            return _ValidationByStub(self.pipeline.emulator.client(service), self.clients["stepfunctions-validation"])
        return self.clients[service] if service in ACCOUNT_SERVICES else self.pipeline.emulator.client(service)

    def runner(self, argv, *, cwd, env) -> subprocess.CompletedProcess:
        """The CDK CLI: `synth` hands over the pipeline's cloud assembly; the pipeline is the deploy."""
        if argv[3] == "synth":
            Path(argv[argv.index("--output") + 1]).symlink_to(self.pipeline.cloud_assembly_dir)
        return subprocess.CompletedProcess(argv, 0)

    def assert_consumed(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()

    def _answer_as_aws(self) -> None:
        template = self.pipeline.template
        body = acceptance.stack_template(self.pipeline.cloud_assembly_dir, STACK)
        summaries = [self._summary(template, lid, resource["Type"]) for lid, resource in template.resources.items()]
        outputs = [{"OutputKey": key, "OutputValue": str(template.resolve(output["Value"]))}
                   for key, output in body.get("Outputs", {}).items()]
        names = acceptance.fixed_names(body)
        created = datetime(2026, 1, 1)
        for machine_type, definition in acceptance.rendered_definitions(body, self.region_name).values():
            self.stubs["stepfunctions-validation"].add_response(
                "validate_state_machine_definition", {"result": "OK", "diagnostics": []},
                {"definition": definition, "type": machine_type, "severity": "WARNING"})
        self.stubs["sts"].add_response("get_caller_identity", {"Account": ACCOUNT_ID, "UserId": "AIDAOFFLINE",
                                                               "Arn": f"arn:aws:iam::{ACCOUNT_ID}:user/offline"})
        cfn = self.stubs["cloudformation"]
        cfn.add_response("describe_stacks", {"Stacks": [{"StackName": "CDKToolkit", "CreationTime": created,
                                                         "StackStatus": "UPDATE_COMPLETE"}]}, {"StackName": "CDKToolkit"})
        self.stubs["ssm"].add_response("get_parameter", {"Parameter": {"Value": "28"}},
                                       {"Name": f"/cdk-bootstrap/{acceptance.BOOTSTRAP_QUALIFIER}/version"})
        for name in names.get("AWS::Glue::Database", []):
            self.stubs["glue"].add_client_error("get_database", "EntityNotFoundException", "not found", 400,
                                                expected_params={"Name": name})
        for name in names.get("AWS::RedshiftServerless::Namespace", []):
            self.stubs["redshift-serverless"].add_client_error("get_namespace", "ResourceNotFoundException", "not found",
                                                               404, expected_params={"namespaceName": name})
        for name in names.get("AWS::RedshiftServerless::Workgroup", []):
            self.stubs["redshift-serverless"].add_client_error("get_workgroup", "ResourceNotFoundException", "not found",
                                                               404, expected_params={"workgroupName": name})
        stack = {"StackName": STACK}
        cfn.add_response("get_template", {"TemplateBody": json.dumps(body)}, {**stack, "TemplateStage": "Processed"})
        cfn.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, stack)
        cfn.add_response("describe_stacks", {"Stacks": [{"StackName": STACK, "CreationTime": created,
                                                         "StackStatus": "CREATE_COMPLETE", "Outputs": outputs}]}, stack)
        cfn.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, stack)
        # The destroy empties the stack's buckets first: offline they keep what the tests read.
        kept = [s for s in summaries if s["ResourceType"] != "AWS::S3::Bucket"]
        cfn.add_response("list_stack_resources", {"StackResourceSummaries": kept}, stack)
        for name in names.get("AWS::Glue::Database", []):
            self.stubs["glue"].add_response("delete_database", {}, {"Name": name})

    @staticmethod
    def _summary(template: Template, logical_id: str, resource_type: str) -> dict:
        summary = {"LogicalResourceId": logical_id, "ResourceType": resource_type,
                   "LastUpdatedTimestamp": datetime(2026, 1, 1), "ResourceStatus": "CREATE_COMPLETE"}
        try:
            summary["PhysicalResourceId"] = str(template.ref(logical_id))
        except Exception:  # a resource without a local name (AWS::CDK::Metadata, ...): none listed
            pass
        return summary


@pytest.fixture(scope="module")
def accepted(pipeline: LocalPipeline, tmp_path_factory) -> tuple[AcceptanceResult, CdkCli]:
    account = OfflineAccount(pipeline)
    cli = CdkCli(account.runner, env={})
    result = acceptance.run_acceptance(account, cli, tmp_path_factory.mktemp("acceptance"), stack_name=STACK,
                                       rows=SAMPLE_ROWS, log=lambda _line: None, poll=0.25)
    account.assert_consumed()
    return result, cli


@pytest.fixture(scope="module")
def deployment(accepted) -> Deployment:
    return accepted[0].deployment


@pytest.fixture(scope="module")
def run(accepted) -> acceptance.RunCheck:
    return accepted[0].run


def test_run_acceptance_synthesizes_deploys_runs_and_destroys(accepted):
    result, cli = accepted
    assert [argv[3] for argv in cli.commands] == ["synth", "deploy", "destroy"]
    assert result.destroyed and result.run is not None and result.run.status == "SUCCEEDED"
    assert result.bootstrap == acceptance.Bootstrap("UPDATE_COMPLETE", 28)
    assert "deleted by the test after destroy: Glue database airline_bookings" in result.report


def test_the_deployment_is_read_from_the_stacks_outputs(deployment, pipeline):
    """describe_deployment on the synthesized outputs names the very resources the pipeline runs."""
    stack = pipeline.stack
    assert len(stack.topic_arns) == 1, stack
    (secret,) = pipeline.template.resources_of_type("AWS::SecretsManager::Secret")
    assert deployment == Deployment(STACK, stack.raw_bucket, stack.state_machine_arn, stack.topic_arns[0],
                                    workgroup_name="airline-bookings", database="dev",
                                    secret_arn=pipeline.template.ref(secret))


def test_the_notification_queue_admits_the_topic_alone(pipeline, deployment):
    clients = pipeline.emulator.client
    queue_url, _, subscription = acceptance.subscribe_queue(
        clients("sqs"), clients("sns"), deployment.topic_arn, "acceptance-policy-check")
    try:
        assert subscription.startswith(deployment.topic_arn)
        policy = json.loads(clients("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"])
        assert policy["Statement"][0]["Condition"] == {"ArnEquals": {"aws:SourceArn": deployment.topic_arn}}
    finally:
        clients("sns").unsubscribe(SubscriptionArn=subscription)
        clients("sqs").delete_queue(QueueUrl=queue_url)


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


class _ValidationByStub:
    """The emulator's Step Functions client, except ValidateStateMachineDefinition (a Stubber's)."""

    def __init__(self, emulator_client, validation_client) -> None:
        self._emulator, self._validation = emulator_client, validation_client

    def __getattr__(self, name: str):
        if name == "validate_state_machine_definition":
            return self._validation.validate_state_machine_definition
        return getattr(self._emulator, name)
