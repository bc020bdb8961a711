"""Running files through the shared pipeline, and asking the warehouse and S3 what came of them.

Every SQL statement here takes its values as bound parameters: keys and booking ids from the
corpus are hostile on purpose, and the tests must not be the ones that inject them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airline_local.pipeline import LocalPipeline, RunResult

COUNT_KEYS = ("rows_read", "rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated",
              "rows_unchanged", "rows_stale")
# At most this many files in flight: the job's MaxConcurrentRuns is 5, and a sixth run would only
# wait in the state machine's retry (with backoff) while its crawl and JVM start compete for CPU.
DEFAULT_WINDOW = int(os.environ.get("RELIABILITY_WINDOW", "4"))


def run_keyed(pipeline: LocalPipeline, files: Sequence[tuple[Path, str]], *,
              window: int = DEFAULT_WINDOW, timeout: float = 600) -> list[RunResult]:
    """Upload each (file, key) and follow its execution, keeping up to ``window`` in flight."""

    def one(item: tuple[Path, str]) -> RunResult:
        path, key = item
        return pipeline.wait(pipeline.upload(path, key), timeout=timeout)

    with ThreadPoolExecutor(max_workers=max(1, window)) as pool:
        return list(pool.map(one, files))


def sql(pipeline: LocalPipeline, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """A read-only query with bound parameters, straight on the local warehouse."""
    with pipeline.warehouse.connect() as conn:
        conn.read_only = True
        return conn.execute(statement, params).fetchall()


def scalar(pipeline: LocalPipeline, statement: str, *params: Any) -> Any:
    return sql(pipeline, statement, *params)[0][0]


def audit_row(pipeline: LocalPipeline, execution_name: str) -> dict[str, int] | None:
    found = sql(pipeline, f"SELECT {', '.join(COUNT_KEYS)} FROM airline.ingestion_runs "
                          "WHERE execution_id = %s", execution_name)
    return dict(zip(COUNT_KEYS, found[0])) if found else None


def rows_of_execution(pipeline: LocalPipeline, execution_name: str) -> int:
    return scalar(pipeline, "SELECT COUNT(*) FROM airline.bookings WHERE execution_id = %s", execution_name)


def rows_with_prefix(pipeline: LocalPipeline, prefix: str) -> int:
    return scalar(pipeline, "SELECT COUNT(*) FROM airline.bookings WHERE starts_with(booking_id, %s)", prefix)


def assert_accounted_in_warehouse(pipeline: LocalPipeline, result: RunResult) -> dict[str, int]:
    """rows_read = quarantined + duplicate + inserted + updated + unchanged + stale, from the audit row the
    load transaction wrote, which must also agree with the run summary and with the table."""
    audit = audit_row(pipeline, result.execution_name)
    assert audit is not None, f"{result.key}: no airline.ingestion_runs row for {result.execution_name}"
    assert audit["rows_read"] == sum(audit[k] for k in COUNT_KEYS[1:]), audit
    assert audit == {k: result.summary[k] for k in COUNT_KEYS}, (audit, result.summary)
    assert rows_of_execution(pipeline, result.execution_name) == audit["rows_inserted"] + audit["rows_updated"]
    return audit


def assert_nothing_loaded(pipeline: LocalPipeline, result: RunResult, prefix: str | None = None) -> None:
    """A failed run leaves no trace in the warehouse: no audit row, no booking row."""
    if result.execution_name:
        assert audit_row(pipeline, result.execution_name) is None
        assert rows_of_execution(pipeline, result.execution_name) == 0
    if prefix:
        assert rows_with_prefix(pipeline, prefix) == 0


def quarantine_records(pipeline: LocalPipeline, execution_name: str) -> list[dict[str, Any]]:
    s3 = pipeline.emulator.client("s3")
    bucket = pipeline.stack.raw_bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"quarantine/{execution_name}/").get("Contents", [])
    records = []
    for obj in sorted(listed, key=lambda o: o["Key"]):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8")
        records += [json.loads(line) for line in body.splitlines() if line.strip()]
    return records


def executions_for_key(pipeline: LocalPipeline, key: str) -> list[str]:
    """Names of the executions whose triggering event names this object key."""
    sfn = pipeline.emulator.client("stepfunctions")
    names = []
    for execution in sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn)["executions"]:
        event = json.loads(sfn.describe_execution(executionArn=execution["executionArn"]).get("input") or "{}")
        if event.get("detail", {}).get("object", {}).get("key") == key:
            names.append(execution["name"])
    return names


# --------------------------------------------------------------------------------------------
# resources of the local stack, from /proc
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    processes: int
    rss_bytes: int  # the stack without its warm Spark workers
    open_fds: int  # the same
    worker_rss_bytes: tuple[int, ...] = ()  # each warm Spark worker with its JVM
    worker_fds: tuple[int, ...] = ()
    # The stack's processes holding the most fds: (fds, pid, command line), to name a leak.
    top_fds: tuple[tuple[int, int, str], ...] = ()

    def __str__(self) -> str:
        rss = ", ".join(f"{rss / 2**20:.0f}" for rss in self.worker_rss_bytes)
        fds = ", ".join(str(fds) for fds in self.worker_fds)
        return (f"{self.processes} processes, RSS {self.rss_bytes / 2**20:.1f} MiB, "
                f"{self.open_fds} open fds; workers RSS [{rss}] MiB, fds [{fds}]")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _tree(root: int) -> list[int]:
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack += _children(pid)
    return pids


def _rss_and_fds(pid: int) -> tuple[int, int] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None  # ended meanwhile
    rss = sum(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, fds


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"  # ended meanwhile


def _is_spark_worker(pid: int) -> bool:
    return "airline_local.glue.spark_worker" in _command(pid)


TRANSIENT_POSTGRES_PROCESS = "postgres: autovacuum worker"


def stack_resources(pipeline: LocalPipeline) -> Resources:
    """This process (moto server, Data API, pollers) and its descendants, plus the PostgreSQL
    server tree (a daemon, not a child: found through its postmaster.pid). The warm Spark
    workers (each a Python process and its JVM) are reported apart: a JVM's heap grows over its
    first runs up to its configured limit, and it opens jars and shuffle files as it goes; a
    worker is replaced after 50 runs. Neither says anything about a leak in the stack.

    Measured right after a CHECKPOINT. PostgreSQL's checkpointer keeps every relation file it
    writes during a checkpoint open until that checkpoint ends (a timed one is spread over 4.5
    of its 5 minutes), then closes them all. Each load creates and drops staging tables, so in a
    long run it held ~270 fds at times: a bounded, periodic count, not a leak. After a forced
    checkpoint it holds none of them, and a leak anywhere else still shows.

    Not counted: PostgreSQL's autovacuum workers. The launcher starts one per database every
    autovacuum_naptime (1 min) and it exits when done; one caught by the last sample (19 fds,
    34 MiB) read as a leak of 1 fd per run over 12 runs."""
    with pipeline.warehouse.connect(autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    pids = set(_tree(os.getpid()))
    pid_file = Path(pipeline.postgres.data_dir) / "postmaster.pid"
    if pid_file.is_file():
        pids |= set(_tree(int(pid_file.read_text().split()[0])))
    pids = {pid for pid in pids if not _command(pid).startswith(TRANSIENT_POSTGRES_PROCESS)}
    worker_trees = [set(_tree(pid)) for pid in pids if _is_spark_worker(pid)]
    in_workers = set().union(*worker_trees)
    rss = fds = alive = 0
    holders = []
    for pid in pids:
        measured = _rss_and_fds(pid)
        if measured is None:
            continue
        alive += 1
        if pid not in in_workers:
            rss += measured[0]
            fds += measured[1]
            holders.append((measured[1], pid))
    per_worker = [[_rss_and_fds(pid) or (0, 0) for pid in tree] for tree in worker_trees]
    top = tuple((n, pid, _command(pid)[:160]) for n, pid in sorted(holders, reverse=True)[:8])
    return Resources(alive, rss, fds,
                     tuple(sum(m[0] for m in measured) for measured in per_worker),
                     tuple(sum(m[1] for m in measured) for measured in per_worker), top)


# --------------------------------------------------------------------------------------------
# leak rates: a least-squares slope over one sample per run
# --------------------------------------------------------------------------------------------

Z_ONE_SIDED = 2.0  # a slope estimate exceeds its true value by 2 standard errors ~2.3% of the time


@dataclass(frozen=True)
class Trend:
    """The least-squares line through one sample per run: its slope (units per run), the slope's
    standard error (from the residuals, n - 2 degrees of freedom) and the residual spread."""

    slope: float
    stderr: float
    residual_sd: float
    samples: int

    def detectable(self, bound: float) -> float:
        """The smallest true rate per run that puts the fitted slope above ``bound`` with ~97.7%
        probability at this length and noise: bound + 2 standard errors."""
        return bound + Z_ONE_SIDED * self.stderr


def fit_trend(values: Sequence[float]) -> Trend:
    """Ordinary least squares of values[i] against i (the run number)."""
    n = len(values)
    if n < 3:
        raise ValueError(f"a slope and its standard error need at least 3 samples, got {n}")
    x_mean, y_mean = (n - 1) / 2, sum(values) / n
    sxx = sum((i - x_mean) ** 2 for i in range(n))
    slope = sum((i - x_mean) * (y - y_mean) for i, y in enumerate(values)) / sxx
    residuals = [y - (y_mean + slope * (i - x_mean)) for i, y in enumerate(values)]
    variance = sum(r * r for r in residuals) / (n - 2)
    return Trend(slope, math.sqrt(variance / sxx), math.sqrt(variance), n)


def leak_verdict(values: Sequence[float], bound: float, what: str, unit: float = 1.0,
                 unit_name: str = "") -> tuple[bool, str]:
    """(slope <= bound, a message giving the slope, its standard error, the bound and the leak
    rate this series can detect). ``unit`` scales the message only (e.g. 2**20 for MiB)."""
    trend = fit_trend(values)
    ok = trend.slope <= bound
    message = (f"{what}: slope {trend.slope / unit:+.3f} {unit_name}/run, standard error "
               f"{trend.stderr / unit:.3f} (residual sd {trend.residual_sd / unit:.2f} {unit_name}, "
               f"{trend.samples} runs); bound {bound / unit:.3f} {unit_name}/run -> "
               f"{'ok' if ok else 'LEAK'}; at this length and noise it detects a leak of "
               f"{trend.detectable(bound) / unit:.3f} {unit_name}/run or more (bound + 2 se)")
    return ok, message


class LoadRecorder:
    """Records every batch the Data API receives ({StatementName, Sqls}) while installed: the
    SQL text the warehouse is asked to run, to show that no key or value ever reaches it."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.data_api = pipeline.data_api
        self.batches: list[dict[str, Any]] = []

    def __enter__(self) -> LoadRecorder:
        original = self.data_api.batch_execute_statement

        def batch_execute_statement(params: dict[str, Any], caller: str | None = None) -> dict[str, Any]:
            self.batches.append({"name": params.get("StatementName", ""), "sqls": list(params.get("Sqls", []))})
            return original(params, caller)

        self.data_api.batch_execute_statement = batch_execute_statement
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self.data_api.batch_execute_statement
