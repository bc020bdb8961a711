"""The state machine (states, integrations, retries, catches), the EventBridge rule, the DLQ and
the alarms, read from the synthesized template."""

from __future__ import annotations

import json

import pytest

from tests.infra.template_helpers import only, policy_statements, render, resources_of, state_machine_definition

CONTRACT_STATES = {
    "Identify delivery", "Claim delivery", "Delivery already claimed?", "Read delivery marker",
    "Claimed by this execution?", "Duplicate delivery",
    "Start crawler", "Wait for crawler", "Get crawler", "Crawler finished?", "Count poll",
    "Too many polls?", "Crawl succeeded?", "Run ETL job", "Job succeeded?", "Read run summary",
    "Notify success", "Succeeded", "Notify failure", "Failed",
}
# After "Run ETL job" fails: its error from the run summary, else the error as it came.
JOB_FAILURE_STATES = {"Read failure summary": "Task", "Summary names the error?": "Choice"}
TASKS = ("Claim delivery", "Read delivery marker", "Start crawler", "Get crawler", "Run ETL job", "Read run summary", "Notify success", "Notify failure")


@pytest.fixture(scope="module")
def states(template_json):
    definition = state_machine_definition(template_json)
    assert definition["StartAt"] == "Identify delivery"
    return definition["States"]


def _crawler_ref(template_json):
    logical_id, _ = only(template_json, "AWS::Glue::Crawler")
    return f"<{logical_id}>"


def test_state_names_are_the_contract_plus_failure_passes(states):
    assert CONTRACT_STATES <= set(states)
    extra = set(states) - CONTRACT_STATES - set(JOB_FAILURE_STATES)
    assert extra and all(states[name]["Type"] == "Pass" for name in extra)
    assert all(states[name]["Next"] == "Notify failure" for name in extra)
    assert {name: states[name]["Type"] for name in JOB_FAILURE_STATES} == JOB_FAILURE_STATES


def test_a_failed_job_is_mailed_with_the_error_from_its_run_summary(states):
    [catch_all] = states["Run ETL job"]["Catch"]
    assert catch_all == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Read failure summary"}
    read = states["Read failure summary"]
    assert read["Parameters"] == states["Read run summary"]["Parameters"]  # runs/<execution>.json
    assert read["ResultPath"] == "$.run" and read["Next"] == "Summary names the error?"
    # No summary (the job was killed, or never started): the job's error as it came. The
    # summary's own error must not overwrite the job's in $.error.
    assert read["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.summary_error",
                              "Next": "Run ETL job failed"}]
    choice = states["Summary names the error?"]
    [rule] = choice["Choices"]
    assert rule["Next"] == "Job failed" and choice["Default"] == "Run ETL job failed"
    assert {"Variable": "$.run.summary.error", "IsPresent": True} in rule["And"]
    assert {"Variable": "$.run.summary.error", "IsString": True} in rule["And"]
    assert states["Job failed"]["Parameters"] == {"step": "Run ETL job", "error.$": "$.error.Error",
                                                  "cause.$": "$.run.summary.error"}
    # Nothing on this path parses the cause with an intrinsic function: a States.Runtime error
    # cannot be caught and would end the execution without an email.
    for name in ("Job failed", "Run ETL job failed"):
        assert "States." not in json.dumps(states[name]["Parameters"])


def test_start_crawler_is_an_sdk_call_that_waits_when_the_crawler_is_busy(states, template_json):
    start = states["Start crawler"]
    assert start["Resource"].endswith(":states:::aws-sdk:glue:startCrawler")
    assert start["Parameters"] == {"Name": _crawler_ref(template_json)}
    assert start["Next"] == "Wait for crawler"
    assert start["Assign"] == {"polls": 0}
    busy, anything = start["Catch"]
    assert busy["ErrorEquals"] == ["Glue.CrawlerRunningException"] and busy["Next"] == "Wait for crawler"
    assert busy["Assign"] == {"polls": 0}
    assert anything["ErrorEquals"] == ["States.ALL"] and anything["Next"] == "Start crawler failed"


def test_polling_loop_is_bounded_and_reads_last_crawl_only_when_ready(states, template_json):
    assert states["Wait for crawler"] == {"Type": "Wait", "Seconds": 30, "Next": "Get crawler"}
    get = states["Get crawler"]
    assert get["Resource"].endswith(":states:::aws-sdk:glue:getCrawler")
    assert get["Parameters"] == {"Name": _crawler_ref(template_json)}
    assert get["ResultPath"] == "$.crawler"  # the event stays at the root
    finished = states["Crawler finished?"]
    busy_rule, ready_rule = finished["Choices"]
    assert {c["StringEquals"] for c in busy_rule["Or"]} == {"RUNNING", "STOPPING"}
    assert busy_rule["Next"] == "Count poll"
    assert ready_rule == {"Variable": "$.crawler.Crawler.State", "StringEquals": "READY", "Next": "Crawl succeeded?"}
    assert "LastCrawl" not in str(finished)
    assert finished["Default"] == "Crawler not ready"
    assert states["Count poll"]["Assign"] == {"polls.$": "States.MathAdd($polls, 1)"}
    too_many = states["Too many polls?"]
    assert too_many["Choices"] == [
        {"Variable": "$polls", "NumericGreaterThanEquals": 60, "Next": "Crawler timed out"}
    ]
    assert too_many["Default"] == "Wait for crawler"
    succeeded = states["Crawl succeeded?"]
    ok = succeeded["Choices"][0]
    assert ok["Next"] == "Run ETL job"
    assert {"Variable": "$.crawler.Crawler.LastCrawl.Status", "IsPresent": True} in ok["And"]
    assert {"Variable": "$.crawler.Crawler.LastCrawl.Status", "StringEquals": "SUCCEEDED"} in ok["And"]
    assert succeeded["Choices"][1]["Next"] == "Crawl failed"
    assert succeeded["Default"] == "Crawler not ready"


def test_job_runs_synchronously_with_the_object_uri_and_execution_name(states, template_json):
    job_id, _ = only(template_json, "AWS::Glue::Job")
    run = states["Run ETL job"]
    assert run["Resource"].endswith(":states:::glue:startJobRun.sync")
    assert run["Parameters"] == {
        "JobName": f"<{job_id}>",
        "Arguments": {
            "--source_uri.$": "States.Format('s3://{}/{}', $.detail.bucket.name, $.detail.object.key)",
            "--execution_id.$": "$$.Execution.Name",
        },
    }
    assert run["ResultPath"] == "$.job" and run["Next"] == "Job succeeded?"
    retried = {e for r in run["Retry"] for e in r["ErrorEquals"]}
    assert {"Glue.ConcurrentRunsExceededException", "Glue.ThrottlingException", "Glue.OperationTimeoutException"} <= retried
    for retry in run["Retry"]:
        assert retry["BackoffRate"] >= 1.5 and retry["MaxAttempts"] >= 3 and retry["JitterStrategy"] == "FULL"
    # A burst waits for a free run slot for over an hour (before jitter), yet never sleeps more
    # than 5 minutes between two attempts (a freed slot is taken soon).
    [concurrency] = [r for r in run["Retry"] if r["ErrorEquals"] == ["Glue.ConcurrentRunsExceededException"]]
    assert concurrency["IntervalSeconds"] == 30 and concurrency["MaxDelaySeconds"] == 300
    waits = [min(concurrency["IntervalSeconds"] * concurrency["BackoffRate"] ** attempt,
                 concurrency["MaxDelaySeconds"]) for attempt in range(concurrency["MaxAttempts"])]
    assert sum(waits) >= 3600
    assert "States.TaskFailed" not in retried  # a failed job is reported, not blindly re-run
    choice = states["Job succeeded?"]
    assert choice["Choices"] == [{"Variable": "$.job.JobRunState", "StringEquals": "SUCCEEDED", "Next": "Read run summary"}]
    assert choice["Default"] == "Job did not succeed"


def test_run_summary_is_read_from_runs_prefix_and_parsed(states, template_json):
    bucket_id = next(k for k in resources_of(template_json, "AWS::S3::Bucket") if k.startswith("StorageRawBucket"))
    read = states["Read run summary"]
    assert read["Resource"].endswith(":states:::aws-sdk:s3:getObject")
    assert read["Parameters"] == {
        "Bucket": f"<{bucket_id}>",
        "Key.$": "States.Format('runs/{}.json', $$.Execution.Name)",
    }
    assert read["ResultSelector"] == {"summary.$": "States.StringToJson($.Body)"}
    assert read["ResultPath"] == "$.run"


def test_success_message_names_the_file_and_every_count(states, template_json):
    topic_id, _ = only(template_json, "AWS::SNS::Topic")
    notify = states["Notify success"]
    assert notify["Resource"].endswith(":states:::sns:publish")
    assert notify["Parameters"]["TopicArn"] == f"<{topic_id}>"
    message = notify["Parameters"]["Message.$"]
    assert message.startswith("States.Format(")
    for field in ("rows_read", "rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated",
                  "rows_unchanged", "rows_stale", "quarantine_uri", "duration_seconds"):
        assert f"{field}={{}}" in message and f"$.run.summary.{field}" in message
    assert "$.detail.bucket.name, $.detail.object.key" in message
    assert notify["Next"] == "Succeeded" and states["Succeeded"]["Type"] == "Succeed"


def test_failure_message_names_file_step_error_and_cause(states):
    notify = states["Notify failure"]
    message = notify["Parameters"]["Message.$"]
    for path in ("$.detail.bucket.name", "$.detail.object.key", "$.failure.step", "$.failure.error", "$.failure.cause"):
        assert path in message
    assert notify["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"
    assert notify["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.notify_error", "Next": "Failed"}]


@pytest.mark.parametrize("task", TASKS)
def test_every_task_catches_everything_into_the_failure_path(states, task):
    catch_all = [c for c in states[task]["Catch"] if c["ErrorEquals"] == ["States.ALL"]]
    assert len(catch_all) == 1
    target = catch_all[0]["Next"]
    if task == "Run ETL job":  # through its run summary first (the test above)
        target = states[target]["Catch"][0]["Next"]
    if task == "Notify failure":
        assert target == "Failed"
        return
    assert states[target]["Type"] == "Pass"
    # The marker is read back as part of the claim: its failure is the claim's.
    assert states[target]["Parameters"]["step"] == ("Claim delivery" if task == "Read delivery marker" else task)
    assert states[target]["Parameters"]["error.$"] == "$.error.Error"
    assert states[target]["Parameters"]["cause.$"] == "$.error.Cause"
    assert states[target]["ResultPath"] == "$.failure"
    assert catch_all[0]["ResultPath"] == "$.error"  # never overwrite the event


def test_the_gate_claims_each_upload_once_before_the_crawl(states, template_json):
    """bucket/key/version id/sequencer identify one PutObject; the marker is a create-only
    conditional write naming its execution; a 412 reads the marker back: this execution's own
    (its first write's reply was lost) goes on, another's ends as a duplicate; any other error
    is mailed."""
    identify = states["Identify delivery"]
    assert identify["Type"] == "Pass" and identify["ResultPath"] == "$.delivery"
    assert identify["Parameters"] == {
        "bucket.$": "$.detail.bucket.name", "key.$": "$.detail.object.key",
        "version_id.$": "$.detail.object.version-id", "sequencer.$": "$.detail.object.sequencer",
        "execution.$": "$$.Execution.Id"}
    claim = states[identify["Next"]]
    assert claim["Resource"].endswith(":states:::aws-sdk:s3:putObject") and claim["Next"] == "Start crawler"
    params = claim["Parameters"]
    assert params["IfNoneMatch"] == "*" and params["Body.$"] == "$$.Execution.Id"
    assert params["Key.$"].startswith("States.Format('deliveries/{}', States.Hash(")
    for field in ("$.delivery.bucket", "$.delivery.key", "$.delivery.version_id", "$.delivery.sequencer"):
        assert field in params["Key.$"]
    assert claim["ResultPath"] is None  # the event stays the state
    [retry] = claim["Retry"]
    assert retry["MaxAttempts"] == 2 and retry["IntervalSeconds"] == 1
    s3_errors, catch_all = claim["Catch"]
    assert s3_errors["Next"] == "Delivery already claimed?" and s3_errors["ResultPath"] == "$.error"
    assert catch_all["ErrorEquals"] == ["States.ALL"] and catch_all["Next"] == "Claim delivery failed"
    choice = states["Delivery already claimed?"]
    [rule] = choice["Choices"]
    assert rule["Next"] == "Read delivery marker" and choice["Default"] == "Claim delivery failed"
    assert {"Variable": "$.error.Cause", "StringMatches": "*Status Code: 412*"} in rule["Or"]
    read = states["Read delivery marker"]
    assert read["Resource"].endswith(":states:::aws-sdk:s3:getObject")
    assert read["Parameters"]["Key.$"] == params["Key.$"]  # the very marker the claim wrote
    assert read["ResultSelector"] == {"owner.$": "$.Body"} and read["ResultPath"] == "$.marker"
    assert read["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Claim delivery failed"}]
    mine = states[read["Next"]]
    assert mine["Choices"] == [{"Variable": "$.marker.owner", "StringEqualsPath": "$.delivery.execution",
                                "Next": "Start crawler"}]
    assert mine["Default"] == "Duplicate delivery"
    assert states["Duplicate delivery"]["Type"] == "Succeed"


def test_delivery_markers_expire(template_json):
    _, bucket = next((k, r) for k, r in resources_of(template_json, "AWS::S3::Bucket").items() if "Raw" in k)
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-delivery-markers"]["Prefix"] == "deliveries/"
    assert rules["expire-delivery-markers"]["ExpirationInDays"] == 30


@pytest.mark.parametrize("task", ["Start crawler", "Get crawler", "Run ETL job"])
def test_glue_calls_retry_throttling_with_backoff(states, task):
    retry = next(r for r in states[task]["Retry"] if "Glue.ThrottlingException" in r["ErrorEquals"])
    assert retry["BackoffRate"] == 2 and retry["MaxAttempts"] == 6 and retry["MaxDelaySeconds"] == 300


def test_choice_failures_describe_the_step(states):
    assert states["Crawl failed"]["Parameters"]["error"] == "CrawlFailed"
    assert "LastCrawl" in states["Crawl failed"]["Parameters"]["cause.$"]
    assert states["Crawler timed out"]["Parameters"]["error"] == "CrawlerTimeout"
    assert "$polls" in states["Crawler timed out"]["Parameters"]["cause.$"]
    assert states["Job did not succeed"]["Parameters"]["step"] == "Run ETL job"


def test_state_machine_is_standard_with_logging_and_tracing(template_json):
    machine = [r["Properties"] for r in resources_of(template_json, "AWS::StepFunctions::StateMachine").values()
               if r["Properties"].get("TracingConfiguration")][0]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    log_group = machine["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    group = template_json["Resources"][log_group["Fn::GetAtt"][0]]["Properties"]
    assert "KmsKeyId" in group and group["RetentionInDays"] == 365


def test_state_machine_role_is_scoped_to_project_resources(template_json):
    machine_id, machine = [(k, r["Properties"]) for k, r in resources_of(template_json, "AWS::StepFunctions::StateMachine").items()
                           if r["Properties"].get("TracingConfiguration")][0]
    role_id = machine["RoleArn"]["Fn::GetAtt"][0]
    by_action = {}
    for statement in policy_statements(template_json, role_id):
        for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
            by_action.setdefault(action, []).extend(
                render(r) for r in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
            )
    crawler_id, _ = only(template_json, "AWS::Glue::Crawler")
    job_id, _ = only(template_json, "AWS::Glue::Job")
    assert by_action["glue:StartCrawler"] == by_action["glue:GetCrawler"]
    assert all(r.endswith(f":crawler/<{crawler_id}>") for r in by_action["glue:StartCrawler"])
    assert all(r.endswith(f":job/<{job_id}>") for r in by_action["glue:StartJobRun"])
    raw = _raw_bucket_id(template_json)
    assert sorted(set(by_action["s3:GetObject"])) == [f"<{raw}.Arn>/deliveries/*", f"<{raw}.Arn>/runs/*"]
    assert [r for r in by_action["s3:PutObject"]] == [f"<{_raw_bucket_id(template_json)}.Arn>/deliveries/*"]
    assert all("Topic" in r for r in by_action["sns:Publish"])
    assert "s3:*" not in by_action and "glue:*" not in by_action


def _raw_bucket_id(template_json) -> str:
    return next(k for k in resources_of(template_json, "AWS::S3::Bucket") if "Raw" in k)


def test_rule_matches_csv_uploads_under_raw_bookings_and_targets_the_state_machine(template_json):
    _, rule = only(template_json, "AWS::Events::Rule")
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert render(pattern["detail"]["bucket"]["name"][0]).startswith("<StorageRawBucket")
    assert pattern["detail"]["object"]["key"] == [
        {"wildcard": "raw/bookings/*.csv"},
        {"wildcard": "raw/bookings/*.csv.gz"},
    ]
    (target,) = rule["Targets"]
    assert render(target["Arn"]).startswith("<OrchestrationStateMachine")
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 8}
    dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    queue = template_json["Resources"][dlq]
    assert queue["Type"] == "AWS::SQS::Queue" and queue["Properties"]["SqsManagedSseEnabled"] is True


def test_s3_sends_events_to_eventbridge(template_json):
    _, notification = only(template_json, "Custom::S3BucketNotifications")
    # Beside EventBridge, the crawler's SQS queue (tests/infra/test_catalog_and_job.py).
    assert set(notification["NotificationConfiguration"]) == {"EventBridgeConfiguration", "QueueConfigurations"}
    assert notification["NotificationConfiguration"]["EventBridgeConfiguration"] == {}


def test_alarms_on_failed_timed_out_and_throttled_executions_notify_the_topic(template_json):
    # Single-metric alarms of the per-file machine and the DLQ (the reject-ratio alarm is a metric
    # math expression, tested with the dashboard; the backfill machine has its own).
    alarms = {a["Properties"]["MetricName"]: a["Properties"]
              for a in resources_of(template_json, "AWS::CloudWatch::Alarm").values()
              if "MetricName" in a["Properties"]
              and not render(a["Properties"].get("Dimensions", [{}])[0].get("Value", "")).startswith("<Backfill")}
    topic_id, _ = only(template_json, "AWS::SNS::Topic")
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionThrottled"):
        alarm = alarms[metric]
        assert alarm["Namespace"] == "AWS/States"
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert render(alarm["Dimensions"][0]["Value"]).startswith("<OrchestrationStateMachine")
    assert alarms["ApproximateNumberOfMessagesVisible"]["AlarmActions"] == [{"Ref": topic_id}]


def test_the_configuration_page_describes_the_glue_concurrency_retry_the_definition_has(template_json):
    """The configuration table (docs/configuration.md, once README's) once said "doubling, up to 10
    attempts" of a retry that backs off x1.5 over 25: the text is checked against the synthesized retrier."""
    import re

    from tests.infra.conftest import PROJECT_ROOT

    retry = next(r for r in state_machine_definition(template_json)["States"]["Run ETL job"]["Retry"]
                 if r["ErrorEquals"] == ["Glue.ConcurrentRunsExceededException"])
    (row,) = [line for line in (PROJECT_ROOT / "docs" / "configuration.md").read_text().splitlines()
              if line.startswith("| `glueConcurrencyRetrySeconds`")]
    rate, cap, attempts = re.search(r"×([\d.]+) a retry.*at most (\d+) × this apart, (\d+) retries", row).groups()
    assert float(rate) == retry["BackoffRate"] and int(attempts) == retry["MaxAttempts"]
    assert int(cap) * retry["IntervalSeconds"] == retry["MaxDelaySeconds"]
