"""Shared helpers for the emulator tests: polling, execution histories, and the synthesized
pipeline deployed into the emulator with a stand-in for the Glue job (the orchestration tests drive
the state machine of the synthesized CDK app, not a hand-written copy)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from airline_local.aws.emulator import Emulator
from airline_local.glue.job_runner import JobSpec

JOBS_DIR = Path(__file__).parent / "jobs"
ROLE_ARN = "arn:aws:iam::123456789012:role/local"
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll until check() returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 40.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        description = sfn.describe_execution(executionArn=execution_arn)
        return description if description["status"] != "RUNNING" else None

    return wait_for(finished, timeout, 0.2, f"execution {execution_arn} to finish")


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    return sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


def entered_states(sfn: Any, execution_arn: str) -> list[str]:
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history(sfn, execution_arn)
        if "stateEnteredEventDetails" in event
    ]


# -- the synthesized pipeline -------------------------------------------------------------------
# Deployed with airline_local.local_stack.deploy, with the Glue job swapped for a plain-Python
# stand-in that writes the real job's RunSummary.

PROJECT_DIR = Path(__file__).resolve().parents[2]

STAND_IN_JOB = '''\
"""Stand-in for the ETL job (orchestration tests): no Spark, no warehouse; the real job's arguments
and its RunSummary (glue_scripts/ingest_bookings.py), written under --data_root_uri/runs/ on success
and on failure (with `error`), as the real job does. A file containing FAIL fails the run."""
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, {glue_scripts!r})
from awsglue.utils import getResolvedOptions  # noqa: E402
from ingest_bookings import RunSummary  # noqa: E402


class BookingFileError(Exception):
    pass


def local_path(uri):
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(unquote(parsed.path))


args = getResolvedOptions(sys.argv, ["JOB_NAME", "source_uri", "execution_id", "data_root_uri"])
text = local_path(args["source_uri"]).read_text(encoding="utf-8")
summary = RunSummary(execution_id=args["execution_id"], source_file=args["source_uri"],
                     started_at=datetime.now(timezone.utc))
summary.rows_read = len(text.splitlines()[1:])
out = local_path(args["data_root_uri"].rstrip("/") + "/runs/" + args["execution_id"] + ".json")
out.parent.mkdir(parents=True, exist_ok=True)
if "FAIL" in text:
    error = BookingFileError(args["source_uri"] + ": the file asks to fail")
    summary.status, summary.error = "FAILED", type(error).__name__ + ": " + str(error)
    out.write_text(summary.to_json(datetime.now(timezone.utc)))
    raise error
summary.status, summary.rows_inserted = "SUCCEEDED", summary.rows_read
out.write_text(summary.to_json(datetime.now(timezone.utc)))
'''


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """The input EventBridge gives the state machine for an S3 Object Created event (the fields read)."""
    return {"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {
                "key": key, "version-id": uuid.uuid4().hex, "sequencer": uuid.uuid4().hex[:18].upper()}}}


@dataclass
class SynthesizedPipeline:
    """The synthesized stack deployed into the emulator, with its job replaced by STAND_IN_JOB."""

    emulator: Emulator
    assembly: Any  # airline_local.local_stack.CloudAssembly
    stack: Any  # airline_local.local_stack.DeployedStack
    crawler: str
    job: str

    @property
    def bucket(self) -> str:
        return self.stack.raw_bucket

    @property
    def state_machine_arn(self) -> str:
        return self.stack.state_machine_arn

    def definition(self) -> dict[str, Any]:
        """The definition as deployed (read back from the emulator)."""
        sfn = self.emulator.client("stepfunctions")
        return json.loads(sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)["definition"])

    def upload(self, key: str, body: bytes) -> None:
        self.emulator.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body)

    def executions_for(self, key: str, state_machine_arn: str | None = None) -> list[dict[str, Any]]:
        """Executions (describe_execution results) whose event names this object key."""
        sfn = self.emulator.client("stepfunctions")
        found = []
        for listed in sfn.list_executions(stateMachineArn=state_machine_arn or self.state_machine_arn)["executions"]:
            described = sfn.describe_execution(executionArn=listed["executionArn"])
            if json.loads(described.get("input") or "{}").get("detail", {}).get("object", {}).get("key") == key:
                found.append(described)
        return found

    def execution_for(self, key: str) -> dict[str, Any]:
        [execution] = wait_for(lambda: self.executions_for(key), what=f"an execution for {key}")
        return execution

    def job_runs_for(self, execution_name: str) -> list[dict[str, Any]]:
        runs = self.emulator.client("glue").get_job_runs(JobName=self.job)["JobRuns"]
        return [r for r in runs if r.get("Arguments", {}).get("--execution_id") == execution_name]

    def mails_for(self, execution_name: str) -> list[Any]:
        """The notifications about one execution (the pipeline's messages name it)."""
        return [m for m in self.emulator.mailbox.messages() if f"execution {execution_name}" in m.get_content()]

    def create_variant(self, name: str, mutate: Callable[[dict[str, Any]], None]) -> str:
        """A second state machine: the deployed definition changed by `mutate`, created through
        local_stack's own state-machine step (same role, type and settings). Returns its ARN."""
        from airline_local.aws.cfn import Template
        from airline_local.local_stack import _create_state_machine

        definition = self.definition()
        mutate(definition)
        template = self.assembly.template
        [lid] = [lid for lid in template.resources_of_type("AWS::StepFunctions::StateMachine")
                 if template.ref(lid) == self.state_machine_arn]
        body = json.loads(json.dumps(template.body))
        properties = body["Resources"][lid]["Properties"]
        properties.pop("DefinitionSubstitutions", None)
        properties.update(DefinitionString=json.dumps(definition), StateMachineName=name)
        variant = Template(body, region=template.region, stack_name=template.stack_name)
        return _create_state_machine(variant, lid, self.emulator.client("stepfunctions"))

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Every execution of every state machine finished and the crawler READY (stopping a crawl
        a test left running), so the next test starts from a quiet stack."""
        sfn, glue = self.emulator.client("stepfunctions"), self.emulator.client("glue")

        def idle() -> bool:
            for machine in sfn.list_state_machines()["stateMachines"]:
                if sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")["executions"]:
                    return False
            state = glue.get_crawler(Name=self.crawler)["Crawler"]["State"]
            if state == "RUNNING":
                glue.stop_crawler(Name=self.crawler)
            return state == "READY"

        wait_for(idle, timeout, 0.2, "the stack to be idle")


def deploy_synthesized_pipeline(emulator: Emulator, cdk_out: Path, work_dir: Path) -> SynthesizedPipeline:
    """Deploy the cloud assembly in cdk_out as local mode does, then swap its Glue job's script
    for STAND_IN_JOB (written into work_dir) through the job runner."""
    from airline_local.local_stack import CloudAssembly, deploy

    assembly = CloudAssembly.load(cdk_out)
    stack = deploy(assembly, emulator.client, emulator.job_runner)
    [crawler], [job] = stack.crawler_names, stack.job_names
    script = Path(work_dir) / "stand_in_job.py"
    script.write_text(STAND_IN_JOB.format(glue_scripts=str(PROJECT_DIR / "glue_scripts")))
    emulator.job_runner.register_job(job, JobSpec(
        script=script, default_arguments={"--data_root_uri": f"s3://{stack.raw_bucket}"}, needs_java=False,
    ))
    return SynthesizedPipeline(emulator, assembly, stack, crawler, job)
