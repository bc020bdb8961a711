"""Redshift Serverless, its VPC, the COPY role and the schema custom resource (template + the
handler's pure logic)."""

from __future__ import annotations

import pytest

from stacks.schema_handler import handler
from tests.infra.template_helpers import as_list, only, policy_statements, render, resources_of


def test_namespace_gets_credentials_by_dynamic_reference_only(template_json):
    _, namespace = only(template_json, "AWS::RedshiftServerless::Namespace")
    password = render(namespace["AdminUserPassword"])
    assert password.startswith("{{resolve:secretsmanager:<WarehouseAdminSecret") and password.endswith(":SecretString:password::}}")
    assert namespace["DbName"] == "dev" and namespace["NamespaceName"] == "airline-bookings"
    assert render(namespace["KmsKeyId"]).startswith("<StorageDataKey")
    copy_role = render(namespace["DefaultIamRoleArn"])
    assert copy_role.startswith("<WarehouseCopyRole") and [render(r) for r in namespace["IamRoles"]] == [copy_role]
    _, secret = only(template_json, "AWS::SecretsManager::Secret")
    generator = secret["GenerateSecretString"]
    assert generator["GenerateStringKey"] == "password" and "password" not in generator["SecretStringTemplate"]
    # No literal password anywhere in the template.
    assert "AdminUserPassword" not in str({k: v for k, v in namespace.items() if k != "AdminUserPassword"})


def test_workgroup_is_private_in_three_isolated_subnets_of_its_own_vpc(template_json):
    _, workgroup = only(template_json, "AWS::RedshiftServerless::Workgroup")
    assert workgroup["PubliclyAccessible"] is False and workgroup["EnhancedVpcRouting"] is True
    assert workgroup["WorkgroupName"] == "airline-bookings" and workgroup["BaseCapacity"] == 8
    subnets = {s["Ref"] for s in workgroup["SubnetIds"]}
    assert len(subnets) == 3
    resources = template_json["Resources"]
    for subnet in subnets:
        assert resources[subnet]["Properties"]["MapPublicIpOnLaunch"] is False
        tags = {t["Key"]: t["Value"] for t in resources[subnet]["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"
    assert len({render(resources[s]["Properties"]["AvailabilityZone"]) for s in subnets}) == 3
    assert resources_of(template_json, "AWS::EC2::InternetGateway") == {}
    assert resources_of(template_json, "AWS::EC2::NatGateway") == {}
    (endpoint,) = resources_of(template_json, "AWS::EC2::VPCEndpoint").values()
    assert "s3" in render(endpoint["Properties"]["ServiceName"])
    _, flow_log = only(template_json, "AWS::EC2::FlowLog")
    assert flow_log["TrafficType"] == "ALL"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in workgroup["ConfigParameters"]}
    assert params["require_ssl"] == "true"
    (group_id,) = [g["Fn::GetAtt"][0] for g in workgroup["SecurityGroupIds"]]
    group = resources[group_id]["Properties"]
    assert "SecurityGroupIngress" not in group


def test_copy_role_reads_staging_only(template_json):
    role_id = next(k for k in resources_of(template_json, "AWS::IAM::Role") if k.startswith("WarehouseCopyRole"))
    role = template_json["Resources"][role_id]["Properties"]
    principals = {p for s in role["AssumeRolePolicyDocument"]["Statement"] for p in as_list(s["Principal"]["Service"])}
    assert "redshift.amazonaws.com" in principals
    statements = policy_statements(template_json, role_id)
    object_resources = [render(r) for s in statements for r in as_list(s["Resource"]) if ">/" in render(r)]
    assert [r.split(">/", 1)[1] for r in object_resources] == ["staging/*"]
    assert not any("s3:PutObject" in as_list(s["Action"]) for s in statements)


def test_schema_resource_carries_the_migrations_and_waits_for_them(template_json):
    from stacks.migrations import load_migrations

    _, schema = only(template_json, "Custom::RedshiftSchema")
    # each migration with its checksum: a new one changes the properties, so CloudFormation calls Update
    assert schema["Migrations"] == [m.as_property() for m in load_migrations()]
    assert [m["Version"] for m in schema["Migrations"]] == ["0001", "0002", "0003"]
    assert schema["Migrations"][0]["Statements"][0] == "CREATE SCHEMA IF NOT EXISTS airline"
    assert handler.migrations_of(schema)  # the handler takes them: versions in order, checksums right
    # the job is told the version its load SQL needs: the last migration, at synth
    _, job = only(template_json, "AWS::Glue::Job")
    assert job["DefaultArguments"]["--warehouse_schema_version"] == schema["Migrations"][-1]["Version"]
    assert schema["WorkgroupName"] == "airline-bookings" and schema["Database"] == "dev"
    assert render(schema["SecretArn"]).startswith("<WarehouseAdminSecret")
    etl_role = render(schema["EtlDbUser"])
    assert etl_role.startswith("IAMR:<EtlRole")
    # The Provider framework with an isComplete handler: a waiter state machine polls it. Both
    # handlers are ONE function: only the identity that ran a Data API statement may describe it.
    handlers = {
        k: v["Properties"]["Handler"]
        for k, v in resources_of(template_json, "AWS::Lambda::Function").items()
        if k.startswith("WarehouseSchema") and "framework" not in k
    }
    assert list(handlers.values()) == ["handler.handle"]
    framework_targets = {
        render(v["Properties"]["Environment"]["Variables"][var])
        for k, v in resources_of(template_json, "AWS::Lambda::Function").items()
        if "framework" in k
        for var in ("USER_ON_EVENT_FUNCTION_ARN", "USER_IS_COMPLETE_FUNCTION_ARN")
        if var in v["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert framework_targets == {f"<{next(iter(handlers))}.Arn>"}
    assert any(k.startswith("WarehouseSchemaProviderwaiterstatemachine") for k in resources_of(template_json, "AWS::StepFunctions::StateMachine"))
    depends = only(template_json, "Custom::RedshiftSchema")[0]
    assert any(d.startswith("WarehouseWorkgroup") for d in template_json["Resources"][depends].get("DependsOn", []))


def test_schema_handlers_are_scoped_to_the_workgroup_and_secret(template_json):
    functions = {k: v["Properties"] for k, v in resources_of(template_json, "AWS::Lambda::Function").items()}
    on_event_id = next(k for k, v in functions.items() if v.get("Handler") == "handler.handle")
    role_id = functions[on_event_id]["Role"]["Fn::GetAtt"][0]
    statements = policy_statements(template_json, role_id)
    batch = next(s for s in statements if s.get("Sid") == "RunSchemaBatch")
    assert batch["Action"] == "redshift-data:BatchExecuteStatement"
    own = next(s for s in statements if s.get("Sid") == "DescribeOwnStatements")
    assert own["Action"] == ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult"]
    assert own["Condition"] == {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}
    assert render(batch["Resource"]).endswith(".Workgroup.WorkgroupArn>")
    secret_reads = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert secret_reads and all(render(s["Resource"]).startswith("<WarehouseAdminSecret") for s in secret_reads)


# -- handler logic (pure functions; the Data API calls themselves need a real Redshift) ----------

def test_split_sql_statements_ignores_comments_and_quoted_semicolons():
    from stacks.warehouse import split_sql_statements

    text = "-- a; comment\nCREATE SCHEMA x;\nINSERT INTO t VALUES ('a;b'); -- trailing; note\n\n;"
    assert split_sql_statements(text) == ["CREATE SCHEMA x", "INSERT INTO t VALUES ('a;b')"]


def test_grants_create_the_iam_user_when_missing_and_grant_the_load_privileges():
    statements = handler.grant_statements("IAMR:etl-role", "dev")
    joined = "\n".join(statements)
    assert "IF NOT EXISTS (SELECT 1 FROM pg_user WHERE usename = user_name)" in joined
    assert "CALL airline.ensure_etl_user('IAMR:etl-role')" in statements
    assert 'GRANT USAGE ON SCHEMA airline TO "IAMR:etl-role"' in statements
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA airline TO "IAMR:etl-role"' in statements
    assert 'GRANT TEMP ON DATABASE "dev" TO "IAMR:etl-role"' in statements


@pytest.mark.parametrize("user", ["IAMR:x'; DROP TABLE y; --", "", 'a"b'])
def test_grants_refuse_names_that_are_not_user_names(user):
    with pytest.raises(ValueError, match="not a valid database user name"):
        handler.grant_statements(user, "dev")


def test_requests_target_workgroup_or_cluster():
    props = {"Database": "dev", "SecretArn": "arn:secret", "EtlDbUser": "IAMR:r", "WorkgroupName": "wg"}
    request = handler._request(props, ["SELECT 1"], "n")
    assert request["WorkgroupName"] == "wg" and "ClusterIdentifier" not in request and request["Sqls"] == ["SELECT 1"]
    cluster = handler._request({**props, "WorkgroupName": "", "ClusterIdentifier": "c1"}, ["SELECT 1"], "n")
    assert cluster["ClusterIdentifier"] == "c1" and "WorkgroupName" not in cluster
    with pytest.raises(ValueError):
        handler._request({**props, "WorkgroupName": ""}, ["SELECT 1"], "n")


def test_failure_text_carries_the_database_error_and_the_statement():
    text = handler.failure_text({
        "Status": "FAILED", "Error": "ERROR: syntax error at or near \"TABEL\"",
        "SubStatements": [{"Id": "abc:2", "Status": "FAILED", "QueryString": "CREATE TABEL x"}]})
    assert text == "FAILED (statement abc:2: 'CREATE TABEL x'): ERROR: syntax error at or near \"TABEL\""


def test_the_0001_tables_are_read_from_its_create_statements():
    from stacks.migrations import load_migrations

    tables = handler.created_columns(load_migrations()[0].statements)
    assert sorted(tables) == ["airports", "bookings", "ingestion_runs"]
    assert tables["ingestion_runs"][:3] == ["execution_id", "source_file", "status"]
    assert "rows_staged" not in tables["ingestion_runs"] and "primary" not in tables["bookings"]


def test_migrations_property_is_checked():
    good = [{"Version": "0001", "Description": "a", "Checksum": handler.checksum(["SELECT 1"]), "Statements": ["SELECT 1"]}]
    assert [m.version for m in handler.migrations_of({"Migrations": good})] == ["0001"]
    with pytest.raises(ValueError, match="Checksum does not match"):
        handler.migrations_of({"Migrations": [{**good[0], "Statements": ["SELECT 2"]}]})
    with pytest.raises(ValueError, match="expected version 0001"):
        handler.migrations_of({"Migrations": [{**good[0], "Version": "0002"}]})


def test_delete_leaves_the_warehouse_alone():
    event = {"RequestType": "Delete", "PhysicalResourceId": "airline-schema-dev", "ResourceProperties": {"Database": "dev"}}
    assert handler.on_event(event) == {"PhysicalResourceId": "airline-schema-dev", "Data": {}}
    assert handler.is_complete(event) == {"IsComplete": True}


class _DataApi:
    """Records the Data API calls of the handler, with the caller's identity as AWS sees it: every
    statement it describes or reads is one it ran."""

    def __init__(self, caller: str, applied: list[list[dict]]) -> None:
        self.caller, self.owners, self.calls, self.applied = caller, {}, [], applied

    def batch_execute_statement(self, **request):
        self.calls.append("BatchExecuteStatement")
        statement_id = f"batch-{len(self.owners) + 1}"
        self.owners[statement_id] = self.caller
        return {"Id": statement_id}

    def describe_statement(self, Id):
        self.calls.append("DescribeStatement")
        assert self.owners[Id] == self.caller, "DescribeStatement by another identity than the statement's owner"
        return {"Id": Id, "Status": "FINISHED"}

    def get_statement_result(self, Id, **_):
        self.calls.append("GetStatementResult")
        batch, _, number = Id.partition(":")
        assert self.owners[batch] == self.caller
        return {"Records": self.applied if number == "1" else []}


def test_one_function_submits_the_batches_and_polls_them_as_the_provider_calls_it():
    """The Provider framework calls onEvent with CloudFormation's request (no "Data") and
    isComplete with that request merged with onEvent's result (framework.js: createResponseEvent)."""
    statements = ["CREATE SCHEMA IF NOT EXISTS airline"]
    applied = [[{"stringValue": "0001"}, {"stringValue": handler.checksum(statements)}]]
    api = _DataApi(caller="AROAEXAMPLE:SchemaHandler", applied=applied)
    request = {"RequestType": "Update", "RequestId": "r-1", "ResourceProperties": {
        "Database": "dev", "SecretArn": "arn:secret", "EtlDbUser": "IAMR:etl", "WorkgroupName": "wg",
        "Migrations": [{"Version": "0001", "Description": "initial schema", "Checksum": handler.checksum(statements),
                        "Statements": statements}]}}
    result = handler.handle(request, client=api)
    assert result["Data"] == {"StatementId": "batch-1"}
    assert handler.handle({**request, **result}, client=api) == {
        "IsComplete": True, "Data": {"SchemaVersion": "0001", "Migrated": "-"}}
    # bootstrap; then the state read (two results), and the grants (nothing pending)
    assert api.calls == ["BatchExecuteStatement", "DescribeStatement", "BatchExecuteStatement", "DescribeStatement",
                         "GetStatementResult", "GetStatementResult", "BatchExecuteStatement", "DescribeStatement"]
    deleted = handler.handle({"RequestType": "Delete", "PhysicalResourceId": "p", "ResourceProperties": {"Database": "dev"}},
                             client=api)
    assert handler.handle({"RequestType": "Delete", "PhysicalResourceId": "p", **deleted}, client=api) == {"IsComplete": True}
