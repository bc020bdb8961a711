"""A backfill in local mode: upload files under raw/backfill/<name>/ and run the synthesized
backfill state machine (stacks/backfill.py) on that prefix, as an operator would in AWS:

    with LocalPipeline(state_dir, context={"backfillMaxConcurrency": 4}) as pipeline:
        result = run_backfill(pipeline, [Path("history/")])

Uploads under raw/backfill/ start no per-file execution (the rule matches raw/bookings/ only).
The result accounts for every uploaded file, from the per-file results the ResultWriter wrote.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airline_local.pipeline import TERMINAL_STATUSES, LocalPipeline, PipelineError, _body
from stacks.storage import BACKFILL_PREFIX

BOOKING_SUFFIXES = (".csv", ".csv.gz")
POLL_SECONDS = 0.5
UPLOAD_THREADS = 4


@dataclass
class BackfillFile:
    file: str
    key: str
    status: str  # SUCCEEDED | FAILED | SKIPPED | MISSING (no result: must never happen)
    execution_id: str | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class BackfillResult:
    """One backfill, in the shape `airline-ingest local backfill --json` prints."""

    execution_name: str
    prefix: str
    status: str
    files: list[BackfillFile]
    rows: dict[str, int] = field(default_factory=dict)
    results_uri: str | None = None
    notification: dict[str, str] | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> list[BackfillFile]:
        return [f for f in self.files if f.status == "SUCCEEDED"]

    @property
    def failed(self) -> list[BackfillFile]:
        return [f for f in self.files if f.status != "SUCCEEDED"]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def booking_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the booking files (.csv, .csv.gz) in directories, recursively."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(BOOKING_SUFFIXES)))
        elif path.is_file():
            found.append(path)
        else:
            raise PipelineError(f"no such file or directory: {path}")
    if not found:
        raise PipelineError("no booking files (.csv, .csv.gz) to backfill")
    return found


def upload_keys(files: Sequence[Path], prefix: str) -> dict[str, Path]:
    """A key under the prefix for each file: its name, numbered when two files share one."""
    keys: dict[str, Path] = {}
    for index, file in enumerate(files):
        key = prefix + file.name
        keys[key if key not in keys else f"{prefix}{index:05d}-{file.name}"] = file
    return keys


def run_backfill(pipeline: LocalPipeline, paths: Sequence[Path], *, timeout: float = 3600) -> BackfillResult:
    """Upload the files under a fresh backfill prefix, run the backfill machine, wait for it."""
    stack = pipeline._require_stack()
    if stack.backfill_state_machine_arn is None:
        raise PipelineError("the synthesized stack has no backfill state machine (output BackfillStateMachineArn)")
    files = booking_files(paths)
    name = f"backfill-{uuid.uuid4().hex[:12]}"
    prefix = f"{BACKFILL_PREFIX}{name}/"
    keys = upload_keys(files, prefix)
    s3 = pipeline.emulator.client("s3")  # type: ignore[union-attr]
    # A few at once: each upload is a round trip through the emulator (and its IAM check).
    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as uploads:
        list(uploads.map(lambda item: s3.upload_file(str(item[1]), stack.raw_bucket, item[0]), keys.items()))
    sfn = pipeline.emulator.client("stepfunctions")  # type: ignore[union-attr]
    started = time.monotonic()
    arn = sfn.start_execution(stateMachineArn=stack.backfill_state_machine_arn, name=name,
                              input=json.dumps({"prefix": prefix}))["executionArn"]
    while True:
        description = sfn.describe_execution(executionArn=arn)
        if description["status"] in TERMINAL_STATUSES:
            break
        if time.monotonic() - started > timeout:
            sfn.stop_execution(executionArn=arn, error="LocalTimeout", cause=f"no result within {timeout:.0f} s")
            raise PipelineError(f"backfill {name} still running after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    output = json.loads(description.get("output") or "{}")
    per_key = per_file_results(s3, stack.raw_bucket, prefix)
    accounted = [_account(key, file, per_key.get(key)) for key, file in keys.items()]
    return BackfillResult(
        execution_name=name, prefix=prefix, status=description["status"], files=accounted,
        rows=output.get("rows") or {}, results_uri=output.get("results"),
        notification=_notification(pipeline, name),
        error=None if description["status"] == "SUCCEEDED" else description.get("cause") or description.get("error"),
        seconds=round(time.monotonic() - started, 2),
    )


def per_file_results(s3: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The ResultWriter's entries of the backfill of `prefix`, by object key (from
    runs/backfill/*/manifest.json): Status, Input, Output or Error/Cause, StartDate, StopDate."""
    from stacks.backfill import RESULTS_PREFIX

    results: dict[str, dict[str, Any]] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=RESULTS_PREFIX)
    manifests = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith("/manifest.json")]
    for manifest_key in manifests:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        for status in ("SUCCEEDED", "FAILED"):
            for result_file in manifest["ResultFiles"].get(status, []):
                for entry in json.loads(s3.get_object(Bucket=bucket, Key=result_file["Key"])["Body"].read()):
                    child_input = json.loads(entry["Input"])
                    if child_input.get("key", "").startswith(prefix):
                        results[child_input["key"]] = entry
    return results


def _account(key: str, file: Path, entry: dict[str, Any] | None) -> BackfillFile:
    if entry is None:
        return BackfillFile(str(file), key, "MISSING", error="no per-file result")
    child_input = json.loads(entry["Input"])
    if entry["Status"] != "SUCCEEDED":
        return BackfillFile(str(file), key, "FAILED", child_input.get("execution_id"),
                            error=f"{entry.get('Error')}: {entry.get('Cause')}")
    output = json.loads(entry["Output"])
    return BackfillFile(str(file), key, output["status"], output.get("execution_id"), output.get("summary"))


def _notification(pipeline: LocalPipeline, execution_name: str) -> dict[str, str] | None:
    for message in reversed(pipeline.emulator.mailbox.messages()):  # type: ignore[union-attr]
        body = _body(message)
        if execution_name in body:
            return {"subject": str(message["Subject"]), "message": body}
    return None
