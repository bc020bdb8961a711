"""A real PostgreSQL server standing in for Amazon Redshift in local mode.

The server lives in a data directory that persists between runs (the local warehouse survives
restarts), listens on 127.0.0.1 only, and requires a password generated at initdb time and kept
in the data directory (mode 0600), so other local users cannot read or change the warehouse.
PostgreSQL refuses to run as root: as root, the server runs as the unprivileged `postgres` user
that Debian's package creates, and the data directory belongs to it. When that user cannot enter
the directory asked for (e.g. a state directory under a private `mktemp -d` directory, or under
/root), the data directory is made under RELOCATED_HOME instead, owned by that user, and a
symbolic link at the place asked for points to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg

SUPERUSER = "airline"
DATABASE = "dev"  # Redshift's default database name
SERVER_USER_WHEN_ROOT = "postgres"
PASSWORD_FILE = "airline_local.password"
SETTINGS_FILE = "airline_local.conf"
LOG_FILE = "server.log"
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes, with the trailing NUL).
MAX_SOCKET_PATH = 107
INSTALL_HINT = "install PostgreSQL's server with `apt-get install -y postgresql`"
# As root: where data directories go that the server user could not reach where they were asked for.
RELOCATED_HOME = Path("/var/lib/airline-local/postgres")
# Next to a relocated data directory: the link that points to it (so an orphan can be found).
LINK_RECORD_SUFFIX = ".link"


class PostgresError(RuntimeError):
    """The local PostgreSQL server could not be set up, started or stopped."""


class PostgresNotInstalledError(PostgresError):
    """PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not on this machine."""


class PortInUseError(PostgresError):
    """The port asked for is already taken on 127.0.0.1."""


def find_bindir(search_path: str | None = None, debian_root: Path = Path("/usr/lib/postgresql")) -> Path:
    """Directory holding initdb/pg_ctl/postgres: `pg_config --bindir`, else the newest Debian one.

    `search_path` (default: $PATH) is where pg_config is looked for."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config", path=search_path)
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True, text=True)
            candidates.append(Path(out.stdout.strip()))
    if debian_root.is_dir():
        versions = sorted(
            (p for p in debian_root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates.extend(v / "bin" for v in versions)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    looked = ", ".join(str(c) for c in candidates) or "nowhere (no pg_config, no /usr/lib/postgresql)"
    raise PostgresNotInstalledError(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in {looked}: {INSTALL_HINT}"
    )


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL binds: connections of a stopped server in TIME_WAIT do not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(
                f"port {port} on 127.0.0.1 is already in use: choose another port or leave it unset "
                f"to use a free one ({exc.strerror})"
            ) from None


def _conf_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresServer:
    """One PostgreSQL server on a persistent data directory, started and stopped by this object.

    `start()` runs initdb on first use, then starts the server (or, if a server is already
    running on this data directory, e.g. left over from a killed process, connects to it);
    `stop()` stops the server only if this object started it.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, start_timeout: float = 60.0,
                 relocated_home: Path = RELOCATED_HOME):
        self.data_dir = Path(data_dir).absolute()
        self._relocated_home = Path(relocated_home)
        self._requested_port = port
        self._port: int | None = None
        self._last_port: int | None = None  # reused by a restart: handed-out DSNs stay valid
        self._started_here = False
        self._start_timeout = start_timeout
        self._bindir: Path | None = None
        self._run_as = SERVER_USER_WHEN_ROOT if os.geteuid() == 0 else None

    # -- public API -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresError(f"PostgreSQL on {self.data_dir} is not started")
        return self._port

    @property
    def password(self) -> str:
        return (self.data_dir / PASSWORD_FILE).read_text().strip()

    @property
    def dsn(self) -> str:
        return self.dsn_for(DATABASE)

    def dsn_for(self, database: str) -> str:
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/"
            f"{quote(database, safe='')}?connect_timeout=10"
        )

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def started_here(self) -> bool:
        return self._started_here

    def start(self) -> PostgresServer:
        if self._port is not None:
            return self
        self._bindir = find_bindir()
        self.data_dir = self._reachable_data_dir(self.data_dir)
        initialized = (self.data_dir / "PG_VERSION").is_file()
        running_port = self._running_port() if initialized else None
        if running_port is None and self._requested_port is not None:
            check_port_free(self._requested_port)  # before initdb: fail fast, change nothing
        if not initialized:
            self._initdb()
        if running_port is not None:
            if self._requested_port is not None and self._requested_port != running_port:
                raise PostgresError(
                    f"a PostgreSQL server is already running on {self.data_dir} with port {running_port}, "
                    f"not the requested {self._requested_port}; stop it with "
                    f"`pg_ctl stop -D {self.data_dir} -m fast`"
                )
            self._port = running_port
        else:
            port = self._requested_port if self._requested_port is not None else self._reusable_port()
            check_port_free(port)
            self._write_settings(port)
            self._pg_ctl_start()
            self._port = port
            self._started_here = True
        try:
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server if this object started it (`pg_ctl stop -m fast`); otherwise leave it."""
        if self._started_here:
            result = self._run([self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-s"])
            if result.returncode != 0 and self._running_port() is not None:
                raise PostgresError(
                    f"pg_ctl stop failed for {self.data_dir}: {result.stderr.strip()}\n{self.log_tail()}"
                )
        self._started_here = False
        self._last_port, self._port = self._port or self._last_port, None

    def _reusable_port(self) -> int:
        """The port of this object's previous start if it is still free, else any free port."""
        if self._last_port is not None:
            try:
                check_port_free(self._last_port)
                return self._last_port
            except PortInUseError:
                pass
        return free_port()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no server log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"last lines of {self.log_path}:\n{tail}"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- steps ------------------------------------------------------------------------------

    def _initdb(self) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise PostgresError(
                f"{self.data_dir} is not empty and is not a PostgreSQL data directory (no PG_VERSION): "
                "give an empty or new directory"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._give_to_server_user(self.data_dir)
        self._check_server_user_can_reach()
        password = secrets.token_urlsafe(24)
        # initdb reads the password from a file the server user can read (not a root-owned pipe).
        with tempfile.TemporaryDirectory(prefix="airline-initdb-") as scratch:
            pwfile = Path(scratch) / "password"
            pwfile.touch(mode=0o600)
            pwfile.write_text(password + "\n")
            self._give_to_server_user(Path(scratch))
            self._give_to_server_user(pwfile)
            result = self._run(
                [
                    self._tool("initdb"), "-D", str(self.data_dir), "--username", SUPERUSER,
                    f"--pwfile={pwfile}", "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                    "--encoding=UTF8", "--locale=C",
                    # No fsync of the fresh cluster: a killed process loses nothing (the page
                    # cache survives it); only an OS crash right after initdb could.
                    "--no-sync",
                ]
            )
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr).strip()[-3000:]}"
            )
        password_path = self.data_dir / PASSWORD_FILE
        password_path.touch(mode=0o600)
        password_path.write_text(password + "\n")
        self._give_to_server_user(password_path)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# Local-mode settings, rewritten at every start.\ninclude_if_exists = '{SETTINGS_FILE}'\n")

    def _write_settings(self, port: int) -> None:
        socket_dir = str(self.data_dir)
        if len(f"{socket_dir}/.s.PGSQL.{port}") > MAX_SOCKET_PATH:
            socket_dir = ""  # path too long for a unix socket: TCP on 127.0.0.1 only
        settings = {
            "listen_addresses": _conf_string("127.0.0.1"),
            "port": str(port),
            "unix_socket_directories": _conf_string(socket_dir),
            "unix_socket_permissions": "0700",
            "TimeZone": _conf_string("UTC"),
            "log_timezone": _conf_string("UTC"),
            # Durability is kept (fsync on); losing the last commits in an OS crash is acceptable.
            "synchronous_commit": "off",
            "max_connections": "50",
        }
        path = self.data_dir / SETTINGS_FILE
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._give_to_server_user(path)

    def _pg_ctl_start(self) -> None:
        log = self.log_path
        result = self._run(
            [
                self._tool("pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(log), "-w",
                "-t", str(int(self._start_timeout)), "-s",
            ]
        )
        if result.returncode != 0:
            raise PostgresError(
                f"PostgreSQL failed to start on {self.data_dir} (pg_ctl exit {result.returncode}): "
                f"{(result.stdout + result.stderr).strip()}\n{self.log_tail()}"
            )

    def _ensure_database(self) -> None:
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _running_port(self) -> int | None:
        """The port of a server already running on this data directory, or None."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.is_file():
            return None
        status = self._run([self._tool("pg_ctl"), "status", "-D", str(self.data_dir)])
        if status.returncode != 0:
            return None  # a stale pid file: the server will replace it
        lines = pid_file.read_text().splitlines()
        # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, ...
        try:
            return int(lines[3])
        except (IndexError, ValueError):
            return None

    # -- helpers ----------------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = find_bindir()
        return str(self._bindir / name)

    def _server_user(self) -> pwd.struct_passwd | None:
        if self._run_as is None:
            return None
        try:
            return pwd.getpwnam(self._run_as)
        except KeyError:
            raise PostgresError(
                f"running as root, PostgreSQL needs the unprivileged user {self._run_as!r}, which does not "
                f"exist: {INSTALL_HINT} (the package creates it) or run as a non-root user"
            ) from None

    def _give_to_server_user(self, path: Path) -> None:
        user = self._server_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _reachable_data_dir(self, asked: Path) -> Path:
        """Where the server's files are: ``asked``, unless we are root and the server user cannot
        reach it (a private parent directory); then a directory of that user's own under the
        relocated home, linked from ``asked`` (found again through the link on the next start)."""
        if self._run_as is None:
            return asked
        if asked.is_symlink():
            return asked.resolve()
        if self._server_user_can_enter(asked.parent):
            return asked
        if asked.exists():
            if any(asked.iterdir()):
                return asked  # someone's files: used, or refused, as they are
            asked.rmdir()
        home = self._relocated_home
        home.mkdir(parents=True, exist_ok=True, mode=0o711)
        if not self._server_user_can_enter(home):
            raise PostgresError(
                f"PostgreSQL refuses to run as root, so it runs as the user {self._run_as!r}, which can "
                f"reach neither {asked} nor {home}: give a data directory that user can enter"
            )
        self._forget_orphans(home)
        name = hashlib.sha256(str(asked).encode()).hexdigest()[:16]
        target = home / name
        target.mkdir(mode=0o700)
        self._give_to_server_user(target)
        (home / (name + LINK_RECORD_SUFFIX)).write_text(str(asked))
        asked.parent.mkdir(parents=True, exist_ok=True)
        asked.symlink_to(target, target_is_directory=True)
        return target

    @staticmethod
    def _forget_orphans(home: Path) -> None:
        """Remove relocated data directories whose link is gone (its state directory was deleted)
        and whose server is not running."""
        for record in home.glob("*" + LINK_RECORD_SUFFIX):
            target = home / record.name.removesuffix(LINK_RECORD_SUFFIX)
            link = Path(record.read_text().strip())
            if link.is_symlink() and link.resolve() == target.resolve():
                continue
            if (target / "postmaster.pid").exists():
                continue
            shutil.rmtree(target, ignore_errors=True)
            record.unlink(missing_ok=True)

    def _server_user_can_enter(self, directory: Path) -> bool:
        """Whether the server user can search ``directory`` (the nearest existing ancestor, for
        one still to be made), every directory above it included."""
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        return self._run(["test", "-x", str(directory)]).returncode == 0

    def _check_server_user_can_reach(self) -> None:
        if self._run_as is None:
            return
        probe = self._run(["test", "-w", str(self.data_dir), "-a", "-x", str(self.data_dir)])
        if probe.returncode != 0:
            raise PostgresError(
                f"PostgreSQL refuses to run as root, so it runs as the user {self._run_as!r}, which cannot "
                f"reach {self.data_dir}: put the data directory under a directory that user can enter "
                "(not under /root or another 0700 directory)"
            )

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        if self._run_as is not None:
            self._server_user()
            if shutil.which("runuser"):
                args = ["runuser", "-u", self._run_as, "--", *args]
            else:
                args = ["setpriv", f"--reuid={self._run_as}", f"--regid={self._run_as}", "--init-groups", *args]
        env = {**os.environ, "LC_ALL": "C"}
        env.pop("PGDATA", None)
        # cwd "/" so that an unprivileged server user never starts in a directory it cannot read.
        return subprocess.run(
            args, input=stdin, capture_output=True, text=True, cwd="/", env=env,
            timeout=self._start_timeout + 30,
        )
