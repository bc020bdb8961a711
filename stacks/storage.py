"""The data key and the buckets: the raw data bucket (input, staging, quarantine, run summaries)
and the bucket that receives server access logs."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
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

        # event_bridge_enabled is applied by CDK's bucket-notifications singleton function.
        notifications_handler = stack.node.try_find_child(_NOTIFICATIONS_HANDLER_ID)
        if notifications_handler is not None:
            acknowledge(
                notifications_handler,
                finding("IAM4", LAMBDA_BASIC_EXECUTION,
                        "CDK's bucket-notification handler: the managed policy only lets it write its own logs."),
            )

    def data_root_uri(self) -> str:
        """`s3://<raw bucket>` (a Fn::Join of the bucket's Ref)."""
        return f"s3://{self.raw_bucket.bucket_name}"
