"""Local Spark for the ETL tests: one session for the whole test session (~2 s to start)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from etl_helpers import GOOD_ROW, rows_csv

import bookings_contract as contract
import bookings_io
import bookings_transform as transform

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    from airline_local.glue.spark_conf import local_spark_conf

    builder = SparkSession.builder.master("local[2]").appName("etl-tests")
    for key, value in {**local_spark_conf(), "spark.sql.shuffle.partitions": "2"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    from airline_local.glue.spark_worker import import_hot_classes

    import_hot_classes(session)  # as the warm workers do
    import ingest_bookings

    ingest_bookings.configure(session)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def airports(spark):
    frame = transform.airports_frame(spark, contract.load_airports(contract.jvm_time_zone_ids(spark))).cache()
    yield frame
    frame.unpersist()


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    """write_file(text or bytes, name="bookings.csv") -> path; .gz names are gzip-compressed."""
    import gzip

    def write(content: str | bytes, name: str = "bookings.csv") -> Path:
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = tmp_path / name
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path

    return write


@pytest.fixture
def validate_file(spark, airports) -> Callable[[Path], list]:
    """Read and validate a file the way the job does; rows sorted by record_number."""

    def run(path: Path):
        uri = path.as_uri()
        mapping = contract.map_header(bookings_io.read_header(spark, uri))
        raw = bookings_io.read_bookings_csv(spark, uri, transform.raw_schema(mapping))
        validated = transform.validate(raw, mapping, airports, partitions=2)
        return sorted(validated.collect(), key=lambda row: row[transform.RECORD_NUMBER])

    return run


@pytest.fixture
def validate_rows(write_file, validate_file) -> Callable[..., list]:
    """validate_rows([dict, ...]) -> validated rows, each dict completing GOOD_ROW."""

    def run(rows: list[dict[str, str]], columns: tuple[str, ...] = contract.CONTRACT_COLUMNS):
        full = [{**GOOD_ROW, **row} for row in rows]
        return validate_file(write_file(rows_csv(full, columns)))

    return run


@pytest.fixture
def job_args(tmp_path: Path) -> Callable[..., object]:
    """job_args(source_path, **overrides) -> ingest_bookings.JobArguments under tmp_path/root."""
    import bookings_load
    import ingest_bookings

    def make(source: Path, **overrides):
        values = dict(
            source_uri=source.as_uri(), execution_id="exec-test-1",
            data_root_uri=(tmp_path / "root").as_uri(),
            target=bookings_load.RedshiftTarget(database="dev", workgroup="wg-local"),
            copy_role_arn="arn:aws:iam::123456789012:role/copy", max_reject_ratio=0.1)
        values.update(overrides)
        return ingest_bookings.JobArguments(**values)

    return make


@pytest.fixture
def run_stage(spark) -> Iterator[Callable]:
    """run_stage(args) -> the RunSummary after ingest_bookings.stage (everything but the load)."""
    from datetime import datetime, timezone

    import ingest_bookings

    def run(args):
        summary = ingest_bookings.RunSummary(
            execution_id=args.execution_id, source_file=args.source_uri,
            started_at=datetime.now(timezone.utc))
        ingest_bookings.stage(spark, args, summary)
        return summary

    yield run
