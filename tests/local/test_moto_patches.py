"""Each moto patch restores one AWS behaviour: checked here against the real moto server."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import uuid

import pytest
from botocore.exceptions import ClientError
from emulator_helpers import JOBS_DIR, ROLE_ARN, wait_for, wait_for_execution

from airline_local.aws import patches
from airline_local.aws.patches import events as events_patches
from airline_local.aws.patches import glue_crawler, glue_jobs, registry
from airline_local.aws.patches.runtime import CrawlerSettings
from airline_local.glue.job_runner import JobSpec

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def state_machine(emulator, definition: dict) -> str:
    return emulator.client("stepfunctions").create_state_machine(
        name=unique("sm"), definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]


def run_to_end(emulator, arn: str, payload: dict | None = None) -> dict:
    sfn = emulator.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=arn, name=unique("run"), input=json.dumps(payload or {}))
    return wait_for_execution(sfn, execution["executionArn"])


# --- applying ------------------------------------------------------------------------------


def test_patches_are_applied_once_and_pinned_to_the_tested_moto(emulator):
    from moto.events.models import Rule

    first = Rule.send_to_targets
    assert registry.apply_all() == [p.__name__ for p in registry.PATCHES]
    assert Rule.send_to_targets is first  # applying again changed nothing
    events_patches.start_executions_from_eventbridge_targets()  # nor does calling one patch again
    assert Rule.send_to_targets is first
    registry.check_moto_version("5.2.5")
    with pytest.raises(RuntimeError, match=r"written for moto==5\.2\.5, but moto 5\.3\.0 is installed"):
        registry.check_moto_version("5.3.0")


def test_every_patch_module_is_registered_and_says_what_it_targets():
    """A module's patches are all in the registry, and each names moto's version, AWS's page and its test."""
    modules = [importlib.import_module(f"{patches.__name__}.{info.name}")
               for info in pkgutil.iter_modules(patches.__path__) if info.name != "registry"]
    in_modules = [patch for module in modules for patch in getattr(module, "PATCHES", ())]
    assert sorted(p.__qualname__ for p in in_modules) == sorted(p.__qualname__ for p in registry.PATCHES)
    for patch in registry.PATCHES:
        doc = patch.__doc__ or ""
        assert "Targets moto 5.2.5." in doc and "AWS: " in doc and "Test: tests/" in doc, patch.__qualname__
        assert "Newer moto: " in doc, patch.__qualname__


# --- a. S3 -> EventBridge -> Step Functions --------------------------------------------------


@pytest.fixture()
def upload_rule(emulator):
    """A bucket with EventBridge notifications and a rule (prefix + suffix) targeting a state machine."""
    s3, events = emulator.client("s3"), emulator.client("events")
    bucket = unique("events")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    arn = state_machine(emulator, {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    rule = unique("rule")
    events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"wildcard": "raw/bookings/*.csv"}]}},
    }))
    events.put_targets(Rule=rule, Targets=[{"Id": "sm", "Arn": arn, "RoleArn": ROLE_ARN}])

    def executions() -> list[dict]:
        return emulator.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]

    return bucket, rule, arn, executions


def test_upload_matching_the_rule_starts_one_execution_with_the_aws_shaped_event(emulator, upload_rule):
    bucket, _, _, executions = upload_rule
    key = "raw/bookings/2024 file:v1.csv"  # a space and a colon: not URL-encoded in EventBridge
    put = emulator.client("s3").put_object(Bucket=bucket, Key=key, Body=b"id\n1\n")

    [execution] = wait_for(executions, what="an execution")
    assert UUID.match(execution["name"])
    sfn = emulator.client("stepfunctions")
    event = json.loads(wait_for_execution(sfn, execution["executionArn"])["input"])
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert UUID.match(event["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert event["resources"] == [f"arn:aws:s3:::{bucket}"]
    detail = event["detail"]
    assert detail["bucket"] == {"name": bucket}
    assert detail["object"]["key"] == key
    assert detail["object"]["size"] == 5
    assert detail["object"]["etag"] == put["ETag"].strip('"')
    assert re.fullmatch(r"[0-9A-F]{18}", detail["object"]["sequencer"])
    assert "version-id" not in detail["object"]  # unversioned bucket
    assert detail["reason"] == "PutObject"


def test_uploads_outside_the_pattern_start_nothing(emulator, upload_rule):
    bucket, _, _, executions = upload_rule
    s3 = emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="elsewhere/bookings/a.csv", Body=b"id\n")
    s3.put_object(Bucket=bucket, Key="raw/bookings/a.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="raw/bookings/b.csv", Body=b"id\n")  # the control
    wait_for(executions, what="the control execution")
    assert len(executions()) == 1


def test_a_disabled_rule_starts_nothing(emulator, upload_rule):
    bucket, rule, _, executions = upload_rule
    events = emulator.client("events")
    events.disable_rule(Name=rule)
    emulator.client("s3").put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b"id\n")
    events.enable_rule(Name=rule)
    emulator.client("s3").put_object(Bucket=bucket, Key="raw/bookings/b.csv", Body=b"id\n")  # the control
    [execution] = wait_for(executions, what="the control execution")
    event = json.loads(wait_for_execution(emulator.client("stepfunctions"), execution["executionArn"])["input"])
    assert event["detail"]["object"]["key"] == "raw/bookings/b.csv"


def test_sequencers_increase_and_versioned_buckets_carry_the_version_id(emulator, upload_rule):
    bucket, _, _, executions = upload_rule
    s3, sfn = emulator.client("s3"), emulator.client("stepfunctions")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    versions = [s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b"id\n")["VersionId"] for _ in range(2)]
    found = wait_for(lambda: len(executions()) == 2 and executions(), what="two executions")
    events = [json.loads(wait_for_execution(sfn, e["executionArn"])["input"]) for e in found]
    objects = sorted((e["detail"]["object"] for e in events), key=lambda o: o["sequencer"])
    assert [o["version-id"] for o in objects] == versions


def test_target_input_path_is_honoured(emulator, upload_rule):
    bucket, rule, arn, executions = upload_rule
    emulator.client("events").put_targets(
        Rule=rule, Targets=[{"Id": "sm", "Arn": arn, "RoleArn": ROLE_ARN, "InputPath": "$.detail.object"}]
    )
    emulator.client("s3").put_object(Bucket=bucket, Key="raw/bookings/c.csv", Body=b"id\n")
    [execution] = wait_for(executions, what="an execution")
    described = wait_for_execution(emulator.client("stepfunctions"), execution["executionArn"])
    assert json.loads(described["input"])["key"] == "raw/bookings/c.csv"


# --- b. glue:startJobRun.sync ---------------------------------------------------------------


@pytest.fixture()
def trivial_job(emulator):
    """A Glue job run by the local runner: tests/local/jobs/trivial_job.py (plain Python)."""
    bucket, job = unique("jobdata"), unique("job")
    emulator.client("s3").create_bucket(Bucket=bucket)
    defaults = {"--data_root_uri": f"s3://{bucket}"}
    emulator.client("glue").create_job(
        Name=job, Role=ROLE_ARN, Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"}, DefaultArguments=defaults
    )
    emulator.job_runner.register_job(job, JobSpec(script=JOBS_DIR / "trivial_job.py", default_arguments=defaults, needs_java=False))
    return bucket, job


def sync_job_definition(job: str) -> dict:
    return {"StartAt": "Run", "States": {"Run": {
        "Type": "Task", "Resource": "arn:aws:states:::glue:startJobRun.sync", "End": True,
        "Parameters": {"JobName": job, "Arguments": {"--source_uri.$": "$.source", "--execution_id.$": "$$.Execution.Name"}},
    }}}


def test_start_job_run_sync_waits_and_returns_the_job_run(emulator, trivial_job):
    bucket, job = trivial_job
    emulator.client("s3").put_object(Bucket=bucket, Key="raw/bookings/ok.csv", Body=b"id\n1\n2\n")
    result = run_to_end(emulator, state_machine(emulator, sync_job_definition(job)), {"source": f"s3://{bucket}/raw/bookings/ok.csv"})
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["JobName"] == job and output["JobRunState"] == "SUCCEEDED"
    assert isinstance(output["StartedOn"], int) and output["CompletedOn"] >= output["StartedOn"]


def test_start_job_run_sync_fails_the_task_with_the_job_run_as_cause(emulator, trivial_job):
    bucket, job = trivial_job
    emulator.client("s3").put_object(Bucket=bucket, Key="raw/bookings/bad.csv", Body=b"id\nFAIL\n")
    result = run_to_end(emulator, state_machine(emulator, sync_job_definition(job)), {"source": f"s3://{bucket}/raw/bookings/bad.csv"})
    assert result["status"] == "FAILED"
    assert result["error"] == "States.TaskFailed"
    cause = json.loads(result["cause"])
    assert cause["JobRunState"] == "FAILED" and cause["JobName"] == job
    assert cause["ErrorMessage"] == f"BookingFileError: s3://{bucket}/raw/bookings/bad.csv: the file asks to fail"


def test_start_job_run_sync_asks_again_when_the_run_ends_not_every_half_second(emulator, trivial_job, monkeypatch):
    """A 2 s run: moto polled GetJobRun every 0.5 s (5+ signed calls); the patch waits for the
    local run to end, then asks once more."""
    from moto.glue.models import FakeJobRun

    bucket, job = trivial_job
    asked = []
    as_dict = FakeJobRun.as_dict
    monkeypatch.setattr(FakeJobRun, "as_dict", lambda self: asked.append(self.job_run_id) or as_dict(self))
    emulator.client("s3").put_object(Bucket=bucket, Key="raw/bookings/slow.csv", Body=b"id\nSLEEP\n")
    result = run_to_end(emulator, state_machine(emulator, sync_job_definition(job)),
                        {"source": f"s3://{bucket}/raw/bookings/slow.csv"})
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert (output["CompletedOn"] - output["StartedOn"]) >= 2000  # it did run for 2 s
    assert 2 <= asked.count(output["Id"]) <= 3, asked


def test_a_waiter_wakes_when_a_run_ends_and_times_out_otherwise():
    import threading
    import time

    ended = glue_jobs._EndedRuns()
    started = time.monotonic()
    ended.wait_past(ended.count, timeout=0.2)
    assert time.monotonic() - started >= 0.2
    seen = ended.count
    threading.Timer(0.1, ended.one_more).start()
    started = time.monotonic()
    ended.wait_past(seen, timeout=10)
    assert time.monotonic() - started < 5 and ended.count == seen + 1


def test_stopped_job_runs_count_as_failures():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_glue

    assert "STOPPED" in state_task_service_glue._JOB_RUN_STATE_ABNORMAL_TERMINAL_VALUE


# --- d. Glue job runs -----------------------------------------------------------------------


def test_job_run_is_running_then_ends_with_the_runner_outcome(emulator, trivial_job):
    bucket, job = trivial_job
    glue, s3 = emulator.client("glue"), emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="raw/bookings/slow.csv", Body=b"id\nFAIL SLEEP\n")
    run_id = glue.start_job_run(JobName=job, Arguments={"--source_uri": f"s3://{bucket}/raw/bookings/slow.csv", "--execution_id": "e1"})["JobRunId"]
    running = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
    assert running["JobRunState"] == "RUNNING" and "CompletedOn" not in running
    with pytest.raises(ClientError, match="ConcurrentRunsExceededException"):
        glue.start_job_run(JobName=job)

    def finished() -> dict | None:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        return run if run["JobRunState"] != "RUNNING" else None

    ended = wait_for(finished, timeout=60, interval=0.5, what="the job run to end")
    assert ended["JobRunState"] == "FAILED"
    assert ended["ErrorMessage"].startswith("BookingFileError: s3://")
    assert ended["CompletedOn"] >= ended["StartedOn"]


def test_job_without_a_local_script_fails_with_a_message(emulator):
    glue, job = emulator.client("glue"), unique("orphan")
    glue.create_job(Name=job, Role=ROLE_ARN, Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"})
    run_id = glue.start_job_run(JobName=job)["JobRunId"]
    run = wait_for(lambda: (r := glue.get_job_run(JobName=job, RunId=run_id)["JobRun"])["JobRunState"] != "RUNNING" and r,
                   what="the job run to end")
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == f"no local script is registered for Glue job {job}"


# --- c. crawler lifecycle -------------------------------------------------------------------


@pytest.fixture()
def crawler(emulator):
    s3, glue = emulator.client("s3"), emulator.client("glue")
    bucket, database, name = unique("crawl"), unique("db").replace("-", "_"), unique("crawler")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b"Booking_Id,Route\n1,AB\n")
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_crawler(Name=name, Role=ROLE_ARN, DatabaseName=database,
                        Targets={"S3Targets": [{"Path": f"s3://{bucket}/raw/bookings/"}]})
    return name, database


def crawler_state(glue, name: str) -> dict:
    return glue.get_crawler(Name=name)["Crawler"]


def test_crawl_runs_stops_and_is_ready_with_last_crawl_succeeded(emulator, crawler):
    name, database = crawler
    # 2 s each, so that a loaded machine's slow calls still see both states
    emulator.crawler_settings = CrawlerSettings(running_seconds=2, stopping_seconds=2)
    glue = emulator.client("glue")
    assert crawler_state(glue, name)["State"] == "READY" and "LastCrawl" not in crawler_state(glue, name)

    glue.start_crawler(Name=name)
    running = crawler_state(glue, name)
    assert running["State"] == "RUNNING" and "LastCrawl" not in running  # LastCrawl = a finished crawl
    with pytest.raises(glue.exceptions.CrawlerRunningException):
        glue.start_crawler(Name=name)

    wait_for(lambda: crawler_state(glue, name)["State"] == "STOPPING", what="STOPPING")
    with pytest.raises(glue.exceptions.CrawlerRunningException):  # AWS refuses a start while STOPPING
        glue.start_crawler(Name=name)

    ready = wait_for(lambda: (c := crawler_state(glue, name))["State"] == "READY" and c, what="READY")
    assert ready["LastCrawl"]["Status"] == "SUCCEEDED" and "ErrorMessage" not in ready["LastCrawl"]
    columns = glue.get_table(DatabaseName=database, Name="bookings")["Table"]["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == ["booking_id", "route"]


def test_concurrent_starts_start_one_crawl_and_refuse_the_others(emulator, crawler, monkeypatch):
    """Two executions can ask StartCrawler at the same moment (a burst of uploads): AWS starts one
    crawl and refuses the others. Two local crawls at once both found no table, both created it, and
    one failed with AlreadyExistsException (seen in make test's burst). The emulator's request
    threads are made to meet between the state check and the new crawl (a slow LocalCrawl)."""
    import time
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    made = glue_crawler.LocalCrawl.__init__

    def slowly_made(self, *args, **kwargs):
        time.sleep(0.05)
        made(self, *args, **kwargs)

    monkeypatch.setattr(glue_crawler.LocalCrawl, "__init__", slowly_made)
    name, _ = crawler
    # RUNNING long enough that every caller asks while the first crawl runs, even on a loaded
    # machine (a caller that came after READY would rightly start the next crawl).
    emulator.crawler_settings = CrawlerSettings(running_seconds=2.0, stopping_seconds=0.05)
    callers = 8
    clients = [emulator.client("glue") for _ in range(callers)]
    for _ in range(3):
        barrier = Barrier(callers)

        def start(glue):
            barrier.wait()
            try:
                glue.start_crawler(Name=name)
                return "started"
            except glue.exceptions.CrawlerRunningException:
                return "refused"

        with ThreadPoolExecutor(callers) as pool:
            outcomes = list(pool.map(start, clients))
        assert sorted(outcomes) == ["refused"] * (callers - 1) + ["started"], outcomes
        ready = wait_for(lambda: (c := crawler_state(clients[0], name))["State"] == "READY" and c, what="READY")
        assert ready["LastCrawl"]["Status"] == "SUCCEEDED", ready["LastCrawl"]


def test_injected_failure_ends_the_crawl_failed_with_its_message(emulator, crawler):
    name, database = crawler
    emulator.crawler_settings = CrawlerSettings(running_seconds=0.1, stopping_seconds=0.1)
    emulator.crawler_settings.fail_next_crawl("Insufficient Lake Formation permission(s)")
    glue = emulator.client("glue")
    glue.start_crawler(Name=name)
    ready = wait_for(lambda: (c := crawler_state(glue, name))["State"] == "READY" and c, what="READY")
    assert ready["LastCrawl"]["Status"] == "FAILED"
    assert ready["LastCrawl"]["ErrorMessage"] == "Insufficient Lake Formation permission(s)"
    assert glue.get_tables(DatabaseName=database)["TableList"] == []

    glue.start_crawler(Name=name)  # the injection was for one crawl only
    wait_for(lambda: crawler_state(glue, name)["LastCrawl"]["Status"] == "SUCCEEDED", what="a good crawl")


def test_stopped_crawl_is_cancelled(emulator, crawler):
    name, _ = crawler
    # STOPPING lasts 2 s: with 0.2 s a loaded machine (make test on 2 cores) let it end before
    # the GetCrawler below asked (CI failed on it once)
    emulator.crawler_settings = CrawlerSettings(running_seconds=5, stopping_seconds=2)
    glue = emulator.client("glue")
    glue.start_crawler(Name=name)
    glue.stop_crawler(Name=name)
    assert crawler_state(glue, name)["State"] == "STOPPING"
    ready = wait_for(lambda: (c := crawler_state(glue, name))["State"] == "READY" and c, what="READY")
    assert ready["LastCrawl"]["Status"] == "CANCELLED"


def test_busy_crawler_error_is_named_like_aws_in_step_functions(emulator, crawler):
    name, _ = crawler
    emulator.crawler_settings = CrawlerSettings(running_seconds=5, stopping_seconds=0.1)
    emulator.client("glue").start_crawler(Name=name)
    arn = state_machine(emulator, {"StartAt": "Start", "States": {
        "Start": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:glue:startCrawler",
                  "Parameters": {"Name": name}, "End": True,
                  "Catch": [{"ErrorEquals": ["Glue.CrawlerRunningException"], "ResultPath": "$.error", "Next": "Busy"}]},
        "Busy": {"Type": "Pass", "End": True},
    }})
    result = run_to_end(emulator, arn)
    assert result["status"] == "SUCCEEDED", result
    assert json.loads(result["output"])["error"]["Error"] == "Glue.CrawlerRunningException"


# --- aws-sdk results are JSON text ------------------------------------------------------------


def test_s3_get_object_body_is_text_and_task_results_are_json(emulator, crawler):
    name, _ = crawler
    bucket = unique("bodies")
    emulator.client("s3").create_bucket(Bucket=bucket)
    emulator.client("s3").put_object(Bucket=bucket, Key="runs/x.json", Body=b'{"rows_read": 3}')
    arn = state_machine(emulator, {"StartAt": "Read", "States": {
        "Read": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                 "Parameters": {"Bucket": bucket, "Key": "runs/x.json"},
                 "ResultSelector": {"summary.$": "States.StringToJson($.Body)"}, "ResultPath": "$.run", "Next": "Get"},
        "Get": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:glue:getCrawler",
                "Parameters": {"Name": name}, "ResultPath": "$.crawler", "End": True},
    }})
    result = run_to_end(emulator, arn)
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])  # DescribeExecution works: no datetime objects left
    assert output["run"]["summary"] == {"rows_read": 3}
    assert isinstance(output["crawler"]["Crawler"]["CreationTime"], int)


# --- e. SNS -> mailbox ----------------------------------------------------------------------


def test_publish_reaches_the_mailbox_with_or_without_email_subscribers(emulator):
    sns = emulator.client("sns")
    with_subscriber = sns.create_topic(Name=unique("topic"))["TopicArn"]
    sns.subscribe(TopicArn=with_subscriber, Protocol="email", Endpoint="ops@example.com")
    queue_url = emulator.client("sqs").create_queue(QueueName=unique("q"))["QueueUrl"]
    queue_arn = emulator.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=with_subscriber, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    without = sns.create_topic(Name=unique("topic"))["TopicArn"]
    before = len(emulator.mailbox.messages())

    sns.publish(TopicArn=with_subscriber, Subject="Loaded", Message="3 rows")
    sns.publish(TopicArn=without, Message=json.dumps({"default": "plain", "email": "for email"}), MessageStructure="json")

    first, second = emulator.mailbox.messages()[before:]
    assert (first["To"], first["Subject"], first["X-SNS-Topic-Arn"]) == ("ops@example.com", "Loaded", with_subscriber)
    assert first.get_content().strip() == "3 rows"
    assert second["To"] == "local-mailbox@sns.local" and second.get_content().strip() == "for email"


# --- f. redshift-data -> local warehouse ----------------------------------------------------


class DataApiDouble:
    """Test double of DataApiEmulator's interface, for the routing test only."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def batch_execute_statement(self, params):
        self.calls.append(("batch_execute_statement", params))
        from datetime import datetime, timezone
        return {"Id": "batch-1", "CreatedAt": datetime(2024, 1, 2, tzinfo=timezone.utc), "Database": params["Database"],
                "WorkgroupName": params.get("WorkgroupName")}

    def execute_statement(self, params):
        self.calls.append(("execute_statement", params))
        error = Exception("syntax error at or near \"SELEC\"")
        error.code, error.message = "ValidationException", "syntax error at or near \"SELEC\""
        raise error

    def describe_statement(self, params):
        self.calls.append(("describe_statement", params))
        return {"Id": params["Id"], "Status": "FINISHED", "HasResultSet": True,
                "SubStatements": [{"Id": f"{params['Id']}:1", "Status": "FINISHED"}]}

    def get_statement_result(self, params):
        self.calls.append(("get_statement_result", params))
        return {"Records": [[{"longValue": 3}]], "ColumnMetadata": [{"name": "n"}], "TotalNumRows": 1}


def test_redshift_data_calls_reach_the_local_warehouse(emulator):
    double = DataApiDouble()
    emulator.data_api = double  # restored after the test by conftest
    client = emulator.client("redshift-data")
    started = client.batch_execute_statement(WorkgroupName="wg-local", Database="dev", Sqls=["select 1", "select 2"])
    assert started["Id"] == "batch-1" and started["CreatedAt"].year == 2024
    assert client.describe_statement(Id="batch-1")["SubStatements"][0]["Id"] == "batch-1:1"
    assert client.get_statement_result(Id="batch-1:1")["Records"] == [[{"longValue": 3}]]
    with pytest.raises(ClientError) as failure:
        client.execute_statement(WorkgroupName="wg-local", Database="dev", Sql="SELEC 1")
    assert failure.value.response["Error"]["Code"] == "ValidationException"
    assert "SELEC" in failure.value.response["Error"]["Message"]
    assert [name for name, _ in double.calls] == [
        "batch_execute_statement", "describe_statement", "get_statement_result", "execute_statement"
    ]
    assert double.calls[0][1]["Sqls"] == ["select 1", "select 2"]


def test_without_a_local_warehouse_batch_execute_is_refused_clearly(emulator):
    emulator.data_api = None  # restored after the test by conftest
    client = emulator.client("redshift-data")
    with pytest.raises(ClientError, match="no local warehouse is attached"):
        client.batch_execute_statement(WorkgroupName="wg-local", Database="dev", Sqls=["select 1"])


# --- local speed knob: Wait states -----------------------------------------------------------


def test_wait_states_last_as_written_unless_scaled(emulator):
    arn = state_machine(emulator, {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 2, "End": True}}})

    def duration() -> float:
        result = run_to_end(emulator, arn)
        assert result["status"] == "SUCCEEDED"
        return (result["stopDate"] - result["startDate"]).total_seconds()

    assert 1.9 <= duration() < 3.5
    emulator.wait_time_scale = 0.1  # restored after the test by conftest
    assert duration() < 1.0
