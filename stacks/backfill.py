"""Backfill: one execution ingests every booking file under a prefix (issue 15).

Input: {"prefix": "raw/backfill/2024/"}. The state machine crawls once, then runs the existing
Glue job once per .csv / .csv.gz object under the prefix in a Distributed Map (an ItemReader over
the S3 listing, bounded concurrency, a tolerated-failure threshold, per-file results written to S3
by a ResultWriter), and sends ONE email: files succeeded/failed, rows by outcome, the failed files
with their causes, and where the per-file results are. A small function (stacks/backfill_summary/)
reads the result files and returns that summary: the results never enter the state machine's
state, whose payloads are limited to 256 KiB with a terminal States.DataLimitExceeded (a state that
read them failed every backfill of a few hundred files, with no email). An alarm mails any
backfill execution that fails, times out or is aborted.

Each file's run uses the job, the load SQL and the run summary exactly as the per-file machine
does; its execution id is "<backfill execution name>-<item index>" (the job's run summary is
runs/<that id>.json). Files under raw/backfill/ never start the per-file machine: its rule matches
raw/bookings/ only. State names are a contract (docs/architecture.md), as in orchestration.py.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks.config import PipelineConfig
from stacks.backfill_summary.summary import FAILED_FILES_IN_EMAIL, OUTCOMES
from stacks.nag import LAMBDA_BASIC_EXECUTION, acknowledge, arn_of, finding, logical_id, pseudo
from stacks.orchestration import GLUE_CONCURRENCY_ERRORS, GLUE_TRANSIENT_ERRORS, _retry_transient
from stacks.storage import BACKFILL_PREFIX, RUNS_PREFIX
from stacks.warehouse import log_retention

# ResultWriter output: <prefix><map run id>/manifest.json, SUCCEEDED_0.json, FAILED_0.json.
RESULTS_PREFIX = f"{RUNS_PREFIX}backfill/"
SUMMARY_HANDLER_DIR = Path(__file__).resolve().parent / "backfill_summary"
__all__ = ["Backfill", "FAILED_FILES_IN_EMAIL", "OUTCOMES", "RESULTS_PREFIX"]

# State names.
CHECK_PREFIX = "Prefix in the backfill folder?"
START_CRAWLER = "Start crawler"
WAIT_FOR_CRAWLER = "Wait for crawler"
GET_CRAWLER = "Get crawler"
COUNT_POLL = "Count poll"
CRAWLER_FINISHED = "Crawler finished?"
INGEST_FILES = "Ingest each file"
IS_BOOKING_FILE = "Booking file?"
NOT_A_BOOKING_FILE = "Not a booking file"
RUN_ETL_JOB = "Run ETL job"
JOB_SUCCEEDED = "Job succeeded?"
READ_RUN_SUMMARY = "Read run summary"
FILE_INGESTED = "File ingested"
READ_FAILURE_SUMMARY = "Read failure summary"
FILE_FAILED = "File failed"
JOB_FAILED_NO_SUMMARY = "File failed without summary"
JOB_DID_NOT_SUCCEED = "Job did not succeed"
SUMMARIZE = "Summarize"
NOTIFY_DONE = "Notify backfill done"
NOTIFY_FAILURE = "Notify backfill failure"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
POLLS_VARIABLE = "polls"

class _ListUnderPrefix(sfn.S3ObjectsItemReader):
    """The S3 listing, with s3:ListBucket limited to the backfill prefix (CDK grants the whole
    bucket; the Distributed Map IAM example in the AWS docs conditions it on s3:prefix)."""

    def __init__(self, *, bucket: s3.IBucket, prefix: str) -> None:
        super().__init__(bucket=bucket, prefix=prefix)
        self._bucket_arn = bucket.bucket_arn

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        return [iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self._bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [f"{BACKFILL_PREFIX}*"]}})]


class _WriteUnderPrefix(sfn.ResultWriterV2):
    """The ResultWriter, with its object permissions on its own prefix (CDK grants bucket/*)."""

    def __init__(self, *, bucket: s3.IBucket, prefix: str) -> None:
        super().__init__(bucket=bucket, prefix=prefix)
        self._objects_arn = bucket.arn_for_objects(f"{prefix}*")

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        return [iam.PolicyStatement(
            actions=["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            resources=[self._objects_arn])]


class Backfill(Construct):
    """The backfill state machine (a Distributed Map over an S3 prefix) and its log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        bucket: s3.IBucket,
        key: kms.IKey,
        crawler: glue.CfnCrawler,
        crawler_arn: str,
        job: glue.IJob,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config, self._bucket, self._key, self._topic = config, bucket, key, topic
        self.max_concurrency = config.backfill_concurrency  # leaves uploads a run (stacks/config.py)
        self.log_group = logs.LogGroup(
            self, "StateMachineLogs", encryption_key=key, retention=log_retention(config),
            removal_policy=config.data_removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(self._definition(crawler, crawler_arn, job)),
            comment="Airline bookings backfill: crawl once, run the Glue job for every file under a prefix, one email",
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            timeout=Duration.days(7),
        )
        # The getObject tasks grant the reads of runs/* (the run summaries, SSE-KMS).
        key.grant_decrypt(self.state_machine)
        # SSE-KMS writes (ResultWriter) and the publish to the encrypted topic ask for data keys.
        key.grant(self.state_machine, "kms:GenerateDataKey*")
        self.alarms = {"BackfillExecutionsNotSucceeded": self._alarm(topic)}
        self._acknowledge(bucket)

    # -- definition -----------------------------------------------------------------------------
    def _definition(self, crawler: glue.CfnCrawler, crawler_arn: str, job: glue.IJob) -> sfn.IChainable:
        failed = sfn.Fail(self, FAILED, error="BackfillFailed", cause="See the failure notification")
        notify_failure = tasks.SnsPublish(
            self, NOTIFY_FAILURE, topic=self._topic, subject="Airline booking backfill FAILED",
            message=sfn.TaskInput.from_json_path_at(
                "States.Format('Backfill of s3://{}/{} FAILED. Error: {}. Cause: {} (execution {})', "
                "$.bucket, $.prefix, $.error.Error, $.error.Cause, $$.Execution.Name)"),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_transient(notify_failure, ["SNS.ThrottledException", "SNS.InternalErrorException"])
        notify_failure.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.notify_error")
        notify_failure.next(failed)

        def catch(task: sfn.TaskStateBase | sfn.DistributedMap | sfn.Map) -> None:
            task.add_catch(notify_failure, errors=[sfn.Errors.ALL], result_path="$.error")

        # The bucket goes into the state so that the emails can name it.
        with_bucket = sfn.Pass(self, "Name the bucket", result_path="$.bucket",
                               result=sfn.Result.from_string(self._bucket.bucket_name))
        check_prefix = sfn.Choice(self, CHECK_PREFIX)
        start_crawler, crawled = self._crawl(crawler, crawler_arn, catch, notify_failure)
        check_prefix.when(sfn.Condition.and_(sfn.Condition.is_present("$.prefix"),
                                             sfn.Condition.is_string("$.prefix"),
                                             sfn.Condition.string_matches("$.prefix", f"{BACKFILL_PREFIX}*")),
                          start_crawler)
        # No email: the caller sees this at once in the execution's status.
        check_prefix.otherwise(sfn.Fail(
            self, "Wrong input", error="InvalidInput",
            cause=f'The input must be {{"prefix": "{BACKFILL_PREFIX}..."}} (files there never start the per-file pipeline)'))
        with_bucket.next(check_prefix)

        ingest = self._ingest_each_file(job)
        catch(ingest)
        summarize = self._summarize()
        catch(summarize)
        notify_done = tasks.SnsPublish(
            self, NOTIFY_DONE, topic=self._topic, subject="Airline booking backfill finished",
            message=sfn.TaskInput.from_json_path_at("$.message"), result_path=sfn.JsonPath.DISCARD)
        _retry_transient(notify_done, ["SNS.ThrottledException", "SNS.InternalErrorException"])
        catch(notify_done)

        crawled.next(ingest).next(summarize).next(notify_done).next(sfn.Succeed(self, SUCCEEDED))
        return with_bucket

    def _summarize(self) -> tasks.LambdaInvoke:
        """The email's figures, computed by a function that reads the ResultWriter's files: its
        output has a bounded size (at most FAILED_FILES_IN_EMAIL failed files, causes cut short),
        whatever the number of files; the state never holds the results themselves."""
        config = self._config
        log_group = logs.LogGroup(self, "SummaryFunctionLogs", encryption_key=self._key,
                                  retention=log_retention(config), removal_policy=RemovalPolicy.DESTROY)
        self.summary_function = lambda_.Function(
            self, "SummaryFunction", runtime=lambda_.Runtime.PYTHON_3_14, handler="summary.handler",
            code=lambda_.Code.from_asset(str(SUMMARY_HANDLER_DIR), exclude=["__pycache__", "*.pyc"]),
            timeout=Duration.minutes(5), memory_size=512, log_group=log_group,
            description="Sums a backfill's per-file results (Distributed Map ResultWriter files) for its email")
        # Least privilege: the ResultWriter's files only, and their SSE-KMS key.
        self.summary_function.add_to_role_policy(iam.PolicyStatement(
            sid="ReadBackfillResults", actions=["s3:GetObject"],
            resources=[self._bucket.arn_for_objects(f"{RESULTS_PREFIX}*")]))
        self._key.grant_decrypt(self.summary_function)
        summarize = tasks.LambdaInvoke(
            self, SUMMARIZE, lambda_function=self.summary_function,
            payload=sfn.TaskInput.from_object({
                "bucket": sfn.JsonPath.string_at("$.bucket"),
                "prefix": sfn.JsonPath.string_at("$.prefix"),
                "execution": sfn.JsonPath.execution_name,
                "results": sfn.JsonPath.object_at("$.map.ResultWriterDetails"),
            }),
            # The summary replaces the state (the execution's output); Lambda's own transient
            # errors are retried (retry_on_service_exceptions), and so is throttling.
            result_path="$", output_path="$.Payload", retry_on_service_exceptions=True)
        _retry_transient(summarize, ["Lambda.TooManyRequestsException"], attempts=4)
        acknowledge(
            self.summary_function,
            finding("IAM4", LAMBDA_BASIC_EXECUTION, "The managed policy only lets the function write its own CloudWatch logs."),
        )
        acknowledge(
            self.summary_function.role,
            finding("IAM5", f"Resource::{arn_of(self._bucket)}/{RESULTS_PREFIX}*",
                    "Reads the ResultWriter's manifest.json and result files under runs/backfill/<map run id>/, named per run."),
        )
        return summarize

    def _alarm(self, topic: sns.ITopic) -> cloudwatch.Alarm:
        """An email when a backfill execution fails, times out or is aborted: its own failure email
        cannot cover a terminal error (States.DataLimitExceeded, States.Runtime), a timeout or a
        stop, which end the execution without running any state."""
        five_minutes = Duration.minutes(5)
        machine = self.state_machine
        not_succeeded = cloudwatch.MathExpression(
            expression="FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
            using_metrics={"failed": machine.metric_failed(period=five_minutes, statistic="Sum"),
                           "timedOut": machine.metric_timed_out(period=five_minutes, statistic="Sum"),
                           "aborted": machine.metric_aborted(period=five_minutes, statistic="Sum")},
            period=five_minutes, label="Backfill executions failed, timed out or aborted")
        alarm = cloudwatch.Alarm(
            self, "ExecutionsNotSucceededAlarm", metric=not_succeeded, threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Airline booking backfill: an execution failed, timed out or was aborted in 5 minutes")
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarm

    def _crawl(self, crawler: glue.CfnCrawler, crawler_arn: str, catch,
               notify_failure: sfn.IChainable) -> tuple[sfn.State, sfn.Pass]:
        """Crawl once, as the per-file machine does: wait for a crawl already running, poll a
        bounded number of times, go on only when the crawler is READY after a SUCCEEDED crawl."""
        config = self._config
        start = tasks.CallAwsService(
            self, START_CRAWLER, service="glue", action="startCrawler", parameters={"Name": crawler.ref},
            iam_resources=[crawler_arn], iam_action="glue:StartCrawler", result_path=sfn.JsonPath.DISCARD,
            assign={POLLS_VARIABLE: 0})
        _retry_transient(start, GLUE_TRANSIENT_ERRORS)
        wait = sfn.Wait(self, WAIT_FOR_CRAWLER,
                        time=sfn.WaitTime.duration(Duration.seconds(config.crawler_poll_interval_seconds)))
        start.add_catch(wait, errors=["Glue.CrawlerRunningException"], result_path="$.crawler_busy",
                        assign={POLLS_VARIABLE: 0})
        catch(start)
        get = tasks.CallAwsService(
            self, GET_CRAWLER, service="glue", action="getCrawler", parameters={"Name": crawler.ref},
            iam_resources=[crawler_arn], iam_action="glue:GetCrawler",
            result_selector={"Crawler.$": "$.Crawler"},
            result_path="$.crawler")
        _retry_transient(get, GLUE_TRANSIENT_ERRORS)
        catch(get)
        count_poll = sfn.Pass(self, COUNT_POLL, assign={f"{POLLS_VARIABLE}.$": f"States.MathAdd(${POLLS_VARIABLE}, 1)"})
        crawl_failed = sfn.Pass(self, "Crawl did not succeed", result_path="$.error", parameters={
            "Error": "CrawlFailed",
            "Cause.$": f"States.Format('The crawl did not succeed ({{}} polls): {{}}', ${POLLS_VARIABLE}, "
                       "States.JsonToString($.crawler.Crawler))"})
        crawl_failed.next(notify_failure)
        finished = sfn.Choice(self, CRAWLER_FINISHED)
        running = sfn.Condition.or_(sfn.Condition.string_equals("$.crawler.Crawler.State", "RUNNING"),
                                    sfn.Condition.string_equals("$.crawler.Crawler.State", "STOPPING"))
        # LastCrawl describes this crawl only once the crawler is READY again.
        done = sfn.Condition.and_(sfn.Condition.string_equals("$.crawler.Crawler.State", "READY"),
                                  sfn.Condition.is_present("$.crawler.Crawler.LastCrawl.Status"),
                                  sfn.Condition.string_equals("$.crawler.Crawler.LastCrawl.Status", "SUCCEEDED"))
        finished.when(sfn.Condition.and_(running, sfn.Condition.number_less_than(
            f"${POLLS_VARIABLE}", config.crawler_max_polls)), count_poll.next(wait))
        crawled = sfn.Pass(self, "Crawled")
        finished.when(done, crawled)
        finished.otherwise(crawl_failed)
        start.next(wait).next(get).next(finished)
        return start, crawled

    def _ingest_each_file(self, job: glue.IJob) -> sfn.DistributedMap:
        config = self._config
        ingest = sfn.DistributedMap(
            self,
            INGEST_FILES,
            item_reader=_ListUnderPrefix(bucket=self._bucket, prefix=sfn.JsonPath.string_at("$.prefix")),
            item_selector={
                "bucket": self._bucket.bucket_name,
                "key": sfn.JsonPath.string_at("$$.Map.Item.Value.Key"),
                # The job's execution id (run summary runs/<id>.json, audit row): unique per file.
                "execution_id": sfn.JsonPath.format("{}-{}", sfn.JsonPath.execution_name,
                                                    sfn.JsonPath.string_at("$$.Map.Item.Index")),
            },
            max_concurrency=self.max_concurrency,
            tolerated_failure_percentage=config.backfill_tolerated_failure_percentage,
            map_execution_type=sfn.StateMachineType.STANDARD,
            result_writer_v2=_WriteUnderPrefix(bucket=self._bucket, prefix=RESULTS_PREFIX),
            result_path="$.map",
            label="BackfillFiles",
        )
        is_booking_file = sfn.Choice(self, IS_BOOKING_FILE)
        skipped = sfn.Pass(self, NOT_A_BOOKING_FILE, parameters={"key.$": "$.key", "status": "SKIPPED"})
        run_job = tasks.GlueStartJobRun(
            self, RUN_ETL_JOB, glue_job_name=job.job_name, integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            arguments=sfn.TaskInput.from_object({
                "--source_uri": sfn.JsonPath.format("s3://{}/{}", sfn.JsonPath.string_at("$.bucket"),
                                                    sfn.JsonPath.string_at("$.key")),
                "--execution_id": sfn.JsonPath.string_at("$.execution_id"),
            }),
            result_selector={"Id.$": "$.Id", "JobRunState.$": "$.JobRunState"},
            result_path="$.job",
        )
        _retry_transient(run_job, GLUE_TRANSIENT_ERRORS)
        # The same wait for a free run slot as the per-file machine (stacks/orchestration.py).
        interval = config.glue_concurrency_retry_seconds
        run_job.add_retry(errors=GLUE_CONCURRENCY_ERRORS, interval=Duration.seconds(interval), backoff_rate=1.5,
                          max_attempts=25, max_delay=Duration.seconds(10 * interval),
                          jitter_strategy=sfn.JitterType.FULL)
        summary_key = sfn.JsonPath.format(f"{RUNS_PREFIX}{{}}.json", sfn.JsonPath.string_at("$.execution_id"))
        read_failure = self._get_json(READ_FAILURE_SUMMARY, self._bucket.bucket_name, summary_key, "$.run")
        # Static error names: the task's own (States.TaskFailed) is reserved for Step Functions.
        no_summary = sfn.Fail(self, JOB_FAILED_NO_SUMMARY, error="JobRunFailed", cause_path="$.error.Cause")
        read_failure.add_catch(no_summary, errors=[sfn.Errors.ALL], result_path="$.summary_error")
        file_failed = sfn.Fail(self, FILE_FAILED, error="IngestionFailed", cause_path="$.run.summary.error")
        summary_has_error = sfn.Choice(self, "Summary names the error?")
        summary_has_error.when(sfn.Condition.and_(sfn.Condition.is_present("$.run.summary.error"),
                                                  sfn.Condition.is_string("$.run.summary.error")), file_failed)
        summary_has_error.otherwise(no_summary)
        run_job.add_catch(read_failure.next(summary_has_error), errors=[sfn.Errors.ALL], result_path="$.error")

        read_summary = self._get_json(READ_RUN_SUMMARY, self._bucket.bucket_name, summary_key, "$.run")
        # Small output: the ResultWriter writes it for every file, and the summary function reads it.
        ingested = sfn.Pass(self, FILE_INGESTED, parameters={
            "key.$": "$.key", "execution_id.$": "$.execution_id", "status": "SUCCEEDED",
            "summary": {name: sfn.JsonPath.number_at(f"$.run.summary.{name}") for name in OUTCOMES}})
        job_succeeded = sfn.Choice(self, JOB_SUCCEEDED)
        job_succeeded.when(sfn.Condition.string_equals("$.job.JobRunState", "SUCCEEDED"),
                           read_summary.next(ingested))
        job_succeeded.otherwise(sfn.Fail(self, JOB_DID_NOT_SUCCEED, error="JobRunNotSucceeded",
                                         cause_path="States.Format('Glue job run {} ended in state {}', $.job.Id, $.job.JobRunState)"))
        run_job.next(job_succeeded)
        is_booking_file.when(sfn.Condition.or_(sfn.Condition.string_matches("$.key", "*.csv"),
                                               sfn.Condition.string_matches("$.key", "*.csv.gz")), run_job)
        is_booking_file.otherwise(skipped)
        ingest.item_processor(is_booking_file)
        return ingest

    def _get_json(self, name: str, bucket: str, key: str, result_path: str) -> tasks.CallAwsService:
        """An S3 object, parsed as JSON, at `result_path`.summary (bucket/key: values, tokens, or
        JSONPaths written "$.x")."""
        def param(value: str) -> str:
            return sfn.JsonPath.string_at(value) if value.startswith("$.") else value

        read = tasks.CallAwsService(
            self, name, service="s3", action="getObject",
            parameters={"Bucket": param(bucket), "Key": param(key)},
            iam_resources=[self._bucket.arn_for_objects(f"{RUNS_PREFIX}*")], iam_action="s3:GetObject",
            result_selector={"summary.$": "States.StringToJson($.Body)"}, result_path=result_path)
        _retry_transient(read, ["S3.SdkClientException", "S3.S3Exception"], attempts=3)
        return read

    def _acknowledge(self, bucket: s3.IBucket) -> None:
        # The Distributed Map's own policy (CDK): its child executions, named per map run.
        executions = pseudo(self, "Resource::arn:{partition}:states:{region}:{account}:execution:") + (
            '{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"%s"}]}]}' % logical_id(self.state_machine))
        acknowledge(
            self.state_machine,
            finding("IAM5", f"{executions}:*", "Describe/stop the map run's child executions, named per run."),
            finding("IAM5", f"{executions}/BackfillFiles:*", "Redrive of the map run's child executions, named per run."),
        )
        acknowledge(
            self.state_machine.role,
            finding("IAM5", f"Resource::{arn_of(bucket)}/{RESULTS_PREFIX}*",
                    "The ResultWriter writes <map run id>/manifest.json and its result files under runs/backfill/."),
            finding("IAM5", "Resource::*", "X-Ray tracing and CloudWatch Logs delivery actions have no resource type."),
            finding("IAM5", f"Resource::{arn_of(bucket)}/{RUNS_PREFIX}*",
                    "Reads runs/<execution id>.json, the run summary of each file's job run, named per execution."),
            finding("IAM5", f"Resource::{arn_of(self.summary_function)}:*",
                    "CDK's LambdaInvoke also allows the function's versions and aliases; the task invokes the function itself."),
            finding("IAM5", "Action::kms:GenerateDataKey*",
                    "SSE-KMS writes of the results and the publish to the topic, with the pipeline's own data key."),
        )
