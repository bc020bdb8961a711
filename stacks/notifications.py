"""The SNS topic that carries success and failure messages and alarms."""

from __future__ import annotations

from aws_cdk import Annotations, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import PipelineConfig

NO_EMAILS_WARNING = (
    "No notification e-mail addresses are configured, so nobody will receive the pipeline's "
    "success/failure messages or alarms. Set them with "
    "-c notificationEmails='[\"you@example.com\"]' or in cdk.json."
)


class Notifications(Construct):
    """KMS-encrypted topic, one e-mail subscription per configured address."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: PipelineConfig, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="Airline booking ingestion",
            master_key=key,
            enforce_ssl=True,
        )
        # enforce_ssl writes a topic policy, which replaces SNS's default one: without this
        # statement no alarm could publish (the key policy's AllowCloudWatchAlarmsToPublish covers
        # the KMS side). Only this account's alarms, in this region (confused deputy).
        stack = Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        for email in config.notification_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        if not config.notification_emails:
            Annotations.of(self).add_warning_v2("airline:NoNotificationEmails", NO_EMAILS_WARNING)
        CfnOutput(
            self,
            "NotificationRecipients",
            description="Who receives the pipeline's messages (context notificationEmails)",
            value=", ".join(config.notification_emails) or "NONE - set context notificationEmails",
        )
