"""The schema custom resource's grant statements (stacks/schema_handler/handler.py) on PostgreSQL:
each statement's translation, the Redshift shapes recognised (and what is refused), and the whole
batch the handler submits run twice on the real local PostgreSQL, leaving the ETL user with its
grants."""

from __future__ import annotations

import psycopg
import pytest

from airline_local.warehouse.statements import Warehouse, WarehouseError
from airline_local.warehouse.redshift_sql import RedshiftSqlError, to_postgres, to_postgres_parameterized
from stacks.schema_handler.handler import grant_statements

ETL_USER = "IAMR:AirlineEtlRoleForGrantTests"


def test_each_grant_statement_as_postgresql_takes_it():
    create, call, drop, usage, tables, defaults, temp, revoke = (to_postgres(s) for s in grant_statements(ETL_USER, "dev"))
    # the procedure as written, except the Redshift words of the SQL its EXECUTE builds
    assert create.startswith("CREATE OR REPLACE PROCEDURE airline.ensure_etl_user(user_name VARCHAR(128)) LANGUAGE plpgsql AS $$")
    assert "EXECUTE 'CREATE USER ' || quote_ident(user_name) || ' PASSWORD NULL';" in create
    assert "PASSWORD DISABLE" not in create
    assert call == f"CALL airline.ensure_etl_user('{ETL_USER}')"
    assert drop == "DROP PROCEDURE airline.ensure_etl_user (VARCHAR)"
    assert usage == f'GRANT USAGE ON SCHEMA airline TO "{ETL_USER}"'
    assert tables == f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA airline TO "{ETL_USER}"'
    assert defaults == ("ALTER DEFAULT PRIVILEGES IN SCHEMA airline GRANT SELECT, INSERT, UPDATE, DELETE "
                        f'ON TABLES TO "{ETL_USER}"')
    assert temp == f'GRANT TEMP ON DATABASE "dev" TO "{ETL_USER}"'
    assert revoke == f'REVOKE INSERT, UPDATE, DELETE ON airline.schema_migrations FROM "{ETL_USER}"'


def test_create_user_password_disable_and_call_arguments_are_translated():
    assert to_postgres('CREATE USER "IAMR:x" PASSWORD DISABLE') == 'CREATE USER "IAMR:x" PASSWORD NULL'
    assert to_postgres("create user etl password disable") == "CREATE USER etl PASSWORD NULL"
    assert to_postgres("CALL s.p(GETDATE(), NVL(a, 0))") == "CALL s.p(CURRENT_TIMESTAMP, COALESCE(a, 0))"
    assert to_postgres("CALL p()") == "CALL p()"
    assert to_postgres_parameterized("CALL s.p('5%')") == ("CALL s.p('5%%')", [])


def test_a_string_literal_of_a_procedure_body_only_is_rewritten():
    body = ("CREATE OR REPLACE PROCEDURE p() AS $$\nBEGIN\n  -- PASSWORD DISABLE in a comment stays\n"
            "  RAISE INFO 'it''s PASSWORD  disable';\nEND;\n$$ LANGUAGE plpgsql")
    translated = to_postgres(body)
    assert "-- PASSWORD DISABLE in a comment stays" in translated
    assert "RAISE INFO 'it''s PASSWORD NULL';" in translated


@pytest.mark.parametrize(
    "statement",
    [
        "CALL p('x'); DROP TABLE airline.bookings",  # a second statement hidden in the arguments
        "CALL p(1 FROM t)",  # not an expression list
        "CALL p(1) extra",
        "GRANT SELECT ON ALL TABLES IN SCHEMA airline TO etl -- comment",
        "GRANT SELECT ON ALL SEQUENCES IN SCHEMA airline TO etl",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA airline GRANT EXECUTE ON FUNCTIONS TO etl",
        "ALTER DEFAULT PRIVILEGES FOR USER admin IN SCHEMA airline GRANT SELECT ON TABLES TO etl",
        "CREATE USER etl PASSWORD 'md5abc'",
        "CREATE USER etl PASSWORD DISABLE CREATEDB",
        "VACUUM airline.bookings",
    ],
)
def test_other_commands_are_refused(statement):
    with pytest.raises(RedshiftSqlError):
        to_postgres(statement)


def _privileges(warehouse: Warehouse, user: str) -> dict[str, object]:
    with psycopg.connect(warehouse.dsn) as conn:
        can_login, no_password = conn.execute(
            "SELECT rolcanlogin, rolpassword IS NULL FROM pg_authid WHERE rolname = %s", (user,)).fetchone()
        tables = conn.execute(
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
            "FROM information_schema.role_table_grants WHERE grantee = %s AND table_schema = 'airline' "
            "GROUP BY table_name ORDER BY table_name", (user,)).fetchall()
        usage, temp = conn.execute("SELECT has_schema_privilege(%s, 'airline', 'USAGE'), "
                                   "has_database_privilege(%s, current_database(), 'TEMP')", (user, user)).fetchone()
        # what tables created in schema airline later grant the user (ALTER DEFAULT PRIVILEGES)
        defaults = conn.execute(
            "SELECT DISTINCT a.privilege_type FROM pg_default_acl d, aclexplode(d.defaclacl) a "
            "WHERE d.defaclnamespace = 'airline'::regnamespace AND d.defaclobjtype = 'r' "
            "AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)", (user,)).fetchall()
    return {"login": can_login, "no_password": no_password, "tables": dict(tables), "usage": usage, "temp": temp,
            "defaults": {d for (d,) in defaults}}


def test_the_grants_run_on_postgresql_twice_and_leave_the_etl_user_with_its_grants(warehouse):
    for _ in range(2):  # every deploy runs the (idempotent) grants again, after the migrations
        warehouse.execute_batch(grant_statements(ETL_USER, "dev"))
    granted = _privileges(warehouse, ETL_USER)
    assert granted["login"] and granted["no_password"]
    assert granted["tables"] == {**{t: "DELETE,INSERT,SELECT,UPDATE"
                                    for t in ("airports", "bookings", "ingestion_runs", "load_mutex")},
                                 "schema_migrations": "SELECT"}  # the job reads the version; the deploy writes it
    assert granted["usage"] and granted["temp"]
    assert granted["defaults"] == {"SELECT", "INSERT", "UPDATE", "DELETE"}


def test_a_failing_grant_rolls_the_batch_back_with_postgresqls_error(warehouse):
    statements = grant_statements("IAMR:NoSuchSchemaUser", "dev")
    statements[4] = statements[4].replace("IN SCHEMA airline", "IN SCHEMA no_such_schema")
    with pytest.raises(WarehouseError) as failed:
        warehouse.execute_batch(statements)
    assert failed.value.index == 4 and 'schema "no_such_schema" does not exist' in failed.value.message
    assert _user_exists(warehouse, "IAMR:NoSuchSchemaUser") is False  # the CALL's CREATE USER rolled back


def _user_exists(warehouse: Warehouse, user: str) -> bool:
    with psycopg.connect(warehouse.dsn) as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is not None
