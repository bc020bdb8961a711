"""Custom resource (Provider framework) that applies sql/001_schema.sql to Redshift at deploy time
and grants the Glue job's database identity what the load needs on schema airline.

on_event submits the statements as ONE Data API batch (one transaction) and returns its id;
is_complete polls DescribeStatement and raises when the batch FAILED or was ABORTED, which makes
the Provider framework fail the deployment with the database's error message.

Both run in ONE function (entry point `handle`): the Data API lets only the identity that ran a
statement describe it, and a Lambda function's identity includes its own name as role session
name, so a separate isComplete function would be denied.
"""

from __future__ import annotations

import os
import re
from typing import Any

SCHEMA = "airline"
# IAM role names ([\w+=,.@-]) behind "IAMR:" / a provisioned database user name.
_DB_USER = re.compile(r"^[A-Za-z0-9_+=,.@:-]{1,128}$")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,126}$")


class SchemaDeploymentError(RuntimeError):
    """The schema batch did not finish; the message carries Redshift's error."""


def quote_identifier(name: str) -> str:
    """A double-quoted Redshift identifier (the names here never contain quotes: validated)."""
    return '"' + name.replace('"', '""') + '"'


def grant_statements(db_user: str, database: str) -> list[str]:
    """Statements that make sure the ETL user exists and can run sql/load_bookings.sql.

    Redshift has no CREATE USER IF NOT EXISTS, so a short-lived procedure checks pg_user first.
    The load LOCKs, COPYs into temp tables, deletes/inserts/MERGEs the airline tables.
    """
    if not _DB_USER.match(db_user):
        raise ValueError(f"EtlDbUser {db_user!r} is not a valid database user name")
    if not _DB_NAME.match(database):
        raise ValueError(f"Database {database!r} is not a valid database name")
    user = quote_identifier(db_user)
    return [
        f"CREATE OR REPLACE PROCEDURE {SCHEMA}.ensure_etl_user(user_name VARCHAR(128)) AS $$\n"
        "BEGIN\n"
        "  IF NOT EXISTS (SELECT 1 FROM pg_user WHERE usename = user_name) THEN\n"
        "    EXECUTE 'CREATE USER ' || quote_ident(user_name) || ' PASSWORD DISABLE';\n"
        "  END IF;\n"
        "END;\n"
        "$$ LANGUAGE plpgsql",
        f"CALL {SCHEMA}.ensure_etl_user('{db_user}')",
        f"DROP PROCEDURE {SCHEMA}.ensure_etl_user(VARCHAR)",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {user}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {SCHEMA} TO {user}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {user}",
        f"GRANT TEMP ON DATABASE {quote_identifier(database)} TO {user}",
    ]


def batch_request(props: dict[str, Any]) -> dict[str, Any]:
    """The BatchExecuteStatement request for the resource's properties."""
    statements = list(props["Statements"]) + grant_statements(props["EtlDbUser"], props["Database"])
    request: dict[str, Any] = {
        "Database": props["Database"],
        "SecretArn": props["SecretArn"],
        "Sqls": statements,
        "StatementName": "airline-schema",
        "WithEvent": False,
    }
    if props.get("WorkgroupName"):
        request["WorkgroupName"] = props["WorkgroupName"]
    elif props.get("ClusterIdentifier"):
        request["ClusterIdentifier"] = props["ClusterIdentifier"]
    else:
        raise ValueError("the resource needs WorkgroupName or ClusterIdentifier")
    return request


def completion(description: dict[str, Any]) -> bool:
    """True when the batch finished, False while it runs; raises when it failed."""
    status = description["Status"]
    if status == "FINISHED":
        return True
    if status in ("FAILED", "ABORTED"):
        failed = [s for s in description.get("SubStatements", []) if s.get("Status") in ("FAILED", "ABORTED")]
        where = f" (statement {failed[0].get('Id')}: {failed[0].get('QueryString', '')[:200]!r})" if failed else ""
        raise SchemaDeploymentError(
            f"Schema SQL {status}{where}: {description.get('Error') or 'no error message'}"
        )
    return False


def _client():
    import boto3  # the Lambda runtime ships boto3

    return boto3.client("redshift-data", region_name=os.environ.get("AWS_REGION"))


def on_event(event: dict[str, Any], _context: Any = None, client: Any = None) -> dict[str, Any]:
    props = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId") or f"airline-schema-{props['Database']}"
    if event["RequestType"] == "Delete":
        # Dropping the warehouse's data on a stack delete is not this resource's call.
        return {"PhysicalResourceId": physical_id, "Data": {}}
    response = (client or _client()).batch_execute_statement(**batch_request(props))
    return {"PhysicalResourceId": physical_id, "Data": {"StatementId": response["Id"]}}


def is_complete(event: dict[str, Any], _context: Any = None, client: Any = None) -> dict[str, Any]:
    statement_id = (event.get("Data") or {}).get("StatementId")
    if event["RequestType"] == "Delete" or not statement_id:
        return {"IsComplete": True}
    description = (client or _client()).describe_statement(Id=statement_id)
    return {"IsComplete": completion(description)}


def handle(event: dict[str, Any], context: Any = None, client: Any = None) -> dict[str, Any]:
    """The Provider framework calls this function as onEvent with CloudFormation's request, which
    never has "Data", and as isComplete with that request merged with on_event's result, which
    always has it."""
    if "Data" in event:
        return is_complete(event, context, client)
    return on_event(event, context, client)
