"""What AWS services deliver on the account's behalf, judged as their service principals.

Two deliveries of this template happen inside AWS, where no API caller sees an error:

- **CloudWatch alarm actions.** An alarm whose state changes runs the actions of its new state
  (AlarmActions on ALARM, OKActions on OK, InsufficientDataActions on INSUFFICIENT_DATA; none when
  ActionsEnabled is false). For an SNS topic, CloudWatch publishes the alarm's JSON notification as
  ``cloudwatch.amazonaws.com`` with ``aws:SourceArn`` = the alarm ARN and ``aws:SourceAccount``.
  moto 5.2.5 stores the state and runs no action.
- **S3 event notifications to SQS.** S3 sends each event to a queue as ``s3.amazonaws.com`` with
  ``aws:SourceArn`` = the bucket ARN and ``aws:SourceAccount`` = the bucket owner. moto 5.2.5
  sends it unchecked.

With the local IAM check on (``RUNTIME.iam_check``), each delivery is authorized by the
destination's resource policy (topic or queue policy) and, for an encrypted destination, by its
key policy (the KMS request SNS or SQS makes for the sender). A refusal delivers nothing and is
recorded in ``RUNTIME.denials`` naming principal, action, resource and AWS's message; AWS shows it
only in the alarm's history. With the check off, everything is delivered (moto's behaviour plus the
alarm actions). Sources: docs/aws-notes.md, "CloudWatch alarms publishing to the encrypted topic"
and "S3 event notifications to the crawler's queue".

:func:`create_alarm` is the deploy step: each of the template's alarms, created in the emulated CloudWatch in
CloudFormation's order.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME, ActorDenial

LOG = logging.getLogger(__name__)

CLOUDWATCH_SERVICE_PRINCIPAL = "cloudwatch.amazonaws.com"
S3_SERVICE_PRINCIPAL = "s3.amazonaws.com"
# The alarm properties of AWS::CloudWatch::Alarm that PutMetricAlarm takes under the same name.
_ALARM_PARAMETERS = (
    "AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions", "InsufficientDataActions",
    "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit",
    "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
    "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId",
)
_ACTIONS_OF_STATE = {"ALARM": "alarm_actions", "OK": "ok_actions", "INSUFFICIENT_DATA": "insufficient_data_actions"}


# --------------------------------------------------------------------------------- deploy


def create_alarm(template: Any, lid: str, cloudwatch: Any) -> str:
    """Create one AWS::CloudWatch::Alarm of the template under its local name; returns the name."""
    props = template.properties(lid)
    name = template.name_of(lid)
    cloudwatch.put_metric_alarm(AlarmName=name, **{k: props[k] for k in _ALARM_PARAMETERS if k in props})
    return name


# --------------------------------------------------------------------------- alarm actions


def alarm_notification(alarm: Any, old_state: str, region_name: str) -> tuple[str, str]:
    """The (subject, message) CloudWatch publishes for ``alarm``'s new state: the subject
    ``ALARM: "name" in <region name>`` and the alarm's JSON document."""
    _, _, _, region, account, *_ = alarm.alarm_arn.split(":")
    trigger: dict[str, Any] = {
        "Period": alarm.period, "EvaluationPeriods": alarm.evaluation_periods,
        "ComparisonOperator": alarm.comparison_operator, "Threshold": alarm.threshold,
        "TreatMissingData": alarm.treat_missing_data or "", "EvaluateLowSampleCountPercentile":
            alarm.evaluate_low_sample_count_percentile or "",
    }
    if alarm.metric_data_queries:
        trigger["Metrics"] = [_query(q) for q in alarm.metric_data_queries]
    else:
        trigger.update({
            "MetricName": alarm.metric_name, "Namespace": alarm.namespace,
            "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
            "Statistic": (alarm.extended_statistic or alarm.statistic or "").upper(), "Unit": alarm.unit,
            "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
        })
    message = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _iso(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": _iso(alarm.state_updated_timestamp),
        "Region": region_name,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "Trigger": trigger,
    }
    subject = f'{alarm.state_value}: "{alarm.name}" in {region_name}'
    return subject[:100], json.dumps(message)  # SNS subjects are at most 100 characters


def run_alarm_actions(alarm: Any, old_state: str) -> None:
    """Run the actions of ``alarm``'s new state, as CloudWatch does after a state change: publish
    its notification to each SNS action as cloudwatch.amazonaws.com (authorized by the IAM check
    when it is on)."""
    if alarm.state_value == old_state or not alarm.actions_enabled:
        return
    _, _, _, region, account, *_ = alarm.alarm_arn.split(":")
    subject, message = alarm_notification(alarm, old_state, _region_name(region))
    for action in getattr(alarm, _ACTIONS_OF_STATE.get(alarm.state_value, ""), None) or []:
        if ":sns:" not in action:
            LOG.warning("alarm %s: action %s is not emulated (only SNS topics are)", alarm.name, action)
            continue
        context = {"aws:SourceArn": alarm.alarm_arn, "aws:SourceAccount": account}
        actor = f"CloudWatch alarm {alarm.alarm_arn}"
        if _allowed(actor, CLOUDWATCH_SERVICE_PRINCIPAL, "sns:Publish", action, context):
            try:
                _publish_to_topic(action, subject, message)
            except Exception:  # CloudWatch records a failed action in the alarm's history, nothing more
                LOG.exception("alarm %s: could not publish to %s", alarm.name, action)


def run_alarm_actions_on_state_change() -> None:
    """SetAlarmState (and any state change) runs the new state's actions, as CloudWatch does:
    "When the updated state differs from the previous value, the action configured for the
    appropriate state is invoked" (SetAlarmState). moto 5.2.5 only stores the state.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_SetAlarmState.html.
    Test: tests/local/test_service_deliveries.py; tests/local/test_iam_pipeline.py (the alarm tests).
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.cloudwatch.models import Alarm


    original = Alarm.update_state

    def update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        old_state = self.state_value
        original(self, reason, reason_data, state_value)
        try:
            run_alarm_actions(self, old_state)
        except Exception:  # asynchronous on AWS: never fail SetAlarmState
            LOG.exception("alarm %s: its actions failed", self.name)

    replace(Alarm, "update_state", update_state)


def _publish_to_topic(topic_arn: str, subject: str, message: str) -> None:
    from moto.sns.models import sns_backends

    _, _, _, region, account, _ = topic_arn.split(":", 5)
    sns_backends[account][region].get_topic(topic_arn).publish(message, subject)


# ------------------------------------------------------------------------ S3 -> SQS events


def judge_s3_deliveries_to_sqs() -> None:
    """S3's event notifications (and its s3:TestEvent) reach an SQS queue only if the queue policy
    (and the queue's key policy, if it has a KMS key) lets s3.amazonaws.com send for the bucket.
    moto 5.2.5 sends them unchecked.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/grant-destinations-permissions-to-s3.html.
    Test: tests/local/test_iam_pipeline.py::test_s3_delivers_to_the_crawler_queue_only_as_its_queue_policy_allows.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.s3 import notifications


    original = notifications._send_sqs_message

    def _send_sqs_message(account_id: str, event_body: Any, queue_name: str, region_name: str) -> None:
        bucket = _bucket_of(event_body)
        queue_arn = f"arn:aws:sqs:{region_name}:{account_id}:{queue_name}"
        context = {"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": account_id}
        if _allowed(f"S3 bucket arn:aws:s3:::{bucket}", S3_SERVICE_PRINCIPAL, "sqs:SendMessage", queue_arn, context,
                    object_key=_key_of(event_body)):
            original(account_id, event_body, queue_name, region_name)

    replace(notifications, "_send_sqs_message", _send_sqs_message)


def _bucket_of(event_body: Mapping[str, Any]) -> str:
    records = event_body.get("Records") or [{}]
    return records[0].get("s3", {}).get("bucket", {}).get("name") or str(event_body.get("Bucket", ""))


def _key_of(event_body: Mapping[str, Any]) -> str | None:
    from urllib.parse import unquote_plus

    records = event_body.get("Records") or [{}]
    key = records[0].get("s3", {}).get("object", {}).get("key")
    return unquote_plus(key) if key is not None else None  # S3 URL-encodes the key in the event


# ------------------------------------------------------------------------------- shared


def _allowed(actor: str, service_principal: str, action: str, resource: str, context: Mapping[str, str],
             object_key: str | None = None) -> bool:
    """Is the service's delivery allowed? Without the IAM check: yes. A refusal, or a policy the
    check cannot judge, is recorded in RUNTIME.denials and logged."""

    check = RUNTIME.iam_check
    if check is None:
        return True
    try:
        authorization = check.authorize_service(service_principal, action, resource, context)
    except Exception as error:  # a condition or key the check cannot judge: never an allow
        message = f"the local IAM check cannot judge it: {error}"
    else:
        if authorization.allowed:
            return True
        message = authorization.message
    RUNTIME.denials.append(ActorDenial(actor, service_principal, action, resource, message, object_key))
    LOG.warning("%s: %s was denied %s on %s: %s", actor, service_principal, action, resource, message)
    return False


def _query(query: Any) -> dict[str, Any]:
    described: dict[str, Any] = {"Id": query.id, "ReturnData": query.return_data}
    if query.expression:
        described["Expression"] = query.expression
    if query.label:
        described["Label"] = query.label
    stat = query.metric_stat
    if stat is not None:
        described["MetricStat"] = {
            "Metric": {"Namespace": stat.metric.namespace, "MetricName": stat.metric.metric_name,
                       "Dimensions": [{"value": d.value, "name": d.name} for d in stat.metric.dimensions]},
            "Period": stat.period, "Stat": stat.stat,
        }
    return described


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "+0000")


@functools.lru_cache(maxsize=None)
def _region_name(region: str) -> str:
    """The region's long name, as CloudWatch writes it in notifications ("US East (N. Virginia)")."""
    from botocore.loaders import create_loader

    for partition in create_loader().load_data("endpoints")["partitions"]:
        described = partition.get("regions", {}).get(region)
        if described and described.get("description"):
            return described["description"]
    return region


PATCHES: tuple[Callable[[], None], ...] = (run_alarm_actions_on_state_change, judge_s3_deliveries_to_sqs)
