"""The backfill state machine (stacks/backfill.py): its Distributed Map, its least-privilege
policies, the config keys it reads, and the rule that keeps backfill files out of the per-file
pipeline. On the template the tests' one synth of the real app (with cdk-nag) produced."""

from __future__ import annotations

import json

import pytest

from stacks.backfill import CHECK_PREFIX, OUTCOMES, RESULTS_PREFIX
from stacks.config import ConfigError, config_from_context
from stacks.storage import BACKFILL_PREFIX, RAW_PREFIX
from tests.infra.template_helpers import (
    machine_definition,
    only,
    policy_statements,
    render,
    resources_of,
)


@pytest.fixture(scope="module")
def definition(template_json):
    return machine_definition(template_json, "Backfill")


def backfill_role(template_json) -> str:
    [lid] = [k for k, r in resources_of(template_json, "AWS::IAM::Role").items() if k.startswith("BackfillStateMachineRole")]
    return lid


def test_distributed_map_lists_the_prefix_with_bounded_concurrency_and_writes_results(definition):
    ingest = definition["States"]["Ingest each file"]
    assert ingest["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert ingest["ItemReader"]["Resource"].endswith(":states:::s3:listObjectsV2")
    assert ingest["ItemReader"]["Parameters"]["Prefix.$"] == "$.prefix"
    assert ingest["MaxConcurrency"] == 4  # cdk.json: backfillMaxConcurrency 0 -> glueMaxConcurrentRuns - 1
    assert ingest["ToleratedFailurePercentage"] == 10
    assert ingest["ResultWriter"]["Resource"].endswith(":states:::s3:putObject")
    assert ingest["ResultWriter"]["Parameters"]["Prefix"] == RESULTS_PREFIX
    # Each file's run gets its own execution id: the run summary runs/<id>.json, the audit row.
    assert ingest["ItemSelector"]["execution_id.$"] == "States.Format('{}-{}', $$.Execution.Name, $$.Map.Item.Index)"


def test_each_file_runs_the_same_job_with_the_same_concurrency_retry(definition, template_json):
    from tests.infra.template_helpers import state_machine_definition

    states = definition["States"]["Ingest each file"]["ItemProcessor"]["States"]
    per_file = state_machine_definition(template_json)["States"]["Run ETL job"]
    run = states["Run ETL job"]
    assert run["Resource"] == per_file["Resource"] and run["Resource"].endswith(":states:::glue:startJobRun.sync")
    assert run["Parameters"]["JobName"] == per_file["Parameters"]["JobName"]
    assert run["Retry"] == per_file["Retry"]  # throttling + ConcurrentRunsExceeded, as the per-file machine
    # Only .csv / .csv.gz objects run the job; other objects under the prefix are skipped.
    choice = states["Booking file?"]
    assert {c["StringMatches"] for c in choice["Choices"][0]["Or"]} == {"*.csv", "*.csv.gz"}
    assert choice["Default"] == "Not a booking file"
    # A failed file fails its child execution (counted against the threshold) with the job's cause.
    assert states["File failed"] == {"Type": "Fail", "Error": "IngestionFailed", "CausePath": "$.run.summary.error"}


def test_one_email_at_the_end_from_a_summary_the_state_never_holds_the_results_for(definition):
    states = definition["States"]
    summarize = states["Summarize"]
    # The ResultWriter's files are read by a function whose output has a bounded size: no state of
    # the parent reads S3 (a result file's body in the state fails past 256 KiB, uncatchably).
    assert summarize["Resource"].endswith(":states:::lambda:invoke") and summarize["Next"] == "Notify backfill done"
    assert summarize["Parameters"]["Payload"] == {"bucket.$": "$.bucket", "prefix.$": "$.prefix",
                                                  "execution.$": "$$.Execution.Name",
                                                  "results.$": "$.map.ResultWriterDetails"}
    assert summarize["OutputPath"] == "$.Payload"
    assert not [name for name, s in states.items() if "s3:getObject" in s.get("Resource", "")]
    # Lambda's transient errors and throttling are retried.
    retried = {e for r in summarize["Retry"] for e in r["ErrorEquals"]}
    assert {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException"} <= retried
    assert states["Notify backfill done"]["Parameters"]["Message.$"] == "$.message"
    publishes = [name for name, s in states.items() if s.get("Resource", "").endswith(":states:::sns:publish")]
    assert sorted(publishes) == ["Notify backfill done", "Notify backfill failure"]
    # Every task of the parent ends in the failure email when it fails (one email either way).
    for name in ("Start crawler", "Get crawler", "Ingest each file", "Summarize", "Notify backfill done"):
        assert states[name]["Catch"][-1]["Next"] == "Notify backfill failure", name


def test_the_summary_function_reads_only_the_results_and_summarizes_every_outcome(template_json):
    from stacks.backfill_summary import summary

    assert summary.OUTCOMES == OUTCOMES
    [(lid, function)] = [(k, v["Properties"]) for k, v in resources_of(template_json, "AWS::Lambda::Function").items()
                         if k.startswith("BackfillSummaryFunction")]
    assert function["Handler"] == "summary.handler" and function["Runtime"].startswith("python3.")
    statements = policy_statements(template_json, function["Role"]["Fn::GetAtt"][0])
    assert sorted((s["Action"], render(s["Resource"])) for s in statements) == [
        ("kms:Decrypt", "<StorageDataKeyE15BA43B.Arn>"), ("s3:GetObject", f"<StorageRawBucketBBD9BDC5.Arn>/{RESULTS_PREFIX}*")]
    # The state machine may invoke it (CDK: the function and its versions).
    invokes = [s for s in policy_statements(template_json, backfill_role(template_json)) if s["Action"] == "lambda:InvokeFunction"]
    assert {render(r) for s in invokes for r in s["Resource"]} == {f"<{lid}.Arn>", f"<{lid}.Arn>:*"}


def test_a_failed_timed_out_or_aborted_backfill_alarms_to_the_topic(template_json):
    machine = next(k for k in resources_of(template_json, "AWS::StepFunctions::StateMachine") if k.startswith("BackfillStateMachine"))
    [alarm] = [a["Properties"] for k, a in resources_of(template_json, "AWS::CloudWatch::Alarm").items()
               if k.startswith("BackfillExecutionsNotSucceededAlarm")]
    metrics = {m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert set(metrics) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert all(m["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}] and m["Stat"] == "Sum"
               for m in metrics.values())
    [expression] = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["ReturnData"] and all(f"FILL({m['Id']}, 0)" in expression["Expression"]
                                            for m in alarm["Metrics"] if "MetricStat" in m)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == [{"Ref": only(template_json, "AWS::SNS::Topic")[0]}]


def test_the_prefix_must_be_under_raw_backfill(definition):
    choice = definition["States"][CHECK_PREFIX]
    assert {"Variable": "$.prefix", "StringMatches": f"{BACKFILL_PREFIX}*"} in choice["Choices"][0]["And"]
    assert definition["States"][choice["Default"]]["Type"] == "Fail"


def test_least_privilege_listing_results_and_child_executions(template_json):
    statements = policy_statements(template_json, backfill_role(template_json))
    by_action = {}
    for statement in statements:
        for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
            by_action.setdefault(action, []).append(statement)
    [listing] = by_action["s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{BACKFILL_PREFIX}*"]}}
    [put] = by_action["s3:PutObject"]
    assert render(put["Resource"]).endswith(f"/{RESULTS_PREFIX}*")
    assert all(render(s["Resource"]).endswith(f"/{'runs/'}*") or render(s["Resource"]).endswith(f"/{RESULTS_PREFIX}*")
               for s in by_action["s3:GetObject"])
    [start] = by_action["states:StartExecution"]
    assert start["Resource"] == {"Ref": next(k for k in resources_of(template_json, "AWS::StepFunctions::StateMachine")
                                             if k.startswith("BackfillStateMachine"))}
    assert "s3:DeleteObject" not in by_action and not any(a.endswith("*") and a.startswith("s3:") for a in by_action)


def test_the_job_may_read_backfill_files(template_json):
    [job_role] = [k for k in resources_of(template_json, "AWS::IAM::Role") if k.startswith("EtlRole")]
    reads = [render(r) for s in policy_statements(template_json, job_role) if "s3:GetObject*" in s["Action"]
             for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert any(r.endswith(f"/{BACKFILL_PREFIX}*") for r in reads)


def test_backfill_files_do_not_start_the_per_file_pipeline(template_json):
    """The rule's key patterns (EventBridge wildcard: '*' matches any characters, '/' included)
    match raw/bookings/ files and no raw/backfill/ file."""
    import fnmatch

    _, rule = only(template_json, "AWS::Events::Rule")
    patterns = [p["wildcard"] for p in rule["EventPattern"]["detail"]["object"]["key"]]
    assert patterns == [f"{RAW_PREFIX}*.csv", f"{RAW_PREFIX}*.csv.gz"]

    def fires(key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, p) for p in patterns)

    assert fires(f"{RAW_PREFIX}2024/a.csv") and fires(f"{RAW_PREFIX}a.csv.gz")
    for key in (f"{BACKFILL_PREFIX}2024/a.csv", f"{BACKFILL_PREFIX}a.csv.gz", f"{BACKFILL_PREFIX}raw/bookings/a.csv"):
        assert not fires(key), key


def test_stack_outputs_the_backfill_state_machine(template_json):
    output = template_json["Outputs"]["BackfillStateMachineArn"]
    assert output["Value"]["Ref"].startswith("BackfillStateMachine")
    assert BACKFILL_PREFIX in output["Description"]


def test_backfill_context_keys():
    config = config_from_context({"backfillMaxConcurrency": "3", "backfillToleratedFailurePercentage": 0})
    assert (config.backfill_max_concurrency, config.backfill_tolerated_failure_percentage) == (3, 0)
    with pytest.raises(ConfigError, match="backfillToleratedFailurePercentage"):
        config_from_context({"backfillToleratedFailurePercentage": 101})
    with pytest.raises(ConfigError, match="backfillMaxConcurrency"):
        config_from_context({"backfillMaxConcurrency": -1})


def test_definition_is_json_with_no_unresolved_token(definition):
    assert "${Token" not in json.dumps(definition)
