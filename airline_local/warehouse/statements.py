"""The statements a Redshift Data API call runs, executed for real on the local PostgreSQL warehouse.

`Warehouse` runs Redshift SQL on PostgreSQL: each batch in one transaction on its own connection
(all or nothing, like BatchExecuteStatement), every statement translated by `redshift_sql`, and
COPY from S3 rewritten as a PostgreSQL `COPY ... FROM STDIN` fed with the staged files. The Data
API service around it (statement ids, states, result pages) is redshift_data.py.
"""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql as pgsql

from airline_local.warehouse.redshift_sql import (
    CopyCommand,
    RedshiftSqlError,
    parse_copy,
    to_postgres,
    to_postgres_parameterized,
)

# Objects under an S3 prefix: their bytes, or (key, bytes) pairs so that Spark's marker files
# (_SUCCESS, .crc, hidden files) can be skipped by name.
ReadObjects = Callable[[str], list[bytes] | list[tuple[str, bytes]]]

PARQUET_BATCH_ROWS = 65_536
CSV_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")
# "needed" quotes every string (so "" is an empty string) and leaves NULL as an empty unquoted
# field, which is exactly how PostgreSQL's CSV COPY tells NULL from ''.


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type_name: str  # PostgreSQL's (and Redshift's) short type name: int8, varchar, numeric, ...
    precision: int = 0
    scale: int = 0


@dataclass
class StatementResult:
    statement: str  # the Redshift SQL as submitted
    rows_affected: int = -1  # rows returned, inserted/updated/deleted or loaded; -1 = not applicable
    columns: list[ColumnInfo] | None = None  # None: the statement returns no result set
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    duration_ns: int = 0

    @property
    def has_result_set(self) -> bool:
        return self.columns is not None


class WarehouseError(RuntimeError):
    """A statement of a batch failed; the whole batch was rolled back."""

    def __init__(self, message: str, index: int, statement: str, results: list[StatementResult]):
        super().__init__(message)
        self.message = message
        self.index = index  # 0-based position of the failing statement in the batch
        self.statement = statement
        self.results = results  # the statements that ran before it (rolled back too)


class CopySourceError(RuntimeError):
    """The files a COPY names are missing or unreadable; the message names the URI or file."""


def postgres_error_text(error: psycopg.Error) -> str:
    """PostgreSQL's error as Redshift's Data API reports one: `ERROR: <message>` (+ detail)."""
    diag = error.diag
    primary = diag.message_primary or str(error).strip()
    text = f"ERROR: {primary}"
    if diag.message_detail:
        text += f"\n  Detail: {diag.message_detail}"
    if diag.context and diag.context.startswith("COPY"):
        text += f"\n  Context: {diag.context.strip()}"
    return text


class Warehouse:
    """Redshift SQL on the local PostgreSQL warehouse (the `dev` database of `PostgresServer`)."""

    def __init__(self, dsn: str, read_object: ReadObjects | None = None,
                 restore_uris: tuple[str, str] | None = None):
        self.dsn = dsn
        self.read_object = read_object
        # (regex, replacement) applied to the text values COPY loads from Parquet: the local job
        # runner's file:// mirror of S3 back to the s3:// URIs the values stand for on AWS.
        self.restore_uris = restore_uris
        # With the IAM check on (LocalPipeline wires both): ``copy_reader(s3_uri, iam_role)`` reads
        # an S3 source as the COPY's IAM_ROLE (airline_local.warehouse.copy_role), and
        # ``stage_local(file_uri)`` puts a running Glue job's local output into S3 as the job's role,
        # returning its s3:// URI (None: not a job's output), so that COPY reads it from S3 as on AWS.
        self.copy_reader: Callable[[str, str | None], list[tuple[str, bytes]]] | None = None
        self.stage_local: Callable[[str], str | None] | None = None

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        # UTC like Redshift, whatever the server's default; staging tables are TEMP tables, held
        # in per-session buffers (8 MB by default) that a large COPY would otherwise spill to disk.
        return psycopg.connect(self.dsn, options="-c TimeZone=UTC -c temp_buffers=256MB", **kwargs)

    def execute_batch(
        self,
        statements: list[str],
        *,
        parameters: dict[str, str] | None = None,
        on_connect: Callable[[psycopg.Connection[Any]], None] | None = None,
        on_statement: Callable[[int], None] | None = None,
    ) -> list[StatementResult]:
        """Run Redshift statements in ONE transaction on a new connection: all or nothing.

        `parameters` binds `:name` placeholders (ExecuteStatement's Parameters). `on_connect`
        receives the connection (to cancel it), `on_statement` the index of each statement as it
        starts. Raises WarehouseError naming the failing statement; nothing is committed then.
        """
        results: list[StatementResult] = []
        if not statements:
            return results
        with self.connect() as conn:
            if on_connect is not None:
                on_connect(conn)
            index = 0
            try:
                with conn.cursor() as cur:
                    for index, statement in enumerate(statements):
                        if on_statement is not None:
                            on_statement(index)
                        started = time.perf_counter_ns()
                        result = self._execute_one(cur, statement, parameters)
                        result.duration_ns = time.perf_counter_ns() - started
                        results.append(result)
                index = len(statements) - 1
                conn.commit()
            except psycopg.Error as exc:
                conn.rollback()
                raise WarehouseError(postgres_error_text(exc), index, statements[index], results) from exc
            except (RedshiftSqlError, CopySourceError, pa.ArrowException, OSError) as exc:
                conn.rollback()
                message = str(exc) if str(exc).startswith("ERROR:") else f"ERROR: {exc}"
                raise WarehouseError(message, index, statements[index], results) from exc
        return results

    def apply_migrations(self, directory: Path | None = None) -> list[str]:
        """Bring this warehouse to the last migration of ``directory`` (sql/migrations/) as the
        schema custom resource's plan does (stacks/schema_handler/handler.py: baseline, guard,
        one transaction per migration), without the Data API or the grants: for tests and
        benchmarks that need the schema. Returns the versions applied (none when up to date).
        An advisory lock keeps two concurrent appliers apart."""
        from stacks.migrations import MIGRATIONS_DIR, load_migrations
        from stacks.schema_handler import handler

        migrations = [handler.Migration(m.version, m.description, m.checksum, m.statements)
                      for m in load_migrations(directory or MIGRATIONS_DIR)]
        with self.connect(autocommit=True) as lock:
            lock.execute("SELECT pg_advisory_lock(hashtext('airline_local.apply_migrations'))")
            self.execute_batch(list(handler.BOOTSTRAP_STATEMENTS))
            applied = [(str(v), str(c)) for v, c in self.query(handler.STATE_STATEMENTS[0])[1]]
            columns: dict[str, list[str]] = {}
            for table, column in self.query(handler.STATE_STATEMENTS[1])[1]:
                columns.setdefault(str(table), []).append(str(column))
            steps = handler.plan(migrations, applied, columns, "airline_local Warehouse.apply_migrations")
            for step in steps:
                self.execute_batch(list(step.statements))
        return [step.version for step in steps if step.version]

    def query(self, sql_text: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """One Redshift SELECT, read only: (column names, rows)."""
        with self.connect() as conn:
            conn.read_only = True
            cur = conn.execute(to_postgres(sql_text))
            if cur.description is None:
                return [], []
            return [c.name for c in cur.description], cur.fetchall()

    # -- one statement ----------------------------------------------------------------------

    def _execute_one(
        self, cur: psycopg.Cursor[Any], statement: str, parameters: dict[str, str] | None
    ) -> StatementResult:
        copy = parse_copy(statement)
        if copy is not None:
            return StatementResult(statement, rows_affected=self._copy(cur, copy))
        if parameters is None:
            cur.execute(to_postgres(statement))
        else:
            text, names = to_postgres_parameterized(statement)
            missing = sorted(set(names) - set(parameters))
            if missing:
                raise RedshiftSqlError(f"no value for parameter(s) {', '.join(':' + m for m in missing)}")
            cur.execute(text, {name: parameters[name] for name in names})
        if cur.description is None:
            return StatementResult(statement, rows_affected=cur.rowcount)
        rows = cur.fetchall()
        columns = [_column_info(cur, c) for c in cur.description]
        return StatementResult(statement, rows_affected=len(rows), columns=columns, rows=rows)

    # -- COPY -------------------------------------------------------------------------------

    def _copy(self, cur: psycopg.Cursor[Any], copy: CopyCommand) -> int:
        table_columns = _table_columns(cur, copy.table)
        columns = list(copy.columns) or table_columns
        unknown = [c for c in columns if c not in table_columns]
        if unknown:
            raise CopySourceError(f"COPY {copy.table}: no column(s) {', '.join(unknown)} in the table")
        iam_role = copy.options.get("IAM_ROLE")
        sources = list(self._source_files(copy.source_uri, iam_role if isinstance(iam_role, str) else None))
        target = pgsql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT csv{delimiter})").format(
            table=pgsql.SQL(copy.table),  # generated by sqlglot from parsed identifiers
            columns=pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns),
            delimiter=pgsql.SQL(", DELIMITER {}").format(pgsql.Literal(copy.options["DELIMITER"]))
            if copy.format == "CSV" and "DELIMITER" in copy.options
            else pgsql.SQL(""),
        )
        byte_limits = _byte_limits(cur, copy.table, columns)
        loaded = 0
        for name, data in sources:
            chunks = (
                _parquet_csv_chunks(name, data, len(columns), copy.table, self.restore_uris,
                                    columns=columns, byte_limits=byte_limits)
                if copy.format == "PARQUET"
                else _csv_chunks(name, data, copy.options)
            )
            try:
                with cur.copy(target) as pipe:
                    for chunk in chunks:
                        pipe.write(chunk)
            except psycopg.Error as exc:
                # PostgreSQL's text (it names the line and column) plus the file it came from.
                raise CopySourceError(f"{postgres_error_text(exc)}\n  File: {name}") from exc
            loaded += max(cur.rowcount, 0)
        return loaded

    def _source_files(self, uri: str, iam_role: str | None = None) -> Iterator[tuple[str, bytes | Path]]:
        """The objects a COPY loads: every object under the prefix, Spark's markers excepted.
        Like Redshift, a prefix that matches nothing is an error."""
        parsed = urlparse(uri)
        if parsed.scheme == "file" and self.stage_local is not None:
            try:
                staged = self.stage_local(uri)
            except Exception as error:  # e.g. the job's role may not write there
                raise CopySourceError(
                    f"COPY source {uri}: the Glue job's output could not be written to S3 as the job's role "
                    f"(on AWS the job's own write fails): {type(error).__name__}: {error}") from error
            if staged is not None:
                uri, parsed = staged, urlparse(staged)
        if parsed.scheme == "s3" and self.copy_reader is not None:
            objects = self.copy_reader(uri, iam_role)
            if not objects:
                raise CopySourceError(f"COPY source {uri}: the specified S3 prefix does not exist")
            found: Any = objects
        elif parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise CopySourceError(f"COPY source {uri}: a file URI must name a local path")
            found = _local_files_under(Path(unquote(parsed.path)), uri)
        elif parsed.scheme == "s3":
            if self.read_object is None:
                raise CopySourceError(f"COPY source {uri}: this warehouse has no S3 reader")
            objects = self.read_object(uri)
            if not objects:
                raise CopySourceError(f"COPY source {uri}: the specified S3 prefix does not exist")
            found = [
                (o[0], o[1]) if isinstance(o, tuple) else (f"{uri}#{n}", o) for n, o in enumerate(objects)
            ]
        else:
            raise CopySourceError(f"COPY source {uri}: only s3:// and file:// URIs can be loaded")
        for name, data in found:
            if _is_marker_file(name):
                continue
            if (isinstance(data, Path) and data.stat().st_size == 0) or (isinstance(data, bytes) and not data):
                continue
            yield name, data


def _column_info(cur: psycopg.Cursor[Any], column: Any) -> ColumnInfo:
    info = cur.connection.adapters.types.get(column.type_code)
    return ColumnInfo(
        name=column.name,
        type_name=info.name if info is not None else "unknown",
        precision=column.precision or column.internal_size or 0,
        scale=column.scale or 0,
    )


def _table_columns(cur: psycopg.Cursor[Any], table: str) -> list[str]:
    rows = cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (table,),
    ).fetchall()
    if not rows:
        raise CopySourceError(f"COPY target {table} does not exist")
    return [r[0] for r in rows]


def _byte_limits(cur: psycopg.Cursor[Any], table: str, columns: list[str]) -> list[int | None]:
    """The declared length of each VARCHAR/CHAR column (None for other types or no length).

    Redshift counts these lengths in bytes of UTF-8, PostgreSQL in characters: COPY checks the
    bytes itself, so that a value Redshift would refuse is refused here too."""
    rows = cur.execute(
        "SELECT a.attname, t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        (table,),
    ).fetchall()
    limits = {name: typmod - 4 if kind in ("varchar", "bpchar") and typmod >= 4 else None
              for name, kind, typmod in rows}
    return [limits.get(column) for column in columns]


def _check_byte_lengths(batch: pa.RecordBatch, columns: list[str], byte_limits: list[int | None],
                        table: str, name: str) -> None:
    """Fail like Redshift when a text value has more UTF-8 bytes than its column's length: COPY
    from Parquet has no TRUNCATECOLUMNS, the load fails."""
    for column, limit, values in zip(columns, byte_limits, batch.columns):
        if limit is None or not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            continue
        longest = pc.max(pc.binary_length(values)).as_py()
        if longest is not None and longest > limit:
            raise CopySourceError(
                f"COPY {table}: {name}: a value of {longest} bytes does not fit column {column} "
                f"VARCHAR({limit}) (Redshift counts VARCHAR lengths in bytes of UTF-8; COPY from "
                "Parquet cannot truncate)"
            )


def _is_marker_file(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return base.startswith(("_", ".")) or base.endswith(".crc") or "/_temporary/" in name


def _local_files_under(prefix: Path, uri: str) -> list[tuple[str, Path]]:
    if prefix.is_dir():
        files = [p for p in prefix.rglob("*") if p.is_file()]
    elif prefix.is_file():
        files = [prefix]
    else:  # an S3-style key prefix: every file whose path starts with it
        parent = prefix.parent
        files = [p for p in parent.rglob("*") if p.is_file() and str(p).startswith(str(prefix))] if parent.is_dir() else []
    if not files:
        raise CopySourceError(f"COPY source {uri}: the specified prefix matches no file")
    return [(str(p), p) for p in sorted(files)]


def _as_loadable(batch: pa.RecordBatch, restore_uris: tuple[str, str] | None = None) -> pa.RecordBatch:
    """Timestamps as naive UTC microseconds (what Redshift stores for Parquet timestamps)."""
    arrays = []
    for column in batch.columns:
        if restore_uris is not None and pa.types.is_string(column.type):
            pattern, replacement = restore_uris
            column = pc.replace_substring_regex(column, pattern, replacement, max_replacements=1)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us", tz=column.type.tz), safe=False)
            if column.type.tz is not None:
                column = column.cast(pa.timestamp("us"))  # drops the zone, keeps the UTC value
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _parquet_csv_chunks(name: str, data: bytes | Path, expected_columns: int, table: str,
                        restore_uris: tuple[str, str] | None = None, *,
                        columns: list[str] | None = None,
                        byte_limits: list[int | None] | None = None) -> Iterator[bytes]:
    source = pa.BufferReader(data) if isinstance(data, bytes) else str(data)
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise CopySourceError(f"COPY {table}: {name} is not a readable Parquet file ({exc})") from exc
    width = len(parquet.schema_arrow)
    if width != expected_columns:
        raise CopySourceError(
            f"COPY {table}: {name} has {width} columns, the table has {expected_columns} "
            "(COPY from Parquet maps columns by position)"
        )
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        out = io.BytesIO()
        try:
            loadable = _as_loadable(batch, restore_uris)
            if byte_limits is not None:
                _check_byte_lengths(loadable, columns or list(loadable.schema.names), byte_limits, table, name)
            pacsv.write_csv(loadable, out, CSV_WRITE_OPTIONS)
        except pa.ArrowException as exc:
            raise CopySourceError(f"COPY {table}: {name} has a column type that cannot be loaded ({exc})") from exc
        yield out.getvalue()


def _csv_chunks(name: str, data: bytes | Path, options: dict[str, str | bool]) -> Iterable[bytes]:
    raw = data.read_bytes() if isinstance(data, Path) else data
    if options.get("GZIP") or name.endswith(".gz"):
        raw = gzip.decompress(raw)
    skip = int(options.get("IGNOREHEADER", 0) or 0)
    for _ in range(skip):
        newline = raw.find(b"\n")
        raw = b"" if newline < 0 else raw[newline + 1 :]
    return [raw]
