"""CloudWatch alarm actions as CloudWatch runs them, against the real moto server (IAM check off:
the policies' side is tested through the IAM-checked pipeline, tests/local/test_iam_pipeline.py)."""

from __future__ import annotations

import json
import uuid

from airline_local.aws.cfn import Template
from airline_local.aws.patches.service_deliveries import create_alarm

METRIC_ALARM = {
    "MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS", "Statistic": "Maximum",
    "Dimensions": [{"Name": "QueueName", "Value": "dlq"}], "Period": 300, "EvaluationPeriods": 1,
    "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def emails_to(emulator, topic_arn: str) -> list:
    return [m for m in emulator.mailbox.messages() if m["X-SNS-Topic-Arn"] == topic_arn]


def test_an_alarm_entering_alarm_publishes_cloudwatchs_json_once_per_state_change(emulator):
    topic = emulator.client("sns").create_topic(Name=unique("alarms"))["TopicArn"]
    cloudwatch, name = emulator.client("cloudwatch"), unique("dead-letters")
    cloudwatch.put_metric_alarm(AlarmName=name, AlarmDescription="DLQ not empty", AlarmActions=[topic], **METRIC_ALARM)

    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint [3.0]")
    [email] = emails_to(emulator, topic)
    assert email["Subject"] == f'ALARM: "{name}" in US East (N. Virginia)'
    notification = json.loads(email.get_content())
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert {k: notification[k] for k in ("AlarmName", "AlarmDescription", "AlarmArn", "AWSAccountId", "Region",
                                         "NewStateValue", "OldStateValue", "NewStateReason", "AlarmActions")} == {
        "AlarmName": name, "AlarmDescription": "DLQ not empty", "AlarmArn": alarm["AlarmArn"],
        "AWSAccountId": alarm["AlarmArn"].split(":")[4], "Region": "US East (N. Virginia)",
        "NewStateValue": "ALARM", "OldStateValue": "OK",
        "NewStateReason": "Threshold Crossed: 1 datapoint [3.0]", "AlarmActions": [topic]}
    assert notification["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert notification["Trigger"]["Dimensions"] == [{"value": "dlq", "name": "QueueName"}]
    assert notification["Trigger"]["Statistic"] == "MAXIMUM"

    # No change of state, no action; OK has no OKActions here.
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="still")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="back")
    assert len(emails_to(emulator, topic)) == 1


def test_the_new_states_actions_run_and_disabled_actions_do_not(emulator):
    topic = emulator.client("sns").create_topic(Name=unique("alarms"))["TopicArn"]
    cloudwatch = emulator.client("cloudwatch")
    ok_name, disabled = unique("recovers"), unique("disabled")
    cloudwatch.put_metric_alarm(AlarmName=ok_name, OKActions=[topic], **METRIC_ALARM)
    cloudwatch.put_metric_alarm(AlarmName=disabled, AlarmActions=[topic], ActionsEnabled=False, **METRIC_ALARM)
    cloudwatch.set_alarm_state(AlarmName=ok_name, StateValue="ALARM", StateReason="up")  # no AlarmActions
    cloudwatch.set_alarm_state(AlarmName=disabled, StateValue="ALARM", StateReason="up")
    assert emails_to(emulator, topic) == []
    cloudwatch.set_alarm_state(AlarmName=ok_name, StateValue="OK", StateReason="down")
    [email] = emails_to(emulator, topic)
    assert email["Subject"].startswith(f'OK: "{ok_name}"')
    assert json.loads(email.get_content())["OldStateValue"] == "ALARM"


def test_the_deploy_creates_the_templates_alarms_with_their_arn_and_metric_math(emulator):
    topic = emulator.client("sns").create_topic(Name=unique("alarms"))["TopicArn"]
    name = unique("RejectRatioAlarm")
    body = {"Resources": {name: {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmActions": [topic], "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1,
        "Threshold": 0.05, "TreatMissingData": "notBreaching",
        "Metrics": [{"Id": "expr_1", "Expression": "quarantined / read", "Label": "reject ratio"},
                    {"Id": "quarantined", "ReturnData": False, "MetricStat": {
                        "Metric": {"Namespace": "AirlineBookings", "MetricName": "RowsQuarantined",
                                   "Dimensions": [{"Name": "JobName", "Value": "job"}]},
                        "Period": 86400, "Stat": "Sum"}}]}}}}
    template = Template(body)
    cloudwatch = emulator.client("cloudwatch")
    assert create_alarm(template, name, cloudwatch) == name
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert alarm["AlarmArn"] == template.get_att(name, "Arn")  # the ARN a topic policy names
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="ratio")
    [email] = emails_to(emulator, topic)
    metrics = json.loads(email.get_content())["Trigger"]["Metrics"]
    assert [m["Id"] for m in metrics] == ["expr_1", "quarantined"]
    assert metrics[0]["Expression"] == "quarantined / read"
    assert metrics[1]["MetricStat"]["Metric"]["MetricName"] == "RowsQuarantined"
