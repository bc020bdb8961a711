"""The whole pipeline on one machine: the synthesized stack deployed into the emulator, with a real
PostgreSQL server behind the Redshift Data API, local Spark behind Glue, and a mailbox behind SNS.

    with LocalPipeline(state_dir) as pipeline:
        [result] = pipeline.run([Path("bookings.csv")])

A file is uploaded under the raw prefix, exactly as a data engineer would in AWS; the emulated
EventBridge rule starts the state machine, and this module only watches: it finds the execution the
upload started, follows it to the end, and collects the run summary the job wrote and the email
that was sent.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from airline_local import history
from airline_local.aws.cfn import Template
from airline_local.aws.emulator import Emulator
from airline_local.aws.patches.runtime import RUNTIME
from airline_local.local_stack import PROJECT_DIR, CloudAssembly, DeployedStack, deploy, job_spec, synthesize
from airline_local.custom_resources import function_session_client
from airline_local.glue.java import check_java
from airline_local.warehouse.postgres import PostgresServer, check_port_free
from airline_local.warehouse.redshift_data import DataApiEmulator
from airline_local.warehouse.statements import Warehouse
from airline_local.warehouse.copy_role import CopyRoleReader

RAW_PREFIX = "raw/bookings/"
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
STATUS_POLL_SECONDS = 0.25
HISTORY_POLL_SECONDS = 1.0
# Local synth settings: the definition's own crawler polling, at local speed.
# Local runs take seconds, not minutes: poll and retry at that pace.
LOCAL_CONTEXT = {"crawlerPollIntervalSeconds": 1, "glueConcurrencyRetrySeconds": 2}
# Wait states run at half their written length (the definition's 1 s crawler poll, whole seconds
# in ASL): a local crawl takes ~1 s, so a run no longer idles up to a second after it. The poll
# limit still allows 30 s of crawling.
LOCAL_WAIT_TIME_SCALE = 0.5
# Two idle JVMs (~0.5 GB each): a run on each core starts warm. The environment variable sets
# another default (make test runs two pipelines at once on two cores: one JVM each is enough).
WARM_WORKERS_VARIABLE = "AIRLINE_LOCAL_WARM_WORKERS"
DEFAULT_WARM_WORKERS = int(os.environ.get(WARM_WORKERS_VARIABLE) or 2)

# A stack started for given files only (`local run`, `demo`) whose files add up to no more than
# this runs its JVMs with the C1 JIT only (spark_conf.SMALL_INPUTS_JAVA_OPTIONS): well under the
# ~1M rows where C2's compilations start to pay back on a fresh JVM.
SMALL_INPUTS_BYTES = 32 * 2**20

StateCallback = Callable[["Upload", str, str], None]  # (upload, event type, state name)


def are_small(files: Sequence[Path]) -> bool:
    """Whether these files together are small enough for ``LocalPipeline(small_inputs=True)``."""
    return sum(Path(f).stat().st_size for f in files) <= SMALL_INPUTS_BYTES


@contextmanager
def temporary_state_dir(prefix: str) -> Iterator[Path]:
    """A fresh state directory, removed afterwards. Mode 0711, unlike mkdtemp's 0700 (and
    pytest's tmp_path parents): PostgreSQL runs as an unprivileged user when we are root and
    must reach its data directory inside."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class PipelineError(RuntimeError):
    """The local pipeline could not run a file (not: the file failed its run)."""


@dataclass(frozen=True)
class Upload:
    file: Path
    key: str
    uploaded_at: float


@dataclass
class RunResult:
    """One file's trip through the pipeline, in the shape `airline-ingest local run --json` prints."""

    file: str
    key: str
    execution_name: str | None
    status: str
    summary: dict[str, Any] | None
    notification: dict[str, str] | None
    error: str | None
    states: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        del document["states"], document["seconds"]
        return document


class LocalPipeline:
    """Starts the local stack on enter, stops every process it started on exit."""

    def __init__(self, state_dir: Path, *, context: dict[str, Any] | None = None,
                 on_email: Callable[[Path], None] | None = None,
                 aws_port: int | None = None, warehouse_port: int | None = None,
                 warm_workers: int = DEFAULT_WARM_WORKERS, iam_check: bool = True,
                 template_transform: Callable[[dict[str, Any]], Any] | None = None,
                 small_inputs: bool = False) -> None:
        """``warm_workers``: Spark workers kept warm for the Glue job (0: a fresh process and
        JVM per run, as on AWS, several seconds slower; see airline_local.glue.spark_worker).
        ``iam_check``: authorize every emulator call against the template's policies, as
        AWS would (on by default; docs/iam-check.md). Off only to debug a run without it. ``template_transform``: edits a deep copy of the synthesized template
        body in place before the deploy and the IAM check read it; for tests that remove a grant or
        add a Deny (tests/local/iam_mutations.py). ``small_inputs``: the pipeline will only see
        small files (``are_small``): its Spark JVMs run the C1 JIT only, faster on them."""
        self.state_dir = Path(state_dir).resolve()
        self.context = {**LOCAL_CONTEXT, **(context or {})}
        self.on_email = on_email
        self.aws_port = aws_port
        self.warehouse_port = warehouse_port
        self.warm_workers = warm_workers
        self.iam_check = iam_check
        self.template_transform = template_transform
        self.small_inputs = small_inputs
        self.template: Template | None = None  # the template deployed (transformed, if asked)
        self.iam: Any = None  # the IamCheck in force (iam_check=True)
        self.postgres: PostgresServer | None = None
        self.emulator: Emulator | None = None
        self.data_api: DataApiEmulator | None = None
        self.warehouse: Warehouse | None = None
        self.stack: DeployedStack | None = None
        self.cloud_assembly_dir: Path | None = None
        self._claimed: set[str] = set()
        self._claim_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalPipeline:
        # What can be checked in a moment is checked before the slow start-up steps.
        for port in (self.aws_port, self.warehouse_port):
            if port is not None:
                check_port_free(port)
        check_java()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # PostgreSQL starts (with initdb in a new state directory) while the app is synthesized
        # and the emulator starts: ~0.7 s less before the first upload.
        starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-start")
        postgres = starter.submit(PostgresServer(self.state_dir / "postgres", self.warehouse_port).start)
        starter.shutdown(wait=False)  # its one thread ends with the start
        try:
            # The synthesized app: in the state directory, or in a synth cache shared by processes.
            self.cloud_assembly_dir = synthesize(self.state_dir / "cdk.out", self.context)
            assembly = _transformed(CloudAssembly.load(self.cloud_assembly_dir), self.template_transform)
            self.template = assembly.template
            self.emulator = Emulator(self.state_dir / "emulator", self.aws_port, warm_workers=self.warm_workers,
                                     iam_check=self.iam_check, small_inputs=self.small_inputs)
            self.emulator.wait_time_scale = LOCAL_WAIT_TIME_SCALE
            # The Glue jobs' warm Spark workers start their JVMs now, while PostgreSQL and the deploy
            # take their seconds (the deploy registers the same jobs again: the workers stay).
            for lid in assembly.template.resources_of_type("AWS::Glue::Job"):
                self.emulator.job_runner.register_job(assembly.template.name_of(lid), job_spec(assembly, lid))
            self.postgres = postgres.result()
            self.warehouse = Warehouse(self.postgres.dsn, read_object=self._read_objects)
            self.warehouse.restore_uris = self.emulator.job_runner.mirror_uri_pattern
            self.data_api = DataApiEmulator(self.warehouse)
            self.emulator.data_api = self.data_api
            if self.on_email is not None:
                on_email = self.on_email
                self.emulator.mailbox.on_message = lambda _message, path: on_email(path)
            if self.iam_check:
                # On before the deploy: every deploy call is mapped (the operator's, unchecked).
                self.iam = self.emulator.start_iam_check(assembly.template)
            # The schema is migrated by its custom resource's handler, as the function's role: Data
            # API batches (the pending migrations of sql/migrations/, the grants) on the local warehouse.
            function_client = function_session_client(assembly.template, self.emulator.role_broker, self.emulator.client)
            self.stack = deploy(assembly, self.emulator.client, self.emulator.job_runner, function_client=function_client)
            if self.emulator.role_broker is not None:
                # The IAM check is on: a COPY reads S3 as its IAM_ROLE, and finds the running job's
                # staged output there, written as the job's role (docs/iam-check.md, step 9).
                emulator = self.emulator
                self.warehouse.copy_reader = CopyRoleReader(lambda: emulator.role_broker, assembly.template)
                self.warehouse.stage_local = self.emulator.job_runner.stage_to_s3
        except BaseException:
            if self.postgres is None and postgres.exception() is None:
                self.postgres = postgres.result()  # started meanwhile: stopped with the rest
            self.stop()
            raise
        return self

    def check_iam_with(self, template_transform: Callable[[dict[str, Any]], Any] | None) -> Any:
        """From now on, authorize every call against a copy of the synthesized template edited by
        ``template_transform`` (None: the template as synthesized), without a new deploy: for edits
        of IAM policies only (tests/local/iam_mutations.py). Returns the IamCheck in force."""
        self._require_stack()
        if not self.iam_check:
            raise PipelineError("the IAM check is off for this pipeline: create it with iam_check=True")
        assembly = _transformed(CloudAssembly.load(self.cloud_assembly_dir), template_transform)  # type: ignore[arg-type]
        self.template = assembly.template
        self.iam = self.emulator.start_iam_check(assembly.template)  # type: ignore[union-attr]
        return self.iam

    def update_job_files(self) -> list[str]:
        """Deploy what changed in the app since the start, when only the Glue jobs' files changed
        (their script and --extra-* assets: a change to the Glue script or its modules), as `cdk
        deploy` would update the jobs: their next runs run the new files. Re-synthesizes (the cache
        answers at once when nothing changed). Any other change of the template needs a new stack:
        PipelineError. Returns the names of the jobs updated."""
        self._require_stack()
        out_dir = synthesize(self.state_dir / "cdk.out", self.context)
        assembly = _transformed(CloudAssembly.load(out_dir), self.template_transform)
        deployed = self.template
        if deployed is None or assembly.template.body == deployed.body:
            return []
        if _without_job_files(assembly.template.body) != _without_job_files(deployed.body):
            raise PipelineError(
                "the synthesized template changed beyond the Glue job's files (script, --extra-py-files, "
                "--extra-files) since this stack was deployed: restart it (`airline-ingest local down`, "
                "then `local up`) to deploy the change")
        updated = []
        for lid in assembly.template.resources_of_type("AWS::Glue::Job"):
            if assembly.template.resources[lid] != deployed.resources.get(lid):
                name = assembly.template.name_of(lid)
                self.emulator.job_runner.register_job(name, job_spec(assembly, lid))  # type: ignore[union-attr]
                updated.append(name)
        self.cloud_assembly_dir, self.template = out_dir, assembly.template
        if self.iam_check:
            self.iam = self.emulator.start_iam_check(assembly.template)  # type: ignore[union-attr]
        return updated

    def stop(self) -> None:
        if self.data_api is not None:
            self.data_api.close()
            self.data_api = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- running files -----------------------------------------------------------------------

    def run(self, files: Sequence[Path], *, concurrent: bool = False, timeout: float = 600,
            on_state: StateCallback | None = None) -> list[RunResult]:
        """Upload each file and follow its execution; in order, or all at once with `concurrent`."""
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise PipelineError(f"no such file: {', '.join(missing)}")
        self.check_rule_matches(files)
        if not concurrent:
            return [self.wait(self.upload(f), timeout=timeout, on_state=on_state) for f in files]
        uploads = [self.upload(f) for f in files]
        results: list[RunResult | None] = [None] * len(uploads)

        def follow(index: int) -> None:
            results[index] = self.wait(uploads[index], timeout=timeout, on_state=on_state)

        threads = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(len(uploads))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [r for r in results if r is not None]

    def check_rule_matches(self, files: Sequence[Path]) -> None:
        """Refuse, before any upload, a file the template's EventBridge rule would ignore."""
        from airline_local.upload_rule import refusal

        if self.template is not None:
            refused = [r for r in (refusal(self.template, RAW_PREFIX + Path(f).name) for f in files) if r]
            if refused:
                raise PipelineError("; ".join(refused))

    def upload(self, file: Path, key: str | None = None) -> Upload:
        stack = self._require_stack()
        key = key or RAW_PREFIX + Path(file).name
        uploaded_at = time.time()
        self.emulator.client("s3").upload_file(str(file), stack.raw_bucket, key)  # type: ignore[union-attr]
        return Upload(Path(file), key, uploaded_at)

    def wait(self, upload: Upload, *, timeout: float = 600, on_state: StateCallback | None = None) -> RunResult:
        """Follow the execution this upload started until it ends; record it in the run history."""
        result = self._follow(upload, timeout=timeout, on_state=on_state)
        self._record(upload, result)
        return result

    def _record(self, upload: Upload, result: RunResult) -> None:
        from airline_local.status import ROW_FIELDS

        history.record(self.state_dir, {
            "execution": result.execution_name or f"not-started:{upload.key}@{upload.uploaded_at:.3f}",
            "file": result.file, "status": result.status, "error": result.error,
            "rows": {name: (result.summary or {}).get(name) for name in ROW_FIELDS},
            "started_at": datetime.fromtimestamp(upload.uploaded_at, timezone.utc).isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "seconds": result.seconds, "state_machine": self.stack.state_machine_arn.rsplit(":", 1)[-1]
            if self.stack else None})

    def _follow(self, upload: Upload, *, timeout: float, on_state: StateCallback | None) -> RunResult:
        sfn = self.emulator.client("stepfunctions")  # type: ignore[union-attr]
        started = time.monotonic()
        execution = self._find_execution(upload, sfn, timeout)
        if execution is None:
            denied = "".join(f"; {d.describe()}" for d in self._denials_for(upload))
            return RunResult(str(upload.file), upload.key, None, "NOT_STARTED", None, None,
                             f"no execution started for s3://{self.stack.raw_bucket}/{upload.key}{denied}",
                             seconds=round(time.monotonic() - started, 2))
        seen_events = 0
        states: list[str] = []
        history_read_at = float("-inf")
        while True:
            description = sfn.describe_execution(executionArn=execution)
            done = description["status"] in TERMINAL_STATUSES
            # The history grows with every state and retry, and moto serializes all of it on
            # every call (most of the emulator's CPU in a burst): read it at the end, and about
            # once a second only for a caller that shows progress.
            progress_due = on_state is not None and time.monotonic() - history_read_at >= HISTORY_POLL_SECONDS
            if done or progress_due:
                history_read_at = time.monotonic()
                history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
                for event in history[seen_events:]:
                    name = event.get("stateEnteredEventDetails", {}).get("name")
                    if name:
                        states.append(name)
                        if on_state:
                            on_state(upload, "entered", name)
                seen_events = len(history)
            if done:
                break
            if time.monotonic() - started > timeout:
                sfn.stop_execution(executionArn=execution, error="LocalTimeout",
                                   cause=f"no result within {timeout:.0f} s")
                raise PipelineError(f"{upload.key}: execution {execution} still running after {timeout:.0f} s")
            time.sleep(STATUS_POLL_SECONDS)
        name = description["name"]
        status = description["status"]
        summary = self._run_summary(name)
        notification = self._notification_for(name)
        error = None
        if status != "SUCCEEDED":
            error = (summary or {}).get("error") or description.get("cause") or description.get("error")
            if notification is None:
                # No email (e.g. a denied Publish): the last task failure is the one to report.
                error = _with_last_task_failure(error, history)
        return RunResult(
            file=str(upload.file), key=upload.key, execution_name=name, status=status,
            summary=summary, notification=notification, error=error,
            states=states, seconds=round(time.monotonic() - started, 2),
        )

    def _find_execution(self, upload: Upload, sfn: Any, timeout: float) -> str | None:
        """The execution started by this upload: the oldest unclaimed one whose event names its key."""
        deadline = time.monotonic() + min(timeout, 30)
        while time.monotonic() < deadline:
            executions = sfn.list_executions(stateMachineArn=self.stack.state_machine_arn)["executions"]
            for execution in sorted(executions, key=lambda e: e["startDate"]):
                arn = execution["executionArn"]
                if arn in self._claimed or execution["startDate"].timestamp() < upload.uploaded_at - 1:
                    continue
                event = json.loads(sfn.describe_execution(executionArn=arn).get("input") or "{}")
                if event.get("detail", {}).get("object", {}).get("key") == upload.key:
                    with self._claim_lock:
                        if arn not in self._claimed:
                            self._claimed.add(arn)
                            return arn
            # The rule was refused: no execution will come (a refused S3 -> queue delivery for the
            # same key does not stop EventBridge's).
            if any(d.actor.startswith("EventBridge") for d in self._denials_for(upload)):
                return None
            time.sleep(0.1)
        return None

    def _denials_for(self, upload: Upload) -> list[Any]:
        """What an actor was refused for this upload where no caller saw it (the IAM check)."""
        return [d for d in list(RUNTIME.denials) if d.object_key == upload.key and d.at >= upload.uploaded_at - 1]

    def _run_summary(self, execution_name: str) -> dict[str, Any] | None:
        s3 = self.emulator.client("s3")  # type: ignore[union-attr]
        try:
            body = s3.get_object(Bucket=self.stack.raw_bucket, Key=f"runs/{execution_name}.json")["Body"]
        except s3.exceptions.NoSuchKey:
            return None
        return json.loads(body.read())

    def _notification_for(self, execution_name: str) -> dict[str, str] | None:
        for message in reversed(self.emulator.mailbox.messages()):  # type: ignore[union-attr]
            body = _body(message)
            if execution_name in body:
                return {"subject": str(message["Subject"]), "message": body}
        return None

    # -- warehouse ---------------------------------------------------------------------------

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        if self.warehouse is None:
            raise PipelineError("the local warehouse is not running")
        return self.warehouse.query(sql)

    def _read_objects(self, uri: str) -> list[tuple[str, bytes]]:
        """Every object under an s3:// prefix, for COPY from the emulated S3."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        s3 = self.emulator.client("s3")  # type: ignore[union-attr]
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return [(k, s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(keys)]

    def _require_stack(self) -> DeployedStack:
        if self.stack is None or self.emulator is None:
            raise PipelineError("the local pipeline is not started")
        return self.stack


def last_task_failure(history: Sequence[dict[str, Any]]) -> str | None:
    """'<state>: <error>: <cause>' of the execution's last TaskFailed event, if any."""
    state = None
    failure = None
    for event in history:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            state = entered.get("name")
        details = event.get("taskFailedEventDetails")
        if event.get("type") == "TaskFailed" and details is not None:
            failure = f"{state}: {details.get('error')}: {details.get('cause')}"
    return failure


def _with_last_task_failure(error: str | None, history: Sequence[dict[str, Any]]) -> str | None:
    failure = last_task_failure(history)
    if failure is None or (error and failure in error):
        return error
    return f"no notification was sent; last task failure: {failure}" + (f" (run error: {error})" if error else "")


def _transformed(assembly: CloudAssembly,
                 transform: Callable[[dict[str, Any]], Any] | None) -> CloudAssembly:
    if transform is None:
        return assembly
    body = copy.deepcopy(dict(assembly.template.body))  # the synth cache's copy stays untouched
    transform(body)  # edits in place; what it returns is ignored
    template = assembly.template
    return replace(assembly, template=Template(body, region=template.region, stack_name=template.stack_name))


def _without_job_files(body: dict[str, Any]) -> dict[str, Any]:
    """The template less the Glue jobs' asset references (what a change to the job's files changes)."""
    body = copy.deepcopy(body)
    for resource in body.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Glue::Job":
            properties = resource.get("Properties", {})
            properties.get("Command", {}).pop("ScriptLocation", None)
            for argument in ("--extra-py-files", "--extra-files"):
                properties.get("DefaultArguments", {}).pop(argument, None)
    return body


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""
