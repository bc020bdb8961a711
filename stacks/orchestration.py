"""Orchestration: the state machine (crawl → job → run summary → notify), the EventBridge rule
that starts it for each uploaded booking file, its dead-letter queue, and the alarms.

State names are a contract (docs/architecture.md): the local runtime and the tests use them.
The definition keeps the EventBridge event at the root of the state and writes every result under
its own path, so each later state can still name the file.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks.nag import acknowledge, arn_of, finding, rule
from stacks.config import PipelineConfig
from stacks.storage import DELIVERIES_PREFIX, RAW_PREFIX, RUNS_PREFIX
from stacks.warehouse import log_retention

# State names (docs/architecture.md).
# The idempotency gate: one upload (bucket, key, version id, sequencer), one run.
IDENTIFY_DELIVERY = "Identify delivery"
CLAIM_DELIVERY = "Claim delivery"
ALREADY_CLAIMED = "Delivery already claimed?"
READ_DELIVERY_MARKER = "Read delivery marker"
CLAIMED_BY_THIS_EXECUTION = "Claimed by this execution?"
DUPLICATE_DELIVERY = "Duplicate delivery"
START_CRAWLER = "Start crawler"
WAIT_FOR_CRAWLER = "Wait for crawler"
GET_CRAWLER = "Get crawler"
CRAWLER_FINISHED = "Crawler finished?"
COUNT_POLL = "Count poll"
TOO_MANY_POLLS = "Too many polls?"
CRAWL_SUCCEEDED = "Crawl succeeded?"
RUN_ETL_JOB = "Run ETL job"
JOB_SUCCEEDED = "Job succeeded?"
READ_RUN_SUMMARY = "Read run summary"
NOTIFY_SUCCESS = "Notify success"
SUCCEEDED = "Succeeded"
NOTIFY_FAILURE = "Notify failure"
FAILED = "Failed"
# A failed job run's cause is the job run as JSON. The job writes its error to its run summary
# too: the failure email quotes that when it is there (states after "Run ETL job" fails).
READ_FAILURE_SUMMARY = "Read failure summary"
SUMMARY_HAS_ERROR = "Summary names the error?"
JOB_FAILED = "Job failed"
# Pass states that name the failed step before "Notify failure" (state name -> step named).
FAILURE_STATES = {
    "Claim delivery failed": CLAIM_DELIVERY,
    "Start crawler failed": START_CRAWLER,
    "Get crawler failed": GET_CRAWLER,
    "Crawler not ready": CRAWLER_FINISHED,
    "Crawl failed": CRAWL_SUCCEEDED,
    "Crawler timed out": TOO_MANY_POLLS,
    "Run ETL job failed": RUN_ETL_JOB,
    "Job did not succeed": JOB_SUCCEEDED,
    "Read run summary failed": READ_RUN_SUMMARY,
    "Notify success failed": NOTIFY_SUCCESS,
}

SOURCE_URI = "States.Format('s3://{}/{}', $.detail.bucket.name, $.detail.object.key)"
# The marker's key: a hash of what identifies one S3 PutObject, so that any key length fits
# (an object key alone may use S3's whole 1,024 bytes).
DELIVERY_MARKER_KEY = (
    f"States.Format('{DELIVERIES_PREFIX}{{}}', States.Hash(States.Format('{{}}/{{}}/{{}}/{{}}', "
    "$.delivery.bucket, $.delivery.key, $.delivery.version_id, $.delivery.sequencer), 'SHA-256'))"
)
# A failed conditional write: S3 answers 412 PreconditionFailed, which the SDK models as no
# exception of its own, so Step Functions names it S3.S3Exception and the status is in the cause
# (docs/aws-notes.md, "Conditional writes").
PRECONDITION_FAILED_ERRORS = ["S3.PreconditionFailedException", "S3.S3Exception"]
POLLS_VARIABLE = "polls"  # workflow variable: how many times the crawler was polled
# rows_read = rows_quarantined + rows_duplicate + rows_inserted + rows_updated + rows_unchanged
# + rows_stale: the success email names every term (docs/data-contract.md, "Run summary").
SUMMARY_FIELDS = (
    "rows_read", "rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated",
    "rows_unchanged", "rows_stale", "quarantine_uri", "duration_seconds",
)
# Errors worth retrying with backoff: throttling, Glue's own time-outs and concurrency limits.
GLUE_TRANSIENT_ERRORS = ["Glue.ThrottlingException", "Glue.OperationTimeoutException"]
GLUE_CONCURRENCY_ERRORS = ["Glue.ConcurrentRunsExceededException"]


def _retry_transient(task: sfn.TaskStateBase, errors: list[str], *, attempts: int = 6) -> None:
    task.add_retry(
        errors=errors,
        interval=Duration.seconds(5),
        backoff_rate=2,
        max_attempts=attempts,
        max_delay=Duration.minutes(5),
        jitter_strategy=sfn.JitterType.FULL,
    )


class Orchestration(Construct):
    """State machine + EventBridge rule + DLQ + alarms."""

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
        self._topic = topic
        definition = self._definition(config, bucket, crawler, crawler_arn, job)

        removal = config.data_removal_policy
        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            encryption_key=key,
            retention=log_retention(config),
            removal_policy=removal,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            comment="Airline bookings: crawl the raw prefix, run the Glue ETL job, notify",
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            timeout=Duration.hours(12),
        )
        # Read the run summary the job wrote (and decrypt it).
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadRunSummaries",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{RUNS_PREFIX}*")],
            )
        )
        key.grant_decrypt(self.state_machine)
        # SNS encrypts each message to the KMS-encrypted topic with a data key it asks for as
        # the publisher: sns:Publish alone fails with a KMS error (docs/aws-notes.md). The same
        # grant lets S3 encrypt the delivery markers the gate writes (SSE-KMS bucket).
        key.grant(self.state_machine, "kms:GenerateDataKey*")

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.rule = events.Rule(
            self,
            "BookingFileUploaded",
            description="Start the ingestion for each booking file (.csv or .csv.gz) under raw/bookings/",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {
                        # One wildcard matches prefix and suffix at once; the list is an OR.
                        "key": [{"wildcard": f"{RAW_PREFIX}*.csv"}, {"wildcard": f"{RAW_PREFIX}*.csv.gz"}]
                    },
                },
            ),
        )
        self.rule.add_target(
            targets.SfnStateMachine(
                self.state_machine,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=config.event_retry_attempts,
                max_event_age=Duration.hours(config.event_max_age_hours),
            )
        )
        self._alarms(topic)
        self._acknowledge(bucket)

    # -- definition -----------------------------------------------------------------------------
    def _definition(
        self,
        config: PipelineConfig,
        bucket: s3.IBucket,
        crawler: glue.CfnCrawler,
        crawler_arn: str,
        job: glue.IJob,
    ) -> sfn.IChainable:
        failed = sfn.Fail(self, FAILED, error="IngestionFailed", cause="See the failure notification")
        notify_failure = tasks.SnsPublish(
            self,
            NOTIFY_FAILURE,
            topic=self._topic,
            subject="Airline booking ingestion FAILED",
            message=sfn.TaskInput.from_json_path_at(
                "States.Format('Ingestion of s3://{}/{} FAILED at step: {}. Error: {}. Cause: {} "
                "(execution {})', $.detail.bucket.name, $.detail.object.key, $.failure.step, "
                "$.failure.error, $.failure.cause, $$.Execution.Name)"
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_transient(notify_failure, ["SNS.ThrottledException", "SNS.InternalErrorException", "States.Timeout"])
        # Nothing to notify about a failed failure notification: end in Failed regardless.
        notify_failure.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.notify_error")
        notify_failure.next(failed)

        failure_passes = {
            name: self._failure_pass(name, step).next(notify_failure) for name, step in FAILURE_STATES.items()
        }

        def catch_to(task: sfn.TaskStateBase, failure_state: str) -> None:
            task.add_catch(failure_passes[failure_state], errors=[sfn.Errors.ALL], result_path="$.error")

        start_crawler = tasks.CallAwsService(
            self,
            START_CRAWLER,
            service="glue",
            action="startCrawler",
            parameters={"Name": crawler.ref},
            iam_resources=[crawler_arn],
            iam_action="glue:StartCrawler",
            result_path=sfn.JsonPath.DISCARD,
            assign={POLLS_VARIABLE: 0},
        )
        _retry_transient(start_crawler, GLUE_TRANSIENT_ERRORS)
        wait_for_crawler = sfn.Wait(
            self,
            WAIT_FOR_CRAWLER,
            time=sfn.WaitTime.duration(Duration.seconds(config.crawler_poll_interval_seconds)),
        )
        # Someone else's crawl is running: wait for it rather than fail (its result covers our file's
        # folder too, and the job reads the file with its own explicit schema).
        start_crawler.add_catch(
            wait_for_crawler,
            errors=["Glue.CrawlerRunningException"],
            result_path="$.crawler_busy",
            assign={POLLS_VARIABLE: 0},
        )
        catch_to(start_crawler, "Start crawler failed")

        get_crawler = tasks.CallAwsService(
            self,
            GET_CRAWLER,
            service="glue",
            action="getCrawler",
            parameters={"Name": crawler.ref},
            iam_resources=[crawler_arn],
            iam_action="glue:GetCrawler",
            result_selector={"Crawler.$": "$.Crawler"},
            result_path="$.crawler",
        )
        _retry_transient(get_crawler, GLUE_TRANSIENT_ERRORS)
        catch_to(get_crawler, "Get crawler failed")

        count_poll = sfn.Pass(
            self,
            COUNT_POLL,
            assign={f"{POLLS_VARIABLE}.$": f"States.MathAdd(${POLLS_VARIABLE}, 1)"},
        )
        too_many_polls = sfn.Choice(self, TOO_MANY_POLLS)
        too_many_polls.when(
            sfn.Condition.number_greater_than_equals(f"${POLLS_VARIABLE}", config.crawler_max_polls),
            failure_passes["Crawler timed out"],
        )
        too_many_polls.otherwise(wait_for_crawler)

        run_job = tasks.GlueStartJobRun(
            self,
            RUN_ETL_JOB,
            glue_job_name=job.job_name,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            arguments=sfn.TaskInput.from_object(
                {
                    "--source_uri": sfn.JsonPath.string_at(SOURCE_URI),
                    "--execution_id": sfn.JsonPath.string_at("$$.Execution.Name"),
                }
            ),
            result_selector={"Id.$": "$.Id", "JobRunState.$": "$.JobRunState"},
            result_path="$.job",
        )
        _retry_transient(run_job, GLUE_TRANSIENT_ERRORS)
        # Bursts of uploads: wait for a free run slot over 25 attempts (at most 1.75 hours
        # with the 30 s default, half that on average with full jitter), never longer than 10
        # intervals between two, so that a freed slot is taken soon (a steeper backoff left
        # runs asleep while slots were free).
        interval = config.glue_concurrency_retry_seconds
        run_job.add_retry(
            errors=GLUE_CONCURRENCY_ERRORS,
            interval=Duration.seconds(interval),
            backoff_rate=1.5,
            max_attempts=25,
            max_delay=Duration.seconds(10 * interval),
            jitter_strategy=sfn.JitterType.FULL,
        )
        # Any failure of the job: mail the error from the run summary the job wrote, else (no
        # summary: killed, never started; or no error in it) the task's error as it came. No
        # intrinsic function parses the cause itself: a cause that is not JSON would end the
        # execution with States.Runtime, which no Catch can take, and so without an email.
        read_failure_summary = self._read_run_summary(READ_FAILURE_SUMMARY, bucket)
        read_failure_summary.add_catch(failure_passes["Run ETL job failed"], errors=[sfn.Errors.ALL],
                                       result_path="$.summary_error")  # $.error stays the job's
        job_failed = sfn.Pass(self, JOB_FAILED, result_path="$.failure", parameters={
            "step": RUN_ETL_JOB, "error.$": "$.error.Error", "cause.$": "$.run.summary.error"})
        summary_has_error = sfn.Choice(self, SUMMARY_HAS_ERROR)
        summary_has_error.when(sfn.Condition.and_(sfn.Condition.is_present("$.run.summary.error"),
                                                  sfn.Condition.is_string("$.run.summary.error")),
                               job_failed.next(notify_failure))
        summary_has_error.otherwise(failure_passes["Run ETL job failed"])
        read_failure_summary.next(summary_has_error)
        run_job.add_catch(read_failure_summary, errors=[sfn.Errors.ALL], result_path="$.error")

        read_summary = self._read_run_summary(READ_RUN_SUMMARY, bucket)
        catch_to(read_summary, "Read run summary failed")

        summary_args = ", ".join(f"$.run.summary.{name}" for name in SUMMARY_FIELDS)
        summary_text = ", ".join(f"{name}={{}}" for name in SUMMARY_FIELDS)
        notify_success = tasks.SnsPublish(
            self,
            NOTIFY_SUCCESS,
            topic=self._topic,
            subject="Airline booking ingestion succeeded",
            message=sfn.TaskInput.from_json_path_at(
                f"States.Format('Ingestion of s3://{{}}/{{}} succeeded (execution {{}}): {summary_text}', "
                f"$.detail.bucket.name, $.detail.object.key, $$.Execution.Name, {summary_args})"
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_transient(notify_success, ["SNS.ThrottledException", "SNS.InternalErrorException"])
        catch_to(notify_success, "Notify success failed")

        crawl_succeeded = sfn.Choice(self, CRAWL_SUCCEEDED)
        last_status = "$.crawler.Crawler.LastCrawl.Status"
        crawl_succeeded.when(
            sfn.Condition.and_(
                sfn.Condition.is_present(last_status), sfn.Condition.string_equals(last_status, "SUCCEEDED")
            ),
            run_job,
        )
        crawl_succeeded.when(sfn.Condition.is_present(last_status), failure_passes["Crawl failed"])
        crawl_succeeded.otherwise(failure_passes["Crawler not ready"])

        # Read LastCrawl only once the crawler is READY: before that it describes an older crawl.
        crawler_finished = sfn.Choice(self, CRAWLER_FINISHED)
        crawler_finished.when(
            sfn.Condition.or_(
                sfn.Condition.string_equals("$.crawler.Crawler.State", "RUNNING"),
                sfn.Condition.string_equals("$.crawler.Crawler.State", "STOPPING"),
            ),
            count_poll,
        )
        crawler_finished.when(sfn.Condition.string_equals("$.crawler.Crawler.State", "READY"), crawl_succeeded)
        crawler_finished.otherwise(failure_passes["Crawler not ready"])

        job_succeeded = sfn.Choice(self, JOB_SUCCEEDED)
        job_succeeded.when(sfn.Condition.string_equals("$.job.JobRunState", "SUCCEEDED"), read_summary)
        job_succeeded.otherwise(failure_passes["Job did not succeed"])

        self._idempotency_gate(bucket, failure_passes["Claim delivery failed"], start_crawler)
        start_crawler.next(wait_for_crawler)
        wait_for_crawler.next(get_crawler)
        get_crawler.next(crawler_finished)
        count_poll.next(too_many_polls)
        run_job.next(job_succeeded)
        read_summary.next(notify_success)
        notify_success.next(sfn.Succeed(self, SUCCEEDED))
        return self._identify_delivery

    def _idempotency_gate(self, bucket: s3.IBucket, claim_failed: sfn.IChainable,
                          then: sfn.IChainable) -> None:
        """S3 and EventBridge deliver at least once: the first execution for an upload creates
        deliveries/<sha256(bucket/key/version id/sequencer)> with If-None-Match: *, its own
        execution ARN as the body; any later one finds it there (412) and ends in "Duplicate
        delivery", before the crawl, the job and the email. A 412 can also answer this
        execution's own retry, when the first PutObject stored the marker but its reply was lost:
        the marker is read back, and the execution goes on when it names itself. A re-upload of
        the key is a new version id, so a new marker and a new run."""
        self._identify_delivery = sfn.Pass(self, IDENTIFY_DELIVERY, result_path="$.delivery", parameters={
            "bucket.$": "$.detail.bucket.name",
            "key.$": "$.detail.object.key",
            "version_id.$": "$.detail.object.version-id",  # the raw bucket is versioned
            "sequencer.$": "$.detail.object.sequencer",
            "execution.$": "$$.Execution.Id",  # the claim's owner, compared with the marker's body
        })
        claim = tasks.CallAwsService(
            self,
            CLAIM_DELIVERY,
            service="s3",
            action="putObject",
            parameters={
                "Bucket": bucket.bucket_name,
                "Key.$": DELIVERY_MARKER_KEY,
                "Body.$": "$$.Execution.Id",  # which execution owns the upload
                "IfNoneMatch": "*",
            },
            iam_resources=[bucket.arn_for_objects(f"{DELIVERIES_PREFIX}*")],
            iam_action="s3:PutObject",
            result_path=sfn.JsonPath.DISCARD,
        )
        # 409 ConditionalRequestConflict (two claims of one upload at the same moment) and 5xx are
        # S3.S3Exception too: try again, after which the loser of a race sees 412.
        claim.add_retry(errors=PRECONDITION_FAILED_ERRORS, interval=Duration.seconds(1), backoff_rate=2,
                        max_attempts=2, jitter_strategy=sfn.JitterType.FULL)
        # Whose marker is it? Ours when a retry got 412 for the write whose reply was lost.
        read_marker = tasks.CallAwsService(
            self,
            READ_DELIVERY_MARKER,
            service="s3",
            action="getObject",
            parameters={"Bucket": bucket.bucket_name, "Key.$": DELIVERY_MARKER_KEY},
            iam_resources=[bucket.arn_for_objects(f"{DELIVERIES_PREFIX}*")],
            iam_action="s3:GetObject",
            result_selector={"owner.$": "$.Body"},
            result_path="$.marker",
        )
        _retry_transient(read_marker, ["S3.SdkClientException", "S3.S3Exception"], attempts=3)
        read_marker.add_catch(claim_failed, errors=[sfn.Errors.ALL], result_path="$.error")
        claimed_here = sfn.Choice(self, CLAIMED_BY_THIS_EXECUTION)
        claimed_here.when(sfn.Condition.string_equals_json_path("$.marker.owner", "$.delivery.execution"), then)
        claimed_here.otherwise(
            sfn.Succeed(self, DUPLICATE_DELIVERY, comment="Another execution already took this upload"))
        read_marker.next(claimed_here)
        already_claimed = sfn.Choice(self, ALREADY_CLAIMED)
        already_claimed.when(
            sfn.Condition.or_(
                sfn.Condition.string_equals("$.error.Error", "S3.PreconditionFailedException"),
                sfn.Condition.string_matches("$.error.Cause", "*Status Code: 412*"),
            ),
            read_marker,
        )
        already_claimed.otherwise(claim_failed)
        claim.add_catch(already_claimed, errors=PRECONDITION_FAILED_ERRORS, result_path="$.error")
        claim.add_catch(claim_failed, errors=[sfn.Errors.ALL], result_path="$.error")
        claim.next(then)
        self._identify_delivery.next(claim)

    def _read_run_summary(self, name: str, bucket: s3.IBucket) -> tasks.CallAwsService:
        """The run summary the job wrote (runs/<execution name>.json), parsed, at $.run.summary."""
        read = tasks.CallAwsService(
            self,
            name,
            service="s3",
            action="getObject",
            parameters={
                "Bucket": bucket.bucket_name,
                "Key.$": f"States.Format('{RUNS_PREFIX}{{}}.json', $$.Execution.Name)",
            },
            iam_resources=[bucket.arn_for_objects(f"{RUNS_PREFIX}*")],
            iam_action="s3:GetObject",
            result_selector={"summary.$": "States.StringToJson($.Body)"},
            result_path="$.run",
        )
        _retry_transient(read, ["S3.SdkClientException", "S3.S3Exception"], attempts=3)
        return read

    def _failure_pass(self, name: str, step: str) -> sfn.Pass:
        """A Pass state that records which step failed, with what error and cause, in $.failure."""
        if step in (CLAIM_DELIVERY, START_CRAWLER, GET_CRAWLER, RUN_ETL_JOB, READ_RUN_SUMMARY, NOTIFY_SUCCESS):
            parameters = {"step": step, "error.$": "$.error.Error", "cause.$": "$.error.Cause"}
        elif step == CRAWLER_FINISHED:
            parameters = {
                "step": GET_CRAWLER,
                "error": "CrawlerNotReady",
                "cause.$": "States.Format('The crawler is in state {}', $.crawler.Crawler.State)",
            }
        elif step == CRAWL_SUCCEEDED:
            parameters = {
                "step": GET_CRAWLER,
                "error": "CrawlFailed",
                "cause.$": "States.Format('The last crawl ended {}: {}', $.crawler.Crawler.LastCrawl.Status, "
                "States.JsonToString($.crawler.Crawler.LastCrawl))",
            }
        elif step == TOO_MANY_POLLS:
            parameters = {
                "step": WAIT_FOR_CRAWLER,
                "error": "CrawlerTimeout",
                "cause.$": f"States.Format('The crawler was still {{}} after {{}} polls', "
                f"$.crawler.Crawler.State, ${POLLS_VARIABLE})",
            }
        elif step == JOB_SUCCEEDED:
            parameters = {
                "step": RUN_ETL_JOB,
                "error": "JobRunNotSucceeded",
                "cause.$": "States.Format('Glue job run {} ended in state {}', $.job.Id, $.job.JobRunState)",
            }
        else:  # pragma: no cover - FAILURE_STATES and this function are edited together
            raise ValueError(step)
        return sfn.Pass(self, name, parameters=parameters, result_path="$.failure")

    # -- alarms ---------------------------------------------------------------------------------
    def _alarms(self, topic: sns.ITopic) -> None:
        action = cw_actions.SnsAction(topic)
        five_minutes = Duration.minutes(5)
        metrics = {
            "ExecutionsFailed": self.state_machine.metric_failed(period=five_minutes, statistic="Sum"),
            "ExecutionsTimedOut": self.state_machine.metric_timed_out(period=five_minutes, statistic="Sum"),
            "ExecutionThrottled": self.state_machine.metric_throttled(period=five_minutes, statistic="Sum"),
            "DeadLetters": self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=five_minutes, statistic="Maximum"
            ),
        }
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for name, metric in metrics.items():
            alarm = cloudwatch.Alarm(
                self,
                f"{name}Alarm",
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Airline booking ingestion: {name} >= 1 in 5 minutes",
            )
            alarm.add_alarm_action(action)
            self.alarms[name] = alarm

    def _acknowledge(self, bucket: s3.IBucket) -> None:
        acknowledge(
            self.state_machine.role,
            finding("IAM5", "Resource::*", "X-Ray tracing and CloudWatch Logs delivery actions have no resource type."),
            finding("IAM5", f"Resource::{arn_of(bucket)}/{RUNS_PREFIX}*",
                    "Reads runs/<execution name>.json, whose name is only known per execution."),
            finding("IAM5", f"Resource::{arn_of(bucket)}/{DELIVERIES_PREFIX}*",
                    "Writes (create-only) and reads back deliveries/<hash of the upload>, whose name is only known per upload."),
            finding("IAM5", "Action::kms:GenerateDataKey*", "Publishing to the topic encrypted with the pipeline's own data key."),
        )
        acknowledge(
            self.dead_letter_queue,
            rule("SQS3", "This queue is itself the dead-letter queue of the EventBridge rule's target."),
        )
