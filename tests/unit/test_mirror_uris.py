"""Values that name the job's local S3 mirror are loaded into the warehouse as the s3:// URIs they
stand for (the job only ever saw file:// URIs, because local Spark has no S3 connector)."""

import pyarrow as pa
import pyarrow.compute as pc

from airline_local.glue.job_runner import JobRunner


def test_mirror_uris_are_restored_to_s3_and_other_values_are_kept(tmp_path):
    runner = JobRunner(tmp_path / "runs", "http://127.0.0.1:9", "us-east-1")
    pattern, replacement = runner.mirror_uri_pattern
    mirror = (tmp_path / "runs").resolve() / "EtlJob" / "jr_1" / "s3"
    values = pa.array([
        f"file:{mirror}/raw-bucket/raw/bookings/a b.csv",      # Spark's form
        f"file://{mirror}/raw-bucket/quarantine/exec-1/",       # pathlib's form
        f"file://{tmp_path}/elsewhere/s3/raw-bucket/x.csv",     # not a job mirror
        "BK1-000000001",
        None,
    ])

    restored = pc.replace_substring_regex(values, pattern, replacement, max_replacements=1).to_pylist()

    assert restored == [
        "s3://raw-bucket/raw/bookings/a b.csv",
        "s3://raw-bucket/quarantine/exec-1/",
        f"file://{tmp_path}/elsewhere/s3/raw-bucket/x.csv",
        "BK1-000000001",
        None,
    ]
