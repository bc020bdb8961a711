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
    try:
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
    finally:
        # The module's synthesized stack below is deployed into an emulator with no state machine.
        sfn.delete_state_machine(stateMachineArn=machine["stateMachineArn"])


# -- the synthesized stack: a backfill holding every run of the job, and uploads meanwhile ---------
# Both state machines as local mode synthesizes them (the suite's cached synth), deployed by the
# local deploy, with one edit that makes the backfill hold every run: the job's MaxConcurrentRuns
# lowered to the backfill's concurrency (4 of 5 by default), which is the template that
# `glueMaxConcurrentRuns: 4, backfillMaxConcurrency: 4` synthesizes. The job's runs execute a
# gated stand-in (emulator_helpers.STAND_IN_JOB, the real RunSummary) held until the test opens the
# gate.

GATE_PRELUDE = '''\
import pathlib as _pathlib, time as _time
_deadline = _time.monotonic() + 120
while _pathlib.Path({gate!r}).exists() and _time.monotonic() < _deadline:
    _time.sleep(0.05)
'''
REFUSED = "Glue.ConcurrentRunsExceededException"


def backfill_concurrency() -> int:
    """The backfill's MaxConcurrency in local mode's synth (stacks/config.py)."""
    from airline_local.local_stack import PROJECT_DIR
    from airline_local.pipeline import LOCAL_CONTEXT
    from stacks.config import config_from_context

    context = json.loads((PROJECT_DIR / "cdk.json").read_text())["context"]
    return config_from_context({**context, **LOCAL_CONTEXT}).backfill_concurrency


def job_limit_of_the_backfill(body: dict) -> None:
    """The job's MaxConcurrentRuns set to the backfill's concurrency: the backfill holds every run."""
    [job] = [r for r in body["Resources"].values() if r["Type"] == "AWS::Glue::Job"]
    job["Properties"]["ExecutionProperty"]["MaxConcurrentRuns"] = backfill_concurrency()


def no_job_run_queuing(body: dict) -> None:
    """The mutation: the template's Glue job without JobRunQueuingEnabled (as before the fix)."""
    [job] = [r for r in body["Resources"].values() if r["Type"] == "AWS::Glue::Job"]
    if not job["Properties"].pop("JobRunQueuingEnabled", None):
        raise AssertionError("the template's job does not enable job run queuing: nothing to remove")


@pytest.fixture(scope="module")
def synthesized(emulator, tmp_path_factory):
    from emulator_helpers import PROJECT_DIR, STAND_IN_JOB, SynthesizedPipeline

    from airline_local.local_stack import CloudAssembly, deploy, synthesize
    from airline_local.pipeline import LOCAL_CONTEXT, _transformed

    if emulator.client("stepfunctions").list_state_machines()["stateMachines"]:
        pytest.skip("the emulator is shared with a suite that already deployed a stack into it")
    work_dir = tmp_path_factory.mktemp("run-limit")
    assembly = _transformed(CloudAssembly.load(synthesize(work_dir / "cdk.out", LOCAL_CONTEXT)), job_limit_of_the_backfill)
    stack = deploy(assembly, emulator.client, emulator.job_runner)
    [crawler], [job] = stack.crawler_names, stack.job_names
    pipeline = SynthesizedPipeline(emulator, assembly, stack, crawler, job)
    gate = work_dir / "gate"
    script = work_dir / "gated_stand_in_job.py"
    script.write_text(GATE_PRELUDE.format(gate=str(gate)) + STAND_IN_JOB.format(glue_scripts=str(PROJECT_DIR / "glue_scripts")))
    spec = JobSpec(script=script, default_arguments={"--data_root_uri": f"s3://{pipeline.bucket}"}, needs_java=False)
    emulator.job_runner.register_job(pipeline.job, spec)
    pipeline.gate, pipeline.gated_job = gate, spec
    yield pipeline
    gate.unlink(missing_ok=True)
    pipeline.wait_until_idle(120)


def deploy_job(pipeline, transform=None) -> None:
    """Deploy the Glue job of the deployed template again, `transform` applied (the stack update of
    that one resource), through the local deploy's own step; its runs stay the gated stand-in."""
    from airline_local.local_stack import _create_job
    from airline_local.pipeline import _transformed

    assembly = _transformed(pipeline.assembly, transform)
    [lid] = assembly.template.resources_of_type("AWS::Glue::Job")
    _create_job(assembly, lid, pipeline.emulator.client("glue"), pipeline.emulator.job_runner)
    pipeline.emulator.job_runner.register_job(pipeline.job, pipeline.gated_job)


def start_backfill_holding_every_run(pipeline) -> str:
    """A backfill of as many files as it runs at once, held at the gate; its execution ARN, once
    its runs hold every run of the job."""
    s3, sfn, glue = (pipeline.emulator.client(s) for s in ("s3", "stepfunctions", "glue"))
    files = backfill_concurrency()
    limit = glue.get_job(JobName=pipeline.job)["Job"]["ExecutionProperty"]["MaxConcurrentRuns"]
    assert files == limit
    prefix = f"raw/backfill/{unique('held')}/"
    for i in range(files):
        s3.put_object(Bucket=pipeline.bucket, Key=f"{prefix}old_{i}.csv", Body=b"booking_id,route\n1,AB\n")
    pipeline.gate.touch()
    arn = sfn.start_execution(stateMachineArn=pipeline.stack.backfill_state_machine_arn, name=unique("backfill"),
                              input=json.dumps({"prefix": prefix}))["executionArn"]
    held = lambda: sum(r["JobRunState"] == "RUNNING" and prefix in r.get("Arguments", {}).get("--source_uri", "")  # noqa: E731
                       for r in glue.get_job_runs(JobName=pipeline.job)["JobRuns"]) == limit
    wait_for(held, timeout=60, interval=0.2, what=f"the backfill to hold all {limit} runs of the job")
    return arn


def refusals(pipeline, execution_arn: str) -> int:
    from emulator_helpers import history

    events = history(pipeline.emulator.client("stepfunctions"), execution_arn)
    return sum((e.get("taskFailedEventDetails") or {}).get("error") == REFUSED for e in events)


def test_uploads_during_a_backfill_holding_every_run_wait_for_a_run_and_are_all_ingested(synthesized):
    pipeline, sfn = synthesized, synthesized.emulator.client("stepfunctions")
    backfill = start_backfill_holding_every_run(pipeline)
    keys = [f"raw/bookings/{unique('during')}.csv" for _ in range(2)]
    for key in keys:
        pipeline.upload(key, b"booking_id,route\n1,AB\n2,CD\n")
    executions = [pipeline.execution_for(key) for key in keys]
    # Each upload's run is queued behind the backfill's: WAITING, not refused.
    for execution in executions:
        wait_for(lambda: [r["JobRunState"] for r in pipeline.job_runs_for(execution["name"])] == ["WAITING"],
                 timeout=60, interval=0.2, what=f"{execution['name']}'s job run to wait")
    assert sfn.describe_execution(executionArn=backfill)["status"] == "RUNNING"

    pipeline.gate.unlink()
    for execution in executions:
        result = wait_for_execution(sfn, execution["executionArn"], timeout=120)
        assert result["status"] == "SUCCEEDED", result
        assert refusals(pipeline, execution["executionArn"]) == 0
        assert [r["JobRunState"] for r in pipeline.job_runs_for(execution["name"])] == ["SUCCEEDED"]
        assert len(pipeline.mails_for(execution["name"])) == 1
    assert wait_for_execution(sfn, backfill, timeout=120)["status"] == "SUCCEEDED"


def test_without_job_run_queuing_an_upload_during_such_a_backfill_is_refused_its_run(synthesized):
    """The defect, shown on the template without JobRunQueuingEnabled: the upload's StartJobRun is
    refused while the backfill holds every run (on AWS it retries for up to ~1.75 h, then fails)."""
    pipeline, sfn = synthesized, synthesized.emulator.client("stepfunctions")
    deploy_job(pipeline, no_job_run_queuing)
    execution, backfill = None, None
    try:
        assert "JobRunQueuingEnabled" not in pipeline.emulator.client("glue").get_job(JobName=pipeline.job)["Job"]
        backfill = start_backfill_holding_every_run(pipeline)
        key = f"raw/bookings/{unique('refused')}.csv"
        pipeline.upload(key, b"booking_id,route\n1,AB\n")
        execution = pipeline.execution_for(key)
        wait_for(lambda: refusals(pipeline, execution["executionArn"]) >= 1, timeout=60, interval=0.2,
                 what=f"{execution['name']}'s StartJobRun to be refused")
        assert pipeline.job_runs_for(execution["name"]) == []  # no run of its own
    finally:
        if execution is not None:  # its retries would wait up to 20 s apart: stop it
            sfn.stop_execution(executionArn=execution["executionArn"])
        pipeline.gate.unlink(missing_ok=True)
        if backfill is not None:
            wait_for_execution(sfn, backfill, timeout=120)
        deploy_job(pipeline)  # the template as deployed
