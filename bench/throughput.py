"""Throughput: the Glue job (validate, dedupe, enrich, stage, COPY, MERGE) against the floor,
PostgreSQL COPY of the same CSV file into a table of text columns on the same server.

The job runs exactly as a state machine would run it (the deployed script, through the
emulator's JobRunner, loading through the Redshift Data API emulator) but is started directly:
no upload, crawler or notification, so the seconds are the job's own. Its input and outputs
are file:// URIs, as the job runner hands them to the script anyway; that leaves out only the
emulator's copy of the staged files back into moto's in-memory S3, which has no AWS equivalent.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from airline_local.aws.patches.glue_jobs import job_role_credentials
from airline_local.pipeline import LocalPipeline
from airline_local.warehouse.redshift_data import DataApiEmulator
from bench import memory

COPY_BLOCK_BYTES = 1 << 20
FLOOR_TABLE = "bench_copy_floor"


@dataclass
class PipelineRun:
    """One run of the Glue job on one file."""

    rows: int
    input_bytes: int
    seconds: float  # wall time of the job run: process start to exit, JVM start included
    rows_per_second: float
    mb_per_second: float
    job_peak_rss_mb: float
    db_peak_rss_mb: float
    job_cpu_seconds: float  # CPU time of the job's processes (driver + JVM)
    db_cpu_seconds: float  # CPU time of PostgreSQL's processes during the run
    state: str
    summary: dict[str, Any]
    job_phases: dict[str, float] = field(default_factory=dict)  # from the summary's timings
    warehouse_seconds: dict[str, float] = field(default_factory=dict)  # per load statement


@dataclass
class CopyRun:
    """PostgreSQL COPY of the same CSV file into a table of text columns."""

    rows: int
    input_bytes: int
    seconds: float
    rows_per_second: float
    mb_per_second: float
    db_peak_rss_mb: float
    db_cpu_seconds: float


class RecordingDataApi(DataApiEmulator):
    """The Data API emulator, remembering the batches it was given (to read their timings)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_ids: list[str] = []

    def batch_execute_statement(self, params: dict[str, Any], caller: str | None = None) -> dict[str, Any]:
        response = super().batch_execute_statement(params, caller)
        self.batch_ids.append(response["Id"])
        return response


def _mb(value: float) -> float:
    return round(value / 1e6, 1)


def _rate(amount: float, seconds: float) -> float:
    """amount / seconds to 4 significant digits (a tiny file's MB/s must not round to 0)."""
    return float(f"{amount / seconds:.4g}") if seconds > 0 else 0.0


def statement_label(query: str) -> str:
    """A short name for a load statement: `COPY stage_bookings`, `MERGE airline.bookings`, ..."""
    words = [w.rstrip(",;") for w in query.split()]
    verb = words[0].upper() if words else "?"
    if verb in ("COPY", "LOCK"):
        return f"{verb} {words[1]}"
    if verb == "MERGE" or verb == "INSERT":
        return f"{verb} {words[2]}"
    if verb == "DELETE":
        return f"DELETE {words[2]}"
    if verb == "CREATE":
        return f"CREATE {words[3] if words[1].upper() == 'TEMP' else words[2]}"
    return verb


class ThroughputBench:
    """Runs the job and the COPY floor on one started LocalPipeline."""

    def __init__(self, pipeline: LocalPipeline, scratch_dir: Path, sample_interval: float = 0.1):
        if pipeline.stack is None or pipeline.emulator is None or pipeline.warehouse is None:
            raise RuntimeError("the local pipeline must be started")
        self.pipeline = pipeline
        self.scratch_dir = Path(scratch_dir)
        self.sample_interval = sample_interval
        self.job_name = pipeline.stack.job_names[0]
        self.data_api = RecordingDataApi(pipeline.warehouse)
        pipeline.emulator.data_api = self.data_api  # the job's Data API calls land here
        self.postgres_data_dir = pipeline.postgres.data_dir  # type: ignore[union-attr]
        # The job calls AWS as its role, as a run started by the state machine does (IAM check on).
        role = pipeline.emulator.client("glue").get_job(JobName=self.job_name)["Job"]["Role"]
        self.job_credentials = job_role_credentials(role)

    def close(self) -> None:
        self.data_api.close()

    # -- probes ---------------------------------------------------------------------------

    def _sampler(self) -> memory.PeakSampler:
        postmaster = memory.postmaster_pid(self.postgres_data_dir)
        return memory.PeakSampler(
            {"job": memory.job_tree, "db": lambda procs: memory.tree(postmaster, procs)},
            interval=self.sample_interval,
        )

    def _connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pipeline.warehouse.dsn, **kwargs)  # type: ignore[union-attr]

    def empty_warehouse(self) -> None:
        """Every size loads into an empty bookings table: the runs do not depend on each other."""
        with self._connect(autocommit=True) as conn:
            conn.execute("TRUNCATE airline.bookings, airline.ingestion_runs")
            conn.execute("VACUUM ANALYZE airline.bookings")

    # -- the pipeline ---------------------------------------------------------------------

    def run_job(self, csv_path: Path, rows: int) -> PipelineRun:
        execution_id = f"bench-{rows}-{uuid.uuid4().hex[:8]}"
        root = self.scratch_dir / "job-root"
        root.mkdir(parents=True, exist_ok=True)
        arguments = {
            "--source_uri": Path(csv_path).resolve().as_uri(),
            "--execution_id": execution_id,
            "--data_root_uri": root.resolve().as_uri(),
        }
        runner = self.pipeline.emulator.job_runner  # type: ignore[union-attr]
        batches_before = len(self.data_api.batch_ids)
        with self._sampler() as sampler:
            started = time.perf_counter()
            outcome = runner.run(self.job_name, f"jr_{execution_id}", arguments, credentials=self.job_credentials)
            seconds = time.perf_counter() - started
        summary_path = root / "runs" / f"{execution_id}.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        if outcome.state != "SUCCEEDED":
            raise RuntimeError(f"job run on {csv_path} {outcome.state}: {outcome.error_message} "
                               f"(logs: {outcome.stderr_path})")
        size = Path(csv_path).stat().st_size
        return PipelineRun(
            rows=rows, input_bytes=size, seconds=round(seconds, 3),
            rows_per_second=_rate(rows, seconds), mb_per_second=_rate(size / 1e6, seconds),
            job_peak_rss_mb=_mb(sampler.peaks["job"]), db_peak_rss_mb=_mb(sampler.peaks["db"]),
            job_cpu_seconds=sampler.cpu_seconds["job"], db_cpu_seconds=sampler.cpu_seconds["db"],
            state=outcome.state, summary=summary,
            job_phases=dict(summary.get("timings") or {}),
            warehouse_seconds=self._statement_seconds(self.data_api.batch_ids[batches_before:]),
        )

    def _statement_seconds(self, batch_ids: list[str]) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for batch_id in batch_ids:
            described = self.data_api.describe_statement({"Id": batch_id})
            for sub in described.get("SubStatements", []):
                label = statement_label(sub["QueryString"])
                seconds[label] = round(seconds.get(label, 0.0) + max(sub["Duration"], 0) / 1e9, 3)
        return seconds

    # -- the floor ------------------------------------------------------------------------

    def run_copy_floor(self, csv_path: Path) -> CopyRun:
        """COPY the file (header skipped) into a fresh table with one text column per header
        name, streamed from this process like the warehouse adapter's own COPY."""
        with open(csv_path, "rb") as source:
            header = source.readline().decode("utf-8-sig").strip().split(",")
        table = pgsql.Identifier(FLOOR_TABLE)
        columns = pgsql.SQL(", ").join(pgsql.SQL("{} text").format(pgsql.Identifier(c)) for c in header)
        with self._connect(autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(table))
            conn.execute(pgsql.SQL("CREATE TABLE {} ({})").format(table, columns))
            try:
                with self._sampler() as sampler:
                    started = time.perf_counter()
                    with conn.transaction(), conn.cursor() as cur:
                        with cur.copy(pgsql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(table)) as copy, \
                                open(csv_path, "rb") as source:
                            while block := source.read(COPY_BLOCK_BYTES):
                                copy.write(block)
                        rows = cur.rowcount
                    seconds = time.perf_counter() - started
            finally:
                conn.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(table))
        size = Path(csv_path).stat().st_size
        return CopyRun(rows=rows, input_bytes=size, seconds=round(seconds, 3),
                       rows_per_second=_rate(rows, seconds), mb_per_second=_rate(size / 1e6, seconds),
                       db_peak_rss_mb=_mb(sampler.peaks["db"]), db_cpu_seconds=sampler.cpu_seconds["db"])


def as_dict(run: PipelineRun | CopyRun) -> dict[str, Any]:
    return asdict(run)


def load_average() -> list[float]:
    """The machine's load when measured (other work on the same cores skews every number)."""
    return [round(x, 2) for x in os.getloadavg()]
