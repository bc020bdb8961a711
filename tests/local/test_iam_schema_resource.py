"""The schema custom resource created as CloudFormation would (issue 12, wiring plan step 10): the
deployed handler (the cloud assembly's asset of stacks/schema_handler/handler.py) runs onEvent then
isComplete, its Data API client signed as the function's role with the function's name as session
name; the IAM check authorizes BatchExecuteStatement on the workgroup, what SecretArn implies
(secretsmanager:GetSecretValue on the secret, and kms:Decrypt through Secrets Manager on its
customer managed key), the polling DescribeStatement and the GetStatementResult of the state read;
the batches (bootstrap, state, one per migration of sql/migrations/, the grants) run on the real
PostgreSQL. One emulator, one PostgreSQL, the real synthesized
template; the mutations swap the policies in force, not the deploy."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from airline_local.aws.cfn import Template
from airline_local.custom_resources import (
    CustomResourceError,
    function_session_client,
    provider_resources,
    run_custom_resources,
)
from iam_mutations import remove_action
from stacks.schema_handler.handler import checksum
from iam_stack import checked_with, deployed_stack, policy_names
from test_iam_hook import Stack


@pytest.fixture(scope="module")
def stack(emulator, warehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with deployed_stack(emulator, tmp_path_factory.getbasetemp() / "iam-cdk.out") as deployed:
        yield deployed


class Schema:
    """The template's schema resource, its handler function and that function's role."""

    def __init__(self, stack: Stack) -> None:
        template = stack.assembly.template
        (self.resource,) = provider_resources(template)
        self.function = self.resource.on_event
        self.function_name = template.name_of(self.function)
        self.role_arn = template.properties(self.function)["Role"]
        self.role = self.role_arn.rsplit("/", 1)[-1]  # the role's name = its logical id locally
        self.session_arn = stack.session_arn(self.role_arn, self.function_name)
        props = template.properties(self.resource.logical_id)
        self.secret_arn, self.etl_user = props["SecretArn"], props["EtlDbUser"]


def create_schema(stack: Stack, assembly: Any = None) -> Any:
    assembly = assembly or stack.assembly
    client = function_session_client(assembly.template, stack.emulator.role_broker, stack.emulator.client)
    return run_custom_resources(assembly, client)


def log_of(stack: Stack, who: str, since: int) -> list[tuple[str, str, str]]:
    return [(action, resource, verdict) for arn, action, resource, verdict in list(stack.check.log)[since:] if arn == who]


def test_the_handler_creates_the_schema_as_its_functions_role(stack, data_api, warehouse):
    schema = Schema(stack)
    assert schema.resource.is_complete == schema.function  # one function: only it may describe its batch
    before = len(stack.check.log)
    (created,) = create_schema(stack)
    assert created.physical_id == "airline-schema-dev" and created.is_complete_calls >= 1
    calls = log_of(stack, schema.session_arn, before)
    assert ("redshift-data:BatchExecuteStatement", stack.workgroup_arn, "allowed") in calls
    assert ("secretsmanager:GetSecretValue", schema.secret_arn, "allowed") in calls
    assert ("redshift-data:DescribeStatement", "*", "allowed") in calls
    assert ("redshift-data:GetStatementResult", "*", "allowed") in calls
    # secret authentication, not IAM: no redshift-serverless:GetCredentials
    assert {action for action, _, _ in calls} == {"redshift-data:BatchExecuteStatement", "secretsmanager:GetSecretValue",
                                                  "redshift-data:DescribeStatement", "redshift-data:GetStatementResult"}
    assert not [entry for entry in list(stack.check.log)[before:] if entry[3] == "denied"]
    # the batch belongs to the function's session (what its DescribeOwnStatements condition needs)
    identity = stack.emulator.role_broker.identity(schema.role_arn, schema.function_name, "lambda.amazonaws.com")
    assert identity.arn == schema.session_arn
    assert data_api.statement_owner(created.data["StatementId"]) == identity.userid
    # Secrets Manager decrypts the secret with its customer managed key as the caller: the key policy allows it
    decrypt = stack.check.authorizer.authorize(identity.principal, "secretsmanager:GetSecretValue", schema.secret_arn)
    assert [(c.action, c.allowed) for c in decrypt.checks] == [("secretsmanager:GetSecretValue", True), ("kms:Decrypt", True)]
    # the tables exist, and the ETL user with the grants the load needs
    with psycopg.connect(warehouse.dsn) as conn:
        tables = {t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'airline'")}
        assert {"bookings", "airports", "ingestion_runs", "load_mutex", "schema_migrations"} <= tables
        versions = [v for (v,) in conn.execute("SELECT version FROM airline.schema_migrations ORDER BY 1")]
        assert versions == ["0001", "0002", "0003"]
        granted = conn.execute("SELECT has_table_privilege(%s, 'airline.bookings', 'SELECT,INSERT,UPDATE,DELETE'), "
                               "has_schema_privilege(%s, 'airline', 'USAGE'), "
                               "has_database_privilege(%s, current_database(), 'TEMP')",
                               (schema.etl_user,) * 3).fetchone()
    assert schema.etl_user.startswith("IAMR:") and granted == (True, True, True)
    (again,) = create_schema(stack)  # a redeploy: nothing pending, the grants again
    assert again.physical_id == created.physical_id and again.data["Migrated"] == "-"


@pytest.mark.parametrize("action, resource", [
    ("redshift-data:BatchExecuteStatement", "workgroup"),
    ("secretsmanager:GetSecretValue", "secret"),
])
def test_without_its_grant_the_deploy_fails_naming_the_denial(stack, data_api, action, resource):
    schema = Schema(stack)
    arn = stack.workgroup_arn if resource == "workgroup" else schema.secret_arn
    with checked_with(stack, lambda body: remove_action(body, schema.role, action)):
        with pytest.raises(CustomResourceError) as failed:
            create_schema(stack)
    message = str(failed.value)
    for part in (f"{schema.resource.logical_id} (Custom::RedshiftSchema) CREATE_FAILED", "AccessDeniedException",
                 f"{schema.session_arn} is not authorized to perform: {action} on resource: {arn}",
                 "because no identity-based policy allows", *policy_names(stack, schema.role)):
        assert part in message, f"{part!r} not in {message!r}"


def test_without_the_key_policys_grant_secrets_manager_cannot_decrypt_the_secret(stack, data_api):
    schema = Schema(stack)

    def no_decrypt_for_the_function(body: dict[str, Any]) -> None:
        (secret,) = [r for r in body["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
        key = body["Resources"][secret["Properties"]["KmsKeyId"]["Fn::GetAtt"][0]]  # the secret's customer managed key
        statements = key["Properties"]["KeyPolicy"]["Statement"]
        kept = [s for s in statements if schema.role not in str(s.get("Principal"))]
        assert len(kept) == len(statements) - 1
        key["Properties"]["KeyPolicy"]["Statement"] = kept

    with checked_with(stack, no_decrypt_for_the_function):
        with pytest.raises(CustomResourceError) as failed:
            create_schema(stack)
    message = str(failed.value)
    assert f"{schema.session_arn} is not authorized to perform: kms:Decrypt" in message
    assert f"on behalf of secretsmanager:GetSecretValue on {schema.secret_arn}" in message


def test_is_complete_as_another_functions_session_is_denied(stack, data_api):
    schema = Schema(stack)
    (created,) = create_schema(stack)
    other = stack.emulator.role_broker.client("redshift-data", schema.role_arn, "AnotherFunction", "lambda.amazonaws.com")
    with pytest.raises(ClientError) as denied:
        other.describe_statement(Id=created.data["StatementId"])
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert (f"{stack.session_arn(schema.role_arn, 'AnotherFunction')} is not authorized to perform: "
            "redshift-data:DescribeStatement") in denied.value.response["Error"]["Message"]


def test_a_failing_migration_fails_the_deploy_with_the_databases_error(stack, data_api):
    body = copy.deepcopy(dict(stack.assembly.template.body))
    schema = Schema(stack)
    statements = ["INSERT INTO airline.no_such_table VALUES (1)"]
    migrations = body["Resources"][schema.resource.logical_id]["Properties"]["Migrations"]
    migrations.append({"Version": f"{len(migrations) + 1:04d}", "Description": "broken",
                       "Checksum": checksum(statements), "Statements": statements})
    template = stack.assembly.template
    broken = replace(stack.assembly, template=Template(body, region=template.region, stack_name=template.stack_name))
    with pytest.raises(CustomResourceError) as failed:
        create_schema(stack, broken)
    message = str(failed.value)
    assert f"SchemaDeploymentError: migration {migrations[-1]['Version']} (broken) FAILED" in message
    assert 'ERROR: relation "airline.no_such_table" does not exist' in message


def test_a_provider_resource_the_local_deploy_cannot_run_is_an_error_naming_it(stack):
    body = copy.deepcopy(dict(stack.assembly.template.body))
    schema = Schema(stack)
    body["Resources"][schema.resource.logical_id]["Type"] = "Custom::SomethingElse"
    template = stack.assembly.template
    other = replace(stack.assembly, template=Template(body, region=template.region, stack_name=template.stack_name))

    def no_call(function: str, service: str) -> Any:
        raise AssertionError("no handler may run for a resource the local deploy does not know")

    with pytest.raises(CustomResourceError, match=f"{schema.resource.logical_id} \\(Custom::SomethingElse\\): a "
                                                  "Provider-framework custom resource the local deploy cannot run"):
        run_custom_resources(other, no_call)


def test_the_local_framework_refuses_data_from_an_incomplete_is_complete_as_cdks_does(stack, data_api, monkeypatch):
    """The Provider framework's waiter calls isComplete again with onEvent's event: data of an
    unfinished call would be lost, so the framework fails the resource (docs/aws-notes.md,
    "Warehouse migrations"); a handler that kept its state there fails locally too."""
    schema = Schema(stack)
    create_schema(stack)  # loads the handler's module
    module = sys.modules[f"airline_local_function_{schema.function}"]
    answers = iter([{"IsComplete": False, "Data": {"NextStatementId": "x"}}, {"IsComplete": True}])
    monkeypatch.setattr(module, "is_complete", lambda event, context=None, client=None: next(answers))
    with pytest.raises(CustomResourceError, match='CREATE_FAILED: "Data" is not allowed if "IsComplete" is "False"'):
        create_schema(stack)
