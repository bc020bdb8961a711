"""The warehouse's versioned migrations (sql/migrations/) applied by the schema custom resource's
handler (stacks/schema_handler/handler.py) as the Provider framework drives it: onEvent, then
isComplete until complete, through the Data API emulator on a real PostgreSQL database of each
test's own. Fresh warehouse, a 2026-12-01 warehouse (baseline), a changed checksum, a failing
migration, an unrecognised schema, a call that runs out of time; and the job's version check."""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from warehouse_staging import REPO, DataApiClient, fetch

from airline_local.warehouse.redshift_data import DataApiEmulator
from airline_local.warehouse.statements import Warehouse
from glue_scripts import bookings_load
from stacks import migrations as migration_files
from stacks.schema_handler import handler

ETL_USER = "IAMR:AirlineEtlRoleForMigrationTests"
RELEASE_2026_12_01 = "441e6ad"
_DATABASES = itertools.count()


@pytest.fixture
def fresh(pg_server) -> Iterator[Warehouse]:
    """An empty database of its own (CREATE DATABASE on the session's server)."""
    name = f"migrations_{next(_DATABASES)}"
    with psycopg.connect(pg_server.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    yield Warehouse(pg_server.dsn_for(name))
    with psycopg.connect(pg_server.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def client(fresh) -> Iterator[DataApiClient]:
    api = DataApiEmulator(fresh)
    yield DataApiClient(api)
    api.close()


def properties(migrations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The resource's properties as the stack synthesizes them (tests/infra checks that side)."""
    return {"Database": "dev", "SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin",
            "WorkgroupName": "airline-bookings", "EtlDbUser": ETL_USER,
            "Migrations": migrations if migrations is not None
            else [m.as_property() for m in migration_files.load_migrations()]}


def migration(version: str, description: str, *statements: str) -> dict[str, Any]:
    return {"Version": version, "Description": description, "Checksum": handler.checksum(statements),
            "Statements": list(statements)}


def deploy(client: DataApiClient, props: dict[str, Any], request_type: str = "Update",
           context: Any = None) -> dict[str, Any]:
    """onEvent, then isComplete until it answers complete, as the Provider framework calls them."""
    request = {"RequestType": request_type, "RequestId": "req-1", "LogicalResourceId": "WarehouseSchema",
               "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/AirlineIngest/1",
               "ResourceType": "Custom::RedshiftSchema", "ResourceProperties": props}
    event = {**request, **handler.handle(request, client=client)}
    for _ in range(200):
        answer = handler.handle(event, context, client=client)
        if answer["IsComplete"]:
            return answer
    raise AssertionError("isComplete never answered complete")


def recorded(warehouse: Warehouse) -> list[tuple[str, str]]:
    return fetch(warehouse, "SELECT version, checksum FROM airline.schema_migrations ORDER BY version")


def columns(warehouse: Warehouse, table: str) -> list[str]:
    return [c for (c,) in fetch(warehouse, "SELECT column_name FROM information_schema.columns WHERE "
                                           "table_schema = 'airline' AND table_name = %s ORDER BY ordinal_position",
                                (table,))]


def tables(warehouse: Warehouse) -> list[str]:
    return [t for (t,) in fetch(warehouse, "SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'airline' ORDER BY 1")]


FILES = migration_files.load_migrations()


# -- the migrations themselves -------------------------------------------------------------------

def test_migration_0001_is_the_schema_the_2026_12_01_release_created():
    released = subprocess.run(["git", "-C", str(REPO), "show", f"{RELEASE_2026_12_01}:sql/001_schema.sql"],
                              capture_output=True, text=True)
    if released.returncode != 0:
        pytest.skip(f"the release commit {RELEASE_2026_12_01} is not in this clone's history")
    assert FILES[0].statements == tuple(migration_files.split_sql_statements(released.stdout))


# Redshift refuses these inside a transaction block, which a Data API batch is (docs/aws-notes.md,
# "Warehouse migrations"); PostgreSQL accepts most of them there.
OUTSIDE_TRANSACTIONS = re.compile(r"^\s*(VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+TABLE\s+\S+\s+APPEND|"
                                  r"ALTER\s+TABLE\s+\S+\s+ALTER\s+COLUMN\s+\S+\s+TYPE|"
                                  r"(CREATE|ALTER|DROP)\s+EXTERNAL\s+TABLE|CREATE\s+LIBRARY|DROP\s+LIBRARY)", re.I)


@pytest.mark.parametrize("statement", [s for m in FILES for s in m.statements], ids=lambda s: s.split("(")[0][:60])
def test_each_migration_statement_is_one_redshift_runs_in_a_transaction(statement):
    assert not OUTSIDE_TRANSACTIONS.match(statement), "Redshift refuses it inside a transaction block"
    add = re.match(r"^ALTER\s+TABLE\s+\S+\s+ADD\s+(COLUMN\s+)?(?P<rest>.*)$", statement, re.I | re.S)
    if add:
        assert "," not in add["rest"], "Redshift adds one column per ALTER TABLE"
        if re.search(r"\bNOT\s+NULL\b", add["rest"], re.I):
            assert re.search(r"\bDEFAULT\b", add["rest"], re.I), "Redshift: an added NOT NULL column needs a DEFAULT"


def test_the_migration_files_are_checked_when_read(tmp_path):
    for name, text in (("0001_a.sql", "CREATE TABLE t (a INT);"), ("0003_c.sql", "CREATE TABLE u (a INT);")):
        (tmp_path / name).write_text(text)
    with pytest.raises(migration_files.MigrationError, match="0003_c.sql: expected version 0002"):
        migration_files.load_migrations(tmp_path)
    (tmp_path / "0003_c.sql").rename(tmp_path / "0002-c.sql")
    with pytest.raises(migration_files.MigrationError, match="0002-c.sql: a migration is named NNNN_description.sql"):
        migration_files.load_migrations(tmp_path)
    (tmp_path / "0002-c.sql").rename(tmp_path / "0002_c.sql")
    assert [m.version for m in migration_files.load_migrations(tmp_path)] == ["0001", "0002"]
    assert migration_files.latest_version(tmp_path) == "0002"


# -- deploys -------------------------------------------------------------------------------------

def test_a_fresh_warehouse_gets_every_migration_each_recorded_once(fresh, client):
    done = deploy(client, properties(), request_type="Create")
    assert done == {"IsComplete": True, "Data": {"SchemaVersion": "0003", "Migrated": "0001,0002,0003"}}
    assert recorded(fresh) == [(m.version, m.checksum) for m in FILES]
    (by,) = {b for (b,) in fetch(fresh, "SELECT applied_by FROM airline.schema_migrations")}
    assert re.fullmatch(r"\S+ by deploy of arn:aws:cloudformation:\S+ \(WarehouseSchema, Create, request req-1\)", by)
    assert tables(fresh) == ["airports", "bookings", "ingestion_runs", "load_mutex", "schema_migrations"]
    assert {"rows_staged", "rows_stale"} <= set(columns(fresh, "ingestion_runs"))
    # the grants ran after the migrations: the ETL user reads the version, never writes it
    assert fetch(fresh, "SELECT has_table_privilege(%s, 'airline.load_mutex', 'INSERT'), "
                        "has_table_privilege(%s, 'airline.schema_migrations', 'SELECT'), "
                        "has_table_privilege(%s, 'airline.schema_migrations', 'INSERT')", (ETL_USER,) * 3) == [
        (True, True, False)]
    again = deploy(client, properties())  # an Update with nothing new: no migration runs again
    assert again["Data"] == {"SchemaVersion": "0003", "Migrated": "-"}
    assert len(recorded(fresh)) == 3


def _the_2026_12_01_warehouse_with_a_run(warehouse: Warehouse) -> None:
    warehouse.execute_batch(list(FILES[0].statements) + [
        "INSERT INTO airline.ingestion_runs (execution_id, source_file, status, rows_read, rows_quarantined, "
        "rows_duplicate, rows_inserted, rows_updated, rows_unchanged, quarantine_uri, started_at, loaded_at) "
        "VALUES ('exec-2026-12-01', 's3://raw/raw/bookings/a.csv', 'SUCCEEDED', 1000, 20, 69, 900, 5, 6, NULL, "
        "'2026-12-01 10:00:00', '2026-12-01 10:01:00')",
        "INSERT INTO airline.airports VALUES ('JFK', 'KJFK', 'John F Kennedy Intl', 'New York', 'NY', 'US', 40.6, "
        "-73.8, 'America/New_York')",
    ])


def test_a_warehouse_of_the_2026_12_01_release_is_baselined_then_migrated_with_its_data_intact(fresh, client):
    _the_2026_12_01_warehouse_with_a_run(fresh)
    airports = fetch(fresh, "SELECT * FROM airline.airports")
    done = deploy(client, properties())
    assert done["Data"] == {"SchemaVersion": "0003", "Migrated": "0002,0003"}
    assert recorded(fresh) == [(m.version, m.checksum) for m in FILES]
    baseline = fetch(fresh, "SELECT applied_by FROM airline.schema_migrations WHERE version = '0001'")[0][0]
    assert "baseline: its tables were found as this migration creates them" in baseline
    assert fetch(fresh, "SELECT * FROM airline.airports") == airports
    # the run of the old release: intact, with the new counts derived (it counted stale as unchanged)
    assert fetch(fresh, "SELECT execution_id, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_staged, "
                        "rows_stale FROM airline.ingestion_runs") == [("exec-2026-12-01", 1000, 900, 5, 6, 911, 0)]
    assert "load_mutex" in tables(fresh)


def test_a_changed_applied_migration_fails_the_deploy_naming_it_and_runs_nothing(fresh, client):
    deploy(client, properties())
    changed = [m.as_property() for m in FILES]
    statements = [s.replace("DEFAULT 0", "DEFAULT 1") for s in changed[1]["Statements"]]
    changed[1] = migration("0002", changed[1]["Description"], *statements)
    changed.append(migration("0004", "never runs", "CREATE TABLE airline.never (a INT)"))
    with pytest.raises(handler.SchemaDeploymentError) as failed:
        deploy(client, properties(changed))
    message = str(failed.value)
    assert message.startswith(f"migration 0002 (ingestion runs staged and stale) was applied with checksum {FILES[1].checksum}, "
                              f"but its file now has checksum {changed[1]['Checksum']}: an applied migration must never change")
    assert "nothing was run" in message
    assert recorded(fresh) == [(m.version, m.checksum) for m in FILES] and "never" not in tables(fresh)


def test_a_failing_migration_is_rolled_back_and_the_warehouse_stays_at_the_version_before(fresh, client):
    broken = [m.as_property() for m in FILES] + [migration(
        "0004", "half done", "CREATE TABLE airline.half_done (a INT)",
        "ALTER TABLE airline.ingestion_runs ADD COLUMN rows_half BIGINT DEFAULT 0 NOT NULL",
        "INSERT INTO airline.no_such_table VALUES (1)")]
    with pytest.raises(handler.SchemaDeploymentError) as failed:
        deploy(client, properties(broken), request_type="Create")
    # 0001-0003 of the same deploy are kept (each its own transaction); nothing of 0004 is
    assert [v for v, _ in recorded(fresh)] == ["0001", "0002", "0003"]
    assert "half_done" not in tables(fresh) and "rows_half" not in columns(fresh, "ingestion_runs")
    message = str(failed.value)
    assert message.startswith("migration 0004 (half done) FAILED (statement ")
    assert 'ERROR: relation "airline.no_such_table" does not exist' in message
    assert message.endswith("It was rolled back: the warehouse stays at 0003, the version before it.")
    # the next deploy, with 0004 fixed, goes on from 0003
    fixed = broken[:3] + [migration("0004", "half done", "CREATE TABLE airline.half_done (a INT)")]
    assert deploy(client, properties(fixed))["Data"] == {"SchemaVersion": "0004", "Migrated": "0004"}


def test_tables_that_are_not_the_0001_schema_and_no_record_fail_the_deploy_naming_the_difference(fresh, client):
    # e.g. a local warehouse made by a development version between the release and the migrations
    fresh.execute_batch(list(FILES[0].statements) + list(FILES[2].statements))
    with pytest.raises(handler.SchemaDeploymentError) as failed:
        deploy(client, properties())
    message = str(failed.value)
    assert ("schema airline has tables but no migration recorded in airline.schema_migrations, and they are not "
            "what migration 0001 (initial schema) creates (table airline.load_mutex is not one of them)") in message
    assert recorded(fresh) == []


def test_a_warehouse_ahead_of_the_release_is_left_as_it_is(fresh, client):
    """A rollback of the stack deploys the previous release: its migrations are already applied."""
    deploy(client, properties())
    older = [m.as_property() for m in FILES[:2]]
    assert deploy(client, properties(older))["Data"] == {"SchemaVersion": "0003", "Migrated": "-"}
    assert len(recorded(fresh)) == 3


def test_a_call_that_runs_out_of_time_answers_not_complete_and_the_next_goes_on(fresh, client):
    """The Provider framework calls isComplete again with the same event: the handler keeps no
    state between calls. A migrating deploy's LOCK makes the state read wait (here: the test's)."""
    request = {"RequestType": "Create", "RequestId": "r", "ResourceProperties": properties()}
    event = {**request, **handler.handle(request, client=client)}
    short = SimpleNamespace(get_remaining_time_in_millis=lambda: (handler.SAFETY_SECONDS + 0.5) * 1000)
    while client.describe_statement(Id=event["Data"]["StatementId"])["Status"] != "FINISHED":
        pass  # the bootstrap batch (airline.schema_migrations) of onEvent
    with psycopg.connect(fresh.dsn) as holder:
        holder.execute("LOCK airline.schema_migrations")  # held until this block commits
        assert handler.handle(event, short, client=client) == {"IsComplete": False}
    answer = handler.handle(event, short, client=client)
    while not answer["IsComplete"]:
        answer = handler.handle(event, short, client=client)
    assert answer["Data"]["SchemaVersion"] == "0003"


# -- the job's version check ---------------------------------------------------------------------

def test_the_job_fails_fast_on_a_warehouse_the_deploy_has_not_migrated(fresh, client):
    target = bookings_load.RedshiftTarget("dev", workgroup="airline-bookings")
    with pytest.raises(bookings_load.WarehouseVersionError) as missing:
        bookings_load.check_schema_version("0003", target, client=client)
    assert str(missing.value) == ("warehouse dev has no airline.schema_migrations (it predates versioned migrations), "
                                  "this job needs 0003: deploy the stack to migrate it (docs/upgrading-warehouse.md)")
    _the_2026_12_01_warehouse_with_a_run(fresh)
    deploy(client, properties([m.as_property() for m in FILES[:1]]))  # the deploy of a release at 0001
    with pytest.raises(bookings_load.WarehouseVersionError) as old:
        bookings_load.check_schema_version("0003", target, client=client)
    assert str(old.value) == ("warehouse at 0001, this job needs 0003: deploy the stack to migrate it "
                              "(docs/upgrading-warehouse.md)")
    deploy(client, properties())
    assert bookings_load.check_schema_version("0003", target, client=client) == "0003"
    assert bookings_load.check_schema_version("0002", target, client=client) == "0003"  # newer is fine
