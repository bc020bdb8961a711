"""Glue job: ingest one airline bookings CSV file into Redshift.

read -> validate -> quarantine -> dedupe -> enrich -> stage Parquet -> load (Data API, one
transaction) -> run summary. Runs unmodified on AWS Glue 5.0 and on local PySpark 3.5: it uses
a plain SparkSession (no GlueContext) and only Spark / Hadoop FileSystem I/O, so the local
runtime can hand it file:// URIs and point boto3 at an emulator with AWS_ENDPOINT_URL.
Arguments: see docs/architecture.md (optional ones may be passed as "-").
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

from awsglue.utils import getResolvedOptions
from pyspark.sql import Column, Observation, SparkSession
from pyspark.sql import functions as F

import bookings_contract as contract
import bookings_io
import bookings_metrics
import bookings_load
import bookings_transform as transform

# Start of the job's process (after the imports), for the spark_session phase of the timings.
PROCESS_STARTED = time.monotonic()
# Validation runs in partitions of at most this much input (each task's memory stays small; a
# 5M-row file in 2 partitions ran the local 1 GB driver out of heap when the validated rows were
# cached). gzip input counts at a typical CSV compression ratio.
INPUT_BYTES_PER_PARTITION = 64 << 20
GZIP_RATIO = 6
# Up to this many rejected records, the quarantine pass validates only them (their record
# numbers as an IN set in the plan, ~40 bytes each); above it, the whole file again.
MAX_RECORD_NUMBERS_FILTER = 200_000

ARGUMENT_NAMES = (
    "JOB_NAME", "source_uri", "execution_id", "data_root_uri", "redshift_database",
    "redshift_workgroup", "redshift_cluster_id", "redshift_db_user", "redshift_copy_role_arn",
    "max_reject_ratio", "warehouse_schema_version",
)
UNSET = "-"
# The run summary is written after the warehouse committed: a failed write is retried (after 1 s,
# then 2 s) before the run is reported as committed-but-unsummarized (SummaryNotWritten).
SUMMARY_WRITE_ATTEMPTS = 3
SUMMARY_RETRY_SECONDS = 1.0
# Execution ids become path segments and part of a SQL literal: keep them to a safe alphabet.
EXECUTION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class JobArguments:
    source_uri: str
    execution_id: str
    data_root_uri: str
    target: bookings_load.RedshiftTarget
    copy_role_arn: str
    max_reject_ratio: float
    job_name: str = UNSET  # Glue's --JOB_NAME: the dimension of the run's metrics
    # The warehouse schema version the load SQL needs (the stack's last migration), checked first.
    schema_version: str = UNSET

    @property
    def root(self) -> str:
        return self.data_root_uri.rstrip("/")

    @property
    def staging_uri(self) -> str:
        return f"{self.root}/staging/{self.execution_id}/"

    @property
    def quarantine_uri(self) -> str:
        return f"{self.root}/quarantine/{self.execution_id}/"

    @property
    def summary_uri(self) -> str:
        return f"{self.root}/runs/{self.execution_id}.json"


def parse_arguments(argv: list[str]) -> JobArguments:
    options = getResolvedOptions(argv, list(ARGUMENT_NAMES))

    def optional(name: str) -> str | None:
        value = (options.get(name) or "").strip()
        return None if value in ("", UNSET) else value

    execution_id = options["execution_id"]
    if not EXECUTION_ID_PATTERN.match(execution_id):
        raise ValueError(f"--execution_id {execution_id!r} must match {EXECUTION_ID_PATTERN.pattern}")
    ratio_text = optional("max_reject_ratio")
    ratio = contract.DEFAULT_MAX_REJECT_RATIO if ratio_text is None else float(ratio_text)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"--max_reject_ratio must be between 0 and 1, got {ratio_text}")
    return JobArguments(
        source_uri=options["source_uri"],
        execution_id=execution_id,
        data_root_uri=options["data_root_uri"],
        target=bookings_load.RedshiftTarget(
            database=options["redshift_database"], workgroup=optional("redshift_workgroup"),
            cluster_id=optional("redshift_cluster_id"), db_user=optional("redshift_db_user")),
        copy_role_arn=options["redshift_copy_role_arn"],
        max_reject_ratio=ratio,
        job_name=options["JOB_NAME"],
        schema_version=options["warehouse_schema_version"],
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CountsDoNotAddUp(RuntimeError):
    """rows_read is not the sum of the run's outcomes: some rows were lost or multiplied."""


class SummaryNotWritten(RuntimeError):
    """The warehouse transaction committed, but the run summary could not be written."""


@dataclass
class RunSummary:
    execution_id: str
    source_file: str
    started_at: datetime
    status: str = "RUNNING"
    error: str | None = None
    rows_read: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    rows_staged: int = 0  # staged = what COPY loaded (checked in the load's transaction)
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_stale: int = 0  # older than the warehouse's version: not applied
    quarantine_uri: str | None = None
    unknown_columns: list[str] = field(default_factory=list)
    # True when the key as given did not exist and its URL-decoded form was read (source_file).
    source_key_decoded: bool = False
    # Seconds per phase (spark_session, stage, load): where a run's time went. Extra field:
    # readers that do not know it ignore it.
    timings: dict[str, float] = field(default_factory=dict)

    def time_phase(self, phase: str, since: float) -> float:
        """Record the seconds since ``since`` (time.monotonic) as ``phase``; log them."""
        now = time.monotonic()
        self.timings[phase] = round(now - since, 3)
        print(f"phase {phase}: {self.timings[phase]:.3f}s", file=sys.stderr, flush=True)
        return now

    def counts_text(self) -> str:
        return (f"read {self.rows_read}, quarantined {self.rows_quarantined}, duplicate "
                f"{self.rows_duplicate}, inserted {self.rows_inserted}, updated {self.rows_updated}, "
                f"unchanged {self.rows_unchanged}, stale {self.rows_stale}")

    def check_counts(self, context: str = "") -> None:
        """The run's invariant: every row read is quarantined, a duplicate, or staged, and every
        staged row was inserted, updated, unchanged or stale. Raises CountsDoNotAddUp."""
        applied = self.rows_inserted + self.rows_updated + self.rows_unchanged + self.rows_stale
        if (self.rows_read != self.rows_quarantined + self.rows_duplicate + self.rows_staged
                or applied != self.rows_staged):
            raise CountsDoNotAddUp(f"the run's counts do not add up: {self.counts_text()}, staged "
                                   f"{self.rows_staged}{context}")

    def to_json(self, finished_at: datetime) -> str:
        document = asdict(self)
        document.update(started_at=_iso(self.started_at), finished_at=_iso(finished_at),
                        duration_seconds=round((finished_at - self.started_at).total_seconds(), 3))
        return json.dumps(document, indent=2) + "\n"


def configure(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # an ISO time without offset is UTC
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    # Decimals as INT32/INT64 DECIMAL (Spark's default, pinned): decimal(12,2) is INT64, the
    # 8-byte form a Redshift DECIMAL(12,2) reads; the legacy format would write a 6-byte
    # FIXED_LEN_BYTE_ARRAY. Timestamps are staged as TIMESTAMP_NTZ (bookings_io.write_parquet).
    spark.conf.set("spark.sql.parquet.writeLegacyFormat", "false")
    # Constraint propagation enumerates the constraints of every alias of the validation's many
    # checks: planning validate -> dedupe -> enrich uncached took 213 s instead of 2 s (measured).
    # It only infers IsNotNull filters for the enrich joins, which cost nothing to skip here.
    spark.conf.set("spark.sql.constraintPropagation.enabled", "false")
    # No _SUCCESS marker: COPY loads every object under the staging prefix.
    spark.sparkContext._jsc.hadoopConfiguration().set(
        "mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")


def _unreadable(raw) -> contract.FileRejected | None:
    """After a failed write: whether reading the file is what failed (a decode or decompress
    error, the file's fault), as the FileRejected to raise; None if the file reads."""
    try:
        raw.agg(F.count(F.lit(1)), F.max(F.length(transform.CORRUPT_RECORD))).first()
    except Exception as error:  # py4j wraps the reader's decode/decompress errors
        return contract.FileRejected(f"cannot read the file as CSV: {bookings_io.root_cause(error)}")
    return None


def validation_partitions(input_bytes: int, parallelism: int, compressed: bool = False) -> int:
    """Partitions for validating a file: at most INPUT_BYTES_PER_PARTITION of input each, in whole
    waves over the cores (a multiple of ``parallelism``): 3 partitions on 2 cores left one core
    idle for a third of a 1M-row file's validation."""
    size = input_bytes * (GZIP_RATIO if compressed else 1)
    return parallelism * max(1, math.ceil(size / (INPUT_BYTES_PER_PARTITION * parallelism)))


def _resolve_source(spark: SparkSession, args: JobArguments, summary: RunSummary) -> JobArguments:
    """The arguments with the source the job reads (bookings_io.resolve_source_uri); a decoded
    key is said on stderr and in the run summary."""
    source_uri, decoded = bookings_io.resolve_source_uri(spark, args.source_uri)
    if not decoded:
        return args
    print(f"{args.source_uri}: no such object; reading its URL-decoded key {source_uri}",
          file=sys.stderr, flush=True)
    summary.source_file, summary.source_key_decoded = source_uri, True
    return replace(args, source_uri=source_uri)


def stage(spark: SparkSession, args: JobArguments, summary: RunSummary) -> None:
    """Everything before the warehouse: validate, quarantine, dedupe, enrich, and write the
    staging Parquet (bookings, airports, run). Fills ``summary``; raises contract.FileRejected
    for a file-level failure, before anything is staged."""
    args = _resolve_source(spark, args, summary)
    mapping = contract.map_header(bookings_io.read_header(spark, args.source_uri))
    summary.unknown_columns = list(mapping.unknown_columns)

    airports = transform.airports_frame(
        spark, contract.load_airports(contract.jvm_time_zone_ids(spark))).cache()
    raw = bookings_io.read_bookings_csv(spark, args.source_uri, transform.raw_schema(mapping))
    validated = transform.validate(
        raw, mapping, airports, partitions=validation_partitions(
            bookings_io.file_size(spark, args.source_uri), spark.sparkContext.defaultParallelism,
            compressed=args.source_uri.lower().endswith(".gz")))

    # One pass over the input stages the bookings (no cache: encoding the validated rows in
    # memory cost more than validating them). Rows read and rejected, duplicates and staged rows
    # are counted as they go by (observed metrics), so a join losing rows cannot hide.
    totals = Observation("validated_rows")
    rejected = transform.is_rejected(validated)
    counted = validated.observe(
        totals, F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(rejected.cast("long")), F.lit(0)).alias("rejected"),
        # collect_list skips nulls: the record numbers of the rejected rows only
        F.collect_list(F.when(rejected, F.col(transform.RECORD_NUMBER))).alias("numbers"))
    ranked = transform.rank_duplicates(transform.accepted_rows(counted))
    dropped = Observation("duplicate_bookings")
    ranked = ranked.observe(dropped, F.coalesce(
        F.sum(transform.is_duplicate(ranked).cast("long")), F.lit(0)).alias("rows"))
    bookings = transform.enrich(transform.keep_first_ranked(ranked), airports, args.source_uri,
                                args.execution_id, summary.started_at)
    staged_rows = Observation("staged_bookings")
    try:
        bookings_io.write_parquet(bookings.observe(staged_rows, F.count(F.lit(1)).alias("rows")),
                                  args.staging_uri + "bookings/")
    except Exception:
        bookings_io.delete_tree(spark, args.staging_uri)
        rejection = _unreadable(raw)
        if rejection is not None:
            raise rejection from None
        raise
    summary.rows_read = int(totals.get["rows"])
    summary.rows_quarantined = int(totals.get["rejected"])

    # A second pass writes the quarantine: it reads the file again but validates only the
    # rejected records (by record number, in the JVM: no row goes through Python), unless there
    # are so many that the whole file is validated again.
    if summary.rows_quarantined:
        summary.quarantine_uri = args.quarantine_uri
        if summary.rows_quarantined <= MAX_RECORD_NUMBERS_FILTER:
            numbers = totals._jo.getAsJava().get("numbers")
            raw = raw.where(Column(F.col(transform.RECORD_NUMBER)._jc.isInCollection(numbers)))
            validated = transform.validate(raw, mapping, airports, partitions=None)
        quarantine = (transform.quarantine_records(validated, args.source_uri)
                      .coalesce(1).sortWithinPartitions(transform.RECORD_NUMBER))
        bookings_io.write_json_lines(quarantine, args.quarantine_uri)
    if summary.rows_read and summary.rows_quarantined / summary.rows_read > args.max_reject_ratio:
        bookings_io.delete_tree(spark, args.staging_uri)  # nothing staged for a rejected file
        raise contract.FileRejected(
            f"{summary.rows_quarantined} of {summary.rows_read} rows rejected "
            f"({summary.rows_quarantined / summary.rows_read:.1%}), more than "
            f"max_reject_ratio {args.max_reject_ratio:g}; see {args.quarantine_uri}")
    summary.rows_staged = int(staged_rows.get["rows"])
    summary.rows_duplicate = int(dropped.get["rows"])
    if summary.rows_read != summary.rows_quarantined + summary.rows_duplicate + summary.rows_staged:
        raise CountsDoNotAddUp(
            f"rows lost or multiplied before staging: read {summary.rows_read}, quarantined "
            f"{summary.rows_quarantined}, duplicate {summary.rows_duplicate}, staged "
            f"{summary.rows_staged}; nothing was loaded")

    bookings_io.write_parquet(
        transform.to_table_columns(airports, contract.AIRPORTS_TABLE).coalesce(1),
        args.staging_uri + "airports/")
    airports.unpersist()
    run_row = spark.createDataFrame(
        [(args.execution_id, args.source_uri, summary.rows_read, summary.rows_quarantined,
          summary.rows_duplicate, summary.rows_staged, summary.quarantine_uri, summary.started_at)],
        transform.table_schema(contract.RUN_TABLE))
    bookings_io.write_parquet(run_row.coalesce(1), args.staging_uri + "run/")


def load(args: JobArguments, summary: RunSummary, load_sql_path: str | None = None) -> None:
    """Run sql/load_bookings.sql on the staged files; the counts go into ``summary``."""
    counts = bookings_load.load_bookings(
        args.staging_uri, args.copy_role_arn, args.target, sql_path=load_sql_path,
        statement_name=f"airline-bookings-load-{args.execution_id}")
    summary.rows_inserted = counts.rows_inserted
    summary.rows_updated = counts.rows_updated
    summary.rows_unchanged = counts.rows_unchanged
    summary.rows_stale = counts.rows_stale
    if counts.rows_staged != summary.rows_staged:
        raise CountsDoNotAddUp(f"the warehouse reports {counts.rows_staged} staged rows, the job "
                               f"staged {summary.rows_staged}")
    # The load's own check makes this unreachable short of a bug; the summary never says
    # SUCCEEDED for counts that do not add up.
    summary.check_counts(" (the warehouse transaction had committed)")
    summary.status = "SUCCEEDED"


def _write_summary(spark: SparkSession, args: JobArguments, summary: RunSummary) -> None:
    document = summary.to_json(datetime.now(timezone.utc))
    for attempt in range(1, SUMMARY_WRITE_ATTEMPTS + 1):
        try:
            bookings_io.write_text(spark, args.summary_uri, document)
            break
        except Exception as error:  # py4j wraps the file system's errors
            if attempt == SUMMARY_WRITE_ATTEMPTS:
                raise
            print(f"writing {args.summary_uri} failed (attempt {attempt}): {error}; retrying",
                  file=sys.stderr, flush=True)
            time.sleep(SUMMARY_RETRY_SECONDS * 2 ** (attempt - 1))
    # The run's metrics, read from the summary as written (one source of the numbers): one EMF
    # line on stdout, which CloudWatch Logs turns into metrics (bookings_metrics).
    print(bookings_metrics.emf_line(json.loads(document), args.job_name), flush=True)


def main(argv: list[str]) -> None:
    args = parse_arguments(argv)
    # Before Spark and the file: a warehouse the deploy has not migrated fails the run at once.
    bookings_load.check_schema_version(args.schema_version, args.target)
    spark = SparkSession.builder.getOrCreate()
    configure(spark)
    summary = RunSummary(execution_id=args.execution_id, source_file=args.source_uri,
                         started_at=datetime.now(timezone.utc))
    started = summary.time_phase("spark_session", PROCESS_STARTED)
    try:
        phase = started
        stage(spark, args, summary)
        phase = summary.time_phase("stage", phase)
        load(args, summary)
        summary.time_phase("load", phase)
    except contract.FileRejected as rejection:
        summary.status, summary.error = "FAILED", str(rejection)
        _write_summary(spark, args, summary)
        raise contract.BookingFileError(f"{args.source_uri}: {rejection}") from rejection
    except Exception as error:
        summary.status, summary.error = "FAILED", f"{type(error).__name__}: {error}"
        _write_summary(spark, args, summary)
        raise
    try:
        _write_summary(spark, args, summary)
    except Exception as error:
        # Not a failed load: the data is in the warehouse; say so, with the counts (the failure
        # email quotes this message, Glue's ErrorMessage: keep it on one line).
        cause = " ".join(str(bookings_io.root_cause(error)).split())[:500]
        raise SummaryNotWritten(
            f"{args.source_uri}: the load was COMMITTED to the warehouse (execution "
            f"{args.execution_id}: {summary.counts_text()}), but the run summary could not be "
            f"written to {args.summary_uri}: {cause}") from error
    print(f"{args.source_uri}: {summary.status} in {time.monotonic() - started:.1f}s - "
          f"{summary.counts_text()}")


if __name__ == "__main__":
    main(sys.argv)
