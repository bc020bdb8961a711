"""The account-facing acceptance steps against botocore's Stubber, and the CDK commands built but
not run (the runner is injected). Example ids only (111122223333); nothing leaves the process."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tests.aws import acceptance
from tests.aws.acceptance import AcceptanceError, CdkCli, Resource

ACCOUNT = "111122223333"
REGION = "eu-west-1"
STACK = "AirlineAcceptance-20260101120000-abc123"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def client(service: str):
    return boto3.client(service, region_name=REGION, **CREDENTIALS)


@pytest.fixture
def stubbed():
    """stubbed(service) -> (client, stubber); every stubber must be fully consumed."""
    made = []

    def make(service: str):
        c = client(service)
        stubber = Stubber(c)
        stubber.activate()
        made.append(stubber)
        return c, stubber

    yield make
    for stubber in made:
        stubber.assert_no_pending_responses()


def toolkit_stack(status: str = "UPDATE_COMPLETE") -> dict:
    return {"Stacks": [{"StackName": "CDKToolkit", "CreationTime": datetime(2025, 1, 1), "StackStatus": status}]}


# -- opting in ---------------------------------------------------------------------------------


class FakeSession:
    def __init__(self, credentials=object(), region=REGION):
        self._credentials, self.region_name = credentials, region

    def get_credentials(self):
        return self._credentials


def test_skip_without_opt_in_even_with_credentials():
    reason = acceptance.skip_reason(FakeSession(), environ={})
    assert reason and "AIRLINE_AWS_TEST=1" in reason and "\n" not in reason


def test_skip_without_credentials_or_region():
    assert "no AWS credentials" in acceptance.skip_reason(FakeSession(credentials=None), environ={"AIRLINE_AWS_TEST": "1"})
    assert "no AWS region" in acceptance.skip_reason(FakeSession(region=None), environ={"AIRLINE_AWS_TEST": "1"})
    assert acceptance.skip_reason(FakeSession(), environ={"AIRLINE_AWS_TEST": "1"}) is None


# -- bootstrap ---------------------------------------------------------------------------------


def test_bootstrapped_account(stubbed):
    cfn, cfn_stub = stubbed("cloudformation")
    ssm, ssm_stub = stubbed("ssm")
    cfn_stub.add_response("describe_stacks", toolkit_stack(), {"StackName": "CDKToolkit"})
    ssm_stub.add_response("get_parameter", {"Parameter": {"Name": "/cdk-bootstrap/hnb659fds/version", "Value": "28"}},
                          {"Name": "/cdk-bootstrap/hnb659fds/version"})
    assert acceptance.check_bootstrapped(cfn, ssm, required_version=6) == acceptance.Bootstrap("UPDATE_COMPLETE", 28)


def test_no_bootstrap_stack_names_the_fix(stubbed):
    cfn, cfn_stub = stubbed("cloudformation")
    ssm, _ = stubbed("ssm")
    cfn_stub.add_client_error("describe_stacks", "ValidationError", "Stack with id CDKToolkit does not exist", 400)
    with pytest.raises(AcceptanceError, match=rf"not bootstrapped.*cdk bootstrap aws://{ACCOUNT}/{REGION}"):
        acceptance.check_bootstrapped(cfn, ssm, required_version=6, account=ACCOUNT, region=REGION)


def test_a_failed_bootstrap_stack_is_not_usable(stubbed):
    cfn, cfn_stub = stubbed("cloudformation")
    ssm, _ = stubbed("ssm")
    cfn_stub.add_response("describe_stacks", toolkit_stack("ROLLBACK_COMPLETE"))
    with pytest.raises(AcceptanceError, match="ROLLBACK_COMPLETE"):
        acceptance.check_bootstrapped(cfn, ssm, required_version=6)


def test_missing_or_old_bootstrap_version(stubbed):
    cfn, cfn_stub = stubbed("cloudformation")
    ssm, ssm_stub = stubbed("ssm")
    cfn_stub.add_response("describe_stacks", toolkit_stack())
    ssm_stub.add_client_error("get_parameter", "ParameterNotFound", "not found", 400)
    with pytest.raises(AcceptanceError, match="no SSM parameter /cdk-bootstrap/hnb659fds/version"):
        acceptance.check_bootstrapped(cfn, ssm, required_version=6)
    cfn_stub.add_response("describe_stacks", toolkit_stack())
    ssm_stub.add_response("get_parameter", {"Parameter": {"Value": "5"}})
    with pytest.raises(AcceptanceError, match="bootstrap version 5 < 6"):
        acceptance.check_bootstrapped(cfn, ssm, required_version=6)


def test_fixed_names_already_taken(stubbed):
    glue, glue_stub = stubbed("glue")
    rs, rs_stub = stubbed("redshift-serverless")
    glue_stub.add_response("get_database", {"Database": {"Name": "airline_bookings"}}, {"Name": "airline_bookings"})
    rs_stub.add_client_error("get_namespace", "ResourceNotFoundException", "no", 404)
    rs_stub.add_client_error("get_workgroup", "ResourceNotFoundException", "no", 404)
    names = {"AWS::Glue::Database": ["airline_bookings"], "AWS::RedshiftServerless::Namespace": ["acc-x"],
             "AWS::RedshiftServerless::Workgroup": ["acc-x"]}
    assert acceptance.existing_fixed_names(names, glue, rs) == ["Glue database airline_bookings"]


# -- the deployed stack ------------------------------------------------------------------------


def test_outputs_by_short_name(stubbed):
    cfn, stub = stubbed("cloudformation")
    stub.add_response("describe_stacks", {"Stacks": [{
        "StackName": STACK, "CreationTime": datetime(2026, 1, 1), "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": "RawBucketName", "OutputValue": "raw-bucket"},
                    {"OutputKey": "WarehouseWorkgroupName2BCED4DC", "OutputValue": "acc-wg"}],
    }]}, {"StackName": STACK})
    outputs = acceptance.stack_outputs(cfn, STACK)
    assert outputs["RawBucketName"] == "raw-bucket"
    assert outputs["WorkgroupName"] == outputs["WarehouseWorkgroupName2BCED4DC"] == "acc-wg"


def resource(logical_id: str, kind: str, physical: str) -> dict:
    return {"LogicalResourceId": logical_id, "ResourceType": kind, "PhysicalResourceId": physical,
            "LastUpdatedTimestamp": datetime(2026, 1, 1), "ResourceStatus": "CREATE_COMPLETE"}


def test_retained_resources_come_from_the_deployed_template(stubbed):
    cfn, stub = stubbed("cloudformation")
    template = {"Resources": {
        "CatalogDatabase44483CA3": {"Type": "AWS::Glue::Database", "DeletionPolicy": "Retain"},
        "StorageDataKeyE15BA43B": {"Type": "AWS::KMS::Key", "DeletionPolicy": "Delete"},
        "Queue": {"Type": "AWS::SQS::Queue"},
    }}
    stub.add_response("get_template", {"TemplateBody": json.dumps(template)},
                      {"StackName": STACK, "TemplateStage": "Processed"})
    stub.add_response("list_stack_resources", {"StackResourceSummaries": [
        resource("CatalogDatabase44483CA3", "AWS::Glue::Database", "airline_bookings"),
        resource("Queue", "AWS::SQS::Queue", "https://queue"),
    ]}, {"StackName": STACK})
    assert acceptance.retained_resources(cfn, STACK) == [
        Resource("CatalogDatabase44483CA3", "AWS::Glue::Database", "airline_bookings")]


def test_empty_bucket_deletes_versions_and_markers(stubbed):
    s3, stub = stubbed("s3")
    stub.add_response("list_object_versions", {
        "Versions": [{"Key": "raw/bookings/a.csv", "VersionId": "v1"}],
        "DeleteMarkers": [{"Key": "runs/x.json", "VersionId": "v2"}],
    }, {"Bucket": "raw"})
    stub.add_response("delete_objects", {}, {"Bucket": "raw", "Delete": {"Quiet": True, "Objects": [
        {"Key": "raw/bookings/a.csv", "VersionId": "v1"}, {"Key": "runs/x.json", "VersionId": "v2"}]}})
    assert acceptance.empty_bucket(s3, "raw") == 2


def test_data_api_count_waits_for_the_statement(stubbed):
    rsd, stub = stubbed("redshift-data")
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:admin-AbCdEf"
    deployment = acceptance.Deployment(STACK, "raw", "arn:sm", "arn:topic", "acc-wg", "dev", secret)
    stub.add_response("execute_statement", {"Id": "11111111-2222-3333-4444-555555555555"},
                      {"WorkgroupName": "acc-wg", "Database": "dev", "SecretArn": secret, "Sql": acceptance.COUNT_SQL})
    stub.add_response("describe_statement", {"Id": "11111111-2222-3333-4444-555555555555", "Status": "STARTED"})
    stub.add_response("describe_statement", {"Id": "11111111-2222-3333-4444-555555555555", "Status": "FINISHED"})
    stub.add_response("get_statement_result", {"Records": [[{"longValue": 911}]]})
    assert acceptance.warehouse_count(rsd, deployment, sleep=lambda _s: None) == 911


def test_counts_must_add_up_and_match_the_warehouse():
    counts = {"rows_read": 10, "rows_quarantined": 1, "rows_duplicate": 1, "rows_inserted": 8,
              "rows_updated": 0, "rows_unchanged": 0}
    acceptance.check_counts(counts, 8)
    with pytest.raises(AcceptanceError, match="inserted 8"):
        acceptance.check_counts(counts, 7)
    with pytest.raises(AcceptanceError, match="not the sum"):
        acceptance.check_counts({**counts, "rows_read": 11}, 8)
    message = {"subject": "Airline booking ingestion succeeded",
               "message": "Ingestion of s3://b/raw/bookings/a.csv succeeded (execution e): rows_read=10, rows_inserted=8"}
    assert acceptance.check_success_notification(message, rows_read=10)["rows_inserted"] == 8
    with pytest.raises(AcceptanceError):
        acceptance.check_success_notification({"subject": "Airline booking ingestion FAILED", "message": "x"}, rows_read=10)


# -- the CDK CLI: commands built, not run ------------------------------------------------------


class Recorder:
    """The injected runner: records each command; fails the ones named in `fail`."""

    def __init__(self, fail: tuple[str, ...] = (), on_synth=None):
        self.calls: list[list[str]] = []
        self.fail, self.on_synth = fail, on_synth

    def __call__(self, argv, *, cwd, env):
        self.calls.append(list(argv))
        action = argv[3]
        if action == "synth" and self.on_synth:
            self.on_synth(Path(argv[argv.index("--output") + 1]))
        return subprocess.CompletedProcess(argv, 1 if action in self.fail else 0)


def test_cli_commands(tmp_path):
    context = acceptance.acceptance_context(STACK)
    assert context == {"stackName": STACK, "retainData": "false",
                       "redshiftNamespaceName": "acc-20260101120000-abc123",
                       "redshiftWorkgroupName": "acc-20260101120000-abc123"}
    runner = Recorder()
    cli = CdkCli(runner, env={"PATH": "/bin"}, project_dir=tmp_path)
    cli.synth(tmp_path / "cdk.out", context)
    cli.deploy(tmp_path / "cdk.out", STACK, tmp_path / "outputs.json")
    assert cli.destroy(tmp_path / "cdk.out", STACK)
    out = str(tmp_path / "cdk.out")
    assert runner.calls == [
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "--output", out,
         "-c", f"stackName={STACK}", "-c", "retainData=false",
         "-c", "redshiftNamespaceName=acc-20260101120000-abc123", "-c", "redshiftWorkgroupName=acc-20260101120000-abc123"],
        ["npx", "--no-install", "cdk", "deploy", "--app", out, STACK, "--require-approval", "never",
         "--outputs-file", str(tmp_path / "outputs.json"), "--no-notices"],
        ["npx", "--no-install", "cdk", "destroy", "--app", out, STACK, "--force", "--no-notices"],
    ]


def test_unique_names_and_cli_environment():
    name = acceptance.unique_stack_name(now=datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc), token="beef01")
    assert name == "AirlineAcceptance-20260304050607-beef01"
    assert acceptance.unique_stack_name() != acceptance.unique_stack_name()
    env = acceptance.cli_environment("eu-west-1", base={"PATH": "/usr/bin"})
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["PATH"].startswith(str(acceptance.PROJECT_DIR / ".venv" / "bin"))


def fake_assembly(out: Path) -> None:
    """What `cdk synth` writes, reduced to what run_acceptance reads."""
    out.mkdir(parents=True, exist_ok=True)
    template = {"Resources": {
        "CatalogDatabase": {"Type": "AWS::Glue::Database", "DeletionPolicy": "Retain",
                            "Properties": {"DatabaseInput": {"Name": "airline_bookings"}}},
        "WarehouseNamespace": {"Type": "AWS::RedshiftServerless::Namespace",
                               "Properties": {"NamespaceName": "acc-x", "DbName": "dev"}},
    }}
    (out / f"{STACK}.template.json").write_text(json.dumps(template))
    (out / "manifest.json").write_text(json.dumps({"artifacts": {STACK: {
        "type": "aws:cloudformation:stack",
        "properties": {"templateFile": f"{STACK}.template.json", "requiresBootstrapStackVersion": 6}}}}))


class StubbedSession:
    region_name = REGION

    def __init__(self, stubbed):
        self._stubbed, self.clients, self.stubs = stubbed, {}, {}

    def stub(self, service: str) -> Stubber:
        if service not in self.clients:
            self.clients[service], self.stubs[service] = self._stubbed(service)
        return self.stubs[service]

    def client(self, service: str):
        self.stub(service)
        return self.clients[service]


def test_a_failed_deploy_is_still_destroyed_and_its_glue_database_removed(tmp_path, stubbed):
    session = StubbedSession(stubbed)
    session.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/tester", "UserId": "AIDAEXAMPLE"})
    session.stub("cloudformation").add_response("describe_stacks", toolkit_stack())
    session.stub("ssm").add_response("get_parameter", {"Parameter": {"Value": "28"}})
    session.stub("glue").add_client_error("get_database", "EntityNotFoundException", "no", 400)
    session.stub("redshift-serverless").add_client_error("get_namespace", "ResourceNotFoundException", "no", 404)
    # destroy: the stack's buckets cannot be listed (it never got created), destroy runs anyway
    session.stub("cloudformation").add_client_error("list_stack_resources", "ValidationError", "does not exist", 400)
    session.stub("glue").add_response("delete_database", {}, {"Name": "airline_bookings"})

    runner = Recorder(fail=("deploy",), on_synth=fake_assembly)
    with pytest.raises(AcceptanceError, match="did not deploy"):
        acceptance.run_acceptance(session, CdkCli(runner, env={}), tmp_path, stack_name=STACK, log=lambda _l: None)
    assert [c[3] for c in runner.calls] == ["synth", "deploy", "destroy"]


def test_nothing_is_deployed_on_an_unbootstrapped_account(tmp_path, stubbed):
    session = StubbedSession(stubbed)
    session.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/tester", "UserId": "AIDAEXAMPLE"})
    session.stub("cloudformation").add_client_error("describe_stacks", "ValidationError",
                                                    "Stack with id CDKToolkit does not exist", 400)
    runner = Recorder(on_synth=fake_assembly)
    with pytest.raises(AcceptanceError, match="not bootstrapped"):
        acceptance.run_acceptance(session, CdkCli(runner, env={}), tmp_path, stack_name=STACK, log=lambda _l: None)
    assert [c[3] for c in runner.calls] == ["synth"]


def test_the_leftover_report(stubbed):
    class Session:
        def client(self, service):
            return clients[service]

    clients = {}
    clients["glue"], glue_stub = stubbed("glue")
    clients["kms"], kms_stub = stubbed("kms")
    glue_stub.add_client_error("get_database", "EntityNotFoundException", "gone", 400)
    kms_stub.add_response("describe_key", {"KeyMetadata": {"KeyId": "k", "KeyState": "Enabled"}})
    retained = [Resource("CatalogDatabase", "AWS::Glue::Database", "airline_bookings"),
                Resource("AuditTrailKey", "AWS::KMS::Key", "1234abcd-12ab-34cd-56ef-1234567890ab"),
                Resource("Other", "AWS::Some::Thing", "x")]
    report = acceptance.leftover_report(Session(), retained, destroyed=True, deleted=["Glue database airline_bookings"])
    assert report.splitlines() == [
        "cdk destroy succeeded",
        "deleted by the test after destroy: Glue database airline_bookings",
        "retained: AWS::Glue::Database airline_bookings (CatalogDatabase): gone",
        "retained: AWS::KMS::Key 1234abcd-12ab-34cd-56ef-1234567890ab (AuditTrailKey): still exists",
        "retained: AWS::Some::Thing x (Other): not checked",
    ]


# -- the state machine definitions, validated before the deploy -------------------------------

SNAPSHOT = Path(__file__).resolve().parents[1] / "infra" / "snapshots" / "AirlineBookingPipeline.template.json"


def test_every_state_machine_of_the_template_is_rendered_for_validation():
    definitions = acceptance.rendered_definitions(json.loads(SNAPSHOT.read_text()), REGION)
    assert set(definitions) == {"OrchestrationStateMachine4A805A55", "BackfillStateMachine395F6B27",
                                "WarehouseSchemaProviderwaiterstatemachineFA105F37"}
    for machine_type, text in definitions.values():
        assert machine_type == "STANDARD" and "Fn::" not in text and '"Ref"' not in text
        json.loads(text)
    states = json.loads(definitions["OrchestrationStateMachine4A805A55"][1])["States"]
    claim = states["Claim delivery"]
    assert claim["Resource"] == "arn:aws:states:::aws-sdk:s3:putObject"  # the partition filled in
    assert claim["Parameters"]["IfNoneMatch"] == "*"  # the parameter the docs leave open
    assert claim["Parameters"]["Bucket"] == "storagerawbucketbbd9bdc5"  # a bucket name, not an ARN
    assert states["Notify success"]["Parameters"]["TopicArn"].startswith(f"arn:aws:sns:{REGION}:")


def _validate_call(stub, logical_id, definitions, answer):
    machine_type, definition = definitions[logical_id]
    stub.add_response("validate_state_machine_definition", answer,
                      {"definition": definition, "type": machine_type, "severity": "WARNING"})


def test_valid_definitions_pass_and_warnings_are_logged(stubbed):
    sfn, stub = stubbed("stepfunctions")
    definitions = acceptance.rendered_definitions(json.loads(SNAPSHOT.read_text()), REGION)
    warning = {"severity": "WARNING", "code": "SCHEMA_VALIDATION_FAILED", "message": "a warning",
               "location": "/States/Claim delivery"}
    for logical_id in definitions:
        _validate_call(stub, logical_id, definitions, {"result": "OK", "diagnostics": [warning], "truncated": False})
    logged = []
    acceptance.validate_definitions(sfn, definitions, logged.append)
    assert len(logged) == 3 and all("WARNING SCHEMA_VALIDATION_FAILED at /States/Claim delivery" in l for l in logged)


def test_a_refused_definition_fails_naming_the_machine_the_code_and_the_place(stubbed):
    sfn, stub = stubbed("stepfunctions")
    definitions = acceptance.rendered_definitions(json.loads(SNAPSHOT.read_text()), REGION)
    refused = "OrchestrationStateMachine4A805A55"
    for logical_id in definitions:
        answer = {"result": "OK", "diagnostics": [], "truncated": False}
        if logical_id == refused:
            answer = {"result": "FAIL", "truncated": False, "diagnostics": [{
                "severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                "message": "The field 'IfNoneMatch' is not supported by Step Functions",
                "location": "/States/Claim delivery/Parameters"}]}
        _validate_call(stub, logical_id, definitions, answer)
    with pytest.raises(AcceptanceError) as error:
        acceptance.validate_definitions(sfn, definitions, lambda _l: None)
    assert (f"{refused}: ERROR SCHEMA_VALIDATION_FAILED at /States/Claim delivery/Parameters: "
            "The field 'IfNoneMatch' is not supported by Step Functions") in str(error.value)
    assert "nothing was deployed" in str(error.value)


def test_nothing_is_deployed_when_step_functions_refuses_a_definition(tmp_path, stubbed):
    def assembly_with_a_state_machine(out: Path) -> None:
        fake_assembly(out)
        template = json.loads((out / f"{STACK}.template.json").read_text())
        template["Resources"]["Machine"] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "DefinitionString": {"Fn::Join": ["", ['{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:',
                                                   {"Ref": "AWS::Partition"}, ':states:::aws-sdk:s3:putObject","End":true}}}']]}}}
        (out / f"{STACK}.template.json").write_text(json.dumps(template))

    session = StubbedSession(stubbed)
    session.stub("sts").add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/tester", "UserId": "AIDAEXAMPLE"})
    session.stub("stepfunctions").add_response(
        "validate_state_machine_definition",
        {"result": "FAIL", "truncated": False, "diagnostics": [
            {"severity": "ERROR", "code": "MISSING_PARAMETERS", "message": "Bucket is required", "location": "/States/A"}]},
        {"definition": '{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::aws-sdk:s3:putObject","End":true}}}',
         "type": "STANDARD", "severity": "WARNING"})
    runner = Recorder(on_synth=assembly_with_a_state_machine)
    with pytest.raises(AcceptanceError, match="Machine: ERROR MISSING_PARAMETERS at /States/A: Bucket is required"):
        acceptance.run_acceptance(session, CdkCli(runner, env={}), tmp_path, stack_name=STACK, log=lambda _l: None)
    assert [c[3] for c in runner.calls] == ["synth"]  # no deploy, so no destroy either


def test_the_definitions_are_written_for_the_aws_cli(tmp_path):
    written = acceptance.write_definitions(SNAPSHOT, tmp_path / "asl", REGION)
    assert sorted(p.name for p in written) == sorted(
        f"{lid}.asl.json" for lid in acceptance.rendered_definitions(json.loads(SNAPSHOT.read_text()), REGION))
    assert all(json.loads(p.read_text())["StartAt"] for p in written)
