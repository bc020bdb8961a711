"""`airline-ingest local status`: what the local pipeline of a state directory did and is doing.

Three sources, joined on the execution name (= the run's execution_id):
- the state directory's run history (airline_local.history: every execution a local run followed,
  succeeded, failed or not started, kept after the stack stops);
- the warehouse's `airline.ingestion_runs` (every committed load, kept between invocations);
- the emulator's executions, when a local pipeline is running on the state directory (its
  endpoint is in `<state dir>/emulator/endpoint` while it runs): runs in progress with their
  current state, and failed runs with the error of the summary the job wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airline_local import history
from glue_scripts.bookings_metrics import ROW_METRICS

# Rows by outcome, as the run summary and ingestion_runs name them (bookings_metrics is their
# one list); a column the warehouse does not have yet is shown empty.
ROW_FIELDS = tuple(ROW_METRICS)
ENDPOINT_FILE = "endpoint"
RUNNING = "RUNNING"


@dataclass
class RunStatus:
    execution: str
    file: str
    status: str
    rows: dict[str, int | None] = field(default_factory=dict)
    started_at: str | None = None
    seconds: float | None = None
    state_machine: str | None = None
    current_state: str | None = None  # the state a running execution is in
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def emulator_endpoint(state_dir: Path) -> str | None:
    """The endpoint of the emulator running on this state directory, if one is."""
    path = Path(state_dir) / "emulator" / ENDPOINT_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)


def warehouse_runs(columns: list[str], rows: Iterable[tuple[Any, ...]]) -> list[RunStatus]:
    """RunStatus of each row of `SELECT * FROM airline.ingestion_runs` (any column order)."""
    found = []
    for row in rows:
        record = dict(zip(columns, row))
        started, loaded = record.get("started_at"), record.get("loaded_at")
        seconds = (loaded - started).total_seconds() if isinstance(started, datetime) and isinstance(loaded, datetime) else None
        found.append(RunStatus(
            execution=record["execution_id"], file=record["source_file"], status=record["status"],
            rows={name: record.get(name) for name in ROW_FIELDS}, started_at=_iso(started),
            seconds=None if seconds is None else round(seconds, 1)))
    return found


def _file_of(execution_input: Mapping[str, Any]) -> str:
    """The file (or backfill prefix) an execution was started for, from its input."""
    detail = execution_input.get("detail") or {}
    bucket, key = (detail.get("bucket") or {}).get("name"), (detail.get("object") or {}).get("key")
    if bucket and key:
        return f"s3://{bucket}/{key}"
    if "prefix" in execution_input:
        return f"prefix {execution_input['prefix']}"
    return json.dumps(execution_input)[:80]


def emulator_runs(client: Callable[[str], Any], limit: int) -> list[RunStatus]:
    """The newest executions of every state machine in the emulator, with rows from the run
    summary the job wrote (runs/<execution>.json) when there is one."""
    sfn, s3 = client("stepfunctions"), client("s3")
    found: list[RunStatus] = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], maxResults=limit)["executions"]
        for execution in executions:
            arn = execution["executionArn"]
            described = sfn.describe_execution(executionArn=arn)
            execution_input = json.loads(described.get("input") or "{}")
            started, stopped = execution.get("startDate"), execution.get("stopDate")
            end = stopped or datetime.now(timezone.utc)
            run = RunStatus(
                execution=execution["name"], file=_file_of(execution_input), status=execution["status"],
                started_at=_iso(started), state_machine=machine["name"],
                seconds=round((end - started).total_seconds(), 1) if started else None)
            if run.status == RUNNING:
                history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
                run.current_state = entered[-1] if entered else None
            else:
                summary = _summary(s3, execution_input, run.execution)
                if summary:
                    run.rows = {name: summary.get(name) for name in ROW_FIELDS}
                    run.error = summary.get("error")
                if run.status != "SUCCEEDED" and not run.error:
                    run.error = described.get("cause") or described.get("error")
            found.append(run)
    return found


def _summary(s3: Any, execution_input: Mapping[str, Any], execution: str) -> dict[str, Any] | None:
    bucket = ((execution_input.get("detail") or {}).get("bucket") or {}).get("name")
    if not bucket:
        return None
    try:
        body = s3.get_object(Bucket=bucket, Key=f"runs/{execution}.json")["Body"].read()
    except Exception:  # no summary: the job never ran, or was killed
        return None
    return json.loads(body)


def history_runs(entries: Iterable[Mapping[str, Any]]) -> list[RunStatus]:
    """RunStatus of each entry of the run history (airline_local.history)."""
    known = set(RunStatus.__dataclass_fields__)
    return [RunStatus(**{k: v for k, v in entry.items() if k in known}) for entry in entries]


def merge(warehouse: list[RunStatus], emulator: list[RunStatus], limit: int,
          history: Iterable[RunStatus] = ()) -> list[RunStatus]:
    """One row per execution, newest first: the emulator's view (state, errors), else the run
    history's, filled with the warehouse's committed counts; loads from earlier sessions from the
    warehouse alone."""
    runs: dict[str, RunStatus] = {}
    for run in [*history, *emulator]:  # the emulator's view of an execution is the newer one
        earlier = runs.get(run.execution)
        if earlier is not None:
            run.rows = {**earlier.rows, **{k: v for k, v in run.rows.items() if v is not None}}
            run.error = run.error or (earlier.error if earlier.status == run.status else None)
        runs[run.execution] = run
    for committed in warehouse:
        run = runs.get(committed.execution)
        if run is None:
            runs[committed.execution] = committed
            continue
        run.rows = {k: v if v is not None else run.rows.get(k) for k, v in committed.rows.items()}
        run.file = committed.file
    merged = sorted(runs.values(), key=lambda r: r.started_at or "", reverse=True)
    return merged[:limit]


def in_progress(runs: Iterable[RunStatus]) -> bool:
    return any(run.status == RUNNING for run in runs)


def collect(state_dir: Path, *, limit: int = 20,
            query: Callable[[str], tuple[list[str], list[tuple[Any, ...]]]] | None = None,
            client: Callable[[str], Any] | None = None) -> list[RunStatus]:
    """The status rows of a state directory (its run history, the warehouse through `query`, the
    emulator through `client` when one is running there)."""
    warehouse = warehouse_runs(*query(
        f"SELECT * FROM airline.ingestion_runs ORDER BY started_at DESC LIMIT {int(limit)}")) if query else []
    emulator = emulator_runs(client, limit) if client else []
    return merge(warehouse, emulator, limit, history_runs(history.entries(state_dir)))
