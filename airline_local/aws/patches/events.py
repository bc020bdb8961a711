"""EventBridge (moto.events) and S3's delivery to it (moto.s3.notifications), as on AWS.

Targets moto 5.2.5. Tested in tests/local/test_moto_patches.py (the EventBridge tests) and, with the
IAM check on, tests/local/test_iam_pipeline.py. Newer moto: getmoto/moto@0af643a5 (5.2.4.dev, the newest stored snapshot) still has the gap.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME, ActorDenial, role_broker

LOG = logging.getLogger(__name__)


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
    `eTag`) to every bus.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html.
    Test: tests/local/test_moto_patches.py::test_upload_matching_the_rule_starts_one_execution_with_the_aws_shaped_event.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
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

    replace(notifications, "_send_event_bridge_message", _send_event_bridge_message)


def _has_tags(account_id: str, bucket: Any, key: Any) -> bool:
    from moto.s3.models import s3_backends

    backend = s3_backends[account_id][getattr(bucket, "partition", "aws")]
    return bool(backend.tagger.list_tags_for_resource(key.arn).get("Tags"))


def start_executions_from_eventbridge_targets() -> None:
    """A rule whose target is a Step Functions state machine starts an execution per matching
    event (input: the event, or the target's Input / InputPath / InputTransformer result; name: a
    UUID, as EventBridge does). moto 5.2.5 raises NotImplementedError for such targets.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-custom-bus-target-sfn.html.
    Test: tests/local/test_moto_patches.py::test_target_input_path_is_honoured; IAM: tests/local/test_iam_pipeline.py.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
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

    replace(Rule, "send_to_targets", send_to_targets)


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
        broker = role_broker(check)
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


PATCHES = (emit_s3_events_to_eventbridge_like_aws, start_executions_from_eventbridge_targets)
