"""The Redshift Data API emulator: boto3-shaped dicts in and out, statements run asynchronously."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from warehouse_staging import T0, booking, fetch, load_statements

from airline_local.warehouse.redshift_data import (
    DataApiEmulator,
    ResourceNotFoundException,
    ValidationException,
)

TARGET = {"WorkgroupName": "airline", "Database": "dev"}
DONE = {"FINISHED", "FAILED", "ABORTED"}


@pytest.fixture(scope="module")
def api(warehouse) -> Iterator[DataApiEmulator]:
    emulator = DataApiEmulator(warehouse)
    yield emulator
    emulator.close()


def wait(api: DataApiEmulator, statement_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = api.describe_statement({"Id": statement_id})
        if described["Status"] in DONE:
            return described
        assert time.monotonic() < deadline, f"{statement_id} still {described['Status']}"
        time.sleep(0.02)


def test_batch_round_trip_of_the_load(api, clean_tables, stage):
    statements = load_statements(stage("exec-api", [booking("A1", T0), booking("A2", T0)]))
    submitted = api.batch_execute_statement({"Sqls": statements, "StatementName": "load", **TARGET})
    assert set(submitted) >= {"Id", "CreatedAt", "Database", "WorkgroupName"}
    assert submitted["WorkgroupName"] == "airline" and submitted["Database"] == "dev"
    assert isinstance(submitted["CreatedAt"], dt.datetime) and submitted["CreatedAt"].tzinfo is not None

    described = wait(api, submitted["Id"])
    assert described["Status"] == "FINISHED", described.get("Error")
    subs = described["SubStatements"]
    assert [s["Id"] for s in subs] == [f"{submitted['Id']}:{n}" for n in range(1, len(statements) + 1)]
    assert all(s["Status"] == "FINISHED" for s in subs)
    assert [s["QueryString"] for s in subs] == statements
    copy_bookings = subs[2]
    assert copy_bookings["ResultRows"] == 2 and copy_bookings["HasResultSet"] is False
    last = subs[-1]
    assert last["HasResultSet"] is True and last["ResultRows"] == 1

    result = api.get_statement_result({"Id": last["Id"]})
    assert [c["name"] for c in result["ColumnMetadata"]] == [
        "rows_inserted", "rows_updated", "rows_unchanged", "rows_stale", "rows_staged"]
    assert {c["typeName"] for c in result["ColumnMetadata"]} == {"int8"}
    assert result["Records"] == [[{"longValue": 2}, {"longValue": 0}, {"longValue": 0}, {"longValue": 0},
                                  {"longValue": 2}]]
    assert result["TotalNumRows"] == 1
    assert fetch(clean_tables, "SELECT count(*) FROM airline.bookings") == [(2,)]


def test_statements_run_after_the_call_returns(api):
    submitted = api.execute_statement({"Sql": "SELECT pg_sleep(0.5)", **TARGET})
    assert api.describe_statement({"Id": submitted["Id"]})["Status"] in {"SUBMITTED", "STARTED"}
    assert wait(api, submitted["Id"])["Status"] == "FINISHED"


def test_failing_sql_fails_the_batch_with_postgres_error(api, clean_tables):
    submitted = api.batch_execute_statement(
        {
            "Sqls": [
                "INSERT INTO airline.airports VALUES ('XXX', NULL, 'n', NULL, NULL, 'FR', 0, 0, 'UTC')",
                "SELECT * FROM airline.no_such_table",
                "SELECT 1",
            ],
            **TARGET,
        }
    )
    described = wait(api, submitted["Id"])
    assert described["Status"] == "FAILED"
    assert 'relation "airline.no_such_table" does not exist' in described["Error"]
    assert [s["Status"] for s in described["SubStatements"]] == ["FINISHED", "FAILED", "ABORTED"]
    assert described["SubStatements"][1]["Error"] == described["Error"]
    assert fetch(clean_tables, "SELECT count(*) FROM airline.airports") == [(0,)], "rolled back"
    with pytest.raises(ValidationException):
        api.get_statement_result({"Id": f"{submitted['Id']}:2"})


def test_untranslatable_sql_fails_at_run_time_not_at_submission(api):
    submitted = api.execute_statement({"Sql": "SELECT 1; SELECT 2", **TARGET})
    described = wait(api, submitted["Id"])
    assert described["Status"] == "FAILED" and "expected one SQL statement" in described["Error"]


def test_execute_statement_binds_parameters_as_data(api, clean_tables):
    evil = "O'Brien'); DROP TABLE airline.bookings; --"
    submitted = api.execute_statement(
        {
            "Sql": "SELECT :n::int + 1 AS n, :s AS s, CAST(:d AS DECIMAL(12,2)) AS d, "
            "CAST(:t AS TIMESTAMP) AS t, :b::boolean AS b, 0.5::float8 AS f, NULL::int AS z, "
            "'100%' AS pct",
            "Parameters": [
                {"name": "n", "value": "41"},
                {"name": "s", "value": evil},
                {"name": "d", "value": "512.4"},
                {"name": "t", "value": "2024-03-10 23:30:15.120"},
                {"name": "b", "value": "true"},
            ],
            **TARGET,
        }
    )
    described = wait(api, submitted["Id"])
    assert described["Status"] == "FINISHED", described.get("Error")
    assert "SubStatements" not in described
    assert {"name": "s", "value": evil} in described["QueryParameters"]
    result = api.get_statement_result({"Id": submitted["Id"]})
    assert result["Records"] == [
        [
            {"longValue": 42},
            {"stringValue": evil},
            {"stringValue": "512.40"},
            {"stringValue": "2024-03-10 23:30:15.12"},
            {"booleanValue": True},
            {"doubleValue": 0.5},
            {"isNull": True},
            {"stringValue": "100%"},
        ]
    ]
    types = [c["typeName"] for c in result["ColumnMetadata"]]
    assert types == ["int4", "text", "numeric", "timestamp", "bool", "float8", "int4", "text"]
    assert fetch(clean_tables, "SELECT to_regclass('airline.bookings') IS NOT NULL") == [(True,)]


def test_missing_parameter_fails_the_statement(api):
    submitted = api.execute_statement(
        {"Sql": "SELECT :a AS a, :b AS b", "Parameters": [{"name": "a", "value": "1"}], **TARGET}
    )
    described = wait(api, submitted["Id"])
    assert described["Status"] == "FAILED" and ":b" in described["Error"]


def test_cancel_aborts_a_running_statement(api):
    submitted = api.execute_statement({"Sql": "SELECT pg_sleep(30)", **TARGET})
    deadline = time.monotonic() + 10
    while api.describe_statement({"Id": submitted["Id"]})["Status"] != "STARTED" or api._executions[submitted["Id"]].connection is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert api.cancel_statement({"Id": submitted["Id"]}) == {"Status": True}
    described = wait(api, submitted["Id"], timeout=10)
    assert described["Status"] == "ABORTED"


@pytest.mark.parametrize(
    ("action", "params", "error", "text"),
    [
        ("describe_statement", {"Id": "not-an-id"}, ValidationException, "not a statement id"),
        ("describe_statement", {"Id": "00000000-0000-0000-0000-000000000000"}, ResourceNotFoundException, "does not exist"),
        ("get_statement_result", {"Id": "00000000-0000-0000-0000-000000000000:1"}, ResourceNotFoundException, "does not exist"),
        ("batch_execute_statement", {"Sqls": [], **TARGET}, ValidationException, "Sqls"),
        ("batch_execute_statement", {"Sqls": ["SELECT 1"] * 41, **TARGET}, ValidationException, "limit is 40"),
        ("batch_execute_statement", {"Sqls": ["SELECT 1"], "Database": "dev"}, ValidationException, "WorkgroupName"),
        ("execute_statement", {"Sql": "SELECT 1", "WorkgroupName": "w"}, ValidationException, "Database"),
        ("execute_statement", {"Sql": "SELECT :a", "Parameters": [{"name": "a-b", "value": "1"}], **TARGET},
         ValidationException, "invalid parameter"),
    ],
)
def test_api_errors_carry_the_aws_code(api, action, params, error, text):
    with pytest.raises(error, match=text) as raised:
        getattr(api, action)(params)
    assert raised.value.code == error.__name__


def test_batch_parent_result_needs_a_sub_statement_id(api):
    submitted = api.batch_execute_statement({"Sqls": ["SELECT 1 AS a", "SELECT 2 AS b"], **TARGET})
    assert wait(api, submitted["Id"])["Status"] == "FINISHED"
    with pytest.raises(ValidationException, match=":1 to .*:2"):
        api.get_statement_result({"Id": submitted["Id"]})
    assert api.get_statement_result({"Id": f"{submitted['Id']}:2"})["Records"] == [[{"longValue": 2}]]
    with pytest.raises(ValidationException, match="does not have result"):
        finished = api.execute_statement({"Sql": "CREATE TEMP TABLE t (a INT)", **TARGET})
        wait(api, finished["Id"])
        api.get_statement_result({"Id": finished["Id"]})


def test_large_results_are_paged(api):
    submitted = api.execute_statement({"Sql": "SELECT generate_series(1, 25000) AS n", **TARGET})
    wait(api, submitted["Id"])
    seen: list[int] = []
    token = None
    while True:
        page = api.get_statement_result({"Id": submitted["Id"], **({"NextToken": token} if token else {})})
        seen.extend(r[0]["longValue"] for r in page["Records"])
        token = page.get("NextToken")
        if token is None:
            break
    assert seen == list(range(1, 25001))
