"""Every change the local runtime makes to moto, in one place.

moto is the AWS emulator of the local mode. Where moto 5.2.5 behaves differently from AWS in a way
the pipeline depends on, a small named function below bends moto back to AWS's behaviour (the CDK
app, the state machine and the Glue script stay written for AWS). Each patch says which AWS
behaviour it restores, is applied once (idempotent), and has a test in
tests/local/test_moto_patches.py against a real moto server.

The patched moto calls out to the local runtime through `RUNTIME` (job runner, warehouse Data API,
mailbox, crawler timing), which `airline_local.aws.emulator.Emulator` fills in.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import moto

from airline_local.aws import data_limit, distributed_map, lambda_functions, s3_writes, service_deliveries

LOG = logging.getLogger(__name__)

PINNED_MOTO_VERSION = "5.2.5"


# --------------------------------------------------------------------------------------------
# What the patched moto talks to
# --------------------------------------------------------------------------------------------


@dataclass
class CrawlerSettings:
    """How long a local crawl stays in each state, and failures injected by tests.

    A crawl is RUNNING for at least `running_seconds` (and until the crawl work is done), then
    STOPPING for `stopping_seconds`, then READY, like an AWS crawler (whose minimum is ~1 minute).
    Locally half a second in all: the state machine's first GetCrawler (after one scaled Wait,
    0.5 s) finds the crawl READY, and every execution's crawler phase takes ~0.5 s, not ~1.1 s.
    Tests that need a state to last set longer windows.
    """

    running_seconds: float = 0.3
    stopping_seconds: float = 0.2
    _injected_failures: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next_crawl(self, message: str = "Internal Service Exception") -> None:
        """Make the next crawl end with LastCrawl FAILED and this ErrorMessage."""
        with self._lock:
            self._injected_failures.append(message)

    def take_injected_failure(self) -> str | None:
        with self._lock:
            return self._injected_failures.popleft() if self._injected_failures else None

    def clear_injected_failures(self) -> None:
        with self._lock:
            self._injected_failures.clear()


@dataclass(frozen=True)
class ActorDenial:
    """An actor's call refused by the IAM check, recorded where no API caller sees the error."""

    actor: str  # e.g. "EventBridge rule arn:aws:events:...:rule/NAME"
    principal: str  # the role session ARN (or the role, when it could not be assumed)
    action: str
    resource: str
    message: str
    object_key: str | None = None  # the S3 object the event was about, if any
    at: float = field(default_factory=time.time)

    def describe(self) -> str:
        return (f"{self.actor}: {self.principal} was denied {self.action} on {self.resource}: {self.message}")


@dataclass
class LocalRuntime:
    """The local stand-ins the patched moto delegates to (set by the Emulator)."""

    endpoint_url: str | None = None
    job_runner: Any = None  # airline_local.glue.job_runner.JobRunner
    data_api: Any = None  # airline_local.warehouse.redshift_data.DataApiEmulator
    mailbox: Any = None  # airline_local.aws.mailbox.Mailbox
    crawler_settings: CrawlerSettings = field(default_factory=CrawlerSettings)
    # Multiplies every Wait state's duration (1.0 = as written). Not an AWS behaviour: a local
    # speed knob, because the definition's waits are sized for AWS crawlers (minutes).
    wait_time_scale: float = 1.0
    # The local IAM check (airline_local.aws.iam.requests.IamCheck); None = off, moto as shipped.
    iam_check: Any = None
    # What an actor could not do for lack of a permission, where no API caller sees the error
    # (EventBridge starting a target): the newest 1,000, for the pipeline's result.
    denials: deque[ActorDenial] = field(default_factory=lambda: deque(maxlen=1000))


RUNTIME = LocalRuntime()

_APPLY_LOCK = threading.Lock()
_APPLIED: list[str] = []


def apply_all() -> list[str]:
    """Apply every patch (once per process). Returns the names of the patches in force."""
    with _APPLY_LOCK:
        if _APPLIED:
            return list(_APPLIED)
        check_moto_version(moto.__version__)
        for patch in PATCHES:  # each is idempotent: a failed attempt can simply be retried
            patch()
        _APPLIED.extend(patch.__name__ for patch in PATCHES)
        return list(_APPLIED)


def check_moto_version(installed: str) -> None:
    """The patches reach into moto's internals, which move between releases: insist on the pin."""
    if installed != PINNED_MOTO_VERSION:
        raise RuntimeError(
            f"airline_local's moto patches are written for moto=={PINNED_MOTO_VERSION}, but moto "
            f"{installed} is installed. Install the pinned version "
            f"(pip install 'moto[server]=={PINNED_MOTO_VERSION}') or port moto_patches.py."
        )


def _replace(owner: Any, name: str, new: Any) -> bool:
    """Set owner.name = new unless a local patch is already there. True if replaced now."""
    current = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    target = current.fget if isinstance(current, property) else current
    if getattr(target, "__local_patch__", False):
        return False
    patched = new.fget if isinstance(new, property) else new
    patched.__local_patch__ = True
    setattr(owner, name, new)
    return True


# --------------------------------------------------------------------------------------------
# a. EventBridge: S3 events shaped like AWS's, and state machine targets that start executions
# --------------------------------------------------------------------------------------------

_sequencer = itertools.count(1)

S3_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete": "DeleteObject",
    "s3:ObjectRemoved:DeleteMarkerCreated": "DeleteObject",
}


def s3_eventbridge_event(account_id: str, bucket: Any, event_name: str, key: Any) -> dict[str, Any]:
    """The event S3 sends to EventBridge, as AWS shapes it (S3 user guide, "EventBridge event
    message structure"): ISO-8601 `time`, a fresh UUID `id`, `detail.object.etag` (lower-case,
    moto says `eTag`), the key NOT URL-encoded (unlike classic S3 notifications: real EventBridge
    events carry keys such as `raw/x/2023-08-08T14:03:40.zip` with the colons as typed), an
    increasing hex `sequencer`, `version-id` only for versioned buckets, and `reason` naming
    the API call (PutObject, CompleteMultipartUpload, ...)."""
    from moto.s3.notifications import _detail_type

    obj: dict[str, Any] = {"key": key.name}
    if event_name.startswith("s3:ObjectCreated"):
        obj["size"] = key.size
        obj["etag"] = key.etag.replace('"', "")
    if getattr(key, "version_id", None) and getattr(bucket, "is_versioned", False):
        obj["version-id"] = key.version_id
    obj["sequencer"] = f"{time.time_ns() // 1000:014X}{next(_sequencer) % 0xFFFF:04X}"
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account_id,
        "source-ip-address": "127.0.0.1",
    }
    if event_name in S3_REASONS:
        detail["reason"] = S3_REASONS[event_name]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": _detail_type(event_name),
        "source": "aws.s3",
        "account": account_id,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": bucket.region_name,
        "resources": [f"arn:aws:s3:::{bucket.name}"],
        "detail": detail,
    }


def emit_s3_events_to_eventbridge_like_aws() -> None:
    """S3 -> EventBridge: AWS sends each event once, to the account's *default* bus, in the
    documented shape. moto sends a differently shaped event (epoch `time`, a constant `id`,
    `eTag`) to every bus."""
    from moto.events.models import events_backends
    from moto.s3 import notifications

    def _send_event_bridge_message(account_id: str, bucket: Any, event_name: Any, key: Any) -> None:
        name = getattr(event_name, "value", event_name)  # moto passes an Enum member
        if name == notifications.S3NotificationEvent.OBJECT_TAGGING_PUT_EVENT.value and not _has_tags(
            account_id, bucket, key
        ):
            return  # moto "tags" every PutObject, even without tags; AWS sends nothing then
        try:
            event = s3_eventbridge_event(account_id, bucket, name, key)
            bus = events_backends[account_id][bucket.region_name].event_buses.get("default")
            if bus is None:
                return
            for rule in list(bus.rules.values()):
                rule.send_to_targets(event, transform_input=False)
        except Exception:  # asynchronous in AWS: never fail the S3 call, but say why
            LOG.exception("S3 -> EventBridge delivery failed for s3://%s/%s", bucket.name, key.name)

    _replace(notifications, "_send_event_bridge_message", _send_event_bridge_message)


def _has_tags(account_id: str, bucket: Any, key: Any) -> bool:
    from moto.s3.models import s3_backends

    backend = s3_backends[account_id][getattr(bucket, "partition", "aws")]
    return bool(backend.tagger.list_tags_for_resource(key.arn).get("Tags"))


def start_executions_from_eventbridge_targets() -> None:
    """A rule whose target is a Step Functions state machine starts an execution per matching
    event (input: the event, or the target's Input / InputPath / InputTransformer result; name: a
    UUID, as EventBridge does). moto 5.2.5 raises NotImplementedError for such targets."""
    from moto.events.models import Rule

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        state_machines = [t for t in self.targets if _arn_service(t["Arn"]) == "states"]
        others = [t for t in self.targets if _arn_service(t["Arn"]) != "states"]
        for target in state_machines:
            try:
                _start_execution_for_target(target, original_event, self)
            except Exception:  # EventBridge retries / drops; it never fails the producer
                LOG.exception("rule %s: could not start %s", self.name, target["Arn"])
        if others:
            view = copy.copy(self)  # moto's own delivery for the targets it supports
            view.targets = others
            original(view, original_event, transform_input)

    _replace(Rule, "send_to_targets", send_to_targets)


def _arn_service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    """The JSON text EventBridge hands the target for this event."""
    if target.get("Input"):
        return target["Input"]
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        matches = parse(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        event = {**event, "ingestion-time": event.get("time")}
        result = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
        return json.dumps(result)
    return json.dumps(event)


#: EventBridge's session name for a target's role is opaque (not documented): one fixed name.
EVENTBRIDGE_SESSION_NAME = "EventBridgeTarget"
EVENTS_SERVICE_PRINCIPAL = "events.amazonaws.com"


def _start_execution_for_target(target: dict[str, Any], event: dict[str, Any], rule: Any = None) -> None:
    from moto.stepfunctions.responses import get_backend

    if RUNTIME.iam_check is not None and rule is not None:
        _start_execution_as_target_role(RUNTIME.iam_check, rule, target, event)
        return

    arn = target["Arn"]
    _, _, _, region, account, *_ = arn.split(":")
    backend = get_backend(account, region)
    execution = backend.start_execution(
        arn, name=str(uuid.uuid4()), execution_input=target_input(target, event)
    )
    LOG.info("EventBridge started %s", getattr(execution, "exec_arn", None) or getattr(execution, "execution_arn", ""))


def _start_execution_as_target_role(check: Any, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
    """With the IAM check on, EventBridge calls StartExecution over HTTP as the target's RoleArn,
    assumed as events.amazonaws.com with aws:SourceArn = the rule. A refusal (or a target without
    a role, which EventBridge cannot invoke a state machine with) starts nothing and is recorded in
    RUNTIME.denials: EventBridge reports it to no caller."""
    from botocore.exceptions import ClientError

    from airline_local.aws.iam.authorizer import AccessDeniedError

    machine = target["Arn"]
    role = target.get("RoleArn")
    key = (event.get("detail") or {}).get("object", {}).get("key")
    actor = f"EventBridge rule {rule.arn}"
    if not role:
        RUNTIME.denials.append(ActorDenial(actor, "(no RoleArn on the target)", "states:StartExecution", machine,
                                           "a state machine target needs a RoleArn EventBridge can assume", key))
        return
    principal = f"role {role}"
    try:
        broker = _role_broker(check)
        identity = broker.identity(role, EVENTBRIDGE_SESSION_NAME, EVENTS_SERVICE_PRINCIPAL, rule.arn, rule.account_id)
        principal = identity.arn
        sfn = broker.client("stepfunctions", role, EVENTBRIDGE_SESSION_NAME, EVENTS_SERVICE_PRINCIPAL,
                            rule.arn, rule.account_id)
        execution = sfn.start_execution(stateMachineArn=machine, name=str(uuid.uuid4()),
                                        input=target_input(target, event))
    except AccessDeniedError as error:  # the role's trust policy does not let EventBridge assume it
        RUNTIME.denials.append(ActorDenial(actor, f"{EVENTS_SERVICE_PRINCIPAL} (assuming {role})", "sts:AssumeRole",
                                           role, str(error), key))
        LOG.warning("rule %s: %s", rule.name, error)
        return
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        RUNTIME.denials.append(ActorDenial(actor, principal, "states:StartExecution", machine, message, key))
        LOG.warning("rule %s could not start %s: %s", rule.name, machine, message)
        return
    LOG.info("EventBridge started %s as %s", execution["executionArn"], principal)


# --------------------------------------------------------------------------------------------
# b. Step Functions: glue:startJobRun.sync
# --------------------------------------------------------------------------------------------


class _EndedRuns:
    """A counter of finished local job runs that waiters can block on (a condition variable)."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def one_more(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_past(self, seen: int, timeout: float) -> None:
        """Return once a run ended after `seen` was read, or after timeout seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.count != seen, timeout=timeout)


JOB_RUNS_ENDED = _EndedRuns()
SYNC_POLL_FALLBACK_SECONDS = 5.0


def support_glue_start_job_run_sync() -> None:
    """`arn:aws:states:::glue:startJobRun.sync` waits for the job run to end: SUCCEEDED -> the
    GetJobRun JobRun is the task output; FAILED / ERROR / TIMEOUT / STOPPED -> the task fails with
    States.TaskFailed and Cause = the JobRun as JSON (with its ErrorMessage). moto 5.2.5 dies in
    its callback clean-up (`'NoneType' object has no attribute 'interrupt_all'`: Glue has no
    task-token endpoint) and treats STOPPED as success."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_glue as glue_task,
    )

    glue_task._JOB_RUN_STATE_ABNORMAL_TERMINAL_VALUE.add("STOPPED")

    def _eval_integration_pattern(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> None:
        start_output = env.stack.pop()
        self.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()
        env.stack.append(start_output)  # the sync resolver reads JobName / JobRunId from it
        resolver = self._build_sync_resolver(
            env=env,
            resource_runtime_part=resource_runtime_part,
            normalised_parameters=normalised_parameters,
            state_credentials=state_credentials,
        )
        # moto's _eval_sync polls GetJobRun every 0.5 s (each poll a signed HTTP call through the IAM
        # check): most of the emulator's CPU while jobs run. Poll again when a local run ends instead;
        # the timeout only bounds a missed wake-up.
        outcome = None
        while env.is_running():
            seen = JOB_RUNS_ENDED.count
            outcome = resolver()
            if outcome:
                break
            JOB_RUNS_ENDED.wait_past(seen, timeout=SYNC_POLL_FALLBACK_SECONDS)
        env.stack.append(json_native(outcome))

    _replace(glue_task.StateTaskServiceGlue, "_eval_integration_pattern", _eval_integration_pattern)


def name_aws_sdk_errors_like_aws() -> None:
    """aws-sdk integration errors are named `<Service>.<Exception>` with AWS's service spelling:
    `Glue.CrawlerRunningException`, `S3.NoSuchKeyException`. moto spells the service as in the
    ARN (`glue.CrawlerRunningException`), so a Catch written for AWS would not match."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    aws_sdk._SERVICE_ERROR_NAMES.setdefault("glue", "Glue")
    aws_sdk._SERVICE_ERROR_NAMES.setdefault("s3", "S3")


def json_native(value: Any) -> Any:
    """State data is JSON: timestamps from service responses become epoch milliseconds, the way
    Step Functions shows e.g. a Glue JobRun's StartedOn."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: json_native(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_native(item) for item in value]
    return value


def keep_task_results_json() -> None:
    """Task results are JSON documents in AWS; moto 5.2.5 keeps the boto3 response's datetime
    objects in the state data, and DescribeExecution then fails with a 500 (`Object of type
    datetime is not JSON serializable`) once they reach the execution's output."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    def _normalise_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(response, dict):  # in place: the caller keeps its reference
            for key, value in list(response.items()):
                response[key] = json_native(value)

    _replace(StateTaskService, "_normalise_response", _normalise_response)


def return_aws_sdk_bodies_as_text() -> None:
    """aws-sdk integrations return streaming members as text: `s3:getObject` gives `Body` as a
    string the next state can read (e.g. `States.StringToJson($.Body)`). moto 5.2.5 leaves the
    botocore stream object in the state's output, and the next state fails with
    `'StreamingChecksumBody' object has no attribute 'strip'`."""
    from botocore.response import StreamingBody
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    original = aws_sdk.StateTaskServiceAwsSdk._eval_service_task

    def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        response = env.stack[-1]
        if isinstance(response, dict):
            for key, value in list(response.items()):
                if isinstance(value, StreamingBody):
                    response[key] = value.read().decode("utf-8", errors="replace")

    _replace(aws_sdk.StateTaskServiceAwsSdk, "_eval_service_task", _eval_service_task)


_VARIABLE_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)((?:\.|\[).*)?$", re.DOTALL)


def read_workflow_variables_without_jsonata() -> None:
    """In a JSONPath state, `$name` (or `$name.path`) reads the workflow variable `name` set by an
    Assign, as on AWS: e.g. `States.MathAdd($polls, 1)`, or a Choice on `$polls`. moto 5.2.5
    sends every variable reference to a JSONata evaluator it does not ship, and the execution
    dies with `'NoneType' object is not callable`: FAILED without its failure path or email."""
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringVariableSample
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    original = StringVariableSample._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        match = _VARIABLE_REFERENCE.match(self.expression.strip())
        if match is None:  # a real JSONata expression: moto's own path
            return original(self, env)
        value = env.variable_store.get(match.group(1))
        if match.group(2):
            value = extract_json("$" + match.group(2), value)
        env.stack.append(copy.deepcopy(value))
        return None

    _replace(StringVariableSample, "_eval_body", _eval_body)


def scale_wait_states() -> None:
    """Not an AWS behaviour: lets the local runtime shorten the definition's Wait states by
    `RUNTIME.wait_time_scale` (default 1.0 = exactly as written). The state machine polls a
    crawler that takes minutes on AWS and about a second locally."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    original = WaitFunction._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        scale = RUNTIME.wait_time_scale
        if scale == 1.0:
            return original(self, env)
        deadline = time.monotonic() + max(0.0, self._get_wait_seconds(env=env) * scale)
        while env.is_running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if env.program_state_event.wait(remaining):  # woken early: don't spin
                time.sleep(min(remaining, 0.05))
        return None

    _replace(WaitFunction, "_eval_body", _eval_body)


# --------------------------------------------------------------------------------------------
# c. Glue crawler lifecycle
# --------------------------------------------------------------------------------------------


class LocalCrawl:
    """One crawl: RUNNING while the work runs (at least running_seconds), then STOPPING, then done."""

    def __init__(self, crawler_name: str, settings: CrawlerSettings) -> None:
        self.crawl_id = str(uuid.uuid4())
        self.crawler_name = crawler_name
        self.start_time = datetime.now(timezone.utc)
        self.end_time: datetime | None = None
        self._started = time.monotonic()
        self._running_seconds = settings.running_seconds
        self._stopping_seconds = settings.stopping_seconds
        self._work_done_at: float | None = None
        self._stop_requested_at: float | None = None
        self.status = "SUCCEEDED"  # of the finished crawl: SUCCEEDED | FAILED | CANCELLED
        self.error_message: str | None = None
        self.result: Any = None  # the local crawler's CrawlResult (what it listed, read, consumed)
        self._lock = threading.Lock()

    def work_finished(self, error_message: str | None) -> None:
        with self._lock:
            self._work_done_at = time.monotonic()
            if error_message is not None:
                self.status, self.error_message = "FAILED", error_message

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested_at = time.monotonic()
            self.status, self.error_message = "CANCELLED", None

    def state(self) -> str:
        """The crawler's State while this is its latest crawl: RUNNING | STOPPING | READY."""
        now = time.monotonic()
        with self._lock:
            if self._stop_requested_at is not None:
                stopping_ends = self._stop_requested_at + self._stopping_seconds
            elif self._work_done_at is None or now < self._started + self._running_seconds:
                return "RUNNING"
            else:
                running_ended = max(self._started + self._running_seconds, self._work_done_at)
                stopping_ends = running_ended + self._stopping_seconds
            if now < stopping_ends:
                return "STOPPING"
            if self.end_time is None:
                self.end_time = datetime.now(timezone.utc)
            return "READY"

    def last_crawl(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "Status": self.status,
            "LogGroup": "/aws-glue/crawlers",
            "LogStream": self.crawler_name,
            "MessagePrefix": self.crawl_id,
            "StartTime": self.start_time,
        }
        if self.error_message:
            info["ErrorMessage"] = self.error_message
        return info


_CRAWLER_STARTS = threading.Lock()


def _local_crawls(crawler: Any) -> list[LocalCrawl]:
    if "_local_crawls" not in crawler.__dict__:
        crawler._local_crawls = []
    return crawler._local_crawls


def run_crawlers_like_aws() -> None:
    """Glue crawler lifecycle as AWS: StartCrawler -> RUNNING -> STOPPING -> READY, with
    LastCrawl (the last *finished* crawl) {Status: SUCCEEDED | FAILED + ErrorMessage | CANCELLED};
    StartCrawler while RUNNING or STOPPING raises CrawlerRunningException; the crawl really
    infers the tables (airline_local.glue.crawler). moto 5.2.5: no tables, LastCrawl shows the current
    crawl with `COMPLETED`, the crawler stays RUNNING unless state transitions are configured, and
    StartCrawler is accepted while STOPPING."""
    from moto.glue.exceptions import CrawlerNotRunningException, CrawlerRunningException, GlueClientError
    from moto.glue.models import FakeCrawler

    original_as_dict = FakeCrawler.as_dict

    def status(self: Any) -> str:
        crawls = _local_crawls(self)
        return crawls[-1].state() if crawls else "READY"

    def start_crawler(self: Any) -> None:
        # The check and the start are one step, as on AWS: the server's request threads may bring
        # two StartCrawler calls at once (a burst of uploads), and two crawls would both create the table.
        with _CRAWLER_STARTS:
            if status(self) != "READY":
                raise CrawlerRunningException(f"Crawler with name {self.name} has already started")
            crawl = LocalCrawl(self.name, RUNTIME.crawler_settings)
            _local_crawls(self).append(crawl)
        threading.Thread(
            target=_crawl_in_background, args=(self, crawl), name=f"crawl-{self.name}", daemon=True
        ).start()

    def stop_crawler(self: Any) -> None:
        state = status(self)
        if state == "STOPPING":
            raise GlueClientError("CrawlerStoppingException", f"Crawler with name {self.name} is stopping")
        if state != "RUNNING":
            raise CrawlerNotRunningException(f"Crawler with name {self.name} isn't running")
        _local_crawls(self)[-1].request_stop()

    def as_dict(self: Any) -> dict[str, Any]:
        data = original_as_dict(self)
        crawls = _local_crawls(self)
        data.pop("LastCrawl", None)
        finished = [c for c in crawls if c.state() == "READY"]
        if finished:
            data["LastCrawl"] = finished[-1].last_crawl()
        if crawls and crawls[-1].state() != "READY":
            elapsed = datetime.now(timezone.utc) - crawls[-1].start_time
            data["CrawlElapsedTime"] = int(elapsed.total_seconds() * 1000)
        return data

    _replace(FakeCrawler, "status", property(status))
    _replace(FakeCrawler, "start_crawler", start_crawler)
    _replace(FakeCrawler, "stop_crawler", stop_crawler)
    _replace(FakeCrawler, "as_dict", as_dict)


def _crawl_in_background(crawler: Any, crawl: LocalCrawl) -> None:
    from airline_local.glue import crawler as local_crawler

    injected = RUNTIME.crawler_settings.take_injected_failure()
    if injected is not None:
        crawl.work_finished(injected)
        return
    try:
        definition = local_crawler.CrawlerDefinition.from_api(
            {
                "Name": crawler.name,
                "DatabaseName": crawler.database_name,
                "Targets": crawler.targets,
                "TablePrefix": crawler.table_prefix,
                "SchemaChangePolicy": crawler.schema_change_policy,
                "RecrawlPolicy": crawler.recrawl_policy,
            }
        )
        region = crawler.backend.region_name
        s3, glue = _crawler_client(crawler, "s3", region), _crawler_client(crawler, "glue", region)
        # Event mode: the crawler reads its S3 events queue as its role; its first successful
        # crawl lists the targets, the later ones crawl only what the events name.
        sqs = _crawler_client(crawler, "sqs", region) if definition.event_mode else None
        first_crawl = not any(c.status == "SUCCEEDED" and c.state() == "READY" for c in _local_crawls(crawler) if c is not crawl)
        result = local_crawler.run_crawl(definition, s3, glue, sqs=sqs, first_crawl=first_crawl,
                                         skip_unreadable=True)  # AWS: such a file is UNKNOWN, not a failure
        for reason in result.objects_skipped:
            LOG.warning("crawler %s: skipped %s", crawler.name, reason)
        LOG.info("crawler %s: %s", crawler.name, result)
        crawl.result = result
        crawl.work_finished(None)
    except local_crawler.CrawlError as error:
        crawl.work_finished(str(error))
    except Exception as error:  # AWS reports internal failures as a FAILED crawl, not an outage
        LOG.exception("crawler %s failed", crawler.name)
        crawl.work_finished(f"Internal Service Exception: {type(error).__name__}: {error}")


#: The session name Glue gives a crawler's role session (docs/aws-notes.md, "IAM check").
CRAWLER_SESSION_NAME = "AWS-Crawler"


def _crawler_client(crawler: Any, service: str, region: str) -> Any:
    """The crawler reads S3 and writes the Data Catalog as its role (glue.amazonaws.com) when the
    IAM check is on; a trust policy that refuses Glue fails the crawl naming it."""
    check = RUNTIME.iam_check
    if check is None:
        return _client(service, region)
    from airline_local.aws.iam.authorizer import AccessDeniedError
    from airline_local.glue.crawler import CrawlAccessDeniedError

    try:
        return _role_broker(check).client(service, crawler.role, CRAWLER_SESSION_NAME, "glue.amazonaws.com")
    except AccessDeniedError as error:
        raise CrawlAccessDeniedError(f"Glue cannot assume the crawler's role {crawler.role}: {error}") from error


def _client(service: str, region: str) -> Any:
    import boto3

    if not RUNTIME.endpoint_url:
        raise RuntimeError("the emulator's endpoint is not set (airline_local.aws.emulator.Emulator sets it)")
    return boto3.client(
        service, endpoint_url=RUNTIME.endpoint_url, region_name=region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


# --------------------------------------------------------------------------------------------
# d. Glue job runs executed by the local job runner
# --------------------------------------------------------------------------------------------

# Job runs change state only when the local runner says so ("manual" progression that never ticks).
_JOB_RUN_TRANSITION = {"progression": "manual", "times": 2**62}
# Glue's per-job run limit (docs/aws-notes.md, "Job run queuing"): runs in these states hold one of
# the job's ExecutionProperty.MaxConcurrentRuns (default 1); WAITING ones wait for one.
_ACTIVE_RUN_STATES = frozenset({"STARTING", "RUNNING", "STOPPING"})
_RUN_SLOTS = threading.Lock()  # a start's check and its run's creation are one step, as in Glue
_START_REQUEST = threading.local()  # the StartJobRun request's own JobRunQueuingEnabled


def run_glue_jobs_locally() -> None:
    """StartJobRun runs the job's script (airline_local.glue.job_runner) in a background thread; the
    run is RUNNING until the script ends, then SUCCEEDED, or FAILED / TIMEOUT with ErrorMessage.
    moto 5.2.5 runs nothing, advances a run to SUCCEEDED on its own and never sets ErrorMessage.

    Run limit and queuing as Glue: at most MaxConcurrentRuns runs of a job at once; a start beyond
    it is refused with ConcurrentRunsExceededException, or, with job run queuing (the run's
    JobRunQueuingEnabled, else the job's), created WAITING and started, oldest first, when a run of
    the job ends. moto 5.2.5 ignores JobRunQueuingEnabled and checks the limit without a lock.
    Tested in tests/local/test_glue_run_limit.py."""
    from moto.glue.models import FakeJob, FakeJobRun
    from moto.glue.responses import GlueResponse
    from moto.moto_api import state_manager

    state_manager.set_transition("glue::job_run", _JOB_RUN_TRANSITION)
    original_create_job = GlueResponse.create_job
    original_start_request = GlueResponse.start_job_run
    original_job_as_dict = FakeJob.as_dict
    original_run_as_dict = FakeJobRun.as_dict

    def create_job(self: Any) -> Any:
        result = original_create_job(self)
        job = self.glue_backend.get_job(self._get_param("Name"))
        job.job_run_queuing_enabled = self._get_param("JobRunQueuingEnabled")
        return result

    def start_job_run_request(self: Any) -> Any:
        _START_REQUEST.queuing = self._get_param("JobRunQueuingEnabled")
        try:
            return original_start_request(self)
        finally:
            _START_REQUEST.queuing = None

    def start_job_run(self: Any, **kwargs: Any) -> str:
        requested = getattr(_START_REQUEST, "queuing", None)
        # "If this field does not match the value set in the job run, then the value from the job
        # run field will be used" (the Job structure, JobRunQueuingEnabled).
        queuing = bool(getattr(self, "job_run_queuing_enabled", None) if requested is None else requested)
        with _RUN_SLOTS:
            full = _active_runs(self) >= _max_concurrent_runs(self)
            if full and not queuing:
                from moto.glue.exceptions import ConcurrentRunsExceededException

                raise ConcurrentRunsExceededException(f"Job with name {self.name} already running")
            job_run = _new_job_run(self, **kwargs)
            job_run.job_run_queuing_enabled = requested if requested is not None else getattr(
                self, "job_run_queuing_enabled", None)
            job_run._local_completed_on = job_run._local_error_message = job_run._local_running_since = None
            job_run.status = "WAITING" if full else "RUNNING"
            if not full:
                job_run._local_running_since = job_run.started_on
            self.job_runs.append(job_run)
        if not full:
            _launch_job_run(self, job_run)
        return job_run.job_run_id

    def job_as_dict(self: Any) -> dict[str, Any]:
        data = original_job_as_dict(self)
        if getattr(self, "job_run_queuing_enabled", None) is not None:
            data["JobRunQueuingEnabled"] = self.job_run_queuing_enabled
        return data

    def run_as_dict(self: Any) -> dict[str, Any]:
        data = original_run_as_dict(self)
        running_since = getattr(self, "_local_running_since", None)
        completed = getattr(self, "_local_completed_on", None)
        end = completed or datetime.now(timezone.utc).replace(tzinfo=None)
        # Seconds the run held resources: none while it waited.
        data["ExecutionTime"] = int((end - running_since).total_seconds()) if running_since else 0
        if completed is None:
            data.pop("CompletedOn", None)
        else:
            data["CompletedOn"] = completed
        if getattr(self, "_local_error_message", None):
            data["ErrorMessage"] = self._local_error_message
        if getattr(self, "job_run_queuing_enabled", None) is not None:
            data["JobRunQueuingEnabled"] = self.job_run_queuing_enabled
        return data

    _replace(GlueResponse, "create_job", create_job)
    _replace(GlueResponse, "start_job_run", start_job_run_request)
    _replace(FakeJob, "start_job_run", start_job_run)
    _replace(FakeJob, "as_dict", job_as_dict)
    _replace(FakeJobRun, "as_dict", run_as_dict)


def _max_concurrent_runs(job: Any) -> int:
    return int((job.execution_property or {}).get("MaxConcurrentRuns", 1))


def _active_runs(job: Any) -> int:
    return sum(1 for run in job.job_runs if run.status in _ACTIVE_RUN_STATES)


def _new_job_run(job: Any, *, allocated_capacity: Any, max_capacity: Any, timeout: Any, worker_type: Any,
                 security_configuration: Any, number_of_workers: Any, notification_property: Any,
                 previous_run_id: Any, arguments: Any) -> Any:
    """The run moto's FakeJob.start_job_run creates (its arguments and defaults), without its
    unlocked limit check, which the patch makes itself."""
    from moto.glue.models import FakeJobRun

    run_arguments = {**job.default_arguments, **(arguments or {}), **(job.non_overridable_arguments or {})}
    return FakeJobRun(
        job_name=job.name, arguments=run_arguments,
        allocated_capacity=allocated_capacity or job.allocated_capacity,
        max_capacity=max_capacity or job.max_capacity, timeout=timeout or job.timeout,
        worker_type=worker_type or job.worker_type,
        security_configuration=security_configuration or job.security_configuration,
        number_of_workers=number_of_workers or job.number_of_workers,
        notification_property=notification_property or job.notification_property,
        job_run_id=previous_run_id,
    )


def _launch_job_run(job: Any, job_run: Any) -> None:
    threading.Thread(target=_drive_job_run, args=(job, job_run), name=f"glue-job-{job.name}", daemon=True).start()


def _end_job_run(job: Any, job_run: Any, state: str, message: str | None) -> None:
    """Record the run's outcome and give its run to the oldest waiting run of the job."""
    with _RUN_SLOTS:
        job_run._local_error_message = message
        job_run._local_completed_on = datetime.now(timezone.utc).replace(tzinfo=None)
        job_run.modified_on = job_run._local_completed_on
        job_run.status = state
        started = []
        for waiting in [r for r in job.job_runs if r.status == "WAITING"]:
            if _active_runs(job) >= _max_concurrent_runs(job):
                break
            waiting.status = "RUNNING"
            waiting._local_running_since = waiting.modified_on = datetime.now(timezone.utc).replace(tzinfo=None)
            started.append(waiting)
    for waiting in started:
        _launch_job_run(job, waiting)
    JOB_RUNS_ENDED.one_more()


# The session name Glue gives a job run's role session (docs/aws-notes.md, "IAM check").
GLUE_JOB_SESSION_NAME = "GlueJobRunnerSession"


def _drive_job_run(job: Any, job_run: Any) -> None:
    runner = RUNTIME.job_runner
    state, message = "FAILED", None
    if runner is None:
        message = f"No local job runner: the emulator cannot run Glue job {job.name}"
    else:
        timeout = job_run.timeout * 60 if job_run.timeout else None  # Glue's Timeout is minutes
        try:
            outcome = runner.run(job.name, job_run.job_run_id, dict(job_run.arguments or {}), timeout,
                                 credentials=_job_role_credentials(job))
            state, message = outcome.state, outcome.error_message
        except Exception as error:
            LOG.exception("job runner failed for %s", job.name)
            message = f"{type(error).__name__}: {error}"
    _end_job_run(job, job_run, state, message)


def _job_role_credentials(job: Any) -> Any:
    return job_role_credentials(job.role)


def job_role_credentials(role_arn: str) -> Any:
    """With the IAM check on: the job role's session, as Glue assumes it (glue.amazonaws.com);
    a refused trust check raises (the run FAILS naming it). Off: None (the dummy key)."""
    check = RUNTIME.iam_check
    if check is None:
        return None
    return check.role_broker.credentials(role_arn, GLUE_JOB_SESSION_NAME, "glue.amazonaws.com")


# --------------------------------------------------------------------------------------------
# e. SNS -> the local mailbox
# --------------------------------------------------------------------------------------------


def deliver_sns_to_mailbox() -> None:
    """A message published to a topic reaches its email subscribers (AWS sends the email). Locally
    every publish is written to the mailbox, with the email subscriptions as recipients, or to the
    local mailbox alone when there are none (local mode shows every notification). moto 5.2.5
    only records the message."""
    from moto.sns.models import Topic

    original = Topic.publish

    def publish(self: Any, message: str, subject: str | None = None, *args: Any, **kwargs: Any) -> str:
        message_id = original(self, message, subject, *args, **kwargs)
        mailbox = RUNTIME.mailbox
        if mailbox is None:
            return message_id
        try:
            subscriptions, _ = self.sns_backend.list_subscriptions_by_topic(topic_arn=self.arn)
            recipients = [s.endpoint for s in subscriptions if s.protocol in ("email", "email-json")]
            body = _email_body(message, kwargs.get("message_structure"))
            mailbox.deliver(self.arn, subject, body, recipients)
        except Exception:  # delivery is asynchronous in AWS: Publish itself still succeeds
            LOG.exception("could not deliver SNS message %s to the local mailbox", message_id)
        return message_id

    _replace(Topic, "publish", publish)


def _email_body(message: str, message_structure: str | None) -> str:
    if message_structure != "json":
        return message
    per_protocol = json.loads(message)
    return per_protocol.get("email") or per_protocol.get("default", "")


# --------------------------------------------------------------------------------------------
# f. redshift-data -> the local warehouse
# --------------------------------------------------------------------------------------------

REDSHIFT_DATA_ACTIONS = (
    "batch_execute_statement",
    "execute_statement",
    "describe_statement",
    "get_statement_result",
    "cancel_statement",
    "list_statements",
)


def route_redshift_data_to_local_warehouse() -> None:
    """The Redshift Data API executes SQL: BatchExecuteStatement / ExecuteStatement /
    DescribeStatement / GetStatementResult (and Cancel/ListStatements where the local warehouse
    has them) go to `RUNTIME.data_api`. moto 5.2.5 has no BatchExecuteStatement and executes
    nothing."""
    from moto.redshiftdata.responses import RedshiftDataAPIServiceResponse

    for action in REDSHIFT_DATA_ACTIONS:
        original = RedshiftDataAPIServiceResponse.__dict__.get(action)
        _replace(RedshiftDataAPIServiceResponse, action, _data_api_handler(action, original))


def _data_api_handler(action: str, moto_handler: Callable[..., Any] | None) -> Callable[..., Any]:
    from moto.core.exceptions import JsonRESTError

    def handler(self: Any) -> Any:
        data_api = RUNTIME.data_api
        method = getattr(data_api, action, None) if data_api is not None else None
        if method is None:
            if moto_handler is not None and data_api is None:
                return moto_handler(self)
            raise JsonRESTError(
                "ValidationException",
                f"The local Redshift Data API does not support {action} "
                "(no local warehouse is attached to the emulator)" if data_api is None
                else f"The local Redshift Data API does not support {action}",
            )
        body = self.body.decode("utf-8") if isinstance(self.body, bytes) else (self.body or "")
        params = json.loads(body or "{}")
        try:
            result = method(params, **_statement_owner(self, action))
        except Exception as error:
            code = getattr(error, "code", None) or getattr(error, "error_code", None)
            message = getattr(error, "message", None) or str(error)
            if not isinstance(code, str) or not code:
                LOG.exception("local Data API %s failed", action)
                code = "InternalServerException"
            rest_error = JsonRESTError(code, message)
            if code == "InternalServerException":
                rest_error.code = 500
            raise rest_error from error
        return 200, {}, json.dumps(result, default=_json_default)

    handler.__name__ = action
    return handler


def _statement_owner(response: Any, action: str) -> dict[str, Any]:
    """With the IAM check on, who runs a statement becomes its owner (aws:userid of the
    signing identity, which the hook left on the response); its DescribeStatement,
    GetStatementResult and CancelStatement are then authorized with
    redshift-data:statement-owner-iam-userid = that owner."""
    if RUNTIME.iam_check is None or action not in ("execute_statement", "batch_execute_statement"):
        return {}
    identity = getattr(getattr(response, "airline_iam_verdict", None), "identity", None)
    if identity is None:
        raise RuntimeError(f"redshift-data {action} reached the handler without an IAM verdict")
    return {"caller": identity.userid or identity.arn}


def _json_default(value: Any) -> Any:
    # The Data API's JSON protocol carries timestamps as epoch seconds.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------------------------
# g. the local IAM check: every request authorized as AWS would (off unless RUNTIME.iam_check)
# --------------------------------------------------------------------------------------------

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
# sqs: botocore 1.44 speaks the JSON protocol to SQS (AmazonSQS.<Operation>).
_JSON_SERVICES = frozenset({"glue", "stepfunctions", "events", "kms", "redshift-data", "logs", "sqs"})


def check_iam_of_every_call() -> None:
    """AWS authenticates and authorizes every request; moto (INITIAL_NO_AUTH_ACTION_COUNT = inf)
    does neither, and its own IAM enforcement ignores resource policies and most conditions
    (docs/iam-check.md). With `RUNTIME.iam_check` set, moto's single choke point,
    `ActionAuthenticatorMixin._authenticate_and_authorize_action` (every service's call_action and
    each S3 handler call it after parsing, before acting), asks the local IAM check instead, and a
    refusal is the service's own error in its own protocol. Off (None): moto's code, unchanged."""
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin.__dict__["_authenticate_and_authorize_action"]

    def _authenticate_and_authorize_action(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        check = RUNTIME.iam_check
        if check is None:
            return original(self, iam_request_cls, resource)
        try:
            call = _iam_call(self, resource)
        except Exception as error:  # a request the check cannot read: an error, never an allow
            verdict = check.unjudged(f"{self.service_name}: {error}")
        else:
            verdict = check.check(call, *_signed_credentials(self))
        self.airline_iam_verdict = verdict  # the Data API handler reads the caller from here
        if not verdict.allowed:
            raise _iam_error(self.service_name, verdict)
        return None

    _replace(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", _authenticate_and_authorize_action)


def _signed_credentials(response: Any) -> tuple[str | None, str | None]:
    """The SigV4 access key id (moto's own parser needs exactly 20 characters) and session token."""
    headers = response.headers
    found = _CREDENTIAL.search(headers.get("Authorization", ""))
    return (found.group(1) if found else None), headers.get("X-Amz-Security-Token")


def _iam_call(response: Any, resource: str) -> Any:
    from airline_local.aws.iam.requests import Call, s3_operation

    from urllib.parse import parse_qsl, unquote, urlparse

    service = response.service_name
    if service == "s3":
        path = resource.split(":::", 1)[-1]
        bucket, _, key = path.partition("/")
        # The URL's own query (moto's S3 querystring also holds the headers and its ACTION_MAP name).
        query = dict(parse_qsl(urlparse(response.uri).query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-amz-copy-source")}
        bucket_name = None if bucket in ("", "*") else bucket
        operation = s3_operation(response.method, bucket_name, key or None, query, headers)
        return Call("s3", operation, response.region, response.current_account, {"body": response.raw_body},
                    bucket_name, key or None, headers, query)
    if service == "awslambda":  # REST: a function is named in the path (Invoke's body is its payload)
        function = re.search(r"/functions/([^/]+)", urlparse(response.uri).path)
        if function:
            params = {"FunctionName": unquote(function.group(1))}
        else:  # CreateFunction: the JSON body names it
            body = response.body.decode("utf-8") if isinstance(response.body, bytes) else (response.body or "")
            params = json.loads(body or "{}")
        return Call(service, response._get_action(), response.region, response.current_account, params)
    if service in _JSON_SERVICES:
        body = response.body.decode("utf-8") if isinstance(response.body, bytes) else (response.body or "")
        params = json.loads(body or "{}")
    elif service == "cloudwatch":  # botocore speaks CBOR to CloudWatch, which moto parses into .params
        params = dict(response.params or {})
    else:  # query protocol: form parameters are in the querystring
        params = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in (response.querystring or {}).items()}
    return Call(service, response._get_action(), response.region, response.current_account, params)


def _iam_error(service: str, verdict: Any) -> Exception:
    """The refusal as the service returns it: JSON `__type` (glue, states, events, kms, Data API),
    query XML ErrorResponse (sns, sts, iam), S3 REST XML with a 403 (400 for InvalidToken)."""
    from moto.core.exceptions import JsonRESTError, _RESTError

    json_service = service in _JSON_SERVICES or service == "awslambda"  # Lambda: REST with JSON errors
    if verdict.outcome == "unknown-key":
        code = "InvalidAccessKeyId" if service == "s3" else ("UnrecognizedClientException" if json_service else "InvalidClientTokenId")
        message = ("The AWS Access Key Id you provided does not exist in our records." if service == "s3"
                   else "The security token included in the request is invalid.")
        status = 400 if json_service else 403
    elif verdict.outcome == "bad-token":
        code = "InvalidToken" if service == "s3" else ("UnrecognizedClientException" if json_service else "InvalidClientTokenId")
        message = ("The provided token is malformed or otherwise invalid." if service == "s3"
                   else "The security token included in the request is invalid.")
        status = 400 if (json_service or service == "s3") else 403
    elif verdict.outcome == "unmapped":
        code, message, status = "LocalIamCheckError", verdict.message, 400
    else:
        code = verdict.code or "AccessDenied"
        message = verdict.message
        status = 400 if (json_service or code.startswith("KMS")) else 403
    if verdict.outcome in ("unknown-key", "bad-token"):
        message = f"{message} (local IAM check: {verdict.message})"
    if service == "s3":
        return _s3_error(code, message, status)
    if json_service:
        json_error = JsonRESTError(code, message)
        json_error.code = status
        return json_error
    query_error = _RESTError(code, message)
    query_error.code = status
    # AWS's query-protocol error carries a RequestId next to the Error (moto's lacks it, and the
    # state machine's SNS integration reads it to build the task failure's cause).
    from xmltodict import unparse

    query_error.description = unparse({"ErrorResponse": {
        "Error": {"Type": "Sender", "Code": code, "Message": message}, "RequestId": "local-iam-check"}}, full_document=True)
    return query_error


def _s3_error(code: str, message: str, status: int) -> Exception:
    """S3's REST-XML error (`<Error><Code>`), with S3's status. Raised through the S3 handler as a
    werkzeug HTTPException, which Flask sends as is (moto would serialize an S3ClientError with
    the model's status, 400 for the unmodeled AccessDenied)."""
    from xml.sax.saxutils import escape

    from werkzeug.exceptions import HTTPException

    class S3IamError(HTTPException):
        def get_body(self, *args: Any, **kwargs: Any) -> str:
            return self.description or ""

        def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
            return [("Content-Type", "application/xml"), ("x-amz-request-id", "local-iam-check")]

    error = S3IamError()
    error.code = status
    error.description = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                         f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
                         "<RequestId>local-iam-check</RequestId></Error>")
    return error


# --------------------------------------------------------------------------------------------
# h. IAM check: Step Functions tasks sign as the state machine's role
# --------------------------------------------------------------------------------------------

#: Step Functions' session name for the role it assumes is opaque (not documented): one fixed name
#: keeps one credential per role (only equality matters, for ${aws:userid}; docs/aws-notes.md).
STATE_MACHINE_SESSION_NAME = "StepFunctionsExecution"
STATES_SERVICE_PRINCIPAL = "states.amazonaws.com"

_task_clients: dict[tuple[str, str, str, str], Any] = {}
_task_clients_lock = threading.Lock()


def sign_state_machine_tasks_with_its_role() -> None:
    """A state machine's tasks call AWS as the state machine's role, which Step Functions assumes
    as states.amazonaws.com with aws:SourceArn = the state machine. moto 5.2.5 hands each task the
    role ARN and then signs every integration (aws-sdk, glue, sns, ...) with the fixed key `ak`. With
    the IAM check on, the tasks' clients carry the role session's credentials from the RoleBroker
    (the trust policy is checked first); with it off, moto's client, unchanged. moto imported
    `boto_client_for` into each integration module by name: every such module gets ours."""
    import importlib
    import pkgutil

    from moto.stepfunctions.parser import asl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
    from moto.stepfunctions.parser.asl.utils import boto_client

    original_credentials = state_task.StateTask.__dict__["_eval_state_credentials"]
    moto_boto_client_for = getattr(boto_client.boto_client_for, "__wrapped_moto__", boto_client.boto_client_for)

    def _eval_state_credentials(self: Any, env: Any) -> Any:
        credentials = original_credentials(self, env)
        if self.credentials:  # a task's own Credentials.RoleArn (a role the state machine role assumes)
            return credentials
        machine_arn = env.states.context_object.context_object_data["StateMachine"]["Id"]
        return StateMachineCredentials(role_arn=credentials.role_arn, state_machine_arn=machine_arn)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        check = RUNTIME.iam_check
        if check is None:
            return moto_boto_client_for(region, service, state_credentials)
        return _state_machine_client(_role_broker(check), region, service, state_credentials)

    boto_client_for.__wrapped_moto__ = moto_boto_client_for  # type: ignore[attr-defined]

    @dataclass
    class StateMachineCredentials(StateCredentials):
        state_machine_arn: str = ""

    _replace(state_task.StateTask, "_eval_state_credentials", _eval_state_credentials)
    for module in state_machine_modules_using_moto_client(pkgutil, importlib, asl, moto_boto_client_for):
        _replace(module, "boto_client_for", boto_client_for)
    _replace(boto_client, "boto_client_for", boto_client_for)


def state_machine_modules_using_moto_client(pkgutil: Any, importlib: Any, package: Any, moto_client: Any) -> list[Any]:
    """Every module of moto's state machine interpreter holding moto's own `boto_client_for`."""
    found = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".", onerror=lambda _name: None):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # moto 5.2.5 ships modules it cannot import (static_analyser): never run
            continue
        if getattr(module, "boto_client_for", None) is moto_client:
            found.append(module)
    return found


def _role_broker(check: Any) -> Any:
    """The RoleBroker minting the actors' sessions (Emulator.start_iam_check sets it)."""
    if check.role_broker is None:
        raise RuntimeError("local IAM check: no role broker (airline_local.aws.emulator.Emulator.start_iam_check sets it)")
    return check.role_broker


def _only_state_machine_of(role_arn: str | None, region: str) -> str:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    account = (role_arn or "::::").split(":")[4]
    arns = [m.arn for m in stepfunctions_parser_backends[account][region].state_machines if m.roleArn == role_arn]
    if len(arns) != 1:
        raise RuntimeError(f"local IAM check: cannot tell which state machine calls as role {role_arn} "
                           f"(state machines with that role: {arns}); a task's own Credentials are not emulated")
    return arns[0]


def _state_machine_client(broker: Any, region: str, service: str, state_credentials: Any) -> Any:
    from botocore.config import Config
    import boto3

    role_arn = getattr(state_credentials, "role_arn", None)
    # moto's distributed Map S3 reader/writer build plain StateCredentials: the machine of that role.
    machine_arn = getattr(state_credentials, "state_machine_arn", "") or _only_state_machine_of(role_arn, region)
    account = machine_arn.split(":")[4]
    credentials = broker.credentials(role_arn, STATE_MACHINE_SESSION_NAME, STATES_SERVICE_PRINCIPAL,
                                     machine_arn, account)
    key = (service, region, RUNTIME.endpoint_url or "", credentials.access_key_id)
    client = _task_clients.get(key)
    if client is None:
        with _task_clients_lock:  # creating boto3 clients is not thread-safe; using them is
            client = _task_clients.get(key)
            if client is None:
                from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

                # moto's own client settings (no validation, one attempt), signed as the role session.
                client = boto3.session.Session().client(
                    service, region_name=region, endpoint_url=RUNTIME.endpoint_url,
                    config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                                  connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                                  read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS),
                    **credentials.as_client_kwargs())
                _task_clients[key] = client
    return client


PATCHES: tuple[Callable[[], None], ...] = (
    emit_s3_events_to_eventbridge_like_aws,
    start_executions_from_eventbridge_targets,
    support_glue_start_job_run_sync,
    name_aws_sdk_errors_like_aws,
    return_aws_sdk_bodies_as_text,
    keep_task_results_json,
    scale_wait_states,
    read_workflow_variables_without_jsonata,
    run_crawlers_like_aws,
    run_glue_jobs_locally,
    deliver_sns_to_mailbox,
    route_redshift_data_to_local_warehouse,
    check_iam_of_every_call,
    sign_state_machine_tasks_with_its_role,
    *distributed_map.PATCHES,  # the backfill's Distributed Map (airline_local/aws/distributed_map.py)
    *service_deliveries.PATCHES,  # alarm actions, S3 -> SQS, as service principals (service_deliveries.py)
    *s3_writes.PATCHES,  # atomic conditional PutObject, lost replies (airline_local/aws/s3_writes.py)
    *data_limit.PATCHES,  # Step Functions' 256 KiB payload limit (airline_local/aws/data_limit.py)
    *lambda_functions.PATCHES,  # functions a state machine invokes (airline_local/aws/lambda_functions.py)
)
