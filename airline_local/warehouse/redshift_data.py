"""The Redshift Data API, executing for real on the local PostgreSQL warehouse.

`DataApiEmulator` is the service: it takes and returns dicts shaped like boto3's redshift-data
requests and responses (BatchExecuteStatement, ExecuteStatement, DescribeStatement,
GetStatementResult, CancelStatement), gives each statement its id, runs it in a worker thread as
AWS does, keeps its state and result pages, and its owner for the IAM check. What a statement does
on the warehouse (a batch in one transaction, Redshift SQL translated, COPY from S3) is
statements.py's `Warehouse`. moto's redshift-data calls reach this service through
airline_local/aws/patches/redshift_data.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from airline_local.warehouse.statements import ColumnInfo, StatementResult, Warehouse, WarehouseError


class DataApiError(Exception):
    """An error the Data API returns: `code` is the AWS error code, `message` its text."""

    code = "InternalServerException"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationException(DataApiError):
    code = "ValidationException"


class ResourceNotFoundException(DataApiError):
    code = "ResourceNotFoundException"


STATEMENT_ID = re.compile(r"^[a-z0-9]{8}(-[a-z0-9]{4}){3}-[a-z0-9]{12}(:\d+)?$")
PARAMETER_NAME = re.compile(r"^[0-9a-zA-Z_]+$")
MAX_BATCH_STATEMENTS = 40
RESULT_PAGE_ROWS = 10_000
_TARGET_KEYS = ("ClusterIdentifier", "WorkgroupName")
_ECHOED_KEYS = ("ClusterIdentifier", "WorkgroupName", "Database", "DbUser", "SecretArn")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class _SubStatement:
    id: str
    query_string: str
    created_at: dt.datetime
    status: str = "SUBMITTED"
    updated_at: dt.datetime | None = None
    error: str | None = None
    result: StatementResult | None = None

    def describe(self) -> dict[str, Any]:
        result = self.result
        described: dict[str, Any] = {
            "Id": self.id,
            "Status": self.status,
            "QueryString": self.query_string,
            "CreatedAt": self.created_at,
            "UpdatedAt": self.updated_at or self.created_at,
            "HasResultSet": bool(result and result.has_result_set),
            "ResultRows": result.rows_affected if result else -1,
            "ResultSize": _result_size(result) if result else -1,
            "Duration": result.duration_ns if result else -1,
            "RedshiftQueryId": 0,
        }
        if self.error is not None:
            described["Error"] = self.error
        return described


@dataclass
class _Execution:
    id: str
    request: dict[str, Any]
    subs: list[_SubStatement]
    is_batch: bool
    parameters: dict[str, str] | None
    created_at: dt.datetime
    status: str = "SUBMITTED"
    updated_at: dt.datetime | None = None
    error: str | None = None
    duration_ns: int = -1
    pid: int = -1
    connection: psycopg.Connection[Any] | None = None
    # aws:userid of the caller that ran it (the IAM check's statement-owner condition key)
    owner_userid: str | None = None


def _result_size(result: StatementResult) -> int:
    if not result.has_result_set:
        return 0
    return sum(len(str(v)) for row in result.rows for v in row if v is not None)


def _caused_by_cancel(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, psycopg.errors.QueryCanceled):
            return True
        cause = cause.__cause__
    return False


def _field(value: Any) -> dict[str, Any]:
    """One value in the Data API's typed-field format (decimals and timestamps as strings)."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, decimal.Decimal):
        return {"stringValue": format(value, "f")}
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
        if value.microsecond:
            head, _, rest = text.partition(".")
            digits = rest[:6].rstrip("0")
            text = f"{head}.{digits}{rest[6:]}"
        return {"stringValue": text.replace("+00:00", "+00")}
    if isinstance(value, (dt.date, dt.time)):
        return {"stringValue": value.isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"blobValue": bytes(value)}
    return {"stringValue": str(value)}


_TEXT_TYPES = {"varchar", "text", "bpchar", "char", "name"}
_SIGNED_TYPES = {"int2", "int4", "int8", "numeric", "float4", "float8"}


def _column_metadata(column: ColumnInfo) -> dict[str, Any]:
    return {
        "name": column.name,
        "label": column.name,
        "typeName": column.type_name,
        "isCaseSensitive": column.type_name in _TEXT_TYPES,
        "isCurrency": False,
        "isSigned": column.type_name in _SIGNED_TYPES,
        "nullable": 1,
        "precision": column.precision,
        "scale": column.scale,
        "length": 0,
        "schemaName": "",
        "tableName": "",
    }


class DataApiEmulator:
    """The Redshift Data API (redshift-data) on a local `Warehouse`.

    Each method is an API action in snake_case taking the boto3 request dict and returning the
    boto3 response dict; errors are DataApiError subclasses carrying the AWS code and message.
    Statements run in worker threads after the call returns, as on AWS: clients poll
    describe_statement until FINISHED, FAILED or ABORTED.
    """

    def __init__(self, warehouse: Warehouse, *, max_workers: int = 4):
        self.warehouse = warehouse
        self._executions: dict[str, _Execution] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="redshift-data")

    def close(self) -> None:
        """Wait for the running statements, then stop the worker threads."""
        self._pool.shutdown(wait=True, cancel_futures=False)

    # -- actions ----------------------------------------------------------------------------

    def batch_execute_statement(self, params: dict[str, Any], caller: str | None = None) -> dict[str, Any]:
        sqls = params.get("Sqls")
        if not isinstance(sqls, list) or not sqls or not all(isinstance(s, str) and s.strip() for s in sqls):
            raise ValidationException("Sqls must be a list of 1 to 40 non-empty SQL statements")
        if len(sqls) > MAX_BATCH_STATEMENTS:
            raise ValidationException(f"Sqls holds {len(sqls)} statements; the limit is {MAX_BATCH_STATEMENTS}")
        self._validate_target(params)
        return self._submit(params, list(sqls), is_batch=True, parameters=None, owner=caller)

    def execute_statement(self, params: dict[str, Any], caller: str | None = None) -> dict[str, Any]:
        """``caller``: the ``aws:userid`` of who runs it (recorded as the statement's owner)."""
        sql_text = params.get("Sql")
        if not isinstance(sql_text, str) or not sql_text.strip():
            raise ValidationException("Sql must be a non-empty SQL statement")
        self._validate_target(params)
        parameters = self._parameters(params.get("Parameters"))
        return self._submit(params, [sql_text], is_batch=False, parameters=parameters, owner=caller)

    def statement_owner(self, statement_id: Any) -> str | None:
        """``aws:userid`` of who ran the statement (a batch's sub-statement ``ID:n`` is its batch's);
        None for an Id that names no statement (or one run without a recorded caller)."""
        try:
            execution, _ = self._find(statement_id)
        except DataApiError:
            return None
        return execution.owner_userid

    def describe_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        execution, sub_index = self._find(params.get("Id"))
        with self._lock:
            if sub_index is not None:
                described = execution.subs[sub_index].describe()
                described.update(self._echo(execution))
                return described
            subs = [s.describe() for s in execution.subs]
            described = {
                "Id": execution.id,
                "Status": execution.status,
                "CreatedAt": execution.created_at,
                "UpdatedAt": execution.updated_at or execution.created_at,
                "Duration": execution.duration_ns,
                "QueryString": ";\n".join(s.query_string for s in execution.subs),
                "HasResultSet": any(s["HasResultSet"] for s in subs),
                "ResultRows": sum(max(s["ResultRows"], 0) for s in subs) if execution.status == "FINISHED" else -1,
                "ResultSize": sum(max(s["ResultSize"], 0) for s in subs) if execution.status == "FINISHED" else -1,
                "RedshiftPid": execution.pid,
                "RedshiftQueryId": 0,
                **self._echo(execution),
            }
            if execution.error is not None:
                described["Error"] = execution.error
            if execution.is_batch:
                described["SubStatements"] = subs
            if execution.parameters is not None:
                described["QueryParameters"] = [{"name": k, "value": v} for k, v in execution.parameters.items()]
            return described

    def get_statement_result(self, params: dict[str, Any]) -> dict[str, Any]:
        execution, sub_index = self._find(params.get("Id"))
        with self._lock:
            if sub_index is None:
                if execution.is_batch and len(execution.subs) > 1:
                    raise ValidationException(
                        f"{execution.id} is a batch: get the result of one of its statements, "
                        f"{execution.id}:1 to {execution.id}:{len(execution.subs)}"
                    )
                sub_index = 0
            sub = execution.subs[sub_index]
            if sub.status != "FINISHED":
                raise ValidationException(
                    f"Query {sub.id} is {sub.status}, not FINISHED: check its status with DescribeStatement"
                )
            result = sub.result
        if result is None or not result.has_result_set:
            raise ValidationException("Query does not have result. Please check query status with DescribeStatement.")
        offset = self._page_offset(params.get("NextToken"))
        page = result.rows[offset : offset + RESULT_PAGE_ROWS]
        response: dict[str, Any] = {
            "ColumnMetadata": [_column_metadata(c) for c in result.columns or []],
            "Records": [[_field(v) for v in row] for row in page],
            "TotalNumRows": len(result.rows),
        }
        if offset + RESULT_PAGE_ROWS < len(result.rows):
            response["NextToken"] = base64.urlsafe_b64encode(str(offset + RESULT_PAGE_ROWS).encode()).decode()
        return response

    def cancel_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        execution, _ = self._find(params.get("Id"))
        with self._lock:
            if execution.status == "SUBMITTED":
                self._finish(execution, "ABORTED", error="Query was cancelled")
                return {"Status": True}
            connection = execution.connection if execution.status in ("PICKED", "STARTED") else None
        if connection is None:
            raise ValidationException(f"Could not cancel a query that is already in {execution.status} state.")
        # PostgreSQL ignores a cancel that arrives before the query does (the connection is open,
        # the statement not yet sent): ask again until the execution ends, as Redshift's cancel
        # of a STARTED statement always ends it.
        threading.Thread(target=self._cancel_until_done, args=(execution, connection), daemon=True,
                         name=f"cancel-{execution.id}").start()
        return {"Status": True}

    def _cancel_until_done(self, execution: _Execution, connection: Any, *, every: float = 0.1,
                           for_at_most: float = 30.0) -> None:
        deadline = time.monotonic() + for_at_most
        while time.monotonic() < deadline:
            with self._lock:
                if execution.connection is not connection:
                    return  # finished (ABORTED, or done before the cancel reached it)
            connection.cancel_safe()
            time.sleep(every)

    # -- running ----------------------------------------------------------------------------

    def _submit(
        self, params: dict[str, Any], sqls: list[str], *, is_batch: bool, parameters: dict[str, str] | None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        execution_id = str(uuid.uuid4())
        created = _now()
        subs = [_SubStatement(f"{execution_id}:{n}", s, created) for n, s in enumerate(sqls, start=1)]
        execution = _Execution(execution_id, dict(params), subs, is_batch, parameters, created,
                               owner_userid=owner)
        with self._lock:
            self._executions[execution_id] = execution
        self._pool.submit(self._run, execution)
        return {"Id": execution_id, "CreatedAt": created, **self._echo(execution)}

    def _run(self, execution: _Execution) -> None:
        with self._lock:
            if execution.status != "SUBMITTED":
                return  # cancelled before it started
            execution.status = "STARTED"
            execution.updated_at = _now()
        started = time.perf_counter_ns()

        def connected(conn: psycopg.Connection[Any]) -> None:
            with self._lock:
                execution.connection = conn
                execution.pid = conn.info.backend_pid

        def statement_started(index: int) -> None:
            with self._lock:
                execution.subs[index].status = "STARTED"
                execution.subs[index].updated_at = _now()

        try:
            results = self.warehouse.execute_batch(
                [s.query_string for s in execution.subs],
                parameters=execution.parameters,
                on_connect=connected,
                on_statement=statement_started,
            )
        except WarehouseError as exc:
            cancelled = _caused_by_cancel(exc)
            with self._lock:
                for sub, result in zip(execution.subs, exc.results):
                    sub.result = result
                    sub.status = "FINISHED"
                failed = execution.subs[exc.index]
                failed.status = "ABORTED" if cancelled else "FAILED"
                failed.error = exc.message
                for sub in execution.subs[exc.index + 1 :]:
                    sub.status = "ABORTED"
                self._finish(execution, "ABORTED" if cancelled else "FAILED", exc.message, started)
        except Exception as exc:  # the warehouse is unreachable, or a bug: report, never hang
            message = f"ERROR: {type(exc).__name__}: {exc}"
            with self._lock:
                for sub in execution.subs:
                    if sub.status in ("SUBMITTED", "STARTED"):
                        sub.status, sub.error = "FAILED", message
                self._finish(execution, "FAILED", message, started)
        else:
            with self._lock:
                for sub, result in zip(execution.subs, results):
                    sub.result, sub.status = result, "FINISHED"
                self._finish(execution, "FINISHED", None, started)

    def _finish(self, execution: _Execution, status: str, error: str | None, started: int | None = None) -> None:
        now = _now()
        execution.status = status
        execution.error = error
        execution.updated_at = now
        execution.connection = None
        if started is not None:
            execution.duration_ns = time.perf_counter_ns() - started
        for sub in execution.subs:
            if sub.status == "SUBMITTED":
                sub.status = "ABORTED"
            sub.updated_at = now

    # -- validation -------------------------------------------------------------------------

    @staticmethod
    def _validate_target(params: dict[str, Any]) -> None:
        if params.get("SessionId") is not None:
            raise ValidationException("SessionId is not supported by the local Data API")
        if not params.get("Database"):
            raise ValidationException("Database is required")
        targets = [k for k in _TARGET_KEYS if params.get(k)]
        if len(targets) != 1:
            raise ValidationException("Exactly one of ClusterIdentifier or WorkgroupName must be given")

    @staticmethod
    def _parameters(raw: Any) -> dict[str, str] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not raw:
            raise ValidationException("Parameters must be a non-empty list of {name, value}")
        parameters: dict[str, str] = {}
        for item in raw:
            name, value = (item.get("name"), item.get("value")) if isinstance(item, dict) else (None, None)
            if not isinstance(name, str) or not PARAMETER_NAME.match(name) or not isinstance(value, str):
                raise ValidationException(f"invalid parameter {item!r}: name must match [0-9a-zA-Z_]+, value a string")
            if name in parameters:
                raise ValidationException(f"parameter {name} is given twice")
            parameters[name] = value
        return parameters

    def _find(self, statement_id: Any) -> tuple[_Execution, int | None]:
        if not isinstance(statement_id, str) or not STATEMENT_ID.match(statement_id):
            raise ValidationException(f"Id {statement_id!r} is not a statement id (a UUID, optionally with :<n>)")
        base, _, suffix = statement_id.partition(":")
        with self._lock:
            execution = self._executions.get(base)
        if execution is None:
            raise ResourceNotFoundException(f"Query {statement_id} does not exist")
        if not suffix:
            return execution, None
        number = int(suffix)
        if not 1 <= number <= len(execution.subs):
            raise ResourceNotFoundException(f"Query {statement_id} does not exist")
        return execution, number - 1

    @staticmethod
    def _page_offset(token: Any) -> int:
        if token is None:
            return 0
        try:
            return int(base64.urlsafe_b64decode(str(token).encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise ValidationException("NextToken is not valid") from None

    @staticmethod
    def _echo(execution: _Execution) -> dict[str, Any]:
        return {k: execution.request[k] for k in _ECHOED_KEYS if execution.request.get(k)}
