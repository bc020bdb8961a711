"""Glue's run limit and job run queuing, locally (issue 21, defect 4), against the real moto server:
at most ExecutionProperty.MaxConcurrentRuns runs of a job at once; a start beyond it is refused
with ConcurrentRunsExceededException, or, with JobRunQueuingEnabled, waits (WAITING) and starts,
oldest first, when a run ends. The jobs here hold their run until the test opens their gate
(tests/local/jobs/gated_job.py: plain Python, no Spark)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from emulator_helpers import JOBS_DIR, ROLE_ARN, wait_for, wait_for_execution

from airline_local.glue.job_runner import JobSpec


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def gated_job(emulator):
    """make(limit, queuing) -> a job name; runs of it started with `--gate <path>` run while that
    file exists."""

    def make(limit: int, queuing: bool | None) -> str:
        job = unique("gated")
        extra = {} if queuing is None else {"JobRunQueuingEnabled": queuing}
        emulator.client("glue").create_job(
            Name=job, Role=ROLE_ARN, Command={"Name": "glueetl", "ScriptLocation": "s3://x/gated.py"},
            ExecutionProperty={"MaxConcurrentRuns": limit}, **extra)
        emulator.job_runner.register_job(job, JobSpec(script=JOBS_DIR / "gated_job.py", needs_java=False))
        return job

    return make


@pytest.fixture()
def gates(tmp_path):
    """gate(name) -> a closed gate's path (a file); opening a gate = deleting its file. Every gate
    is opened at the end, so that no run outlives its test."""
    made: list[Path] = []

    def gate(name: str) -> str:
        path = tmp_path / name
        path.touch()
        made.append(path)
        return str(path)

    yield gate
    for path in made:
        path.unlink(missing_ok=True)


def state(glue, job: str, run_id: str) -> str:
    return glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]["JobRunState"]


def wait_state(glue, job: str, run_id: str, expected: str) -> dict:
    return wait_for(lambda: (r := glue.get_job_run(JobName=job, RunId=run_id)["JobRun"])["JobRunState"] == expected and r,
                    timeout=60, interval=0.1, what=f"run {run_id[:12]} to be {expected}")


def test_a_start_past_max_concurrent_runs_is_refused_without_queuing_even_at_once(emulator, gated_job, gates):
    glue, job = emulator.client("glue"), gated_job(2, None)
    gate = gates("g")

    def start(_: int) -> str:
        try:
            return glue.start_job_run(JobName=job, Arguments={"--gate": gate})["JobRunId"]
        except ClientError as error:
            return error.response["Error"]["Code"]

    with ThreadPoolExecutor(6) as pool:  # six starts at once: the check and the run's creation are one step
        outcomes = list(pool.map(start, range(6)))
    started = [o for o in outcomes if o.startswith("jr_")]
    assert len(started) == 2 and outcomes.count("ConcurrentRunsExceededException") == 4, outcomes
    assert {state(glue, job, r) for r in started} == {"RUNNING"}
    assert "JobRunQueuingEnabled" not in glue.get_job(JobName=job)["Job"]

    Path(gate).unlink()
    for run_id in started:
        wait_state(glue, job, run_id, "SUCCEEDED")
    # The runs are free again.
    assert glue.start_job_run(JobName=job, Arguments={"--gate": gates("h")})["JobRunId"].startswith("jr_")


def test_with_queuing_runs_past_the_limit_wait_and_start_oldest_first_when_a_run_ends(emulator, gated_job, gates):
    glue, job = emulator.client("glue"), gated_job(1, True)
    assert glue.get_job(JobName=job)["Job"]["JobRunQueuingEnabled"] is True
    gate = [gates(f"run{i}") for i in range(3)]
    runs = [glue.start_job_run(JobName=job, Arguments={"--gate": g})["JobRunId"] for g in gate]

    assert [state(glue, job, r) for r in runs] == ["RUNNING", "WAITING", "WAITING"]
    waiting = glue.get_job_run(JobName=job, RunId=runs[1])["JobRun"]
    assert waiting["JobRunQueuingEnabled"] is True and waiting["ExecutionTime"] == 0 and "CompletedOn" not in waiting

    Path(gate[0]).unlink()
    wait_state(glue, job, runs[0], "SUCCEEDED")
    wait_state(glue, job, runs[1], "RUNNING")
    assert state(glue, job, runs[2]) == "WAITING"  # one run at a time, the oldest first
    Path(gate[1]).unlink()
    wait_state(glue, job, runs[1], "SUCCEEDED")
    wait_state(glue, job, runs[2], "RUNNING")
    Path(gate[2]).unlink()
    wait_state(glue, job, runs[2], "SUCCEEDED")


def test_the_runs_own_queuing_setting_wins_over_the_jobs(emulator, gated_job, gates):
    glue = emulator.client("glue")
    queuing, refusing = gated_job(1, True), gated_job(1, False)
    for job in (queuing, refusing):
        glue.start_job_run(JobName=job, Arguments={"--gate": gates(f"{job}-holder")})
    with pytest.raises(ClientError, match="ConcurrentRunsExceededException"):
        glue.start_job_run(JobName=queuing, JobRunQueuingEnabled=False, Arguments={"--gate": gates("a")})
    run_id = glue.start_job_run(JobName=refusing, JobRunQueuingEnabled=True, Arguments={"--gate": gates("b")})["JobRunId"]
    assert state(glue, refusing, run_id) == "WAITING"


def test_start_job_run_sync_waits_while_its_run_is_waiting(emulator, gated_job, gates):
    """The Run a Job (.sync) task treats WAITING as not finished: the execution goes on waiting,
    then succeeds once its run got a slot and ended."""
    glue, sfn, job = emulator.client("glue"), emulator.client("stepfunctions"), gated_job(1, True)
    holder_gate, queued_gate = gates("holder"), gates("queued")
    holder = glue.start_job_run(JobName=job, Arguments={"--gate": holder_gate})["JobRunId"]
    definition = {"StartAt": "Run", "States": {"Run": {
        "Type": "Task", "Resource": "arn:aws:states:::glue:startJobRun.sync", "End": True,
        "Parameters": {"JobName": job, "Arguments": {"--gate": queued_gate}}}}}
    machine = sfn.create_state_machine(name=unique("sm"), definition=json.dumps(definition), roleArn=ROLE_ARN)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=unique("run"))["executionArn"]

    runs = lambda: [r for r in glue.get_job_runs(JobName=job)["JobRuns"] if r["Id"] != holder]  # noqa: E731
    [queued] = wait_for(runs, what="the execution's job run")
    assert queued["JobRunState"] == "WAITING"
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    Path(holder_gate).unlink()
    wait_state(glue, job, queued["Id"], "RUNNING")
    Path(queued_gate).unlink()
    result = wait_for_execution(sfn, execution, timeout=60)
    assert result["status"] == "SUCCEEDED", result
    assert json.loads(result["output"])["JobRunState"] == "SUCCEEDED"
