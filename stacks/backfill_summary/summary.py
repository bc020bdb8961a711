"""Backfill summary (stacks/backfill.py, state "Summarize"): reads the Distributed Map's results
from S3 and returns what the email says, in a payload whose size does not grow with the number
of files (at most FAILED_FILES_IN_EMAIL failed files named, each cause cut to CAUSE_CHARS).

Step Functions limits a state's input, output and a task's result to 256 KiB, and
States.DataLimitExceeded is terminal (no Catch takes it): the result files, ~1 KB per file, must
never enter the state machine's state (docs/aws-notes.md, "Payload limit").

Input: {"bucket", "prefix", "execution", "results": {"Bucket", "Key"}} where results is the Map's
ResultWriterDetails (the key of <prefix><map run id>/manifest.json). The manifest lists the result
files by status (SUCCEEDED_n.json, FAILED_n.json): JSON arrays of the child executions, Input and
Output as JSON text. A child's Output is the item processor's "File ingested" output ({"status":
"SUCCEEDED", "summary": {rows_...}}) or "Not a booking file" ({"status": "SKIPPED"}).

The function needs s3:GetObject on runs/backfill/* and kms:Decrypt on the bucket's key.
"""

from __future__ import annotations

import json
import os
from typing import Any

#: The AWS client this handler takes as ``client`` (local mode hands it one signed as the role).
CLIENT_SERVICE = "s3"
OUTCOMES = ("rows_read", "rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated", "rows_unchanged",
            "rows_stale")
# At most this many failed files are named in the email (all are in the results on S3).
FAILED_FILES_IN_EMAIL = 50
# A failed file's cause (the job's error) is cut to this many characters in the email.
CAUSE_CHARS = 500


def _client() -> Any:
    import boto3  # the Lambda runtime ships boto3

    return boto3.client("s3", region_name=os.environ.get("AWS_REGION"))


def _read_json(client: Any, bucket: str, key: str) -> Any:
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def _short(text: Any) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= CAUSE_CHARS else text[:CAUSE_CHARS - 1] + "…"


class Tally:
    """The figures of the email, counted one result entry at a time."""

    def __init__(self) -> None:
        self.succeeded = self.failed = self.skipped = 0
        self.rows = dict.fromkeys(OUTCOMES, 0)
        self.failed_files: list[str] = []

    def add_succeeded(self, entry: dict[str, Any]) -> None:
        output = json.loads(entry.get("Output") or "{}")
        if output.get("status") == "SKIPPED":
            self.skipped += 1
            return
        self.succeeded += 1
        summary = output.get("summary") or {}
        for name in OUTCOMES:
            self.rows[name] += int(summary.get(name) or 0)

    def add_failed(self, entry: dict[str, Any]) -> None:
        self.failed += 1
        if len(self.failed_files) < FAILED_FILES_IN_EMAIL:
            key = json.loads(entry.get("Input") or "{}").get("key", "?")
            self.failed_files.append(f"{key}: {entry.get('Error', '')}: {_short(entry.get('Cause'))}")


def summarize(event: dict[str, Any], client: Any) -> dict[str, Any]:
    results_bucket, manifest_key = event["results"]["Bucket"], event["results"]["Key"]
    manifest = _read_json(client, results_bucket, manifest_key)
    tally = Tally()
    files = manifest.get("ResultFiles") or {}
    for result_file in files.get("SUCCEEDED") or []:
        for entry in _read_json(client, results_bucket, result_file["Key"]):
            tally.add_succeeded(entry)
    for result_file in files.get("FAILED") or []:
        for entry in _read_json(client, results_bucket, result_file["Key"]):
            tally.add_failed(entry)
    return report(event, tally, f"s3://{results_bucket}/{manifest_key}")


def report(event: dict[str, Any], tally: Tally, location: str) -> dict[str, Any]:
    bucket, prefix = event["bucket"], event["prefix"]
    named = tally.failed_files
    heading = "Failed files" + (f" (first {len(named)} of {tally.failed})" if tally.failed > len(named) else "")
    message = (
        f"Backfill of s3://{bucket}/{prefix} finished (execution {event['execution']}): "
        f"{tally.succeeded} file(s) succeeded, {tally.failed} failed, {tally.skipped} other object(s) skipped.\n\n"
        "Rows by outcome: " + ", ".join(f"{name}={count}" for name, count in tally.rows.items()) + "\n\n"
        f"{heading}:\n" + ("\n".join(named) if named else "none") + "\n\n"
        f"Per-file results: {location}"
    )
    return {"bucket": bucket, "prefix": prefix, "files_succeeded": tally.succeeded, "files_failed": tally.failed,
            "objects_skipped": tally.skipped, "rows": tally.rows, "failed_files": named, "results": location,
            "message": message}


def handler(event: dict[str, Any], _context: Any = None, client: Any = None) -> dict[str, Any]:
    return summarize(event, client or _client())
