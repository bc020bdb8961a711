"""Latency: one small file through the whole local stack, upload to email, state by state.

The breakdown comes from the execution history's timestamps (moto's Step Functions records the
real time of every event), the job's own phase timings (the run summary's `timings`) and the
moment the email file was written:

    event         upload -> execution started (S3 -> EventBridge -> Step Functions)
    crawler       execution started -> "Run ETL job" entered (start, wait, poll the crawler)
    job_start     "Run ETL job" entered -> the job's process running (Glue's start-up; locally:
                  the run directory, the input's download, the Python start)
    spark_start   the JVM and the SparkSession
    spark         read, validate, quarantine, dedupe, enrich, stage Parquet
    load          the Data API batch: COPY + MERGE, and waiting for it
    job_end       summary written, process exit, outputs uploaded, .sync integration noticing
    notification  "Run ETL job" exited -> email written (read summary, SNS publish)
"""

from __future__ import annotations

import email
import email.policy
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airline_local.pipeline import LocalPipeline

PHASES = ("event", "crawler", "job_start", "spark_start", "spark", "load", "job_end", "notification")


class EmailClock:
    """Mailbox callback: when each email file was written (pass `on_email` to LocalPipeline)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, Path]] = []
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> None:
        with self._lock:
            self.sent.append((time.time(), Path(path)))

    def sent_at(self, execution_name: str) -> float | None:
        with self._lock:
            sent = list(self.sent)
        for moment, path in sent:
            try:
                # The body is quoted-printable: soft line breaks may split the execution name.
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                if execution_name in message.get_body().get_content():
                    return moment
            except OSError:
                continue
        return None


@dataclass
class LatencyRun:
    rows: int
    status: str
    seconds: float  # upload -> email written
    phases: dict[str, float] = field(default_factory=dict)


def _epoch(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def phases_from_history(uploaded_at: float, started_at: float, history: list[dict[str, Any]],
                        summary: dict[str, Any], emailed_at: float) -> dict[str, float]:
    """Seconds per phase (see the module docstring) from the execution's events and the job's
    run summary (`started_at`: the SparkSession ready; `timings`: its phases)."""
    job_entered = job_exited = None
    for event in history:
        name = (event.get("stateEnteredEventDetails") or {}).get("name")
        if name == "Run ETL job" and job_entered is None:
            job_entered = _epoch(event["timestamp"])
        name = (event.get("stateExitedEventDetails") or {}).get("name")
        if name == "Run ETL job":
            job_exited = _epoch(event["timestamp"])
    if job_entered is None or job_exited is None:
        raise ValueError("the execution never ran the ETL job")
    timings = {k: float((summary.get("timings") or {}).get(k, 0.0)) for k in ("spark_session", "stage", "load")}
    session_ready = datetime.fromisoformat(summary["started_at"].replace("Z", "+00:00")).timestamp()
    process_started = session_ready - timings["spark_session"]
    job_done = session_ready + timings["stage"] + timings["load"]
    return {
        "event": round(started_at - uploaded_at, 3),
        "crawler": round(job_entered - started_at, 3),
        "job_start": round(process_started - job_entered, 3),
        "spark_start": round(timings["spark_session"], 3),
        "spark": round(timings["stage"], 3),
        "load": round(timings["load"], 3),
        "job_end": round(job_exited - job_done, 3),
        "notification": round(emailed_at - job_exited, 3),
    }


def measure(pipeline: LocalPipeline, clock: EmailClock, files: list[Path], rows: int) -> list[LatencyRun]:
    """Run each file through the pipeline, one after the other; one LatencyRun each."""
    runs = []
    sfn = pipeline.emulator.client("stepfunctions")  # type: ignore[union-attr]
    for path in files:
        upload = pipeline.upload(path)
        result = pipeline.wait(upload, timeout=300)
        if result.execution_name is None:
            raise RuntimeError(f"{path}: no execution started ({result.error})")
        emailed_at = None
        deadline = time.monotonic() + 10
        while emailed_at is None and time.monotonic() < deadline:
            emailed_at = clock.sent_at(result.execution_name)
            if emailed_at is None:
                time.sleep(0.05)
        if result.status != "SUCCEEDED" or emailed_at is None:
            raise RuntimeError(f"{path}: {result.status}, email {'sent' if emailed_at else 'missing'}: {result.error}")
        arn = f"{pipeline.stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{result.execution_name}"  # type: ignore[union-attr]
        description = sfn.describe_execution(executionArn=arn)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        phases = phases_from_history(upload.uploaded_at, _epoch(description["startDate"]), history,
                                     result.summary or {}, emailed_at)
        runs.append(LatencyRun(rows=rows, status=result.status,
                               seconds=round(emailed_at - upload.uploaded_at, 3), phases=phases))
    return runs


def summarize(runs: list[LatencyRun]) -> dict[str, Any]:
    """Median of the runs, overall and per phase (each phase's own median)."""
    phases = runs[0].phases.keys() if runs else []
    return {
        "rows": runs[0].rows if runs else 0,
        "runs": len(runs),
        "median_seconds": round(statistics.median(r.seconds for r in runs), 3) if runs else 0.0,
        "median_phases": {p: round(statistics.median(r.phases[p] for r in runs), 3) for p in phases},
        "all_runs": [asdict(r) for r in runs],
    }
