"""Custom resource (Provider framework) that migrates the Redshift warehouse at deploy time and
grants the Glue job's database identity what the load needs on schema airline.

The resource's properties carry the migrations (sql/migrations/NNNN_description.sql: version,
description, checksum, statements), so CloudFormation calls Update whenever one is added. Create
and Update are handled alike: apply what is pending.

- on_event submits the bootstrap batch (schema airline and the airline.schema_migrations table, if
  missing) and returns its id; Delete does nothing (the warehouse's data is not the stack's to drop).
- is_complete is stateless, as the Provider framework requires (it calls it again and again with
  on_event's result, and allows no data while incomplete). Each call, once the bootstrap batch
  finished: reads the warehouse's state (the migrations recorded, the tables and columns of schema
  airline), plans, and runs the plan's batches one after another, waiting for each in the call:
    * a warehouse with tables but no recorded migration, whose tables are exactly what 0001
      creates (made before this mechanism), is baselined at 0001: a row, no SQL;
    * each pending migration runs as ONE batch, so ONE transaction: LOCK schema_migrations, a guard
      that fails unless the warehouse is still at the version planned, the statements, and the
      row recording it. A failure rolls all of it back: the warehouse stays at the version before;
    * the grants run last, every deploy.
  A recorded migration whose checksum differs from the file's fails the deploy naming it (never a
  silent re-run), as does a pending migration older than a recorded one. When the call's time runs
  short, it answers "not complete" and the batch goes on; the next call's read waits on the LOCK
  until that batch ends, and sees its outcome (a failed migration is run again, and fails, with its
  error).

Both handlers are ONE function (entry point `handle`): the Data API lets only the identity that ran
a statement describe it or read its result, and a Lambda function's identity includes its own name
as role session name, so a separate isComplete function would be denied.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SCHEMA = "airline"
MIGRATIONS_TABLE = f"{SCHEMA}.schema_migrations"
# IAM role names ([\w+=,.@-]) behind "IAMR:" / a provisioned database user name.
_DB_USER = re.compile(r"^[A-Za-z0-9_+=,.@:-]{1,128}$")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,126}$")
_VERSION = re.compile(r"^\d{4}$")
GUARD_COLUMN = "migration_guard"  # the column of each migration batch's version check
# Statements are polled after 0.05 s, backing off by 1.5x to 2 s; a call stops waiting this long
# before Lambda's timeout, to answer "not complete" in time.
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 2.0
SAFETY_SECONDS = 10.0
FINAL = ("FINISHED", "FAILED", "ABORTED")

BOOTSTRAP_STATEMENTS = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (\n"
    "    version     VARCHAR(4)   NOT NULL,\n"
    "    description VARCHAR(256) NOT NULL,\n"
    "    checksum    VARCHAR(64)  NOT NULL,  -- sha256 of the migration's statements\n"
    "    applied_at  TIMESTAMP    NOT NULL,\n"
    "    applied_by  VARCHAR(512) NOT NULL,  -- database user, deploy, and baseline or not\n"
    "    PRIMARY KEY (version)\n"
    ")\nDISTSTYLE ALL",
)
STATE_STATEMENTS = (
    f"SELECT version, checksum FROM {MIGRATIONS_TABLE} ORDER BY version",
    "SELECT table_name, column_name FROM information_schema.columns "
    f"WHERE table_schema = '{SCHEMA}' AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position",
)


class SchemaDeploymentError(RuntimeError):
    """The warehouse could not be migrated; the message names the migration and carries Redshift's error."""


@dataclass(frozen=True)
class Migration:
    version: str
    description: str
    checksum: str
    statements: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.version} ({self.description})"


@dataclass(frozen=True)
class Step:
    """One batch of the plan: what it is (for messages) and its statements."""

    label: str
    statements: tuple[str, ...]
    version: str | None = None  # the version it records, None for the grants


def quote_identifier(name: str) -> str:
    """A double-quoted Redshift identifier (the names here never contain quotes: validated)."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A single-quoted SQL literal; control characters are refused."""
    if any(ord(char) < 32 for char in value):
        raise ValueError(f"control character in a value for SQL: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def checksum(statements: tuple[str, ...] | list[str]) -> str:
    """sha256 of the statements joined by a line holding ; (stacks/migrations.py's Migration.checksum)."""
    return hashlib.sha256("\n;\n".join(statements).encode("utf-8")).hexdigest()


def migrations_of(props: dict[str, Any]) -> list[Migration]:
    """The resource's Migrations property, checked: versions 0001, 0002, ... and checksums that
    match their statements."""
    migrations = []
    for number, item in enumerate(props.get("Migrations") or [], start=1):
        migration = Migration(str(item["Version"]), str(item["Description"]), str(item["Checksum"]),
                              tuple(item["Statements"]))
        if not _VERSION.match(migration.version) or int(migration.version) != number:
            raise ValueError(f"migration {migration.version!r}: expected version {number:04d}")
        if checksum(migration.statements) != migration.checksum:
            raise ValueError(f"migration {migration.name}: its Checksum does not match its Statements")
        migrations.append(migration)
    if not migrations:
        raise ValueError("the resource has no Migrations")
    return migrations


def grant_statements(db_user: str, database: str) -> list[str]:
    """Statements that make sure the ETL user exists and can run sql/load_bookings.sql.

    Redshift has no CREATE USER IF NOT EXISTS, so a short-lived procedure checks pg_user first.
    The load LOCKs, COPYs into temp tables, deletes/inserts/MERGEs the airline tables. The job only
    reads airline.schema_migrations (the version it needs): writing it is the deploy's alone.
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
        f"REVOKE INSERT, UPDATE, DELETE ON {MIGRATIONS_TABLE} FROM {user}",
    ]


# -- planning (pure) ------------------------------------------------------------------------------

_CREATE_TABLE = re.compile(r"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\.(\w+)\s*\(", re.I)
_CONSTRAINTS = {"PRIMARY", "UNIQUE", "FOREIGN", "CONSTRAINT", "CHECK"}


def created_columns(statements: tuple[str, ...]) -> dict[str, list[str]]:
    """{table: [columns]} of the schema-airline tables the CREATE TABLE statements create."""
    tables: dict[str, list[str]] = {}
    for statement in statements:
        match = _CREATE_TABLE.match(statement)
        if match is None or match.group(1).lower() != SCHEMA:
            continue
        depth, start, items = 1, match.end(), []
        for index in range(match.end(), len(statement)):
            char = statement[index]
            if char == "(":
                depth += 1
            elif char in ",)" and depth == 1:
                items.append(statement[start:index])
                start = index + 1
            if char == ")":
                depth -= 1
                if depth == 0:
                    break
        names = [item.split()[0].lower() for item in items if item.split()]
        tables[match.group(2).lower()] = [n for n in names if n.upper() not in _CONSTRAINTS]
    return tables


def schema_difference(found: dict[str, list[str]], expected: dict[str, list[str]]) -> list[str]:
    """What tells the tables found from the tables expected (empty: the same tables and columns)."""
    differences = []
    for table in sorted(set(found) | set(expected)):
        if table not in found:
            differences.append(f"no table {SCHEMA}.{table}")
        elif table not in expected:
            differences.append(f"table {SCHEMA}.{table} is not one of them")
        else:
            missing = [c for c in expected[table] if c not in found[table]]
            extra = [c for c in found[table] if c not in expected[table]]
            if missing:
                differences.append(f"{SCHEMA}.{table} lacks {', '.join(missing)}")
            if extra:
                differences.append(f"{SCHEMA}.{table} has {', '.join(extra)} too")
    return differences


def plan(migrations: list[Migration], applied: list[tuple[str, str]], columns: dict[str, list[str]],
         applied_by: str) -> list[Step]:
    """The batches that bring the warehouse to the last migration (grants excepted), from what it
    has recorded (``applied``: (version, checksum) rows) and the tables of schema airline."""
    known = {m.version: m for m in migrations}
    for version, recorded in applied:
        migration = known.get(version)
        if migration is not None and recorded != migration.checksum:
            raise SchemaDeploymentError(
                f"migration {migration.name} was applied with checksum {recorded}, but its file now has checksum "
                f"{migration.checksum}: an applied migration must never change (nothing was run). Restore "
                f"sql/migrations/{migration.version}_*.sql as it was applied, and make the change a new migration.")
    done = {version for version, _ in applied}
    steps: list[Step] = []
    if not done and columns:
        first = migrations[0]
        differences = schema_difference(columns, created_columns(first.statements))
        if differences:
            raise SchemaDeploymentError(
                f"schema {SCHEMA} has tables but no migration recorded in {MIGRATIONS_TABLE}, and they are not "
                f"what migration {first.name} creates ({'; '.join(differences)}): its version is unknown, so no "
                "migration was run. See docs/upgrading-warehouse.md, \"A warehouse the deploy does not recognise\".")
        steps.append(Step(f"baseline at {first.name}", _record_steps(first, None, f"{applied_by}; baseline: its "
                                                                      "tables were found as this migration creates them"),
                          first.version))
        done.add(first.version)
    pending = [m for m in migrations if m.version not in done]
    latest_done = max(done, default=None)
    if pending and latest_done is not None and pending[0].version < latest_done:
        raise SchemaDeploymentError(
            f"migration {pending[0].name} is pending but {latest_done} is already applied: migrations apply in order, "
            "so a new one needs a version after the last applied one (nothing was run)")
    previous = latest_done
    for migration in pending:
        statements = (*_guard(migration, previous), *migration.statements, _insert(migration, applied_by))
        steps.append(Step(f"migration {migration.name}", statements, migration.version))
        previous = migration.version
    return steps


def _guard(migration: Migration, previous: str | None) -> tuple[str, str]:
    """LOCK the table (one migrating deploy at a time; a reader waits for it), then fail unless the
    warehouse is at ``previous``. Redshift takes the snapshot at the first SELECT: after the LOCK."""
    expected = previous or ""
    at = previous or "no migration"
    return (
        f"LOCK {MIGRATIONS_TABLE}",
        f"SELECT CAST(CASE WHEN COALESCE((SELECT MAX(version) FROM {MIGRATIONS_TABLE}), '') = {sql_string(expected)} "
        f"THEN '0' ELSE {sql_string(f'migration {migration.version}: the warehouse is no longer at {at}')} "
        f"END AS INTEGER) AS {GUARD_COLUMN}",
    )


def _insert(migration: Migration, applied_by: str) -> str:
    return (f"INSERT INTO {MIGRATIONS_TABLE} (version, description, checksum, applied_at, applied_by) VALUES ("
            f"{sql_string(migration.version)}, {sql_string(migration.description[:256])}, "
            f"{sql_string(migration.checksum)}, GETDATE(), CURRENT_USER || {sql_string(' by ' + applied_by[:480])})")


def _record_steps(migration: Migration, previous: str | None, applied_by: str) -> tuple[str, ...]:
    return (*_guard(migration, previous), _insert(migration, applied_by))


def applied_by_text(event: dict[str, Any]) -> str:
    """Who applies: the deploy (stack, resource, request); the INSERT prefixes the database user."""
    stack = str(event.get("StackId") or "?")
    return (f"deploy of {stack} ({event.get('LogicalResourceId', '?')}, {event.get('RequestType', '?')}, "
            f"request {event.get('RequestId', '?')})")[:480]


# -- the Data API -----------------------------------------------------------------------------------

def _request(props: dict[str, Any], sqls: list[str] | tuple[str, ...], name: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Database": props["Database"],
        "SecretArn": props["SecretArn"],
        "Sqls": list(sqls),
        "StatementName": name[:500],
        "WithEvent": False,
    }
    if props.get("WorkgroupName"):
        request["WorkgroupName"] = props["WorkgroupName"]
    elif props.get("ClusterIdentifier"):
        request["ClusterIdentifier"] = props["ClusterIdentifier"]
    else:
        raise ValueError("the resource needs WorkgroupName or ClusterIdentifier")
    return request


def failure_text(description: dict[str, Any]) -> str:
    """The batch's status, its failing statement and Redshift's error, for a message."""
    failed = [s for s in description.get("SubStatements", []) if s.get("Status") in ("FAILED", "ABORTED")]
    where = f" (statement {failed[0].get('Id')}: {failed[0].get('QueryString', '')[:200]!r})" if failed else ""
    return f"{description['Status']}{where}: {description.get('Error') or 'no error message'}"


class _Runner:
    """Submits batches and waits for them until the call's deadline."""

    def __init__(self, client: Any, props: dict[str, Any], deadline: float,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.client, self.props, self.deadline, self.sleep, self.clock = client, props, deadline, sleep, clock

    def run(self, statements: tuple[str, ...] | list[str], name: str) -> tuple[str, dict[str, Any] | None]:
        """(batch id, its final description), or (id, None) when the deadline came first."""
        statement_id = self.client.batch_execute_statement(**_request(self.props, statements, name))["Id"]
        return statement_id, self.wait(statement_id)

    def wait(self, statement_id: str) -> dict[str, Any] | None:
        delay = FIRST_POLL_SECONDS
        while True:
            description = self.client.describe_statement(Id=statement_id)
            if description["Status"] in FINAL:
                return description
            if self.clock() + delay > self.deadline:
                return None
            self.sleep(delay)
            delay = min(delay * 1.5, MAX_POLL_SECONDS)

    def rows(self, statement_id: str) -> list[list[Any]]:
        rows, token = [], None
        while True:
            page = self.client.get_statement_result(Id=statement_id, **({"NextToken": token} if token else {}))
            rows += [[_value(field) for field in record] for record in page.get("Records", [])]
            token = page.get("NextToken")
            if not token:
                return rows


def _value(field: dict[str, Any]) -> Any:
    if field.get("isNull"):
        return None
    for key in ("stringValue", "longValue", "doubleValue", "booleanValue"):
        if key in field:
            return field[key]
    return None


def _client():
    import boto3  # the Lambda runtime ships boto3

    return boto3.client("redshift-data", region_name=os.environ.get("AWS_REGION"))


def _deadline(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining() / 1000 if callable(remaining) else 60.0
    return time.monotonic() + max(seconds - SAFETY_SECONDS, 1.0)


# -- the Provider framework's handlers ------------------------------------------------------------

def on_event(event: dict[str, Any], _context: Any = None, client: Any = None) -> dict[str, Any]:
    props = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId") or f"airline-schema-{props['Database']}"
    if event["RequestType"] == "Delete":
        # Dropping the warehouse's data on a stack delete is not this resource's call.
        return {"PhysicalResourceId": physical_id, "Data": {}}
    migrations_of(props)  # a malformed property fails the deploy before anything runs
    grant_statements(props["EtlDbUser"], props["Database"])
    response = (client or _client()).batch_execute_statement(
        **_request(props, BOOTSTRAP_STATEMENTS, "airline-schema-bootstrap"))
    return {"PhysicalResourceId": physical_id, "Data": {"StatementId": response["Id"]}}


def is_complete(event: dict[str, Any], context: Any = None, client: Any = None, *,
                sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    statement_id = (event.get("Data") or {}).get("StatementId")
    if event["RequestType"] == "Delete" or not statement_id:
        return {"IsComplete": True}
    props = event["ResourceProperties"]
    migrations = migrations_of(props)
    runner = _Runner(client or _client(), props, _deadline(context), sleep)
    bootstrap = runner.wait(statement_id)
    if bootstrap is None:
        return {"IsComplete": False}
    if bootstrap["Status"] != "FINISHED":
        raise SchemaDeploymentError(f"Creating {MIGRATIONS_TABLE} {failure_text(bootstrap)}")

    state_id, state = runner.run(STATE_STATEMENTS, "airline-schema-state")
    if state is None:
        return {"IsComplete": False}  # e.g. waiting on the LOCK of a migration still running
    if state["Status"] != "FINISHED":
        raise SchemaDeploymentError(f"Reading the warehouse's migrations {failure_text(state)}")
    applied = [(str(v), str(c)) for v, c in runner.rows(f"{state_id}:1")]
    columns: dict[str, list[str]] = {}
    for table, column in runner.rows(f"{state_id}:2"):
        columns.setdefault(str(table), []).append(str(column))

    steps = plan(migrations, applied, columns, applied_by_text(event))
    steps.append(Step("grants to the ETL user", (f"LOCK {MIGRATIONS_TABLE}",
                                                 *grant_statements(props["EtlDbUser"], props["Database"]))))
    at = max((v for v, _ in applied), default=None)
    for step in steps:
        _, description = runner.run(step.statements, f"airline-schema-{step.version or 'grants'}")
        if description is None:
            return {"IsComplete": False}
        if description["Status"] != "FINISHED":
            raise SchemaDeploymentError(_step_failure(step, description, at))
        at = max(at or "", step.version or "") or None
    migrated = [s.version for s in steps if s.version and not s.label.startswith("baseline")]
    return {"IsComplete": True, "Data": {"SchemaVersion": at or "-", "Migrated": ",".join(migrated) or "-"}}


def _step_failure(step: Step, description: dict[str, Any], at: str | None) -> str:
    text = failure_text(description)
    if GUARD_COLUMN in text:
        return (f"{step.label} was not run: another deploy changed {MIGRATIONS_TABLE} meanwhile ({text}); deploy "
                "again")
    if step.version is None:
        return f"The {step.label} {text}"
    return (f"{step.label} {text}. It was rolled back: the warehouse stays at {at or 'no migration'}, the "
            "version before it.")


def handle(event: dict[str, Any], context: Any = None, client: Any = None) -> dict[str, Any]:
    """The Provider framework calls this function as onEvent with CloudFormation's request, which
    never has "Data", and as isComplete with that request merged with on_event's result, which
    always has it."""
    if "Data" in event:
        return is_complete(event, context, client)
    return on_event(event, context, client)
