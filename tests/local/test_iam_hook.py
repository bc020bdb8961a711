"""The IAM hook (issue 12, wiring plan step 2): with the check on, every request to the real moto server
is authorized against the REAL synthesized template's policies, as the role session that signed it,
and a refusal is the service's own error in its own protocol.

The stack is deployed through the hook by the operator (so every deploy call is mapped); the actors
call with role credentials minted by the emulated STS (RoleBroker)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from airline_local.aws.iam.authorizer import Authorizer
from airline_local.aws.iam.principals import BROKER_ACCESS_KEY
from airline_local.aws.iam.requests import Call, UnmappedRequestError, map_request
from airline_local.aws.cfn import ACCOUNT_ID
from airline_local.aws.emulator import OPERATOR_CREDENTIALS, Emulator
from airline_local.local_stack import CloudAssembly, DeployedStack, deploy, synthesize
from airline_local.aws.patches.runtime import RUNTIME
from airline_local.pipeline import LOCAL_CONTEXT


class Stack:
    def __init__(self, emulator: Any, assembly: CloudAssembly, deployed: DeployedStack, check: Any) -> None:
        self.emulator, self.assembly, self.deployed, self.check = emulator, assembly, deployed, check
        t = assembly.template
        (machine,) = [m for m in t.resources_of_type("AWS::StepFunctions::StateMachine")
                      if t.ref(m) == deployed.state_machine_arn]
        self.machine_role = t.properties(machine)["RoleArn"]
        (job,) = t.resources_of_type("AWS::Glue::Job")
        self.glue_role = t.properties(job)["Role"]
        (crawler,) = t.resources_of_type("AWS::Glue::Crawler")
        self.crawler_role = t.properties(crawler)["Role"]
        (workgroup,) = t.resources_of_type("AWS::RedshiftServerless::Workgroup")
        self.workgroup = t.properties(workgroup)["WorkgroupName"]
        self.workgroup_arn = t.get_att(workgroup, "Workgroup.WorkgroupArn")
        self.crawler = deployed.crawler_names[0]
        self.job = deployed.job_names[0]
        self.topic = deployed.topic_arns[0]
        self.bucket = deployed.raw_bucket

    def as_machine(self, service: str) -> Any:
        return self.emulator.role_broker.client(service, self.machine_role, "ExecutionSession", "states.amazonaws.com",
                                                self.deployed.state_machine_arn, ACCOUNT_ID)

    def as_glue_job(self, service: str) -> Any:
        return self.emulator.role_broker.client(service, self.glue_role, "GlueJobRunnerSession", "glue.amazonaws.com")

    def as_crawler(self, service: str) -> Any:
        return self.emulator.role_broker.client(service, self.crawler_role, "AWS-Crawler", "glue.amazonaws.com")

    def session_arn(self, role_arn: str, session: str) -> str:
        return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{session}"

    def raw(self, service: str, **credentials: str) -> Any:
        return self.emulator.client(service, **credentials)


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assembly = CloudAssembly.load(synthesize(tmp_path_factory.getbasetemp() / "iam-cdk.out", LOCAL_CONTEXT))
    requested = emulator.iam_check_requested
    emulator.iam_check_requested = True
    try:
        check = emulator.start_iam_check(assembly.template)
        # The deploy goes through the hook as the operator: every call it makes must be mapped.
        deployed = deploy(assembly, emulator.client, emulator.job_runner)
        emulator.client("s3").put_object(Bucket=deployed.raw_bucket, Key="runs/run-1.json", Body=b"{}")
        yield Stack(emulator, assembly, deployed, check)
    finally:
        emulator.stop_iam_check()
        emulator.iam_check_requested = requested


def error_of(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return {"code": response["Error"].get("Code"), "message": response["Error"].get("Message", ""),
            "status": response["ResponseMetadata"]["HTTPStatusCode"],
            "content_type": response["ResponseMetadata"]["HTTPHeaders"].get("content-type", "")}


# --- glue (JSON: __type) ---------------------------------------------------------------------


def test_glue_allows_what_the_role_grants_and_denies_the_rest_as_json_access_denied(stack):
    assert stack.as_machine("glue").get_crawler(Name=stack.crawler)["Crawler"]["Name"] == stack.crawler
    denied = error_of(lambda: stack.as_glue_job("glue").start_crawler(Name=stack.crawler))
    assert denied["code"] == "AccessDeniedException" and denied["status"] == 400
    # botocore read the code from the body's "__type" (moto's call_action drops the error's headers:
    # no X-Amzn-ErrorType, no JSON content type; botocore does not need them).
    arn = f"arn:aws:glue:us-east-1:{ACCOUNT_ID}:crawler/{stack.crawler}"
    assert denied["message"].startswith(
        f"User: {stack.session_arn(stack.glue_role, 'GlueJobRunnerSession')} is not authorized to perform: "
        f"glue:StartCrawler on resource: {arn} because no identity-based policy allows the glue:StartCrawler action")
    # The crawler's Data Catalog grant: catalog, database and table ARNs are each authorized.
    (database_lid,) = stack.assembly.template.resources_of_type("AWS::Glue::Database")
    database = stack.assembly.template.properties(database_lid)["DatabaseInput"]["Name"]
    with pytest.raises(ClientError) as missing:
        stack.as_crawler("glue").get_table(DatabaseName=database, Name="no_such_table")
    assert missing.value.response["Error"]["Code"] == "EntityNotFoundException"  # authorized, then not found
    denied = error_of(lambda: stack.as_machine("glue").get_table(DatabaseName=database, Name="bookings"))
    assert denied["code"] == "AccessDeniedException" and f"glue:GetTable on resource: arn:aws:glue:us-east-1:{ACCOUNT_ID}:catalog" in denied["message"]


# --- sns (query XML: AuthorizationError) -----------------------------------------------------


def test_sns_publish_by_the_state_machine_is_allowed_and_by_the_glue_job_is_an_authorization_error(stack):
    assert stack.as_machine("sns").publish(TopicArn=stack.topic, Subject="s", Message="m")["MessageId"]
    denied = error_of(lambda: stack.as_glue_job("sns").publish(TopicArn=stack.topic, Message="m"))
    assert denied["code"] == "AuthorizationError" and denied["status"] == 403
    assert f"is not authorized to perform: sns:Publish on resource: {stack.topic}" in denied["message"]


# --- s3 (REST XML: 403 AccessDenied) ---------------------------------------------------------


def test_s3_object_access_follows_the_prefixes_each_role_is_granted(stack):
    glue_s3 = stack.as_glue_job("s3")
    glue_s3.put_object(Bucket=stack.bucket, Key="staging/run-1/part-0.parquet", Body=b"x")
    assert stack.as_machine("s3").get_object(Bucket=stack.bucket, Key="runs/run-1.json")["Body"].read() == b"{}"
    denied = error_of(lambda: glue_s3.put_object(Bucket=stack.bucket, Key="raw/bookings/forged.csv", Body=b"x"))
    assert denied["code"] == "AccessDenied" and denied["status"] == 403 and "xml" in denied["content_type"]
    assert (f"is not authorized to perform: s3:PutObject on resource: arn:aws:s3:::{stack.bucket}/raw/bookings/forged.csv"
            in denied["message"])
    denied = error_of(lambda: stack.as_machine("s3").get_object(Bucket=stack.bucket, Key="staging/run-1/part-0.parquet"))
    assert denied["code"] == "AccessDenied" and denied["status"] == 403
    # HEAD has no body: the status alone, as on AWS.
    assert error_of(lambda: stack.as_machine("s3").head_object(Bucket=stack.bucket, Key="staging/run-1/part-0.parquet"))["status"] == 403
    listed = stack.as_crawler("s3").list_objects_v2(Bucket=stack.bucket, Prefix="raw/bookings/")
    assert listed["KeyCount"] == 0


# --- redshift-data (JSON) --------------------------------------------------------------------


class _DataApi:
    def execute_statement(self, params: dict[str, Any], caller: str | None = None) -> dict[str, Any]:
        return {"Id": "00000000-0000-4000-8000-000000000001", "Database": params.get("Database")}


def test_redshift_data_on_the_workgroup_is_allowed_for_the_glue_job_only(stack):
    RUNTIME.data_api = _DataApi()  # restored by conftest's autouse fixture
    statement = {"WorkgroupName": stack.workgroup, "Database": "dev", "Sql": "SELECT 1"}
    assert stack.as_glue_job("redshift-data").execute_statement(**statement)["Id"]
    denied = error_of(lambda: stack.as_machine("redshift-data").execute_statement(**statement))
    assert denied["code"] == "AccessDeniedException" and denied["status"] == 400
    assert f"redshift-data:ExecuteStatement on resource: {stack.workgroup_arn}" in denied["message"]
    # This stand-in records no owner: the owner condition has no key to match, so it denies
    # (statement owners: tests/local/test_iam_data_api.py).
    ownerless = error_of(lambda: stack.as_glue_job("redshift-data").describe_statement(Id="00000000-0000-4000-8000-000000000001"))
    assert ownerless["code"] == "AccessDeniedException" and "redshift-data:DescribeStatement" in ownerless["message"]


# --- authentication --------------------------------------------------------------------------


# "AKIA" + ...: an AWS-shaped key, written so that the repository's secret scanner (tests/infra) passes.
@pytest.mark.parametrize("key", ["AKIA" + "UNKNOWNKEY000000", "testing", "ak"])
def test_an_unknown_access_key_is_rejected_in_each_protocol(stack, key):
    credentials = {"aws_access_key_id": key, "aws_secret_access_key": "x"}
    glue = error_of(lambda: stack.raw("glue", **credentials).get_crawler(Name=stack.crawler))
    assert glue["code"] == "UnrecognizedClientException" and glue["status"] == 400
    sns = error_of(lambda: stack.raw("sns", **credentials).publish(TopicArn=stack.topic, Message="m"))
    assert sns["code"] == "InvalidClientTokenId" and sns["status"] == 403
    s3 = error_of(lambda: stack.raw("s3", **credentials).get_object(Bucket=stack.bucket, Key="runs/run-1.json"))
    assert s3["code"] == "InvalidAccessKeyId" and s3["status"] == 403


def test_a_session_token_that_is_not_the_keys_is_rejected(stack):
    good = stack.emulator.role_broker.credentials(stack.glue_role, "GlueJobRunnerSession", "glue.amazonaws.com")
    forged = {"aws_access_key_id": good.access_key_id, "aws_secret_access_key": good.secret_access_key,
              "aws_session_token": "forged"}
    assert error_of(lambda: stack.raw("glue", **forged).get_job_run(JobName=stack.job, RunId="jr_x"))["code"] == "UnrecognizedClientException"
    assert error_of(lambda: stack.raw("s3", **forged).get_object(Bucket=stack.bucket, Key="runs/run-1.json"))["code"] == "InvalidToken"
    no_token = {k: v for k, v in forged.items() if k != "aws_session_token"}
    assert error_of(lambda: stack.raw("sns", **no_token).publish(TopicArn=stack.topic, Message="m"))["code"] == "InvalidClientTokenId"


def test_the_broker_key_may_only_assume_roles(stack):
    broker = {"aws_access_key_id": BROKER_ACCESS_KEY, "aws_secret_access_key": "x"}
    denied = error_of(lambda: stack.raw("glue", **broker).get_crawler(Name=stack.crawler))
    assert denied["code"] == "AccessDeniedException" and "may only call sts:AssumeRole" in denied["message"]


# --- what the check cannot judge is an error, never an allow ---------------------------------


def test_an_unmapped_operation_is_an_error_naming_it(stack):
    glue = error_of(lambda: stack.as_glue_job("glue").delete_job(JobName=stack.job))
    assert glue["code"] == "LocalIamCheckError" and "glue:DeleteJob" in glue["message"]
    s3 = error_of(lambda: stack.as_glue_job("s3").get_bucket_acl(Bucket=stack.bucket))
    assert s3["code"] == "LocalIamCheckError" and "?acl" in s3["message"]
    assert error_of(lambda: stack.as_machine("glue").get_job(JobName=stack.job))["code"] == "AccessDeniedException"
    with pytest.raises(UnmappedRequestError, match="sqs:SendMessage"):
        map_request(Call("sqs", "SendMessage", "us-east-1", ACCOUNT_ID, {}))


# --- the operator and aws:SecureTransport ----------------------------------------------------


def test_operator_calls_are_allowed_unchecked_and_recorded(stack):
    before = len(stack.check.log)
    stack.emulator.client("s3").put_object(Bucket=stack.bucket, Key="raw/bookings/operator.csv", Body=b"a\n")
    operator_arn = f"arn:aws:iam::{ACCOUNT_ID}:user/local-operator"
    assert (operator_arn, "s3:PutObject", f"arn:aws:s3:::{stack.bucket}/raw/bookings/operator.csv",
            "allowed unchecked (operator)") in list(stack.check.log)[before:]
    # The deploy went through the hook as the operator (every deploy call is mapped).
    actions = {entry[1] for entry in stack.check.log if entry[0] == operator_arn}
    assert {"iam:CreateRole", "s3:CreateBucket", "s3:PutBucketNotification", "glue:CreateCrawler", "glue:CreateJob",
            "states:CreateStateMachine", "events:PutRule", "events:PutTargets", "sns:CreateTopic",
            "cloudwatch:PutMetricAlarm"} <= actions
    assert OPERATOR_CREDENTIALS["aws_access_key_id"] == "LOCALOPERATORKEY0000"
    # The operator may call what no actor calls (listing every queue), allowed and logged as
    # unmapped; the deploy above made no such call.
    deploy_entries = list(stack.check.log)[:before]
    assert not [entry for entry in deploy_entries if entry[3] == "allowed unchecked (operator, unmapped)"]
    assert "QueueUrls" in stack.emulator.client("sqs").list_queues()
    assert list(stack.check.log)[-1] == (operator_arn, "sqs:ListQueues", "", "allowed unchecked (operator, unmapped)")


def test_secure_transport_is_true_and_false_would_meet_the_bucket_policys_explicit_deny(stack):
    call = Call("s3", "PutObject", "us-east-1", ACCOUNT_ID, {}, stack.bucket, "staging/x", {}, {})
    (ask,) = map_request(call)
    assert dict(ask.context)["aws:SecureTransport"] is True
    authorizer: Authorizer = stack.check.authorizer
    principal = stack.emulator.role_broker.identity(stack.glue_role, "GlueJobRunnerSession", "glue.amazonaws.com").principal
    assert authorizer.authorize(principal, "s3:PutObject", f"arn:aws:s3:::{stack.bucket}/staging/x", dict(ask.context))
    plain_http = authorizer.authorize(principal, "s3:PutObject", f"arn:aws:s3:::{stack.bucket}/staging/x",
                                      {"aws:SecureTransport": False})
    assert not plain_http
    assert plain_http.denial.decision.reason == "explicit-deny"
    assert "with an explicit deny in a resource-based policy" in plain_http.message
    bucket_lid = next(lid for lid in stack.assembly.template.resources_of_type("AWS::S3::BucketPolicy")
                      if stack.assembly.template.properties(lid)["Bucket"] == stack.bucket)
    assert bucket_lid in plain_http.message


def test_the_check_is_off_by_default_and_off_means_moto_as_shipped(stack):
    assert inspect.signature(Emulator).parameters["iam_check"].default is False
    stack.emulator.stop_iam_check()
    try:
        testing = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        assert stack.raw("glue", **testing).get_crawler(Name=stack.crawler)["Crawler"]["Name"] == stack.crawler
    finally:
        RUNTIME.iam_check = stack.check


def test_s3_operations_are_derived_from_the_request_not_from_motos_lossy_action_map():
    from airline_local.aws.iam.requests import s3_operation

    def asks(method: str, key: str | None, query: dict[str, str], headers: dict[str, str] | None = None,
             body: bytes = b"") -> list[tuple[str, str]]:
        operation = s3_operation(method, "b", key, query, headers or {})
        call = Call("s3", operation, "us-east-1", ACCOUNT_ID, {"body": body}, "b", key, headers or {}, query)
        return [(a.action, a.resource) for a in map_request(call)]

    assert asks("PUT", "dst/k", {}, {"x-amz-copy-source": "/src-bucket/a%20b.csv"}) == [
        ("s3:GetObject", "arn:aws:s3:::src-bucket/a b.csv"), ("s3:PutObject", "arn:aws:s3:::b/dst/k")]
    body = b"<Delete><Object><Key>x/1</Key></Object><Object><Key>x/2</Key></Object></Delete>"
    assert asks("POST", None, {"delete": ""}, body=body) == [("s3:DeleteObject", "arn:aws:s3:::b/x/1"),
                                                              ("s3:DeleteObject", "arn:aws:s3:::b/x/2")]
    assert asks("GET", "k", {"versionId": "v1"}) == [("s3:GetObjectVersion", "arn:aws:s3:::b/k")]
    assert asks("HEAD", "k", {}) == [("s3:GetObject", "arn:aws:s3:::b/k")]
    assert asks("GET", None, {"list-type": "2", "prefix": "runs/"}) == [("s3:ListBucket", "arn:aws:s3:::b")]
    with pytest.raises(UnmappedRequestError, match=r"PUT bucket \?encryption"):
        asks("PUT", None, {"encryption": ""})
