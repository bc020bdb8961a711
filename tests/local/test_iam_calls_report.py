"""docs/iam-calls.md's folding of resources. The table itself is checked on a real run in
tests/e2e/test_local_pipeline.py: test_sample_file_is_loaded_and_reported checks the report's
actors and citations, test_the_committed_iam_calls_table_is_the_sample_runs compares the committed
docs/iam-calls.md with the report of that run of the sample."""

from __future__ import annotations

import pytest

from airline_local.iam_calls import fold_resource

NAMES = {"airline-raw-123": "StorageRawBucket", "airline-bookings": "OrchestrationStateMachine"}


@pytest.mark.parametrize(("resource", "folded"), [
    ("arn:aws:s3:::airline-raw-123/staging/exec-1/part-0.parquet", "arn:aws:s3:::<StorageRawBucket>/staging/…"),
    ("arn:aws:s3:::airline-raw-123/runs/exec-1.json", "arn:aws:s3:::<StorageRawBucket>/runs/…"),
    ("arn:aws:s3:::airline-raw-123", "arn:aws:s3:::<StorageRawBucket>"),
    ("arn:aws:s3:::airline-raw-123/top.csv", "arn:aws:s3:::<StorageRawBucket>/top.csv"),
    ("arn:aws:states:us-east-1:111:stateMachine:airline-bookings", "arn:aws:states:us-east-1:111:stateMachine:<OrchestrationStateMachine>"),
    ("arn:aws:states:us-east-1:111:execution:airline-bookings:run-42", "arn:aws:states:us-east-1:111:execution:<OrchestrationStateMachine>:…"),
    ("*", "*"),
])
def test_physical_names_become_logical_ids_and_per_run_parts_fold(resource, folded):
    assert fold_resource(resource, NAMES) == folded
