"""The one stack of the airline booking pipeline, composed of one construct per concern."""

from __future__ import annotations

import tomllib
from pathlib import Path

from aws_cdk import CfnOutput, Fn, Stack, Tags
from constructs import Construct

from stacks.audit import Audit
from stacks.backfill import BACKFILL_PREFIX, Backfill
from stacks.catalog import Catalog
from stacks.config import PipelineConfig, config_from_node
from stacks.etl_job import EtlJob
from stacks.notifications import Notifications
from stacks.observability import Observability
from stacks.orchestration import Orchestration
from stacks.storage import RAW_PREFIX, Storage
from stacks.warehouse import Warehouse


PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# The release a deployed stack runs, on every taggable resource (CHANGELOG.md, docs/upgrading.md).
VERSION_TAG = "airline:version"


def release_version() -> str:
    """The project's version, from pyproject.toml: the app is synthesized from the source tree,
    where an installed package's metadata can be stale (its metadata only outside a checkout)."""
    if not PYPROJECT.is_file():
        from importlib.metadata import version

        return version("airline-booking-pipeline")
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]


class PipelineStack(Stack):
    """S3 upload → EventBridge → Step Functions (crawler, Glue job) → Redshift, SNS, CloudTrail."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: PipelineConfig | None = None, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config or config_from_node(self.node)
        cfg = self.config
        # Tag updates are in place for every tagged type (tests/infra/test_upgrades.py checks).
        Tags.of(self).add(VERSION_TAG, release_version())

        self.storage = Storage(self, "Storage", config=cfg)
        bucket, key = self.storage.raw_bucket, self.storage.key
        self.notifications = Notifications(self, "Notifications", config=cfg, key=key)
        self.catalog = Catalog(self, "Catalog", config=cfg, bucket=bucket, key=key,
                               event_queue=self.storage.crawler_events)
        self.warehouse = Warehouse(self, "Warehouse", config=cfg, bucket=bucket, key=key)
        self.etl = EtlJob(
            self,
            "Etl",
            config=cfg,
            bucket=bucket,
            key=key,
            security_configuration=self.catalog.security_configuration,
            data_root_uri=self.storage.data_root_uri(),
            target=self.warehouse.target,
        )
        self.schema = self.warehouse.add_schema(etl_role=self.etl.role)
        self.orchestration = Orchestration(
            self,
            "Orchestration",
            config=cfg,
            bucket=bucket,
            key=key,
            crawler=self.catalog.crawler,
            crawler_arn=self.catalog.crawler_arn,
            job=self.etl.job,
            topic=self.notifications.topic,
        )
        # Bulk ingestion of a prefix (issue 15): the same crawler, job and topic.
        self.backfill = Backfill(
            self,
            "Backfill",
            config=cfg,
            bucket=bucket,
            key=key,
            crawler=self.catalog.crawler,
            crawler_arn=self.catalog.crawler_arn,
            job=self.etl.job,
            topic=self.notifications.topic,
        )
        self.audit = Audit(
            self, "Audit", config=cfg, watched_bucket=bucket, access_log_bucket=self.storage.access_log_bucket
        )
        # The operator's dashboard and the reject-ratio alarm (stacks/observability.py).
        self.observability = Observability(
            self,
            "Observability",
            config=cfg,
            state_machines={"Per-file ingestion": self.orchestration.state_machine,
                            "Backfill": self.backfill.state_machine},
            dead_letter_queue=self.orchestration.dead_letter_queue,
            crawler_events_dead_letter_queue=self.storage.crawler_events_dlq,
            job_name=self.etl.job.job_name,
            topic=self.notifications.topic,
            alarms={**self.orchestration.alarms, **self.backfill.alarms},
        )

        CfnOutput(self, "RawBucketName", value=bucket.bucket_name, description=f"Upload booking files under {RAW_PREFIX}")
        CfnOutput(self, "StateMachineArn", value=self.orchestration.state_machine.state_machine_arn)
        CfnOutput(self, "BackfillStateMachineArn", value=self.backfill.state_machine.state_machine_arn,
                  description=f'Start with {{"prefix": "{BACKFILL_PREFIX}<folder>/"}}')
        CfnOutput(self, "GlueJobName", value=self.etl.job.job_name)
        CfnOutput(self, "CrawlerName", value=self.catalog.crawler.ref)
        CfnOutput(self, "TopicArn", value=self.notifications.topic.topic_arn)

    @property
    def availability_zones(self) -> list[str]:
        """The region's zones by position, resolved at deploy time. CDK's default looks them up
        in the account when the stack has one, which needs credentials at synth; the warehouse
        places its subnets itself (stacks/warehouse.py)."""
        return [Fn.select(i, Fn.get_azs()) for i in range(3)]


STACK_NAME = "AirlineBookingPipeline"


def create_app(context: dict | None = None, outdir: str | None = None, *, nag: bool = True):
    """The CDK app: cdk.json's context (CLI `-c` values override it), the stack, and cdk-nag.

    The stack is deployed where CDK_DEFAULT_ACCOUNT/REGION point when they are set, and is
    environment-agnostic otherwise (so it synthesizes offline with no credentials).
    """
    import json
    import os
    from pathlib import Path

    from aws_cdk import App, Environment, Validations
    from cdk_nag import AwsSolutionsChecks

    cdk_json = Path(__file__).resolve().parent.parent / "cdk.json"
    base_context = json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {}) if cdk_json.is_file() else {}
    app = App(context={**base_context, **(context or {})}, outdir=outdir)
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    env = Environment(account=account, region=region) if account and region else None
    # Context `stackName` (-c stackName=...) deploys a second copy under another name (the AWS
    # acceptance test and the integ test do); the default stays STACK_NAME.
    stack_name = app.node.try_get_context("stackName") or STACK_NAME
    PipelineStack(
        app,
        stack_name,
        env=env,
        description="Airline booking files from S3 into Amazon Redshift (Glue, Step Functions)",
    )
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app
