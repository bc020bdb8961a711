"""bookings_load: the Data API statements built from sql/load_bookings.sql, and the call sequence.

The call sequence is checked with botocore's Stubber, which validates every request against the
real redshift-data service model (parameter names and types); the execution itself runs for real
in test_etl_glue_script.py against the emulated Data API and PostgreSQL.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from etl_helpers import REPO_ROOT

import bookings_load
from bookings_load import LoadCounts, LoadError, RedshiftTarget, build_statements

SQL_PATH = REPO_ROOT / "sql" / "load_bookings.sql"
STAGING = "s3://raw-bucket/staging/exec-1/"
ROLE = "arn:aws:iam::123456789012:role/copy"


@pytest.fixture(scope="module")
def statements() -> list[str]:
    return build_statements(bookings_load.read_load_sql(SQL_PATH), STAGING, ROLE)


def test_the_load_sql_becomes_sixteen_statements_ending_with_the_counts(statements):
    assert len(statements) == 16
    assert statements[0] == "LOCK airline.load_mutex"
    assert statements[-1].startswith("SELECT rows_inserted, rows_updated, rows_unchanged, rows_stale, rows_staged")
    checks = [i for i, s in enumerate(statements) if bookings_load.COUNTS_CHECK in s]
    merge = next(i for i, s in enumerate(statements) if s.startswith("MERGE"))
    assert len(checks) == 1 and checks[0] < merge, "the counts are checked before anything is merged"
    assert sum(s.startswith("MERGE INTO airline.bookings") for s in statements) == 1
    assert not any(line.lstrip().startswith("--") for s in statements for line in s.splitlines())
    assert not any(s.rstrip().endswith(";") or not s for s in statements)


def test_placeholders_are_filled_everywhere(statements):
    copies = [s for s in statements if s.startswith("COPY")]
    assert copies == [
        f"COPY stage_bookings FROM '{STAGING}bookings/' IAM_ROLE '{ROLE}' FORMAT AS PARQUET",
        f"COPY stage_airports FROM '{STAGING}airports/' IAM_ROLE '{ROLE}' FORMAT AS PARQUET",
        f"COPY stage_run FROM '{STAGING}run/' IAM_ROLE '{ROLE}' FORMAT AS PARQUET",
    ]
    assert not any("{" in s for s in statements)


def test_quotes_in_values_cannot_break_out_of_the_sql_literal():
    built = build_statements(SQL_PATH.read_text(), "file:///tmp/o'brien/staging/e/", ROLE)
    assert "'file:///tmp/o''brien/staging/e/bookings/'" in built[2]
    with pytest.raises(ValueError, match="control character"):
        build_statements(SQL_PATH.read_text(), "s3://b/staging/e\n/", ROLE)
    with pytest.raises(ValueError, match="must end with '/'"):
        build_statements(SQL_PATH.read_text(), "s3://b/staging/e", ROLE)


def test_sql_without_placeholders_or_final_select_is_refused():
    with pytest.raises(ValueError, match=r"no \{staging_uri\} placeholder"):
        build_statements("SELECT 1\n;\n", STAGING, ROLE)
    with pytest.raises(ValueError, match="must end with the SELECT"):
        build_statements("COPY t FROM '{staging_uri}' IAM_ROLE '{iam_role}'\n;\nDELETE FROM t\n;\n",
                         STAGING, ROLE)


def test_the_sql_file_is_found_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "load_bookings.sql").write_text("-- from the working directory\nSELECT 1\n")
    monkeypatch.chdir(tmp_path)
    assert bookings_load.read_load_sql().startswith("-- from the working directory")
    (tmp_path / "load_bookings.sql").unlink()
    with pytest.raises(FileNotFoundError, match="neither in the working directory"):
        bookings_load.read_load_sql()


def test_target_parameters_for_serverless_and_provisioned():
    assert RedshiftTarget("dev", workgroup="wg-local").connection_parameters() == {
        "Database": "dev", "WorkgroupName": "wg-local"}
    assert RedshiftTarget("dev", cluster_id="c1", db_user="etl").connection_parameters() == {
        "Database": "dev", "ClusterIdentifier": "c1", "DbUser": "etl"}
    with pytest.raises(ValueError, match="either"):
        RedshiftTarget("dev", workgroup="wg", cluster_id="c1")
    with pytest.raises(ValueError, match="database user"):
        RedshiftTarget("dev", cluster_id="c1")


def _client():
    return boto3.client("redshift-data", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_run_load_submits_one_batch_polls_and_reads_the_last_result(statements):
    client = _client()
    target = RedshiftTarget("dev", workgroup="wg-local")
    with Stubber(client) as stub:
        stub.add_response("batch_execute_statement", {"Id": "b-1"}, {
            "Sqls": statements, "StatementName": "load-exec-1", "Database": "dev",
            "WorkgroupName": "wg-local"})
        stub.add_response("describe_statement", {"Id": "b-1", "Status": "STARTED"}, {"Id": "b-1"})
        stub.add_response("describe_statement", {"Id": "b-1", "Status": "FINISHED"}, {"Id": "b-1"})
        stub.add_response("get_statement_result", {
            "Records": [[{"longValue": 5}, {"longValue": 2}, {"longValue": 1}, {"longValue": 3},
                         {"longValue": 11}]]}, {"Id": "b-1:16"})
        sleeps: list[float] = []
        counts = bookings_load.run_load(client, statements, target, statement_name="load-exec-1",
                                        sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert counts == LoadCounts(rows_inserted=5, rows_updated=2, rows_unchanged=1, rows_stale=3,
                                rows_staged=11)
    assert sleeps == [bookings_load.FIRST_POLL_SECONDS]


def test_a_failed_batch_raises_with_the_data_api_error(statements):
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("batch_execute_statement", {"Id": "b-2"})
        stub.add_response("describe_statement", {
            "Id": "b-2", "Status": "FAILED", "Error": "ERROR: permission denied for relation bookings",
            "SubStatements": [{"Id": "b-2:3", "Status": "FAILED", "QueryString": "COPY stage_bookings"}]})
        with pytest.raises(LoadError, match=r"b-2 FAILED: ERROR: permission denied .*b-2:3"):
            bookings_load.run_load(client, statements, RedshiftTarget("dev", workgroup="wg-local"),
                                   sleep=lambda _: None)


def test_a_batch_that_never_ends_is_cancelled_after_the_timeout(statements):
    client = _client()
    ticks = iter(range(0, 1000, 10))
    with Stubber(client) as stub:
        stub.add_response("batch_execute_statement", {"Id": "b-3"})
        stub.add_response("describe_statement", {"Id": "b-3", "Status": "STARTED"})
        stub.add_response("describe_statement", {"Id": "b-3", "Status": "STARTED"})
        stub.add_response("cancel_statement", {"Status": True}, {"Id": "b-3"})
        with pytest.raises(LoadError, match="still STARTED after 15s; cancelled"):
            bookings_load.run_load(client, statements, RedshiftTarget("dev", workgroup="wg-local"),
                                   timeout_seconds=15, sleep=lambda _: None,
                                   clock=lambda: next(ticks))


def test_a_failed_count_check_says_that_nothing_was_loaded(statements):
    client = _client()
    check = next(s for s in statements if bookings_load.COUNTS_CHECK in s)
    with Stubber(client) as stub:
        stub.add_response("batch_execute_statement", {"Id": "b-4"})
        stub.add_response("describe_statement", {
            "Id": "b-4", "Status": "FAILED",
            "Error": "ERROR: Invalid digit, Value 'l', Pos 0, Type: Integer",
            "SubStatements": [{"Id": "b-4:13", "Status": "FAILED", "QueryString": check}]})
        with pytest.raises(LoadError, match=r"b-4 FAILED: ERROR: Invalid digit.*do not add up; nothing was "
                                            r"loaded \(the transaction was rolled back\)"):
            bookings_load.run_load(client, statements, RedshiftTarget("dev", workgroup="wg-local"),
                                   sleep=lambda _: None)
