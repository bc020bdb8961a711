"""The dashboard and the reject-ratio alarm as synthesized, and the promise between them and the
job: every metric the dashboard reads from the job's namespace is one bookings_metrics declares, and
back. That the job really emits them is checked on a real run of the script:
tests/etl/test_etl_glue_script.py compares its EMF line with what this dashboard reads."""

from __future__ import annotations

import json

import pytest

from glue_scripts import bookings_metrics as job_metrics
from tests.infra.conftest import PROJECT_ROOT
from tests.infra.template_helpers import only, render, resources_of

FULL_SUMMARY = {
    "execution_id": "e", "source_file": "s3://b/raw/bookings/x.csv", "status": "SUCCEEDED",
    "rows_read": 9, "rows_quarantined": 1, "rows_duplicate": 1, "rows_inserted": 3, "rows_updated": 1,
    "rows_unchanged": 1, "rows_stale": 2, "duration_seconds": 4.0, "finished_at": "2026-01-01T00:00:00.000Z",
    "timings": {"spark_session": 1.0, "stage": 2.0, "load": 1.0},
}


@pytest.fixture(scope="module")
def dashboard(template_json) -> dict:
    """The dashboard body as JSON, references written <LogicalId>."""
    _, props = only(template_json, "AWS::CloudWatch::Dashboard")
    return json.loads(render(props["DashboardBody"]))


def _metric_rows(dashboard: dict) -> list[list]:
    """Every metric line of every graph: [namespace, name, dim, value, ..., {options}] or [{expression}]."""
    return [row for widget in dashboard["widgets"] if widget["type"] == "metric"
            for row in widget["properties"]["metrics"]]


def _read(dashboard: dict, namespace: str) -> list[tuple[str, dict[str, str], dict]]:
    found = []
    for row in _metric_rows(dashboard):
        if row[0] == namespace:
            options = row[-1] if isinstance(row[-1], dict) else {}
            fields = row[2:-1] if options else row[2:]
            found.append((row[1], dict(zip(fields[::2], fields[1::2])), options))
    return found


def _widget(dashboard: dict, title: str) -> dict:
    [widget] = [w for w in dashboard["widgets"] if w.get("properties", {}).get("title") == title]
    return widget["properties"]


def test_the_dashboard_reads_exactly_the_metrics_bookings_metrics_declares(dashboard, template_json):
    """With the dimension set of the EMF directive (the names a real run emits: the etl test)."""
    emitted = job_metrics.emf_document(FULL_SUMMARY, "job")
    emitted_names = {m["Name"] for m in emitted["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    [dimensions] = emitted["_aws"]["CloudWatchMetrics"][0]["Dimensions"]

    read = _read(dashboard, job_metrics.NAMESPACE)
    assert {name for name, _, _ in read} == emitted_names == set(job_metrics.ALL_METRICS)
    job_id, _ = only(template_json, "AWS::Glue::Job")
    for name, dims, _ in read:
        # The same dimension set as the EMF directive, valued with this stack's job name.
        assert sorted(dims) == sorted(dimensions) and dims[job_metrics.DIMENSION] == f"<{job_id}>", name


@pytest.mark.parametrize(("label", "machine_prefix"), [("Per-file ingestion", "OrchestrationStateMachine"),
                                                        ("Backfill", "BackfillStateMachine")])
def test_executions_started_succeeded_failed_and_duration_percentiles(dashboard, template_json, label, machine_prefix):
    """Each state machine has its own two graphs, and they read that machine's metrics alone."""
    (machine,) = [k for k in resources_of(template_json, "AWS::StepFunctions::StateMachine")
                  if k.startswith(machine_prefix)]
    graphs = {f"{label}: executions": {("ExecutionsStarted", "Sum"), ("ExecutionsSucceeded", "Sum"),
                                       ("ExecutionsFailed", "Sum"), ("ExecutionsTimedOut", "Sum"),
                                       ("ExecutionsAborted", "Sum")},
              f"{label}: execution duration (ms)": {("ExecutionTime", "p50"), ("ExecutionTime", "p90")}}
    for title, expected in graphs.items():
        rows = _widget(dashboard, title)["metrics"]
        assert {row[0] for row in rows} == {"AWS/States"}, title
        assert {dict(zip(row[2:-1:2], row[3:-1:2]))["StateMachineArn"] for row in rows} == {f"<{machine}>"}, title
        assert {(row[1], row[-1]["stat"]) for row in rows} == expected, title


def test_rows_by_outcome_reject_ratio_dlq_and_job_duration_widgets(dashboard, template_json):
    rows = _widget(dashboard, "Rows by outcome")["metrics"]
    assert [r[1] for r in rows] == ["RowsInserted", "RowsUpdated", "RowsUnchanged", "RowsStale",
                                    "RowsDuplicate", "RowsQuarantined"]
    ratio = _widget(dashboard, "Reject ratio (quarantined / read)")["metrics"]
    assert ratio[0][0]["expression"] == "quarantined / read"
    assert {(r[1], r[-1]["id"]) for r in ratio[1:]} == {("RowsQuarantined", "quarantined"), ("RowsRead", "read")}

    dlq_id = next(k for k in resources_of(template_json, "AWS::SQS::Queue") if "DeadLetter" in k)
    crawler_dlq_id = next(k for k in resources_of(template_json, "AWS::SQS::Queue") if "CrawlerEventsDlq" in k)
    queues = _read(dashboard, "AWS/SQS")
    assert {(name, options["stat"]) for name, _, options in queues} == {("ApproximateNumberOfMessagesVisible", "Maximum")}
    assert sorted(dims["QueueName"] for _, dims, _ in queues) == sorted(
        [f"<{dlq_id}.QueueName>", f"<{crawler_dlq_id}.QueueName>"])

    duration = _widget(dashboard, "Glue job duration (seconds)")["metrics"]
    assert {(r[1], r[-1]["stat"]) for r in duration} == {("RunSeconds", "p50"), ("RunSeconds", "p90"),
                                                         ("RunSeconds", "Maximum")}
    alarms = next(w for w in dashboard["widgets"] if w["type"] == "alarm")["properties"]["alarms"]
    assert len(alarms) == len(resources_of(template_json, "AWS::CloudWatch::Alarm"))


def test_reject_ratio_alarm_is_half_the_max_ratio_over_a_day(template_json):
    from stacks.config import PipelineConfig

    [alarm] = [a["Properties"] for a in resources_of(template_json, "AWS::CloudWatch::Alarm").values()
               if any(m.get("Expression") == "quarantined / read" for m in a["Properties"].get("Metrics", []))]
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    max_ratio = float(context.get("maxRejectRatio", PipelineConfig.max_reject_ratio))
    assert alarm["Threshold"] == max_ratio / 2
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"
    stats = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
    assert {s["Metric"]["MetricName"] for s in stats} == {"RowsQuarantined", "RowsRead"}
    assert {(s["Period"], s["Stat"]) for s in stats} == {(86400, "Sum")}
    topic_id, _ = only(template_json, "AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_each_dead_letter_queue_has_a_not_empty_alarm_that_mails(template_json):
    """The rule target's DLQ (events that never started an execution) and the crawler's event DLQ
    (S3 events the crawler never consumed)."""
    queue_ids = [k for k in resources_of(template_json, "AWS::SQS::Queue") if "DeadLetter" in k or "Dlq" in k]
    assert len(queue_ids) == 2
    dlq_alarms = [a["Properties"] for a in resources_of(template_json, "AWS::CloudWatch::Alarm").values()
                  if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    assert sorted(a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in dlq_alarms) == sorted(queue_ids)
    topic_id, _ = only(template_json, "AWS::SNS::Topic")
    for alarm in dlq_alarms:
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_a_metric_the_job_does_not_emit_cannot_be_put_on_the_dashboard():
    from aws_cdk import App, Stack
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sqs as sqs
    from aws_cdk import aws_stepfunctions as sfn

    from stacks.config import PipelineConfig
    from stacks.observability import Observability

    stack = Stack(App(), "S")
    observability = Observability(
        stack, "O", config=PipelineConfig(), job_name="j", topic=sns.Topic(stack, "T"),
        dead_letter_queue=sqs.Queue(stack, "Q"), crawler_events_dead_letter_queue=sqs.Queue(stack, "CQ"),
        state_machines={"m": sfn.StateMachine(stack, "M", definition_body=sfn.DefinitionBody.from_chainable(
            sfn.Pass(stack, "P")))},
    )
    with pytest.raises(ValueError, match="does not emit 'RowsLost'"):
        observability.job_metric("RowsLost")
