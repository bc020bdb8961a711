"""The Glue job runs as its role (issue 12, wiring plan step 7): with the IAM check on, a job run's S3
mirror (download of its inputs, upload of its outputs) and the script's own AWS calls are signed with
the job role's session (glue.amazonaws.com, GlueJobRunnerSession), on a real moto server, against the
real synthesized template; a warm worker takes each run's identity from the run request and forgets it
afterwards."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


from airline_local.aws.patches.glue_jobs import GLUE_JOB_SESSION_NAME
from airline_local.glue.java import check_java
from airline_local.glue.job_runner import JobRunner, JobSpec
from iam_mutations import actor_role, remove_action, transform
from iam_stack import checked_with, deployed_stack, glue_job_of_the_glue_role, policy_names, run_job
from test_iam_hook import Stack

# A plain-Python job: who it is (sts:GetCallerIdentity, signed with whatever boto3 finds in the
# environment, as the real script's redshift-data client is), and the input the runner mirrored.
PROBE_JOB = textwrap.dedent('''\
    import json, os, sys
    import boto3
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    identity = boto3.client("sts").get_caller_identity()
    print("IDENTITY", identity["Arn"], identity["UserId"])
    source = args.get("--input", "").removeprefix("file://")
    output = args.get("--output", "").removeprefix("file://")
    if output:
        os.makedirs(os.path.dirname(output), exist_ok=True)
        with open(output, "w") as out:
            json.dump({"identity": identity["Arn"], "input": open(source).read() if source else None}, out)
''')


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with deployed_stack(emulator, tmp_path_factory.getbasetemp() / "iam-cdk.out") as deployed:
        yield deployed


@pytest.fixture(scope="module")
def probe_job(stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    script = tmp_path_factory.mktemp("probe") / "probe_job.py"
    script.write_text(PROBE_JOB)
    return glue_job_of_the_glue_role(stack, "iam-probe-job", script)


def read(stack: Stack, key: str) -> dict[str, Any]:
    return json.loads(stack.emulator.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read())


def test_a_job_run_mirrors_s3_and_calls_aws_as_the_job_role(stack, probe_job):
    stack.emulator.client("s3").put_object(Bucket=stack.bucket, Key="raw/bookings/probe.csv", Body=b"a,b\n")
    run = run_job(stack, probe_job, {"--input": f"s3://{stack.bucket}/raw/bookings/probe.csv",
                                     "--output": f"s3://{stack.bucket}/staging/probe-1/identity.json"})
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    written = read(stack, "staging/probe-1/identity.json")
    # Downloaded and uploaded by the mirror, as the role (the hook let the role's grants decide).
    assert written == {"identity": stack.session_arn(stack.glue_role, GLUE_JOB_SESSION_NAME), "input": "a,b\n"}


def test_without_put_on_staging_the_job_run_fails_naming_the_denial(stack, probe_job):
    no_put = transform(lambda b: remove_action(b, actor_role(b, "glue_job"), "s3:PutObject", "/staging/*"))
    with checked_with(stack, no_put):
        run = run_job(stack, probe_job, {"--output": f"s3://{stack.bucket}/staging/probe-2/identity.json"})
    assert run["JobRunState"] == "FAILED"
    message = run["ErrorMessage"]
    for part in ("could not upload the job's output to S3", "AccessDenied",
                 stack.session_arn(stack.glue_role, GLUE_JOB_SESSION_NAME),
                 f"s3:PutObject on resource: arn:aws:s3:::{stack.bucket}/staging/probe-2/identity.json",
                 *policy_names(stack, stack.glue_role)):
        assert part in message, f"{part!r} not in {message!r}"


def test_two_warm_runs_under_two_roles_report_two_identities(stack, tmp_path: Path):
    check_java()
    script = tmp_path / "probe_job.py"
    script.write_text(PROBE_JOB)
    runner = JobRunner(tmp_path / "runs", stack.emulator.endpoint_url, stack.emulator.region,
                       warm_workers=1, warm_up_workers=False)
    broker = stack.emulator.role_broker
    try:
        runner.register_job("probe", JobSpec(script=script))  # a Spark job: runs in the warm worker
        glue = broker.credentials(stack.glue_role, GLUE_JOB_SESSION_NAME, "glue.amazonaws.com")
        crawler = broker.credentials(stack.crawler_role, "AWS-Crawler", "glue.amazonaws.com")
        identities = []
        for run_id, credentials in (("jr_1", glue), ("jr_2", crawler), ("jr_3", None)):
            outcome = runner.run("probe", run_id, {}, 120, credentials=credentials)
            stdout = outcome.stdout_path.read_text()
            stderr = outcome.stderr_path.read_text()
            assert "warm worker" in stderr
            identities.append((outcome.state, stdout.split()[1] if "IDENTITY" in stdout else stderr.strip().splitlines()[-1]))
    finally:
        runner.close()
    assert identities[0] == ("SUCCEEDED", stack.session_arn(stack.glue_role, GLUE_JOB_SESSION_NAME))
    assert identities[1] == ("SUCCEEDED", stack.session_arn(stack.crawler_role, "AWS-Crawler"))
    # No credentials in the request: the dummy key, which the check does not know (never run 2's role).
    assert identities[2][0] == "FAILED" and "InvalidClientTokenId" in identities[2][1]


def test_the_worker_environment_holds_a_key_the_emulator_never_issued(stack):
    from airline_local.glue.job_runner import WORKER_START_CREDENTIALS

    with pytest.raises(Exception) as refused:
        stack.raw("sts", aws_access_key_id=WORKER_START_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                  aws_secret_access_key="x").get_caller_identity()
    assert "InvalidClientTokenId" in str(refused.value)
