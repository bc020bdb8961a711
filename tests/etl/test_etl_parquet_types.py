"""The Parquet the job stages, column by column, against the Redshift column COPY loads it into.

COPY ... FORMAT AS PARQUET maps columns by position and "uses Redshift Spectrum" to read the files
(https://docs.aws.amazon.com/redshift/latest/dg/copy-usage_notes-copy-from-columnar.html). That
page has no type table, and AWS publishes no Parquet-to-Redshift matrix for COPY; ACCEPTED below
takes each pair from the AWS pages that do map Redshift types to Parquet-backed types (each row
cites its page). A pair not in ACCEPTED fails the test: add one only with a citation.

The staged files come from the real job (ingest_bookings.stage on local Spark, a few rows); the
stage tables and their column types are read from sql/load_bookings.sql and sql/migrations/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlglot
from etl_helpers import GOOD_ROW, REPO_ROOT, rows_csv

from airline_local.warehouse.redshift_sql import split_statements

MIGRATION_FILES = sorted((REPO_ROOT / "sql" / "migrations").glob("*.sql"))
LOAD_SQL = REPO_ROOT / "sql" / "load_bookings.sql"

# Pages the rows of ACCEPTED cite.
GLUE_RS_ICEBERG = "https://docs.aws.amazon.com/glue/latest/dg/data-mapping-rs-iceberg.html"
SPECTRUM_ICEBERG = "https://docs.aws.amazon.com/redshift/latest/dg/querying-iceberg-supported-data-types.html"
SPECTRUM_TYPES = "https://docs.aws.amazon.com/redshift/latest/dg/r_CREATE_EXTERNAL_TABLE.html"
SPECTRUM_DECIMAL = "https://repost.aws/knowledge-center/redshift-spectrum-data-errors"


@dataclass(frozen=True)
class ParquetType:
    """One Parquet leaf column: physical type plus its logical annotation (as pyarrow reports it)."""

    physical: str                 # BYTE_ARRAY, INT32, INT64, INT96, DOUBLE, FLOAT, BOOLEAN, ...
    logical: str                  # STRING, INT, DECIMAL, TIMESTAMP, NONE, ...
    bit_width: int | None = None  # INT
    precision: int | None = None  # DECIMAL
    scale: int | None = None      # DECIMAL
    utc: bool | None = None       # TIMESTAMP: isAdjustedToUTC
    unit: str | None = None       # TIMESTAMP: milliseconds / microseconds / nanoseconds

    @classmethod
    def of(cls, column) -> ParquetType:
        """From a pyarrow.parquet ColumnSchema."""
        import json

        logical = json.loads(column.logical_type.to_json())
        return cls(
            physical=column.physical_type,
            logical=column.logical_type.type,
            bit_width=logical.get("bitWidth"),
            precision=logical.get("precision"),
            scale=logical.get("scale"),
            utc=logical.get("isAdjustedToUTC"),
            unit=logical.get("timeUnit"),
        )


@dataclass(frozen=True)
class RedshiftType:
    name: str                     # VARCHAR, SMALLINT, INT, BIGINT, DECIMAL, DOUBLE, BOOLEAN, TIMESTAMP
    params: tuple[int, ...] = ()  # (length,) or (precision, scale)


# (Redshift type name, predicate on (RedshiftType, ParquetType), why). Every row cites an AWS page.
ACCEPTED = [
    # string -> VARCHAR: GLUE_RS_ICEBERG ("VARCHAR ... string"), SPECTRUM_ICEBERG ("string ->
    # VARCHAR"); an Iceberg string is Parquet BYTE_ARRAY annotated STRING (UTF8).
    ("VARCHAR", lambda r, p: p.physical == "BYTE_ARRAY" and p.logical == "STRING",
     "BYTE_ARRAY STRING"),
    ("CHAR", lambda r, p: p.physical == "BYTE_ARRAY" and p.logical == "STRING",
     "BYTE_ARRAY STRING"),
    # SMALLINT <- int (Parquet INT32): GLUE_RS_ICEBERG row "SMALLINT | INT2 | int". Spark's
    # ShortType adds the INT(16, signed) annotation, which only narrows the INT32.
    ("SMALLINT", lambda r, p: p.physical == "INT32" and (
        p.logical == "NONE" or (p.logical == "INT" and p.bit_width in (8, 16))),
     "INT32, unannotated or INT(8|16)"),
    # INTEGER <- int (INT32): GLUE_RS_ICEBERG, SPECTRUM_ICEBERG ("int -> int").
    ("INT", lambda r, p: p.physical == "INT32" and (
        p.logical == "NONE" or (p.logical == "INT" and p.bit_width == 32)),
     "INT32"),
    # BIGINT <- long (INT64): GLUE_RS_ICEBERG, SPECTRUM_ICEBERG ("long -> bigint").
    ("BIGINT", lambda r, p: p.physical == "INT64" and (
        p.logical == "NONE" or (p.logical == "INT" and p.bit_width == 64)),
     "INT64"),
    # DECIMAL(P,S) <- decimal(P,S): GLUE_RS_ICEBERG, SPECTRUM_ICEBERG; precision and scale must
    # be the column's (SPECTRUM_DECIMAL, "invalid type length"). Iceberg writes P <= 9 as INT32
    # and P <= 18 as INT64; larger precisions are not accepted here.
    ("DECIMAL", lambda r, p: p.logical == "DECIMAL" and (p.precision, p.scale) == r.params and (
        (p.physical == "INT32" and p.precision <= 9)
        or (p.physical == "INT64" and 9 < p.precision <= 18)),
     "INT32/INT64 DECIMAL with the column's precision and scale"),
    # DOUBLE PRECISION <- double: GLUE_RS_ICEBERG, SPECTRUM_ICEBERG ("double -> double precision").
    ("DOUBLE", lambda r, p: p.physical == "DOUBLE" and p.logical == "NONE", "DOUBLE"),
    # REAL <- float: GLUE_RS_ICEBERG, SPECTRUM_ICEBERG ("float -> real").
    ("FLOAT", lambda r, p: p.physical == "FLOAT" and p.logical == "NONE", "FLOAT"),
    # BOOLEAN <- bool: GLUE_RS_ICEBERG, SPECTRUM_ICEBERG.
    ("BOOLEAN", lambda r, p: p.physical == "BOOLEAN" and p.logical == "NONE", "BOOLEAN"),
    # TIMESTAMP (WITHOUT TIME ZONE) <- Iceberg timestamp, i.e. INT64 TIMESTAMP(isAdjustedToUTC=
    # false): GLUE_RS_ICEBERG ("TIMESTAMP | TIMESTAMP WITHOUT TIMEZONE | TIMESTAMP", while the
    # UTC-adjusted "TIMESTAMPZ" maps to TIMESTAMPTZ) and SPECTRUM_ICEBERG ("timestamp ->
    # timestamp", "timestamptz -> -"). SPECTRUM_TYPES lists TIMESTAMP for Parquet external tables.
    ("TIMESTAMP", lambda r, p: p.physical == "INT64" and p.logical == "TIMESTAMP"
     and p.utc is False and p.unit in ("milliseconds", "microseconds"),
     "INT64 TIMESTAMP(isAdjustedToUTC=false, MILLIS|MICROS)"),
]


def accepts(target: RedshiftType, parquet: ParquetType) -> bool:
    return any(name == target.name and check(target, parquet) for name, check, _ in ACCEPTED)


# --- the warehouse side: the stage tables COPY loads, from the SQL files -----------------------


def _table_columns(create_sql: str) -> tuple[str, list[tuple[str, RedshiftType]]]:
    """(table name, [(column, type)]) of a CREATE TABLE statement."""
    create = sqlglot.parse_one(create_sql, read="redshift")
    columns = []
    for definition in create.this.expressions:
        kind = definition.args.get("kind")
        if kind is None:
            continue  # PRIMARY KEY (...)
        params = tuple(int(param.sql()) for param in kind.expressions)
        columns.append((definition.name, RedshiftType(kind.this.name, params)))
    return create.this.this.sql("redshift"), columns


def copy_targets() -> dict[str, list[tuple[str, RedshiftType]]]:
    """Staged directory name (bookings, airports, run) -> the columns of the table COPY fills."""
    tables: dict[str, list[tuple[str, RedshiftType]]] = {}
    for statement in (s for f in MIGRATION_FILES for s in split_statements(f.read_text())):
        if statement.upper().startswith("CREATE TABLE"):
            name, columns = _table_columns(statement)
            tables[name] = columns
    targets: dict[str, list[tuple[str, RedshiftType]]] = {}
    stage_tables: dict[str, list[tuple[str, RedshiftType]]] = {}
    for statement in split_statements(LOAD_SQL.read_text()):
        like = re.match(r"CREATE TEMP TABLE (\w+) \(LIKE ([\w.]+)\)$", statement)
        copy = re.match(r"COPY (\w+) FROM '\{staging_uri\}(\w+)/'", statement)
        if like:
            stage_tables[like.group(1)] = tables[like.group(2)]
        elif statement.startswith("CREATE TEMP TABLE"):
            name = re.match(r"CREATE TEMP TABLE (\w+)", statement).group(1)
            stage_tables[name] = _table_columns(statement.replace("CREATE TEMP TABLE", "CREATE TABLE", 1))[1]
        elif copy:
            targets[copy.group(2)] = stage_tables[copy.group(1)]
    return targets


# --- the job side: what it stages ---------------------------------------------------------------


@pytest.fixture(scope="module")
def staged(spark, tmp_path_factory) -> Path:
    """The staging prefix of one real job run on three rows (one with an empty optional value)."""
    import bookings_load
    import ingest_bookings

    root = tmp_path_factory.mktemp("parquet-types")
    source = root / "bookings.csv"
    source.write_text(rows_csv([GOOD_ROW, {**GOOD_ROW, "booking_id": "B2", "sales_channel": ""},
                                {**GOOD_ROW, "booking_id": "B3", "fare_amount": "0.5"}]))
    args = ingest_bookings.JobArguments(
        source_uri=source.as_uri(), execution_id="exec-types", data_root_uri=(root / "bucket").as_uri(),
        target=bookings_load.RedshiftTarget(database="dev", workgroup="wg-local"),
        copy_role_arn="arn:aws:iam::123456789012:role/copy", max_reject_ratio=0.1)
    summary = ingest_bookings.RunSummary(execution_id=args.execution_id, source_file=args.source_uri,
                                         started_at=datetime.now(timezone.utc))
    ingest_bookings.stage(spark, args, summary)
    assert summary.rows_read == 3 and summary.rows_quarantined == 0
    return Path(args.staging_uri.removeprefix("file://"))


def parquet_columns(directory: Path) -> list[tuple[str, ParquetType]]:
    """The leaf columns of the Parquet files COPY would load from ``directory`` (all must agree)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))
    assert files, f"nothing staged under {directory}"
    schemas = []
    for path in files:
        schema = pq.ParquetFile(path).schema
        schemas.append([(schema.column(i).name, ParquetType.of(schema.column(i))) for i in range(len(schema))])
    assert all(s == schemas[0] for s in schemas), f"the files under {directory} disagree on their schema"
    return schemas[0]


def mismatches(directory: Path, table: list[tuple[str, RedshiftType]]) -> list[str]:
    columns = parquet_columns(directory)
    assert len(columns) == len(table), "COPY from Parquet needs as many columns as the table"
    return [f"{directory.name}.{name} -> {target_name} {target}: {parquet}"
            for (name, parquet), (target_name, target) in zip(columns, table)
            if name != target_name or not accepts(target, parquet)]


def test_the_sql_names_a_target_for_every_staged_directory(staged):
    assert set(copy_targets()) == {"bookings", "airports", "run"}
    assert {p.name for p in staged.iterdir() if p.is_dir()} == set(copy_targets())


@pytest.mark.parametrize("directory", ["bookings", "airports", "run"])
def test_every_staged_column_is_a_pair_redshift_copy_accepts(staged, directory):
    assert mismatches(staged / directory, copy_targets()[directory]) == []


def test_the_job_pins_the_parquet_writer_settings_it_relies_on(spark):
    assert spark.conf.get("spark.sql.parquet.writeLegacyFormat") == "false"


# --- the checker can fail ----------------------------------------------------------------------


def test_the_checker_rejects_known_bad_pairs():
    utc_timestamp = ParquetType("INT64", "TIMESTAMP", utc=True, unit="microseconds")
    assert not accepts(RedshiftType("TIMESTAMP"), utc_timestamp)  # TIMESTAMPTZ's form
    assert not accepts(RedshiftType("TIMESTAMP"), ParquetType("INT64", "NONE"))
    assert not accepts(RedshiftType("SMALLINT"), ParquetType("INT64", "NONE"))
    assert not accepts(RedshiftType("DECIMAL", (12, 2)), ParquetType("INT64", "DECIMAL", precision=12, scale=3))
    assert not accepts(RedshiftType("DECIMAL", (12, 2)),  # Spark's legacy decimal format
                       ParquetType("FIXED_LEN_BYTE_ARRAY", "DECIMAL", precision=12, scale=2))
    assert not accepts(RedshiftType("VARCHAR", (64,)), ParquetType("BYTE_ARRAY", "NONE"))
    assert not accepts(RedshiftType("INT"), ParquetType("DOUBLE", "NONE"))
    assert accepts(RedshiftType("TIMESTAMP"), ParquetType("INT64", "TIMESTAMP", utc=False, unit="microseconds"))


def test_the_checker_rejects_what_spark_writes_for_a_plain_timestamp_column(spark, tmp_path):
    """What the job staged before bookings_io.write_parquet cast timestamps to TIMESTAMP_NTZ."""
    frame = spark.createDataFrame([(datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc),)], "started_at timestamp")
    frame.write.parquet(str(tmp_path / "plain"))
    (problem,) = mismatches(tmp_path / "plain", [("started_at", RedshiftType("TIMESTAMP"))])
    assert "utc=True" in problem
