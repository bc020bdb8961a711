"""The local PostgreSQL server: persistent, 127.0.0.1 only, clear errors."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from airline_local.warehouse.postgres import (
    PostgresError,
    PostgresNotInstalledError,
    PortInUseError,
    PostgresServer,
    find_bindir,
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="airline-pg-lifecycle-"))
    root.chmod(0o711)  # the `postgres` user must be able to enter it when the tests run as root
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_server_listens_on_loopback_in_utc_and_has_dev_database(pg_server):
    with psycopg.connect(pg_server.dsn) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('listen_addresses', 'TimeZone', 'fsync', 'synchronous_commit')"
            ).fetchall()
        )
        database = conn.execute("SELECT current_database()").fetchone()[0]
    assert settings == {"listen_addresses": "127.0.0.1", "TimeZone": "UTC", "fsync": "on", "synchronous_commit": "off"}
    assert database == "dev"


def test_password_is_required(pg_server):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"postgresql://airline:wrong@127.0.0.1:{pg_server.port}/dev", connect_timeout=5)


def test_restart_keeps_data_and_a_second_object_adopts_a_running_server(scratch):
    server = PostgresServer(scratch / "restart")
    with server:
        with psycopg.connect(server.dsn) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('survives a restart')")
        # a server left running (e.g. by a killed process) is reused, and not stopped by its adopter
        adopter = PostgresServer(scratch / "restart").start()
        assert adopter.port == server.port and not adopter.started_here
        adopter.stop()
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not (scratch / "restart" / "postmaster.pid").exists()
    with PostgresServer(scratch / "restart") as again, psycopg.connect(again.dsn) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("survives a restart",)]


def test_start_failure_quotes_the_server_log(scratch):
    data_dir = scratch / "broken"
    PostgresServer(data_dir).start().stop()
    conf = data_dir / "postgresql.conf"
    original = conf.read_text()
    conf.write_text(original + "\nshared_buffers = 'not a size'\n")
    try:
        with pytest.raises(PostgresError, match="failed to start") as failure:
            PostgresServer(data_dir, start_timeout=20).start()
        assert "shared_buffers" in str(failure.value) and "server.log" in str(failure.value)
    finally:
        conf.write_text(original)


def test_port_taken_is_a_clear_error(scratch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            PostgresServer(scratch / "port-taken", port=port).start()
    assert not (scratch / "port-taken").exists(), "nothing is created when the port is taken"


def test_missing_server_binaries_say_how_to_install(tmp_path):
    with pytest.raises(PostgresNotInstalledError, match=r"apt-get install -y postgresql"):
        find_bindir(search_path=str(tmp_path), debian_root=tmp_path / "none")


def test_non_empty_foreign_directory_is_refused(scratch):
    foreign = scratch / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a database")
    with pytest.raises(PostgresError, match="not a PostgreSQL data directory"):
        PostgresServer(foreign).start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to the postgres user")
def test_as_root_the_server_runs_as_postgres(pg_server):
    owner = pwd.getpwuid(pg_server.data_dir.stat().st_uid).pw_name
    assert owner == "postgres"
    postmaster_pid = int((pg_server.data_dir / "postmaster.pid").read_text().splitlines()[0])
    assert Path(f"/proc/{postmaster_pid}").stat().st_uid == pwd.getpwnam("postgres").pw_uid


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to the postgres user")
def test_as_root_a_data_dir_the_server_user_cannot_reach_is_relocated_and_linked(scratch):
    """`--state-dir` under a private `mktemp -d` directory (mode 0700): the files go to a
    directory of the postgres user's own, linked from the place asked for, found again on the
    next start; a relocated directory whose link is gone is removed by the next relocation."""
    private = Path(tempfile.mkdtemp(prefix="airline-private-"))
    home = scratch / "relocated"
    try:
        assert private.stat().st_mode & 0o777 == 0o700
        asked = private / "state" / "postgres"
        server = PostgresServer(asked, relocated_home=home).start()
        try:
            with psycopg.connect(server.dsn) as conn:
                conn.execute("CREATE TABLE kept (n int)")
                conn.execute("INSERT INTO kept VALUES (7)")
        finally:
            server.stop()
        assert asked.is_symlink() and asked.resolve().parent == home.resolve()
        assert pwd.getpwuid(asked.resolve().stat().st_uid).pw_name == "postgres"
        assert asked.resolve().stat().st_mode & 0o777 == 0o700
        with PostgresServer(asked, relocated_home=home) as again, psycopg.connect(again.dsn) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]
        orphan = asked.resolve()
        shutil.rmtree(private / "state")  # the state directory goes; its link with it
        other = private / "other" / "postgres"
        with PostgresServer(other, relocated_home=home):
            pass
        assert not orphan.exists() and other.resolve().is_dir()
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
