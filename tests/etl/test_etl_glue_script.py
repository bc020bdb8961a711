"""ingest_bookings.py as Glue runs it: a script with Glue-style arguments, in its own process.

The success test loads into a real PostgreSQL through the emulated Redshift Data API (moto
server + airline_local.warehouse.redshift_data), reached by boto3 through AWS_ENDPOINT_URL only.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from etl_helpers import GLUE_SCRIPTS, GOOD_ROW, REPO_ROOT, rows_csv

import bookings_contract as contract
import bookings_metrics
from airline_local.glue.spark_conf import local_spark_conf
from stacks.migrations import latest_version

SCRIPT = GLUE_SCRIPTS / "ingest_bookings.py"
SAMPLE = REPO_ROOT / "data" / "sample" / "bookings_sample.csv"
# What the Glue 5.0 runtime offers: the standard library, Spark, the Glue libs, boto3, plus
# airportsdata (--additional-python-modules) and the job's own modules (--extra-py-files).
ALLOWED_IMPORTS = {"pyspark", "awsglue", "boto3", "botocore", "airportsdata"} | {
    path.stem for path in GLUE_SCRIPTS.glob("*.py")}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add("<relative import>")
            else:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(GLUE_SCRIPTS.glob("*.py")), ids=lambda p: p.name)
def test_glue_modules_import_only_what_glue_provides(path):
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    foreign = _imports(path) - stdlib - ALLOWED_IMPORTS
    assert not foreign, f"{path.name} imports {sorted(foreign)}, which AWS Glue does not have"
    assert not {"airline_local", "tests", "conftest"} & _imports(path)


def test_the_entry_script_uses_getresolvedoptions_and_no_gluecontext():
    tree = ast.parse(SCRIPT.read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert "getResolvedOptions" in imported and "GlueContext" not in imported | names
    assert "if __name__" in SCRIPT.read_text()


def _glue_arguments(source: Path, root: Path, execution_id: str, schema_version: str | None = None) -> list[str]:
    return ["--JOB_NAME", "airline-ingest", "--JOB_RUN_ID", f"jr_{execution_id}",
            "--job-bookmark-option", "job-bookmark-disable",
            "--source_uri", source.as_uri(), "--execution_id", execution_id,
            "--data_root_uri", root.as_uri(), "--redshift_database", "dev",
            "--redshift_workgroup", "wg-local", "--redshift_cluster_id", "-",
            "--redshift_db_user", "-",
            "--redshift_copy_role_arn", "arn:aws:iam::123456789012:role/copy",
            "--max_reject_ratio", "-",
            "--warehouse_schema_version", schema_version or latest_version()]


def _run_script(workdir: Path, arguments: list[str], extra_env: dict[str, str] | None = None):
    """The script as the local job runner starts it: cwd holds --extra-files (the load SQL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "sql" / "load_bookings.sql", workdir / "load_bookings.sql")
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    java_options = local_spark_conf().get("spark.driver.extraJavaOptions")  # the suite's C1-only JIT
    env.update({
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_SUBMIT_ARGS": "--master local[2] --driver-memory 1g "
                               "--conf spark.ui.enabled=false --conf spark.ui.showConsoleProgress=false "
                               "--conf spark.sql.shuffle.partitions=2 "
                               + (f"--driver-java-options {shlex.quote(java_options)} " if java_options else "")
                               + "pyspark-shell",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": "",  # only what Glue would have: the script's own directory
        **(extra_env or {}),
    })
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_file_level_failure_exits_non_zero_with_the_reason_and_a_failed_summary(data_api_endpoint, tmp_path):
    columns = tuple(c for c in contract.CONTRACT_COLUMNS if c != "cabin_class")
    source = tmp_path / "raw" / "no_cabin.csv"
    source.parent.mkdir()
    source.write_text(rows_csv([GOOD_ROW], columns))
    root = tmp_path / "bucket"
    # the warehouse is reachable and at the version the job needs (checked first)
    result = _run_script(tmp_path / "work", _glue_arguments(source, root, "exec-fail-1"),
                         {"AWS_ENDPOINT_URL": data_api_endpoint[0]})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (f"bookings_contract.BookingFileError: {source.as_uri()}: "
                         "missing required column(s): cabin_class")
    summary = json.loads((root / "runs" / "exec-fail-1.json").read_text())
    assert summary["status"] == "FAILED"
    assert summary["error"] == "missing required column(s): cabin_class"
    assert summary["source_file"] == source.as_uri() and summary["rows_read"] == 0
    assert not (root / "staging").exists()
    # The run's metrics: one embedded-metric-format line on stdout, with the summary's numbers.
    [metrics_line] = [x for x in result.stdout.splitlines() if '"_aws":' in x]
    assert json.loads(metrics_line) == bookings_metrics.emf_document(summary, "airline-ingest")
    assert json.loads(metrics_line)["RunsFailed"] == 1


def test_bad_arguments_fail_before_anything_is_written(tmp_path):
    source = tmp_path / "x.csv"
    source.write_text(rows_csv([GOOD_ROW]))
    arguments = _glue_arguments(source, tmp_path / "bucket", "../escape")
    result = _run_script(tmp_path / "work", arguments)
    assert result.returncode != 0 and "--execution_id '../escape' must match" in result.stderr
    assert not (tmp_path / "bucket").exists()


# --- the whole script against the emulated Data API ---------------------------------------


def _dashboard_job_metrics() -> set[str]:
    """The names stacks/observability.py's dashboard reads from the job's namespace: its construct
    synthesized alone (the infra tests check the same dashboard in the whole stack)."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sqs as sqs
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template

    from stacks.config import PipelineConfig
    from stacks.observability import Observability
    from tests.infra.template_helpers import only, render

    stack = Stack(App(), "Metrics")
    machine = sfn.StateMachine(stack, "M", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "P")))
    Observability(stack, "O", config=PipelineConfig(), job_name="j", topic=sns.Topic(stack, "T"),
                  dead_letter_queue=sqs.Queue(stack, "Q"), crawler_events_dead_letter_queue=sqs.Queue(stack, "CQ"),
                  state_machines={"m": machine})
    _, props = only(Template.from_stack(stack).to_json(), "AWS::CloudWatch::Dashboard")
    body = json.loads(render(props["DashboardBody"]))
    return {row[1] for widget in body["widgets"] if widget["type"] == "metric"
            for row in widget["properties"]["metrics"] if row[0] == bookings_metrics.NAMESPACE}


@pytest.fixture(scope="module")
def data_api_endpoint():
    """A PostgreSQL warehouse behind the Data API emulator, served by the moto server."""
    from airline_local.aws.emulator import Emulator
    from airline_local.warehouse.postgres import PostgresServer
    from airline_local.warehouse.redshift_data import DataApiEmulator
    from airline_local.warehouse.statements import Warehouse

    # Not pytest's tmp_path: its 0700 parents keep out the unprivileged PostgreSQL user.
    state = Path(tempfile.mkdtemp(prefix="airline-etl-tests-"))
    state.chmod(0o711)
    server = PostgresServer(state / "pgdata").start()
    emulator = Emulator.running()
    owned = emulator is None
    if owned:
        emulator = Emulator(state / "emulator")
    saved = emulator.data_api
    warehouse = Warehouse(server.dsn)
    warehouse.apply_migrations()
    api = DataApiEmulator(warehouse)
    emulator.data_api = api
    try:
        yield emulator.endpoint_url, server.dsn
    finally:
        emulator.data_api = saved
        api.close()
        if owned:
            emulator.stop()
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_the_script_fails_fast_on_a_warehouse_older_than_the_version_it_needs(data_api_endpoint, tmp_path):
    endpoint, _ = data_api_endpoint
    root = tmp_path / "bucket"
    needed = f"{int(latest_version()) + 1:04d}"  # a job of the next release, before the deploy migrated
    result = _run_script(tmp_path / "work", _glue_arguments(SAMPLE, root, "exec-old-1", needed),
                         {"AWS_ENDPOINT_URL": endpoint})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"bookings_load.WarehouseVersionError: warehouse at {latest_version()}, this job needs {needed}: "
        "deploy the stack to migrate it (docs/upgrading-warehouse.md)")
    assert not root.exists()  # before reading the file: nothing staged, quarantined or summarized


def test_the_script_loads_the_sample_and_a_retried_load_changes_nothing(data_api_endpoint, tmp_path):
    import boto3

    import bookings_load

    endpoint, dsn = data_api_endpoint
    root = tmp_path / "bucket"
    result = _run_script(tmp_path / "work", _glue_arguments(SAMPLE, root, "exec-ok-1"),
                         {"AWS_ENDPOINT_URL": endpoint})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((root / "runs" / "exec-ok-1.json").read_text())
    assert summary["status"] == "SUCCEEDED" and summary["error"] is None
    assert (summary["rows_read"], summary["rows_quarantined"], summary["rows_duplicate"]) == (1000, 20, 69)
    assert (summary["rows_staged"], summary["rows_inserted"], summary["rows_updated"],
            summary["rows_unchanged"], summary["rows_stale"]) == (911, 911, 0, 0, 0)
    assert summary["rows_read"] == (summary["rows_quarantined"] + summary["rows_duplicate"]
                                    + summary["rows_inserted"] + summary["rows_updated"]
                                    + summary["rows_unchanged"] + summary["rows_stale"])
    assert summary["quarantine_uri"] == (root / "quarantine" / "exec-ok-1").as_uri() + "/"
    # The metrics this run emitted (its EMF line) are exactly those the stack's dashboard reads:
    # a phase or a count renamed in the job, or on the dashboard, fails here.
    [metrics_line] = [x for x in result.stdout.splitlines() if '"_aws":' in x]
    [directive] = json.loads(metrics_line)["_aws"]["CloudWatchMetrics"]
    assert {m["Name"] for m in directive["Metrics"]} == _dashboard_job_metrics()

    # A retry of the same execution (same staged files) merges nothing new and replaces the
    # run's audit row instead of adding one.
    client = boto3.client("redshift-data", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    again = bookings_load.load_bookings(
        (root / "staging" / "exec-ok-1").as_uri() + "/", "arn:aws:iam::123456789012:role/copy",
        bookings_load.RedshiftTarget("dev", workgroup="wg-local"),
        sql_path=REPO_ROOT / "sql" / "load_bookings.sql", client=client)
    assert again == bookings_load.LoadCounts(rows_inserted=0, rows_updated=0, rows_unchanged=911,
                                             rows_stale=0, rows_staged=911)

    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM airline.bookings").fetchone()[0] == 911
        assert conn.execute("SELECT count(*) FROM airline.airports").fetchone()[0] > 5000
        runs = conn.execute("SELECT execution_id, rows_read, rows_staged, rows_inserted, rows_unchanged "
                            "FROM airline.ingestion_runs").fetchall()
        assert runs == [("exec-ok-1", 1000, 911, 0, 911)]
        jfk = conn.execute("SELECT origin_city, origin_country FROM airline.bookings "
                           "WHERE origin = 'JFK' LIMIT 1").fetchone()
        assert jfk in (None, ("New York", "US"))


def test_a_summary_that_cannot_be_written_after_the_commit_says_the_data_was_committed(
        data_api_endpoint, tmp_path):
    """Issue 13, section 6: the summary write is retried; when it still fails, the job's error
    (Glue's ErrorMessage, which the failure email quotes) says the load committed, with counts."""
    endpoint, dsn = data_api_endpoint
    root = tmp_path / "bucket"
    root.mkdir()
    (root / "runs").write_text("a file where the runs/ folder should be: every write fails")
    source = tmp_path / "raw" / "two.csv"
    source.parent.mkdir()
    source.write_text(rows_csv([{**GOOD_ROW, "booking_id": f"SUMMARY-LOST-{n}"} for n in (1, 2)]))
    result = _run_script(tmp_path / "work", _glue_arguments(source, root, "exec-nosummary-1"),
                         {"AWS_ENDPOINT_URL": endpoint})
    assert result.returncode != 0
    assert result.stderr.count("failed (attempt") == 2, "two retries before giving up"
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"SummaryNotWritten: {source.as_uri()}: the load was COMMITTED to "
                                "the warehouse (execution exec-nosummary-1: read 2, quarantined 0, duplicate 0, "
                                "inserted 2, updated 0, unchanged 0, stale 0), but the run summary could not "
                                f"be written to {(root / 'runs').as_uri()}/exec-nosummary-1.json: "), last_line
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT rows_read, rows_inserted FROM airline.ingestion_runs "
                            "WHERE execution_id = 'exec-nosummary-1'").fetchone() == (2, 2)
