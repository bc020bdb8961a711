"""The Redshift Data API with the IAM check on (issue 12, wiring plan step 8): the statement's owner is
the identity that ran it, and DescribeStatement / GetStatementResult / CancelStatement are authorized
with `redshift-data:statement-owner-iam-userid` = that owner, as the template's statements expect;
ExecuteStatement also asks `redshift-serverless:GetCredentials` on the workgroup (IAM authentication).
Real moto server, real PostgreSQL behind the Data API, the real synthesized template."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from airline_local.aws.moto_patches import GLUE_JOB_SESSION_NAME, RUNTIME
from airline_local.warehouse.postgres import PostgresServer
from airline_local.warehouse.redshift_data import DataApiEmulator, Warehouse
from emulator_helpers import wait_for
from iam_mutations import actor_role, remove_action, transform
from iam_stack import checked_with, deployed_stack, policy_names
from test_iam_hook import Stack


@pytest.fixture(scope="module")
def warehouse() -> Iterator[Warehouse]:
    # Not pytest's tmp_path: its 0700 root-owned parents would keep the `postgres` user out.
    root = Path(tempfile.mkdtemp(prefix="airline-iam-data-api-"))
    root.chmod(0o711)
    server = PostgresServer(root / "pg").start()
    try:
        yield Warehouse(server.dsn)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(emulator, warehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with deployed_stack(emulator, tmp_path_factory.getbasetemp() / "iam-cdk.out") as deployed:
        yield deployed


@pytest.fixture
def data_api(stack, warehouse) -> Iterator[DataApiEmulator]:
    api = DataApiEmulator(warehouse)
    RUNTIME.data_api = api  # restored by conftest's autouse fixture
    yield api
    api.close()


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

