"""The job's CloudWatch metrics, as one embedded metric format (EMF) document per run.

The job prints the document as one line on stdout; Glue 5.0 sends a job's stdout to the
/aws-glue/jobs/output log group, and CloudWatch Logs extracts the metrics of an EMF log event
(docs/aws-notes.md, "Job metrics"). No cloudwatch:PutMetricData call, so no permission and no
network round trip at the end of a run. Pure: no Spark, no AWS; the stack's dashboard reads the
same names (stacks/observability.py imports this module).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

NAMESPACE = "AirlineBookings"
# One dimension: the Glue job's name, so two deployments of the stack in one account (the
# acceptance test's copy) never mix their numbers.
DIMENSION = "JobName"

# Run summary field -> metric (unit Count). Rows by outcome, plus what was read. A field the
# summary does not have (an older job, a field added later) is left out, never sent as 0.
ROW_METRICS: dict[str, str] = {
    "rows_read": "RowsRead",
    "rows_inserted": "RowsInserted",
    "rows_updated": "RowsUpdated",
    "rows_unchanged": "RowsUnchanged",
    "rows_stale": "RowsStale",
    "rows_duplicate": "RowsDuplicate",
    "rows_quarantined": "RowsQuarantined",
}
# Phase of the summary's `timings` -> metric (unit Seconds); `duration_seconds` is the whole run.
PHASE_METRICS: dict[str, str] = {
    "spark_session": "SparkSessionSeconds",
    "stage": "StageSeconds",
    "load": "LoadSeconds",
}
RUN_SECONDS = "RunSeconds"
# 1 for the run's outcome, 0 for the other: Sum is a count of runs by outcome.
RUNS_SUCCEEDED = "RunsSucceeded"
RUNS_FAILED = "RunsFailed"

# Every metric name the job can emit (what the dashboard may read), in a stable order.
ALL_METRICS: tuple[str, ...] = (
    *ROW_METRICS.values(), *PHASE_METRICS.values(), RUN_SECONDS, RUNS_SUCCEEDED, RUNS_FAILED,
)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _epoch_millis(iso_time: str | None) -> int | None:
    if not iso_time:
        return None
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() * 1000)


def emf_document(summary: Mapping[str, Any], job_name: str) -> dict[str, Any]:
    """The EMF document of one run summary (the JSON the job writes to runs/<execution>.json).

    Values that are missing or not numbers are left out (EMF requires each declared metric to be
    a number at the root). The execution id and file ride along as log properties, searchable
    in Logs Insights but not dimensions (one metric stream per file would cost per file).
    """
    values: dict[str, tuple[float | int, str]] = {}
    for field_name, metric in ROW_METRICS.items():
        value = _number(summary.get(field_name))
        if value is not None:
            values[metric] = (value, "Count")
    timings = summary.get("timings") or {}
    for phase, metric in PHASE_METRICS.items():
        value = _number(timings.get(phase))
        if value is not None:
            values[metric] = (value, "Seconds")
    duration = _number(summary.get("duration_seconds"))
    if duration is not None:
        values[RUN_SECONDS] = (duration, "Seconds")
    succeeded = summary.get("status") == "SUCCEEDED"
    values[RUNS_SUCCEEDED] = (int(succeeded), "Count")
    values[RUNS_FAILED] = (int(not succeeded), "Count")

    directive: dict[str, Any] = {
        "Namespace": NAMESPACE,
        "Dimensions": [[DIMENSION]],
        "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
    }
    metadata: dict[str, Any] = {"CloudWatchMetrics": [directive]}
    # Timestamp is required; a summary always has finished_at, the clock is only a fallback.
    timestamp = _epoch_millis(summary.get("finished_at"))
    metadata["Timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
    document: dict[str, Any] = {"_aws": metadata, DIMENSION: job_name}
    document.update({name: value for name, (value, _) in values.items()})
    document.update(execution_id=summary.get("execution_id"), source_file=summary.get("source_file"),
                    status=summary.get("status"))
    return document


def emf_line(summary: Mapping[str, Any], job_name: str) -> str:
    """The document as one line: CloudWatch Logs reads one log event per stdout line."""
    return json.dumps(emf_document(summary, job_name), separators=(",", ":"), sort_keys=True)
