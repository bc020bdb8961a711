"""What AWS authorizes while it creates a resource, judged against the policies that exist by then.

Some services check a policy when a resource is created, not when it is first used
(docs/aws-notes.md, "Checked at creation"): CreateCrawler reads its event queue as the crawler's
role; CreateStateMachine with logging checks the role's log-delivery permissions; CreateTrail checks
that the bucket policy and the key policy let CloudTrail write; S3 sends a test message to each SQS
destination of a notification configuration, which the queue policy must allow. CloudFormation creates
in parallel whatever does not depend on each other, so the only policies sure to exist at that moment
are those among the resource's dependencies (:func:`airline_local.aws.cfn_order.created_before`).

:class:`CreationChecks` authorizes each such request with the project's IAM check
(:class:`~airline_local.aws.iam.authorizer.Authorizer`) against the policies of those dependencies
only (the resource's own policy too: a role's inline policies come with the role). A request that
the whole template's policies would allow is a missing dependency: :class:`CreationCheckError` names
the resource and the policies it must depend on. One that no policy allows names the request.
Only the call itself is judged here; the KMS requests a later delivery makes are the run-time IAM
check's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airline_local.aws.cfn import ACCOUNT_ID, Template
from airline_local.aws.cfn_order import created_before
from airline_local.aws.iam.authorizer import Authorizer, Check
from airline_local.aws.iam.evaluator import Principal
from airline_local.aws.iam.template_policies import PolicyStore

__all__ = ["CreationCheckError", "CreationChecks", "CreationRequest", "requests_at_creation"]

# The permissions the Step Functions guide asks of a state machine's role for logging to CloudWatch
# Logs (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html): which of them
# CreateStateMachine itself tries is not documented, so all of them are checked.
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
)
# What CreateCrawler may try on an event queue as the role ("SQS queue ... does not exist or the role
# provided does not have access to it"): the API is not documented, so both ways to look a queue up.
CRAWLER_QUEUE_LOOKUPS = ("sqs:GetQueueUrl", "sqs:GetQueueAttributes")
_TLS = {"aws:SecureTransport": "true"}  # AWS services call each other over TLS


@dataclass(frozen=True)
class CreationRequest:
    """One authorization a service makes while it creates a resource: as a session of ``role`` (a
    role's logical id, ARN or name) or as the service principal ``service``."""

    api: str  # e.g. "CreateCrawler"
    purpose: str  # what is checked, for the error: "its event queue"
    action: str
    resource: str
    role: str | None = None
    service: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    def principal(self, store: PolicyStore) -> Principal:
        return store.session(self.role, self.api) if self.role else Principal.service(str(self.service))

    def caller(self) -> str:
        return f"as role {self.role}" if self.role else f"as the service principal {self.service}"


class CreationCheckError(RuntimeError):
    """A resource whose creation AWS would refuse. ``missing``: the policies (logical ids) it
    would have had to depend on; empty when no policy of the template allows the request."""

    def __init__(self, message: str, resource: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.resource = resource
        self.missing = missing


class CreationChecks:
    def __init__(self, template: Template) -> None:
        self.template = template
        self._everything = Authorizer(PolicyStore.from_template(template))

    def verify(self, logical_id: str) -> None:
        """Raise :class:`CreationCheckError` if AWS would refuse to create ``logical_id`` with only
        the policies of the resources it depends on in place."""
        requests = requests_at_creation(self.template, logical_id)
        if not requests:
            return
        before = created_before(self.template.body, logical_id)
        existing = Authorizer(PolicyStore.from_template(self._only(before | {logical_id})))
        for request in requests:
            in_place = _policy_check(existing, request)
            if in_place.allowed:
                continue
            everything = _policy_check(self._everything, request)
            what = (f"{request.api} checks {request.purpose} {request.caller()}: {request.action} on "
                    f"{request.resource} is not allowed")
            if everything.allowed:
                missing = tuple(sorted({s.policy_name.split("/")[0] for s in everything.decision.statements
                                        if s.effect == "Allow"} - before))
                if missing:
                    raise CreationCheckError(
                        f"{self._label(logical_id)} was created before {', '.join(map(self._label, missing))}, "
                        f"which it does not depend on: {what} by the policies in place then. "
                        f"Make it depend on {', '.join(missing)} (DependsOn; in CDK node.add_dependency)",
                        logical_id, missing)
            raise CreationCheckError(f"{self._label(logical_id)}: {what} by any policy of the template: {in_place.message}",
                                     logical_id)

    def _only(self, logical_ids: frozenset[str]) -> Template:
        body = dict(self.template.body)
        body["Resources"] = {lid: r for lid, r in self.template.resources.items() if lid in logical_ids}
        return replace(self.template, body=body)

    def _label(self, logical_id: str) -> str:
        return f"{logical_id} ({self.template.resources[logical_id].get('Type')})"


def _policy_check(authorizer: Authorizer, request: CreationRequest) -> Check:
    principal = request.principal(authorizer.store)
    return authorizer.authorize(principal, request.action, request.resource, request.context).checks[0]


def requests_at_creation(template: Template, logical_id: str) -> list[CreationRequest]:
    """The authorizations AWS makes while it creates ``logical_id`` (none for most resources)."""
    kind = template.resources[logical_id].get("Type")
    builder = _BUILDERS.get(str(kind))
    return builder(template, logical_id, template.properties(logical_id)) if builder else []


def _crawler(template: Template, lid: str, props: Mapping[str, Any]) -> list[CreationRequest]:
    targets = props.get("Targets", {})
    queues = [target[key] for target in [*targets.get("S3Targets", []), *targets.get("CatalogTargets", [])]
              for key in ("EventQueueArn", "DlqEventQueueArn") if target.get(key)]
    return [CreationRequest("CreateCrawler", "its event queue", action, queue, role=props["Role"], context=_TLS)
            for queue in queues for action in CRAWLER_QUEUE_LOOKUPS]


def _state_machine(template: Template, lid: str, props: Mapping[str, Any]) -> list[CreationRequest]:
    logging = props.get("LoggingConfiguration", {})
    if not logging.get("Destinations") or logging.get("Level", "OFF") == "OFF":
        return []
    return [CreationRequest("CreateStateMachine", "log delivery to CloudWatch Logs", action, "*",
                            role=props["RoleArn"], context=_TLS) for action in LOG_DELIVERY_ACTIONS]


def _bucket_notifications(template: Template, lid: str, props: Mapping[str, Any]) -> list[CreationRequest]:
    """S3 "verifies that any Amazon SNS or Amazon SQS destination exists, and that the bucket owner
    has permission to publish to it by sending a test notification" (PutBucketNotificationConfiguration):
    the destination's policy must let S3 send for this bucket. CDK's Custom::S3BucketNotifications
    makes that call; a bucket's own NotificationConfiguration is set with the bucket."""
    if props.get("SkipDestinationValidation") in (True, "true"):
        return []
    own = template.resources[lid].get("Type") == "AWS::S3::Bucket"
    bucket, config = template.ref(lid) if own else props["BucketName"], props.get("NotificationConfiguration", {})
    context = {"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": ACCOUNT_ID, **_TLS}
    requests = []
    for entry in config.get("QueueConfigurations", []):
        queue = entry.get("QueueArn") or entry.get("Queue")
        requests.append(CreationRequest("PutBucketNotificationConfiguration", "its SQS destination (test message)",
                                        "sqs:SendMessage", queue, service="s3.amazonaws.com", context=context))
    for entry in config.get("TopicConfigurations", []):
        topic = entry.get("TopicArn") or entry.get("Topic")
        requests.append(CreationRequest("PutBucketNotificationConfiguration", "its SNS destination (test message)",
                                        "sns:Publish", topic, service="s3.amazonaws.com", context=context))
    return requests


def _trail(template: Template, lid: str, props: Mapping[str, Any]) -> list[CreationRequest]:
    """CreateTrail fails with InsufficientS3BucketPolicyException / InsufficientEncryptionPolicyException
    when the bucket policy / key policy does not let CloudTrail deliver (the bucket policy and key
    policy statements of the CloudTrail guide)."""
    trail = template.get_att(lid, "Arn")
    bucket = props["S3BucketName"]
    prefix = f"{props['S3KeyPrefix'].strip('/')}/" if props.get("S3KeyPrefix") else ""
    source = {"aws:SourceArn": trail, "aws:SourceAccount": ACCOUNT_ID, **_TLS}
    api, bucket_policy = "CreateTrail", "the bucket policy (InsufficientS3BucketPolicyException)"
    requests = [
        CreationRequest(api, bucket_policy, "s3:GetBucketAcl", f"arn:aws:s3:::{bucket}",
                        service="cloudtrail.amazonaws.com", context=source),
        CreationRequest(api, bucket_policy, "s3:PutObject",
                        f"arn:aws:s3:::{bucket}/{prefix}AWSLogs/{ACCOUNT_ID}/CloudTrail/{template.region}/log.json.gz",
                        service="cloudtrail.amazonaws.com",
                        context={**source, "s3:x-amz-acl": "bucket-owner-full-control"}),
    ]
    key = props.get("KMSKeyId")
    if key:
        key_policy = "the key policy (InsufficientEncryptionPolicyException)"
        encryption = {"kms:EncryptionContext:aws:cloudtrail:arn": trail, "kms:EncryptionContextKeys": ["aws:cloudtrail:arn"]}
        requests += [
            CreationRequest(api, key_policy, "kms:GenerateDataKey", key, service="cloudtrail.amazonaws.com",
                            context={**source, **encryption}),
            CreationRequest(api, key_policy, "kms:DescribeKey", key, service="cloudtrail.amazonaws.com", context=source),
        ]
    return requests


_BUILDERS = {
    "AWS::Glue::Crawler": _crawler,
    "AWS::StepFunctions::StateMachine": _state_machine,
    "Custom::S3BucketNotifications": _bucket_notifications,
    "AWS::S3::Bucket": _bucket_notifications,
    "AWS::CloudTrail::Trail": _trail,
}
