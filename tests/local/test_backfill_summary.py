"""The backfill's summary function (stacks/backfill_summary/summary.py) on the real moto S3, with
result files in the shape the ResultWriter writes (docs/aws-notes.md, "ResultWriter"): its output,
the email's content, stays small however many files the backfill had."""

from __future__ import annotations

import json
import uuid

import pytest

from airline_local.aws.patches.stepfunctions_data_limit import payload_bytes
from stacks.backfill_summary.summary import CAUSE_CHARS, FAILED_FILES_IN_EMAIL, OUTCOMES, handler


def entry(index: int, status: str, **fields) -> dict:
    child = {"bucket": "raw", "key": f"raw/backfill/h/{index:05d}.csv", "execution_id": f"bf-{index}"}
    document = {"ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:bf/BackfillFiles:{index}",
                "Input": json.dumps(child), "InputDetails": {"Included": True}, "Name": str(index), "Status": status,
                "StartDate": "2024-01-01T00:00:00.000Z", "StopDate": "2024-01-01T00:00:05.000Z"}
    document.update(fields)
    return document


def succeeded(index: int, rows: int) -> dict:
    summary = dict.fromkeys(OUTCOMES, 0) | {"rows_read": rows, "rows_inserted": rows - 1, "rows_quarantined": 1}
    return entry(index, "SUCCEEDED", Output=json.dumps({"key": f"k{index}", "status": "SUCCEEDED", "summary": summary}))


def skipped(index: int) -> dict:
    return entry(index, "SUCCEEDED", Output=json.dumps({"key": f"k{index}", "status": "SKIPPED"}))


def failed(index: int) -> dict:
    return entry(index, "FAILED", Error="IngestionFailed", Cause=f"BookingFileError: file {index} " + "x" * 2000)


@pytest.fixture()
def write_results(emulator):
    s3 = emulator.client("s3")
    bucket = f"summary-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)

    def write(files: dict[str, list[list[dict]]]) -> dict:
        folder = f"runs/backfill/{uuid.uuid4()}/"
        listed = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status, contents in files.items():
            for number, entries in enumerate(contents):
                key = f"{folder}{status}_{number}.json"
                body = json.dumps(entries).encode()
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                listed[status].append({"Key": key, "Size": len(body)})
        s3.put_object(Bucket=bucket, Key=f"{folder}manifest.json",
                      Body=json.dumps({"DestinationBucket": bucket, "MapRunArn": "arn:x", "ResultFiles": listed}).encode())
        return {"bucket": "raw", "prefix": "raw/backfill/h/", "execution": "bf",
                "results": {"Bucket": bucket, "Key": f"{folder}manifest.json"}}

    return write, s3


def test_counts_rows_failed_files_and_location(write_results):
    write, s3 = write_results
    event = write({"SUCCEEDED": [[succeeded(0, 10), skipped(1)], [succeeded(2, 5)]],
                   "FAILED": [[failed(i) for i in range(3, 63)]]})
    summary = handler(event, client=s3)
    assert (summary["files_succeeded"], summary["files_failed"], summary["objects_skipped"]) == (2, 60, 1)
    assert summary["rows"] == dict.fromkeys(OUTCOMES, 0) | {"rows_read": 15, "rows_inserted": 13, "rows_quarantined": 2}
    location = f"s3://{event['results']['Bucket']}/{event['results']['Key']}"
    assert summary["results"] == location
    # At most 50 failed files named, each with its error and a cause cut short.
    assert len(summary["failed_files"]) == FAILED_FILES_IN_EMAIL
    first = summary["failed_files"][0]
    assert first.startswith("raw/backfill/h/00003.csv: IngestionFailed: BookingFileError: file 3 ")
    assert len(first.split(": ", 2)[2]) == CAUSE_CHARS
    message = summary["message"]
    assert "finished (execution bf): 2 file(s) succeeded, 60 failed, 1 other object(s) skipped." in message
    assert "rows_read=15, rows_quarantined=2, rows_duplicate=0, rows_inserted=13" in message
    assert f"Failed files (first {FAILED_FILES_IN_EMAIL} of 60):\n" in message
    assert "raw/backfill/h/00052.csv" in message and "raw/backfill/h/00053.csv" not in message
    assert message.endswith(f"Per-file results: {location}")


def test_no_failure_says_none(write_results):
    write, s3 = write_results
    summary = handler(write({"SUCCEEDED": [[succeeded(0, 3)]]}), client=s3)
    assert "Failed files:\nnone\n" in summary["message"] and summary["failed_files"] == []


def test_the_output_does_not_grow_with_the_number_of_files(write_results):
    # 10,000 files (half failed, every cause long): the output stays far below the 256 KiB a
    # Step Functions task result may have, the size it has with 100 files.
    write, s3 = write_results
    sizes = []
    for count in (100, 10_000):
        entries = [succeeded(i, 4) if i % 2 else failed(i) for i in range(count)]
        event = write({"SUCCEEDED": [[e for e in entries if e["Status"] == "SUCCEEDED"]],
                       "FAILED": [[e for e in entries if e["Status"] == "FAILED"]]})
        summary = handler(event, client=s3)
        assert summary["files_failed"] == count // 2 and summary["rows"]["rows_read"] == 4 * (count // 2)
        sizes.append(payload_bytes(summary))
    assert sizes[1] - sizes[0] < 100  # the counts' digits only
    assert sizes[1] < 64 * 1024
