"""Glue Data Catalog: the database, the crawler over raw/bookings/, and the security
configuration shared by the crawler and the job (encrypted logs, bookmarks and S3 output)."""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import PipelineConfig
from stacks.nag import acknowledge, arn_of, finding, pseudo
from stacks.storage import RAW_PREFIX

DATABASE_NAME = "airline_bookings"
# What a crawler in S3 event mode does with its queue (docs/aws-notes.md, "Crawler: S3 event
# mode"): the actions the Glue guide lists for the crawler's role, and ChangeMessageVisibility
# (AWS's own sample policy for event crawlers has it: a crawl that fails hands its messages back).
CRAWLER_QUEUE_ACTIONS = (
    "sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ListDeadLetterSourceQueues", "sqs:ReceiveMessage",
    "sqs:GetQueueAttributes", "sqs:ListQueueTags", "sqs:SetQueueAttributes", "sqs:PurgeQueue",
    "sqs:ChangeMessageVisibility",
)


class Catalog(Construct):
    """Glue database + crawler + security configuration.

    The crawler recrawls in S3 event mode: its first crawl lists raw/bookings/, every later one
    reads only the objects named by the S3 events waiting in `event_queue`, so an upload's crawl
    costs what the upload added, not the history (docs/scaling-and-cost.md)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: PipelineConfig, bucket: s3.IBucket, key: kms.IKey,
        event_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.security_configuration = glue.SecurityConfiguration(
            self,
            "SecurityConfiguration",
            cloud_watch_encryption=glue.CloudWatchEncryption.kms(key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(key),
            s3_encryption=glue.S3Encryption.kms(key),
            # Settings, no data: nothing to keep (the L2 default, Retain, would leave the name
            # taken and block the next deploy).
            removal_policy=RemovalPolicy.DESTROY,
        )

        self.database = glue.Database(
            self,
            "Database",
            database_name=DATABASE_NAME,
            description="Airline booking files as crawled from raw/bookings/",
        )
        self.database.apply_removal_policy(config.data_removal_policy)

        self.crawler_role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Glue crawler over raw/bookings/: read the input, write tables of one database",
        )
        bucket.grant_read(self.crawler_role, f"{RAW_PREFIX}*")
        self.crawler_role.add_to_policy(
            iam.PolicyStatement(
                sid="CatalogOfThisDatabase",
                actions=[
                    "glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateTable",
                    "glue:UpdateTable", "glue:GetPartition", "glue:GetPartitions",
                    "glue:BatchGetPartition", "glue:BatchCreatePartition", "glue:CreatePartition",
                    "glue:UpdatePartition", "glue:BatchUpdatePartition",
                ],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    self.database.database_arn,
                    stack.format_arn(service="glue", resource="table", resource_name=f"{DATABASE_NAME}/*"),
                ],
            )
        )
        self.crawler_role.add_to_policy(
            iam.PolicyStatement(
                sid="ConsumeS3EventsQueue", actions=list(CRAWLER_QUEUE_ACTIONS), resources=[event_queue.queue_arn]
            )
        )
        _grant_glue_logs(self.crawler_role, "crawlers")
        key.grant_encrypt_decrypt(self.crawler_role)

        self.crawler = glue.CfnCrawler(
            self,
            "Crawler",
            role=self.crawler_role.role_arn,
            database_name=DATABASE_NAME,
            description="Infers the schema of the booking files under raw/bookings/",
            targets=glue.CfnCrawler.TargetsProperty(
                s3_targets=[
                    glue.CfnCrawler.S3TargetProperty(
                        path=f"s3://{bucket.bucket_name}/{RAW_PREFIX}", event_queue_arn=event_queue.queue_arn
                    )
                ]
            ),
            crawler_security_configuration=self.security_configuration.security_configuration_name,
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="UPDATE_IN_DATABASE", delete_behavior="LOG"
            ),
            # The queue's own redrive policy moves a message that keeps failing to its DLQ; the
            # optional DlqEventQueueArn is left unset (the guide lists no role actions for it).
            recrawl_policy=glue.CfnCrawler.RecrawlPolicyProperty(recrawl_behavior="CRAWL_EVENT_MODE"),
            # All files under raw/bookings/ make one table, whatever their compression.
            configuration=json.dumps(
                {"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}}
            ),
        )
        # CreateCrawler reads the event queue as the crawler role: the role's policies (and the
        # queue's) must exist first, which CloudFormation only guarantees for dependencies
        # (docs/aws-notes.md, "Checked at creation").
        self.crawler.node.add_dependency(self.database, self.crawler_role, event_queue)
        self.crawler_arn = stack.format_arn(service="glue", resource="crawler", resource_name=self.crawler.ref)

        acknowledge(
            self.crawler_role,
            finding("IAM5", f"Resource::{arn_of(bucket)}/{RAW_PREFIX}*", "The crawler reads every input file under raw/bookings/ and nothing else."),
            finding("IAM5", "Action::s3:GetObject*", "Read-only object access granted by grant_read, scoped to raw/bookings/*."),
            finding("IAM5", "Action::s3:GetBucket*", "Bucket metadata reads (location, ACL) the crawler needs, on this bucket only."),
            finding("IAM5", "Action::s3:List*", "Listing the input prefix, on this bucket only."),
            finding("IAM5", "Action::kms:ReEncrypt*", "Key use of the pipeline's own data key only."),
            finding("IAM5", "Action::kms:GenerateDataKey*", "Key use of the pipeline's own data key only (encrypted crawler logs)."),
            finding("IAM5", pseudo(self, f"Resource::arn:{{partition}}:glue:{{region}}:{{account}}:table/{DATABASE_NAME}/*"),
                    "Tables of the pipeline's own database; their names come from the crawled folders."),
            finding("IAM5", pseudo(self, "Resource::arn:{partition}:logs:{region}:{account}:log-group:/aws-glue/crawlers*"),
                    "Glue writes crawler logs to log groups it names itself under /aws-glue/crawlers."),
        )


def _grant_glue_logs(role: iam.Role, kind: str) -> None:
    """Glue writes to log groups it names itself under /aws-glue/<kind> (with the security
    configuration's KMS key associated)."""
    stack = Stack.of(role)
    role.add_to_policy(
        iam.PolicyStatement(
            sid="GlueLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
            resources=[
                f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws-glue/{kind}*"
            ],
        )
    )
