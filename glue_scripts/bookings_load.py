"""Load the staged Parquet into Redshift: sql/load_bookings.sql as one Data API batch.

batch_execute_statement runs the statements as one transaction; describe_statement is polled
until the batch ends; the last sub-statement (``<id>:<n>``) returns the MERGE's counts.
"""

from __future__ import annotations

import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

LOAD_SQL_FILE = "load_bookings.sql"
STATEMENT_SEPARATOR = ";"            # a line holding only ";" ends a statement
PLACEHOLDERS = ("{staging_uri}", "{iam_role}")
FINAL_STATES = frozenset({"FINISHED", "FAILED", "ABORTED"})
# The load SQL's in-transaction check of its counts is the statement selecting this column.
COUNTS_CHECK = "load_counts_check"
# DescribeStatement polling: first look after 0.1 s (a small load finishes in well under a
# second), then back off by 1.5x up to 2 s, so that a long load is seen ending within 2 s
# for a few calls a minute (far below the Data API's DescribeStatement quota).
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 2.0


class LoadError(RuntimeError):
    """The warehouse load did not finish (the message carries the Data API's error)."""


class WarehouseVersionError(RuntimeError):
    """The warehouse's schema is older than the version this job needs: deploy the stack."""


MIGRATIONS_TABLE = "airline.schema_migrations"
VERSION_QUERY = f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}"


@dataclass(frozen=True)
class RedshiftTarget:
    """Where the Data API runs: a Serverless workgroup, or a provisioned cluster + db user."""

    database: str
    workgroup: str | None = None
    cluster_id: str | None = None
    db_user: str | None = None

    def __post_init__(self) -> None:
        if not self.database:
            raise ValueError("a Redshift database name is required")
        if bool(self.workgroup) == bool(self.cluster_id):
            raise ValueError("give either a Redshift Serverless workgroup or a cluster id")
        if self.cluster_id and not self.db_user:
            raise ValueError("a provisioned cluster needs a database user")

    def connection_parameters(self) -> dict[str, str]:
        if self.workgroup:
            return {"Database": self.database, "WorkgroupName": self.workgroup}
        return {"Database": self.database, "ClusterIdentifier": self.cluster_id,
                "DbUser": self.db_user}


@dataclass(frozen=True)
class LoadCounts:
    """What the load did with each staged row (they add up to rows_staged, checked by the SQL)."""

    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    rows_stale: int
    rows_staged: int


def read_load_sql(path: str | Path | None = None) -> str:
    """The load SQL: from ``path`` if given; else ``load_bookings.sql`` in the working directory
    (Glue's --extra-files), else shipped beside this module (e.g. in the --extra-py-files zip)."""
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    if Path(LOAD_SQL_FILE).is_file():
        return Path(LOAD_SQL_FILE).read_text(encoding="utf-8")
    try:
        data = pkgutil.get_data(__name__, LOAD_SQL_FILE)
    except OSError:
        data = None
    if data is None:
        raise FileNotFoundError(f"{LOAD_SQL_FILE} is neither in the working directory "
                                f"({Path.cwd()}) nor shipped beside the {__name__} module")
    return data.decode("utf-8")


def _sql_string(value: str) -> str:
    """Text for inside a single-quoted SQL literal: quotes doubled, control characters refused."""
    if any(ord(char) < 32 for char in value):
        raise ValueError(f"control character in a value for the load SQL: {value!r}")
    return value.replace("'", "''")


def build_statements(sql_text: str, staging_uri: str, iam_role: str) -> list[str]:
    """The load SQL split into statements, comment lines dropped, placeholders filled.

    ``staging_uri`` is ``<data root>/staging/<execution id>/`` (with the trailing slash).
    """
    if not staging_uri.endswith("/"):
        raise ValueError(f"staging URI must end with '/': {staging_uri!r}")
    for placeholder in PLACEHOLDERS:
        if placeholder not in sql_text:
            raise ValueError(f"load SQL has no {placeholder} placeholder")
    statements, current = [], []
    for line in sql_text.splitlines():
        if line.strip() == STATEMENT_SEPARATOR:
            statements.append("\n".join(current).strip())
            current = []
        elif not line.lstrip().startswith("--"):
            current.append(line.rstrip())
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    statements = [statement for statement in statements if statement]
    filled = [statement.replace("{staging_uri}", _sql_string(staging_uri))
                       .replace("{iam_role}", _sql_string(iam_role))
              for statement in statements]
    if not filled or not filled[-1].upper().startswith("SELECT"):
        raise ValueError("the load SQL must end with the SELECT of the load counts")
    return filled


def _field_value(field: dict) -> int:
    for key in ("longValue", "doubleValue", "stringValue"):
        if key in field:
            return int(field[key])
    raise LoadError(f"unexpected value in the load counts: {field}")


def run_load(client, statements: list[str], target: RedshiftTarget, *,
             statement_name: str = "airline-bookings-load", poll_seconds: float = FIRST_POLL_SECONDS,
             max_poll_seconds: float = MAX_POLL_SECONDS, timeout_seconds: float = 3600.0,
             sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> LoadCounts:
    """Run the batch (one transaction), wait for it, and read the counts of its last SELECT."""
    response = client.batch_execute_statement(
        Sqls=statements, StatementName=statement_name[:500], **target.connection_parameters())
    batch_id = response["Id"]
    description = _wait(client, batch_id, "load batch", poll_seconds=poll_seconds,
                        max_poll_seconds=max_poll_seconds, timeout_seconds=timeout_seconds,
                        sleep=sleep, clock=clock)
    status = description["Status"]
    if status != "FINISHED":
        failed = [sub for sub in description.get("SubStatements", [])
                  if sub.get("Status") in ("FAILED", "ABORTED")]
        where = f" (statement {failed[0]['Id']}: {failed[0].get('QueryString', '')[:120]!r})" \
            if failed else ""
        if failed and COUNTS_CHECK in failed[0].get("QueryString", ""):
            where = (": the staged rows COPY loaded, or the run's counts, do not add up; nothing"
                     " was loaded (the transaction was rolled back)")
        raise LoadError(f"load batch {batch_id} {status}: {description.get('Error', 'no error')}"
                        f"{where}")
    result = client.get_statement_result(Id=f"{batch_id}:{len(statements)}")
    records = result.get("Records", [])
    width = len(fields(LoadCounts))
    if len(records) != 1 or len(records[0]) != width:
        raise LoadError(f"load batch {batch_id}: expected one row of {width} counts, got {records}")
    return LoadCounts(*(_field_value(field) for field in records[0]))


def _wait(client, statement_id: str, what: str, *, poll_seconds: float = FIRST_POLL_SECONDS,
          max_poll_seconds: float = MAX_POLL_SECONDS, timeout_seconds: float = 3600.0,
          sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> dict:
    """DescribeStatement until the statement ends; cancelled and LoadError after the timeout."""
    deadline, delay = clock() + timeout_seconds, poll_seconds
    while True:
        description = client.describe_statement(Id=statement_id)
        status = description["Status"]
        if status in FINAL_STATES:
            return description
        if clock() > deadline:
            client.cancel_statement(Id=statement_id)
            raise LoadError(f"{what} {statement_id} still {status} after {timeout_seconds:.0f}s;"
                            " cancelled")
        sleep(delay)
        delay = min(delay * 1.5, max_poll_seconds)


def check_schema_version(required: str, target: RedshiftTarget, *, client=None,
                         timeout_seconds: float = 300.0, sleep: Callable[[float], None] = time.sleep,
                         clock: Callable[[], float] = time.monotonic) -> str:
    """The warehouse's schema version (the last migration recorded in airline.schema_migrations);
    raises WarehouseVersionError when it is older than ``required`` (a newer one is fine: the
    migrations only add)."""
    if client is None:
        import boto3

        client = boto3.client("redshift-data")
    statement_id = client.execute_statement(
        Sql=VERSION_QUERY, StatementName="airline-schema-version-check",
        **target.connection_parameters())["Id"]
    description = _wait(client, statement_id, "schema version check", timeout_seconds=timeout_seconds,
                        sleep=sleep, clock=clock)
    hint = "deploy the stack to migrate it (docs/upgrading-warehouse.md)"
    if description["Status"] != "FINISHED":
        error = description.get("Error") or "no error message"
        if "schema_migrations" in error and "does not exist" in error:
            raise WarehouseVersionError(
                f"warehouse {target.database} has no {MIGRATIONS_TABLE} (it predates versioned "
                f"migrations), this job needs {required}: {hint}")
        raise WarehouseVersionError(f"cannot read the warehouse's schema version ({VERSION_QUERY}): "
                                    f"{description['Status']}: {error}")
    records = client.get_statement_result(Id=statement_id).get("Records", [])
    field = records[0][0] if records and records[0] else {"isNull": True}
    version = None if field.get("isNull") else str(field.get("stringValue"))
    if version is None or version < required:
        raise WarehouseVersionError(f"warehouse at {version or 'no migration'}, this job needs "
                                    f"{required}: {hint}")
    return version


def load_bookings(staging_uri: str, iam_role: str, target: RedshiftTarget, *,
                  sql_path: str | Path | None = None, client=None,
                  statement_name: str = "airline-bookings-load") -> LoadCounts:
    """Fill the load SQL for one run's staging prefix and run it through the Data API."""
    if client is None:
        import boto3  # endpoint and region come from the environment (AWS_ENDPOINT_URL locally)

        client = boto3.client("redshift-data")
    statements = build_statements(read_load_sql(sql_path), staging_uri, iam_role)
    return run_load(client, statements, target, statement_name=statement_name)
