"""The data key and the buckets: the raw data bucket (input, staging, quarantine, run summaries)
and the bucket that receives server access logs."""

from __future__ import annotations

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import PipelineConfig
from stacks.nag import LAMBDA_BASIC_EXECUTION, acknowledge, finding, rule

# Prefixes of the raw bucket (docs/architecture.md).
RAW_PREFIX = "raw/bookings/"
# Files to ingest in bulk (stacks/backfill.py); outside RAW_PREFIX: no per-file execution.
BACKFILL_PREFIX = "raw/backfill/"
STAGING_PREFIX = "staging/"
QUARANTINE_PREFIX = "quarantine/"
RUNS_PREFIX = "runs/"
# One marker per upload claimed by an execution (the state machine's idempotency gate).
DELIVERIES_PREFIX = "deliveries/"
# S3 and EventBridge redeliver within hours (the rule's target gives up after at most 24 h): a
# marker kept 30 days outlives any redelivery, and the bucket does not collect one per upload.
DELIVERY_MARKER_EXPIRATION_DAYS = 30
# The crawler's S3 event queue (docs/aws-notes.md, "Crawler: S3 event mode"): events outlive a
# crawler outage (14 days, SQS's maximum); one that keeps failing goes to the DLQ.
CRAWLER_EVENTS_RETENTION_DAYS = 14
CRAWLER_EVENTS_MAX_RECEIVE_COUNT = 10
# Longer than a crawl (minutes): a message the crawler received stays hidden until it is done.
CRAWLER_EVENTS_VISIBILITY_MINUTES = 15


_NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class Storage(Construct):
    """Data KMS key, raw data bucket and access-log bucket."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        removal = config.data_removal_policy
        stack = Stack.of(self)

        self.key = kms.Key(
            self,
            "DataKey",
            description="Encrypts the airline booking pipeline's data, logs, topic and secrets",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        # Services that write with the key on the pipeline's behalf (encrypted log groups, alarms
        # publishing to the encrypted topic). Scoped to this account by the encryption context.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"
                    }
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )

        # Server access logs: the log delivery service only supports SSE-S3 on the target bucket.
        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
            auto_delete_objects=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(config.access_log_expiration_days),
                    noncurrent_version_expiration=Duration.days(config.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        acknowledge(
            self.access_log_bucket,
            rule("S1", "This is the server access log bucket itself; logging it to itself would loop."),
        )

        self.raw_bucket = s3.Bucket(
            self,
            "RawBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            event_bridge_enabled=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="raw-bucket/",
            removal_policy=removal,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-staging",
                    prefix=STAGING_PREFIX,
                    expiration=Duration.days(config.staging_expiration_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-quarantine",
                    prefix=QUARANTINE_PREFIX,
                    expiration=Duration.days(config.quarantine_expiration_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-delivery-markers",
                    prefix=DELIVERIES_PREFIX,
                    expiration=Duration.days(DELIVERY_MARKER_EXPIRATION_DAYS),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(config.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
        )

        self._crawler_event_queue(stack)

        # event_bridge_enabled is applied by CDK's bucket-notifications singleton function.
        notifications_handler = stack.node.try_find_child(_NOTIFICATIONS_HANDLER_ID)
        if notifications_handler is not None:
            acknowledge(
                notifications_handler,
                finding("IAM4", LAMBDA_BASIC_EXECUTION,
                        "CDK's bucket-notification handler: the managed policy only lets it write its own logs."),
            )

    def _crawler_event_queue(self, stack: Stack) -> None:
        """S3 event notifications for raw/bookings/ delivered straight to an SQS queue, which the
        crawler consumes in CRAWL_EVENT_MODE (it reads only the objects the events name). The
        bucket's EventBridge delivery (the pipeline's trigger) is a separate destination and stays."""
        self.crawler_events_dlq = sqs.Queue(
            self,
            "CrawlerEventsDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(CRAWLER_EVENTS_RETENTION_DAYS),
        )
        # SSE-SQS: S3 can send to it without a key policy (a KMS key would need one for s3).
        self.crawler_events = sqs.Queue(
            self,
            "CrawlerEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(CRAWLER_EVENTS_RETENTION_DAYS),
            visibility_timeout=Duration.minutes(CRAWLER_EVENTS_VISIBILITY_MINUTES),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.crawler_events_dlq, max_receive_count=CRAWLER_EVENTS_MAX_RECEIVE_COUNT
            ),
        )
        destination = _QueueOfThisAccount(self.crawler_events)
        prefix = s3.NotificationKeyFilter(prefix=RAW_PREFIX)
        # Created and removed objects: the event crawler also learns of deletions.
        self.raw_bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination, prefix)
        self.raw_bucket.add_event_notification(s3.EventType.OBJECT_REMOVED, destination, prefix)

    def data_root_uri(self) -> str:
        """`s3://<raw bucket>` (a Fn::Join of the bucket's Ref)."""
        return f"s3://{self.raw_bucket.bucket_name}"


@jsii.implements(s3.IBucketNotificationDestination)
class _QueueOfThisAccount:
    """An SQS destination whose queue policy lets only S3 deliver, only for this bucket
    (aws:SourceArn) and this account (aws:SourceAccount). CDK's SqsDestination conditions on the
    bucket ARN alone, and grants S3 GetQueueAttributes/GetQueueUrl it does not need."""

    def __init__(self, queue: sqs.Queue) -> None:
        self.queue = queue

    def bind(self, scope: Construct, bucket: s3.IBucket) -> s3.BucketNotificationDestinationConfig:
        added = self.queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="S3EventNotificationsOfTheRawBucket",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.queue.queue_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": bucket.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": Stack.of(scope).account},
                },
            )
        )
        # S3 validates the destination (a test event) when the configuration is put: the
        # policy must exist first.
        dependencies = [added.policy_dependable] if added.policy_dependable is not None else []
        return s3.BucketNotificationDestinationConfig(
            arn=self.queue.queue_arn, type=s3.BucketNotificationDestinationType.QUEUE, dependencies=dependencies
        )
