"""The local Glue job run: the unmodified script, Glue-style arguments, an S3 mirror, Glue outcomes."""

from __future__ import annotations

import io
import json
import shlex
import textwrap
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airline_local.glue import java as java_module
from airline_local.glue.java import INSTALL_JAVA_HINT, JavaNotFoundError, check_java
from airline_local.glue.job_runner import JobRunner, JobSpec, error_message_from_stderr

JOBS_DIR = Path(__file__).parent / "jobs"

PROBE = """
import json, os, sys
from pathlib import Path
from urllib.parse import urlparse
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
source = Path(urlparse(args["--source_uri"]).path)
root = Path(urlparse(args["--data_root_uri"]).path)
out = root / "runs" / "probe.json"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({
    "argv": sys.argv[1:],
    "cwd_files": sorted(os.listdir(".")),
    "source_text": source.read_text(),
    "source_uri": args["--source_uri"],
    "env": {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION",
            "SPARK_LOCAL_IP", "PYSPARK_SUBMIT_ARGS", "PYSPARK_PYTHON", "AWS_PROFILE")},
}))
import helper_module  # from --extra-py-files
staging = root / "staging" / "x"
staging.mkdir(parents=True)
(staging / "part-0.parquet").write_bytes(b"PAR1")
(staging / ".part-0.parquet.crc").write_bytes(b"crc")
(staging / "_SUCCESS").write_bytes(b"")
(root / "raw" / "bookings" / "sneaky.csv").write_text("must never be uploaded")
print(helper_module.GREETING)
"""


@pytest.fixture()
def bucket(emulator):
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    emulator.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture()
def runner(emulator, tmp_path):
    return JobRunner(tmp_path / "runs", emulator.endpoint_url, emulator.region)


def write_script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def keys(emulator, bucket: str) -> list[str]:
    listing = emulator.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def test_script_runs_with_glue_arguments_files_environment_and_s3_mirror(emulator, runner, bucket, tmp_path):
    s3 = emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="raw/bookings/in.csv", Body=b"id\n1\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper_module.py").write_text("GREETING = 'hello from extra-py-files'\n")
    (tmp_path / "load.sql").write_text("select 1;")
    runner.register_job("probe", JobSpec(
        script=write_script(tmp_path, "probe.py", PROBE),
        extra_py_files=[tmp_path / "lib" / "helper_module.py"],
        extra_files=[tmp_path / "load.sql"],
        default_arguments={"--data_root_uri": f"s3://{bucket}", "--max_reject_ratio": "0.1", "--source_uri": "overridden"},
        spark_conf={"spark.sql.shuffle.partitions": "3"},
        needs_java=False,
    ))

    outcome = runner.run("probe", "jr_abc", {
        "--source_uri": f"s3://{bucket}/raw/bookings/in.csv",
        "--TempDir": "s3://no-such-asset-bucket/temp/",  # Glue system arguments reach the script too
        "--extra-py-files": "s3://no-such-asset-bucket/lib.zip",
    })

    assert outcome.state == "SUCCEEDED", outcome.stderr_path.read_text()
    assert outcome.error_message is None
    assert "hello from extra-py-files" in outcome.stdout_path.read_text()
    probe = json.loads(s3.get_object(Bucket=bucket, Key="runs/probe.json")["Body"].read())
    argv = probe["argv"]
    assert argv[:4] == ["--JOB_NAME", "probe", "--JOB_RUN_ID", "jr_abc"]
    assert argv[argv.index("--max_reject_ratio") + 1] == "0.1"
    assert argv[argv.index("--extra-py-files") + 1] == "s3://no-such-asset-bucket/lib.zip"
    assert probe["source_text"] == "id\n1\n"
    # the uploaded JSON names the S3 object, as on AWS, though the script saw a file:// URI
    assert probe["source_uri"] == f"s3://{bucket}/raw/bookings/in.csv"
    assert {"probe.py", "load.sql"} <= set(probe["cwd_files"])
    env = probe["env"]
    assert env["AWS_ENDPOINT_URL"] == emulator.endpoint_url
    assert env["AWS_DEFAULT_REGION"] == emulator.region and env["AWS_PROFILE"] is None
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    submit = shlex.split(env["PYSPARK_SUBMIT_ARGS"])  # how pyspark reads it
    assert submit[:4] == ["--master", "local[2]", "--driver-memory", "1g"] and submit[-1] == "pyspark-shell"
    conf = {submit[i + 1] for i, arg in enumerate(submit) if arg == "--conf"}
    assert {"spark.sql.shuffle.partitions=3", "spark.ui.enabled=false", "spark.driver.host=127.0.0.1"} <= conf
    # outputs uploaded; input, checksums, markers and anything under raw/ not
    assert keys(emulator, bucket) == ["raw/bookings/in.csv", "runs/probe.json", "staging/x/part-0.parquet"]


@pytest.mark.parametrize(
    ("source", "state", "message"),
    [
        (
            """
            import sys
            class BookingFileError(Exception):
                pass
            uri = dict(zip(sys.argv[1::2], sys.argv[2::2]))["--source_uri"]
            print("some log line", file=sys.stderr)
            raise BookingFileError(uri + ": header is missing column booking_id")
            """,
            "FAILED",
            "BookingFileError: s3://{bucket}/raw/bookings/in.csv: header is missing column booking_id",
        ),
        ("import sys\nprint('fatal: bad input', file=sys.stderr)\nsys.exit(2)\n", "FAILED", "fatal: bad input"),
        ("import sys\nsys.exit(3)\n", "FAILED", "exit code 3"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "FAILED", "The job's process was killed by SIGKILL"),
        ("import time\ntime.sleep(30)\n", "TIMEOUT", "Job run timed out after 1 seconds"),
    ],
    ids=["exception", "stderr", "exit-code", "signal", "timeout"],
)
def test_failed_runs_carry_glue_like_error_messages(emulator, runner, bucket, tmp_path, source, state, message):
    emulator.client("s3").put_object(Bucket=bucket, Key="raw/bookings/in.csv", Body=b"id\n")
    runner.register_job("failing", JobSpec(script=write_script(tmp_path, "failing.py", source), needs_java=False))
    outcome = runner.run("failing", "jr_1", {"--source_uri": f"s3://{bucket}/raw/bookings/in.csv"}, timeout_seconds=1)
    assert outcome.state == state
    assert outcome.error_message == message.format(bucket=bucket)
    assert outcome.stderr_path.is_file() and outcome.stdout_path.is_file()


def test_unregistered_job_fails_with_a_clear_message(runner):
    outcome = runner.run("nobody", "jr_2", {})
    assert outcome.state == "FAILED"
    assert outcome.error_message == "no local script is registered for Glue job nobody"


def test_missing_java_says_how_to_install_it(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(JavaNotFoundError, match="openjdk-17-jre-headless"):
        check_java()
    runner.register_job("spark", JobSpec(script=JOBS_DIR / "spark_job.py"))
    outcome = runner.run("spark", "jr_3", {})
    assert outcome.state == "FAILED" and outcome.error_message == INSTALL_JAVA_HINT


def test_exception_line_is_found_after_spark_noise():
    stderr = "\n".join([
        "25/11/26 19:00:00 WARN NativeCodeLoader: Unable to load native-hadoop library",
        "Traceback (most recent call last):",
        '  File "job.py", line 3, in <module>',
        "    raise ValueError('first')",
        "ValueError: first",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "job.py", line 5, in <module>',
        "pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] Path does not exist: file:/x.",
        "25/11/26 19:00:01 INFO ShutdownHookManager: Shutdown hook called",
    ])
    assert error_message_from_stderr(stderr, 1) == (
        "pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] Path does not exist: file:/x."
    )


def test_pyspark_script_runs_on_local_spark_and_its_parquet_reaches_s3(emulator, runner, bucket):
    """The one real-Spark test of the runner: a local[2] session, file:// mirror in and out."""
    try:
        check_java()
    except JavaNotFoundError as error:
        pytest.fail(str(error))
    s3 = emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="raw/bookings/in.csv", Body=b"id,route\n1,AB\n2,AB\n3,CD\n")
    runner.register_job("spark", JobSpec(script=JOBS_DIR / "spark_job.py"))

    outcome = runner.run("spark", "jr_spark", {
        "--source_uri": f"s3://{bucket}/raw/bookings/in.csv",
        "--output_uri": f"s3://{bucket}/staging/run-1/routes/",
    }, timeout_seconds=180)

    assert outcome.state == "SUCCEEDED", outcome.stderr_path.read_text()[-3000:]
    stdout = outcome.stdout_path.read_text()
    assert "master local[2]" in stdout and "shuffle 4" in stdout
    written = [k for k in keys(emulator, bucket) if k.startswith("staging/run-1/routes/")]
    assert written and all(k.endswith(".parquet") for k in written), written
    body = s3.get_object(Bucket=bucket, Key=written[0])["Body"].read()
    rows = sorted(pq.read_table(io.BytesIO(body)).to_pylist(), key=lambda r: r["route"])
    assert rows == [{"route": "AB", "count": 2}, {"route": "CD", "count": 1}]


def test_the_install_hint_names_the_package():
    assert "apt-get install -y openjdk-17-jre-headless" in java_module.INSTALL_JAVA_HINT
