"""The Redshift Data API with the IAM check on (issue 12, wiring plan step 8): the statement's owner is
the identity that ran it, and DescribeStatement / GetStatementResult / CancelStatement are authorized
with `redshift-data:statement-owner-iam-userid` = that owner, as the template's statements expect;
ExecuteStatement also asks `redshift-serverless:GetCredentials` on the workgroup (IAM authentication).
Real moto server, real PostgreSQL behind the Data API, the real synthesized template."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from airline_local.aws.patches.glue_jobs import GLUE_JOB_SESSION_NAME
from airline_local.warehouse.statements import Warehouse
from emulator_helpers import wait_for
from iam_mutations import actor_role, remove_action, transform
from iam_stack import checked_with, deployed_stack, glue_job_of_the_glue_role, policy_names, run_job
from test_iam_hook import Stack


@pytest.fixture(scope="module")
def stack(emulator, warehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with deployed_stack(emulator, tmp_path_factory.getbasetemp() / "iam-cdk.out") as deployed:
        yield deployed


def as_role(stack: Stack, role: str, session: str, service: str) -> Any:
    return stack.emulator.role_broker.client("redshift-data", role, session, service)


def schema_handler_role(stack: Stack) -> str:
    """The schema custom resource's function role (it may describe its own statements only)."""
    t = stack.assembly.template
    (function,) = [f for f in t.resources_of_type("AWS::Lambda::Function")
                   if str(t.properties(f).get("Handler", "")).endswith(".handle")]
    return t.properties(function)["Role"]


def finished(client: Any, statement_id: str) -> dict[str, Any]:
    return wait_for(lambda: (lambda d: d if d["Status"] in ("FINISHED", "FAILED", "ABORTED") else None)(
        client.describe_statement(Id=statement_id)), 30, 0.1, f"statement {statement_id}")


def error_of(call: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return {"code": raised.value.response["Error"]["Code"], "message": raised.value.response["Error"].get("Message", "")}


def test_the_identity_that_ran_a_statement_describes_and_reads_it(stack, data_api):
    glue = as_role(stack, stack.glue_role, GLUE_JOB_SESSION_NAME, "glue.amazonaws.com")
    statement = glue.execute_statement(WorkgroupName=stack.workgroup, Database="dev", Sql="SELECT 41 + 1 AS answer")
    assert finished(glue, statement["Id"])["Status"] == "FINISHED"
    assert glue.get_statement_result(Id=statement["Id"])["Records"] == [[{"longValue": 42}]]
    identity = stack.emulator.role_broker.identity(stack.glue_role, GLUE_JOB_SESSION_NAME, "glue.amazonaws.com")
    assert data_api.statement_owner(statement["Id"]) == identity.userid
    assert data_api.statement_owner(statement["Id"] + ":1") == identity.userid  # a batch member: the batch's owner


@pytest.mark.parametrize("other", ["another role", "another session of the same role"])
def test_describe_statement_by_another_identity_is_denied_on_the_owner_condition(stack, data_api, other):
    glue = as_role(stack, stack.glue_role, GLUE_JOB_SESSION_NAME, "glue.amazonaws.com")
    statement = glue.execute_statement(WorkgroupName=stack.workgroup, Database="dev", Sql="SELECT 1")
    finished(glue, statement["Id"])
    if other == "another role":
        role, session, service = schema_handler_role(stack), "SchemaHandler", "lambda.amazonaws.com"
    else:
        role, session, service = stack.glue_role, "AnotherRun", "glue.amazonaws.com"
    intruder = as_role(stack, role, session, service)
    for call in (lambda: intruder.describe_statement(Id=statement["Id"]),
                 lambda: intruder.get_statement_result(Id=statement["Id"]),
                 lambda: intruder.cancel_statement(Id=statement["Id"])):
        denied = error_of(call)
        assert denied["code"] == "AccessDeniedException", denied
        assert f"assumed-role/{role.rsplit('/', 1)[-1]}/{session} is not authorized to perform: redshift-data:" in denied["message"]
    # An Id that names no statement: no owner, so the condition denies (nothing about it leaks).
    assert error_of(lambda: glue.describe_statement(Id="00000000-0000-4000-8000-00000000dead"))["code"] == "AccessDeniedException"


@pytest.mark.parametrize("removed, action", [
    ("redshift-data:BatchExecuteStatement", "redshift-data:BatchExecuteStatement"),
    # The Data API gets the database credentials as the caller (IAM authentication to a workgroup).
    ("redshift-serverless:GetCredentials", "redshift-serverless:GetCredentials"),
])
def test_without_data_api_access_on_the_workgroup_the_glue_role_is_denied_by_name(stack, data_api, removed, action):
    without = transform(lambda b: remove_action(b, actor_role(b, "glue_job"), removed))
    with checked_with(stack, without):
        glue = as_role(stack, stack.glue_role, GLUE_JOB_SESSION_NAME, "glue.amazonaws.com")
        denied = error_of(lambda: glue.batch_execute_statement(WorkgroupName=stack.workgroup, Database="dev",
                                                               Sqls=["SELECT 1", "SELECT 2"]))
    assert denied["code"] == "AccessDeniedException"
    for part in (f"assumed-role/{stack.glue_role.rsplit('/', 1)[-1]}/{GLUE_JOB_SESSION_NAME}",
                 f"{action} on resource: {stack.workgroup_arn}",
                 "because no identity-based policy allows", *policy_names(stack, stack.glue_role)):
        assert part in denied["message"], f"{part!r} not in {denied['message']!r}"


# --- COPY reads S3 as its IAM_ROLE (wiring plan step 9) ------------------------------------------

# A Glue-job-like script: writes CSV under its staging mirror, then COPYs it through the Data API
# (as the job's role) and prints the statement's end state and error.
COPY_JOB = '''\
import os, sys, time
import boto3
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
staging = args["--staging"]
os.makedirs(staging.removeprefix("file://"), exist_ok=True)
with open(os.path.join(staging.removeprefix("file://"), "part-0.csv"), "w") as out:
    out.write("1\\n2\\n3\\n")
client = boto3.client("redshift-data")
sql = f"COPY {args['--table']} FROM '{staging}' IAM_ROLE {args['--role']} FORMAT AS CSV"
statement = client.execute_statement(WorkgroupName=args["--workgroup"], Database="dev", Sql=sql)
while (described := client.describe_statement(Id=statement["Id"]))["Status"] not in ("FINISHED", "FAILED", "ABORTED"):
    time.sleep(0.1)
print("STATUS", described["Status"])
print("ERROR", described.get("Error", ""))
sys.exit(0 if described["Status"] == "FINISHED" else 1)
'''


@pytest.fixture
def copy_wiring(stack, warehouse, data_api) -> Iterator[Warehouse]:
    """The warehouse as LocalPipeline wires it with the check on."""
    from airline_local.warehouse.copy_role import CopyRoleReader

    warehouse.copy_reader = CopyRoleReader(lambda: stack.emulator.role_broker, stack.assembly.template)
    warehouse.stage_local = stack.emulator.job_runner.stage_to_s3
    yield warehouse
    warehouse.copy_reader = warehouse.stage_local = None


@pytest.fixture(scope="module")
def copy_job(stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    script = tmp_path_factory.mktemp("copy-job") / "copy_job.py"
    script.write_text(COPY_JOB)
    return glue_job_of_the_glue_role(stack, "iam-copy-job", script)


def copy_role(stack: Stack) -> str:
    (namespace,) = stack.assembly.template.resources_of_type("AWS::RedshiftServerless::Namespace")
    return stack.assembly.template.properties(namespace)["DefaultIamRoleArn"]


def run_copy_job(stack: Stack, job: str, warehouse: Warehouse, table: str, run: str,
                 role: str = "default", mutation: Any = None) -> dict[str, Any]:
    warehouse.execute_batch([f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} (n INTEGER)"])
    with checked_with(stack, mutation or (lambda body: None)):
        return run_job(stack, job, {"--staging": f"s3://{stack.bucket}/staging/{run}/numbers/", "--table": table,
                                    "--role": role, "--workgroup": stack.workgroup})


def test_copy_reads_the_jobs_staging_from_s3_as_the_default_copy_role(stack, copy_wiring, copy_job):
    run = run_copy_job(stack, copy_job, copy_wiring, "iam_copy_ok", "copy-ok")
    assert run["JobRunState"] == "SUCCEEDED", (run.get("ErrorMessage"), run["stdout"])
    assert copy_wiring.query("SELECT sum(n) FROM iam_copy_ok")[1] == [(6,)]
    # Staged during the run as the job's role: in S3 before the COPY read it (as on AWS).
    s3 = stack.emulator.client("s3")
    assert s3.get_object(Bucket=stack.bucket, Key="staging/copy-ok/numbers/part-0.csv")["Body"].read() == b"1\n2\n3\n"


def test_without_its_read_of_staging_the_copy_role_fails_the_batch_in_redshifts_words(stack, copy_wiring, copy_job):
    no_read = transform(lambda b: remove_action(b, actor_role(b, "copy"), "s3:GetObject*", "/staging/*"))
    run = run_copy_job(stack, copy_job, copy_wiring, "iam_copy_denied", "copy-denied", mutation=no_read)
    assert run["JobRunState"] == "FAILED"
    for part in ("STATUS FAILED", "S3ServiceException:", "Status 403,Error AccessDenied",
                 f"assumed-role/{copy_role(stack).rsplit('/', 1)[-1]}/RedshiftIamRoleSession is not authorized to perform: "
                 f"s3:GetObject on resource: arn:aws:s3:::{stack.bucket}/staging/copy-denied/numbers/part-0.csv",
                 *policy_names(stack, copy_role(stack))):
        assert part in run["stdout"], f"{part!r} not in {run['stdout']!r}"
    assert copy_wiring.query("SELECT count(*) FROM iam_copy_denied")[1] == [(0,)]


def test_a_copy_role_not_associated_with_the_namespace_is_refused(stack, copy_wiring, copy_job):
    run = run_copy_job(stack, copy_job, copy_wiring, "iam_copy_foreign", "copy-foreign", role=f"'{stack.glue_role}'")
    assert run["JobRunState"] == "FAILED"
    assert f"Not authorized to get credentials of role {stack.glue_role}" in run["stdout"]


def test_without_put_on_staging_the_jobs_staged_output_never_reaches_the_copy(stack, copy_wiring, copy_job):
    no_put = transform(lambda b: remove_action(b, actor_role(b, "glue_job"), "s3:PutObject", "/staging/*"))
    run = run_copy_job(stack, copy_job, copy_wiring, "iam_copy_unstaged", "copy-unstaged", mutation=no_put)
    assert run["JobRunState"] == "FAILED"
    for part in ("STATUS FAILED", "could not be written to S3 as the job's role",
                 f"assumed-role/{stack.glue_role.rsplit('/', 1)[-1]}/{GLUE_JOB_SESSION_NAME} is not authorized to perform: "
                 f"s3:PutObject on resource: arn:aws:s3:::{stack.bucket}/staging/copy-unstaged/numbers/part-0.csv",
                 *policy_names(stack, stack.glue_role)):
        assert part in run["stdout"], f"{part!r} not in {run['stdout']!r}"
