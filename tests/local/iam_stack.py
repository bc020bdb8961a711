"""The synthesized stack deployed into the emulator with the IAM check on, for the IAM wiring tests
(glue job, Data API, COPY): the deploy runs through the hook as the operator; ``checked_with`` swaps
the policies in force for a mutated copy of the template (tests/local/iam_mutations.py) and back."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from airline_local.glue.job_runner import JobSpec
from airline_local.local_stack import CloudAssembly, deploy, synthesize
from airline_local.pipeline import LOCAL_CONTEXT
from emulator_helpers import wait_for
from test_iam_hook import Stack


@contextmanager
def deployed_stack(emulator: Any, cdk_out: Path) -> Iterator[Stack]:
    assembly = CloudAssembly.load(synthesize(cdk_out, LOCAL_CONTEXT))
    requested = emulator.iam_check_requested
    emulator.iam_check_requested = True
    try:
        check = emulator.start_iam_check(assembly.template)
        deployed = deploy(assembly, emulator.client, emulator.job_runner)
        yield Stack(emulator, assembly, deployed, check)
    finally:
        emulator.stop_iam_check()
        emulator.iam_check_requested = requested


@contextmanager
def checked_with(stack: Stack, mutation: Callable[[dict[str, Any]], Any]) -> Iterator[dict[str, Any]]:
    """The IAM check on a copy of the template edited by ``mutation`` (same deployed resources:
    policy edits only); the template as synthesized again afterwards. Yields the edited body."""
    body = copy.deepcopy(stack.assembly.template.body)
    mutation(body)
    stack.emulator.start_iam_check(replace(stack.assembly.template, body=body))
    try:
        yield body
    finally:
        stack.check = stack.emulator.start_iam_check(stack.assembly.template)


def policy_names(stack: Stack, role: str) -> list[str]:
    """The identity policies of a role as a denial names them (logical ids)."""
    return [policy.name for policy in stack.check.store.role(role).policies]


def glue_job_of_the_glue_role(stack: Stack, name: str, script: Path) -> str:
    """A Glue job of the template's Glue job role (created by the operator) whose script is a
    plain-Python file (no Spark); returns its name."""
    stack.emulator.client("glue").create_job(Name=name, Role=stack.glue_role,
                                             Command={"Name": "glueetl", "ScriptLocation": f"s3://{stack.bucket}/{name}.py"})
    stack.emulator.job_runner.register_job(name, JobSpec(script=script, needs_java=False))
    return name


def run_job(stack: Stack, job: str, arguments: dict[str, str]) -> dict[str, Any]:
    """Start a run (as the operator) and wait for its end: the JobRun, with the run's stdout."""
    glue = stack.emulator.client("glue")
    run_id = glue.start_job_run(JobName=job, Arguments=arguments)["JobRunId"]

    def finished() -> dict[str, Any] | None:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        return run if run["JobRunState"] not in ("STARTING", "RUNNING") else None

    run = wait_for(finished, 60, 0.2, f"job run {run_id}")
    run["stdout"] = "".join(p.read_text() for p in (stack.emulator.job_runner.work_dir / job).glob(f"*{run_id[:40]}*/stdout.log"))
    return run
