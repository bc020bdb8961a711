"""What one emulator request asks of IAM, and the check the moto hook runs (issue 12, wiring plan §1-§6).

:func:`map_request` turns a request (service, operation, parameters; for S3 the method, bucket, key,
query and headers) into the authorizations AWS makes for it: one :class:`Ask` per (IAM action,
resource ARN, request condition context). The table :data:`OPERATIONS` covers the operations this
pipeline and its deploy use; an operation not in it raises :class:`UnmappedRequestError` naming it:
never an allow.

:class:`IamCheck` is what the hook calls (``RUNTIME.iam_check``): the access key → identity
(:class:`~airline_local.aws.iam.principals.PrincipalRegistry`), the mapping, the
:class:`~airline_local.aws.iam.authorizer.Authorizer` (decisions memoized: the template is static),
and a :class:`Verdict` the hook turns into the service's own error.

``aws:SecureTransport`` is always ``true``: every AWS SDK and AWS service calls AWS over TLS, and the
local endpoints are plain HTTP only because they are local (a plain-HTTP caller is not emulated).
Set from the wire, every S3 call and every Publish would meet the template's "deny if not TLS"
statements; left out, those statements could never apply.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from airline_local.aws.iam.authorizer import Authorization, Authorizer
from airline_local.aws.iam.principals import (
    Identity,
    InvalidTokenError,
    PrincipalRegistry,
    UnknownAccessKeyError,
)
from airline_local.aws.iam.evaluator import PolicyEvaluationError, Principal
from airline_local.aws.iam.template_policies import PolicyStore, TemplatePolicyError

__all__ = ["Ask", "Call", "IamCheck", "OPERATIONS", "UnmappedRequestError", "Verdict", "map_request"]


class UnmappedRequestError(Exception):
    """The IAM check does not know what a request asks of IAM: an error, never an allow."""


@dataclass(frozen=True)
class Call:
    """One request as the hook sees it. ``params``: the JSON body or the parsed query parameters."""

    service: str  # moto's service name: s3, glue, stepfunctions, sns, sts, events, redshift-data, iam
    operation: str  # the API operation (for S3: derived by :func:`s3_operation`)
    region: str
    account: str
    params: Mapping[str, Any] = field(default_factory=dict)
    bucket: str | None = None  # S3 only
    key: str | None = None  # S3 only
    headers: Mapping[str, str] = field(default_factory=dict)  # S3 only (lower-case names)
    query: Mapping[str, str] = field(default_factory=dict)  # S3 only


@dataclass(frozen=True)
class Ask:
    """One authorization: an IAM action on a resource ARN, with the request's condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, Any], ...] = ()


# ----------------------------------------------------------------------------------- mapping

_TLS = (("aws:SecureTransport", True),)  # see the module docstring


def _ask(action: str, resource: str, **context: Any) -> Ask:
    items = dict(_TLS)
    items.update(context)
    return Ask(action, resource, tuple(sorted((k, _frozen(v)) for k, v in items.items())))


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class _Arns:
    def __init__(self, call: Call, resolver: Resolver) -> None:
        self.call, self.resolver = call, resolver
        self.prefix = f"{call.region}:{call.account}"

    def glue(self, resource: str) -> str:
        return f"arn:aws:glue:{self.prefix}:{resource}"

    def states(self, resource: str) -> str:
        return f"arn:aws:states:{self.prefix}:{resource}"

    def sns(self, name: str) -> str:
        return f"arn:aws:sns:{self.prefix}:{name}"

    def events(self, resource: str) -> str:
        return f"arn:aws:events:{self.prefix}:{resource}"


def _p(call: Call, name: str) -> str:
    value = call.params.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if not value:
        raise UnmappedRequestError(f"{call.service}:{call.operation} without {name}: cannot name the resource")
    return str(value)


Mapper = Callable[[Call, "_Arns"], list[Ask]]


def _glue_catalog(call: Call, arns: _Arns, action: str, table: str | None = None, all_tables: bool = False) -> list[Ask]:
    database = _p(call, "DatabaseName") if "DatabaseName" in call.params else _p(call, "Name")
    asks = [_ask(action, arns.glue("catalog")), _ask(action, arns.glue(f"database/{database}"))]
    if table is not None:
        asks.append(_ask(action, arns.glue(f"table/{database}/{table}")))
    elif all_tables:
        asks.append(_ask(action, arns.glue(f"table/{database}/*")))
    return asks


def _glue_table(action: str) -> Mapper:
    def mapper(call: Call, arns: _Arns) -> list[Ask]:
        table = call.params.get("TableName") or (call.params.get("TableInput") or {}).get("Name") or call.params.get("Name")
        if not table:
            raise UnmappedRequestError(f"glue:{call.operation} without a table name")
        return _glue_catalog(call, arns, action, table=str(table))
    return mapper


def _named(action: str, arn: Callable[[Call, _Arns], str]) -> Mapper:
    return lambda call, arns: [_ask(action, arn(call, arns))]


def _everything(action: str) -> Mapper:
    return lambda call, arns: [_ask(action, "*")]


def _execution_arn(call: Call, arns: _Arns) -> str:
    return _p(call, "executionArn")


def _topic(call: Call, arns: _Arns) -> str:
    return str(call.params.get("TopicArn") or call.params.get("TargetArn") or _p(call, "TopicArn"))


def _alarm(call: Call, arns: _Arns) -> str:
    return f"arn:aws:cloudwatch:{arns.prefix}:alarm:{_p(call, 'AlarmName')}"


def _events_put(call: Call, arns: _Arns) -> list[Ask]:
    buses = {str(entry.get("EventBusName") or "default") for entry in call.params.get("Entries", [])} or {"default"}
    return [_ask("events:PutEvents", bus if bus.startswith("arn:") else arns.events(f"event-bus/{bus}"))
            for bus in sorted(buses)]


def _redshift_data_execute(action: str) -> Mapper:
    def mapper(call: Call, arns: _Arns) -> list[Ask]:
        if call.params.get("WorkgroupName"):
            resource = arns.resolver.workgroup_arn(str(call.params["WorkgroupName"]))
        elif call.params.get("ClusterIdentifier"):
            resource = f"arn:aws:redshift:{arns.prefix}:cluster:{call.params['ClusterIdentifier']}"
        else:
            raise UnmappedRequestError(f"redshift-data:{call.operation} names neither WorkgroupName nor ClusterIdentifier")
        asks = [_ask(action, resource)]
        if call.params.get("SecretArn"):
            # Secrets Manager authentication: the caller's policy must allow GetSecretValue on the
            # secret ("Authorizing access to the Amazon Redshift Data API"); the Data API reads it
            # with the caller's identity (forward access), so the Authorizer adds the kms:Decrypt
            # Secrets Manager asks for it when the secret has a customer managed key.
            secret = arns.resolver.secret_arn(str(call.params["SecretArn"]))
            asks.append(_ask("secretsmanager:GetSecretValue", secret, **{"aws:ViaAWSService": True}))
        elif ":workgroup/" in resource:
            # IAM authentication to a workgroup: the Data API gets database credentials as the caller.
            asks.append(_ask("redshift-serverless:GetCredentials", resource))
        return asks
    return mapper


def _redshift_data_owned(action: str) -> Mapper:
    def mapper(call: Call, arns: _Arns) -> list[Ask]:
        owner = arns.resolver.statement_owner(_p(call, "Id"))
        context = {} if owner is None else {"redshift-data:statement-owner-iam-userid": owner}
        return [_ask(action, "*", **context)]
    return mapper


def _sqs_queue(call: Call, arns: _Arns) -> str:
    """The queue's ARN from QueueUrl (…/ACCOUNT/NAME), or from QueueName (+ QueueOwnerAWSAccountId)."""
    url = call.params.get("QueueUrl")
    if url:
        parts = str(url).rstrip("/").rsplit("/", 2)
        if len(parts) < 3:
            raise UnmappedRequestError(f"sqs:{call.operation}: QueueUrl {url!r} names no account and queue")
        account, name = parts[1], parts[2]
    else:
        name, account = _p(call, "QueueName"), str(call.params.get("QueueOwnerAWSAccountId") or call.account)
    return f"arn:aws:sqs:{call.region}:{account}:{name}"


def _sqs(action: str) -> Mapper:
    return lambda call, arns: [_ask(action, _sqs_queue(call, arns))]


def _lambda_function(call: Call, arns: _Arns) -> str:
    """The function's ARN from FunctionName (an ARN, or a name; either may end in :qualifier)."""
    name = _p(call, "FunctionName")
    return name if name.startswith("arn:") else f"arn:aws:lambda:{arns.prefix}:function:{name}"


def _assume_role(call: Call, arns: _Arns) -> list[Ask]:
    return [_ask("sts:AssumeRole", _p(call, "RoleArn"))]


def _iam_role(action: str) -> Mapper:
    return lambda call, arns: [_ask(action, f"arn:aws:iam::{call.account}:role{call.params.get('Path') or '/'}{_p(call, 'RoleName')}")]


#: (moto service name, operation) → the authorizations AWS makes. GetCallerIdentity needs none.
OPERATIONS: dict[tuple[str, str], Mapper] = {
    # Glue: crawler, job, Data Catalog (catalog + database [+ table] ARNs, as Glue authorizes them)
    ("glue", "StartCrawler"): _named("glue:StartCrawler", lambda c, a: a.glue(f"crawler/{_p(c, 'Name')}")),
    ("glue", "GetCrawler"): _named("glue:GetCrawler", lambda c, a: a.glue(f"crawler/{_p(c, 'Name')}")),
    ("glue", "StopCrawler"): _named("glue:StopCrawler", lambda c, a: a.glue(f"crawler/{_p(c, 'Name')}")),
    ("glue", "CreateCrawler"): _named("glue:CreateCrawler", lambda c, a: a.glue(f"crawler/{_p(c, 'Name')}")),
    ("glue", "StartJobRun"): _named("glue:StartJobRun", lambda c, a: a.glue(f"job/{_p(c, 'JobName')}")),
    ("glue", "GetJobRun"): _named("glue:GetJobRun", lambda c, a: a.glue(f"job/{_p(c, 'JobName')}")),
    ("glue", "GetJobRuns"): _named("glue:GetJobRuns", lambda c, a: a.glue(f"job/{_p(c, 'JobName')}")),
    ("glue", "BatchStopJobRun"): _named("glue:BatchStopJobRun", lambda c, a: a.glue(f"job/{_p(c, 'JobName')}")),
    ("glue", "GetJob"): _named("glue:GetJob", lambda c, a: a.glue(f"job/{_p(c, 'JobName')}")),
    ("glue", "CreateJob"): _named("glue:CreateJob", lambda c, a: a.glue(f"job/{_p(c, 'Name')}")),
    ("glue", "GetDatabase"): lambda c, a: _glue_catalog(c, a, "glue:GetDatabase"),
    ("glue", "CreateDatabase"): lambda c, a: [_ask("glue:CreateDatabase", a.glue("catalog")),
                                              _ask("glue:CreateDatabase", a.glue(f"database/{(c.params.get('DatabaseInput') or {}).get('Name')}"))],
    ("glue", "GetTables"): lambda c, a: _glue_catalog(c, a, "glue:GetTables", all_tables=True),
    ("glue", "GetTable"): _glue_table("glue:GetTable"),
    ("glue", "CreateTable"): _glue_table("glue:CreateTable"),
    ("glue", "UpdateTable"): _glue_table("glue:UpdateTable"),
    ("glue", "DeleteTable"): _glue_table("glue:DeleteTable"),
    ("glue", "GetPartitions"): _glue_table("glue:GetPartitions"),
    ("glue", "GetPartition"): _glue_table("glue:GetPartition"),
    ("glue", "CreatePartition"): _glue_table("glue:CreatePartition"),
    ("glue", "BatchCreatePartition"): _glue_table("glue:BatchCreatePartition"),
    ("glue", "BatchGetPartition"): _glue_table("glue:BatchGetPartition"),
    ("glue", "UpdatePartition"): _glue_table("glue:UpdatePartition"),
    # Step Functions
    ("stepfunctions", "StartExecution"): _named("states:StartExecution", lambda c, a: _p(c, "stateMachineArn")),
    ("stepfunctions", "ListExecutions"): _named("states:ListExecutions", lambda c, a: _p(c, "stateMachineArn")),
    ("stepfunctions", "DescribeStateMachine"): _named("states:DescribeStateMachine", lambda c, a: _p(c, "stateMachineArn")),
    ("stepfunctions", "DescribeExecution"): _named("states:DescribeExecution", _execution_arn),
    ("stepfunctions", "GetExecutionHistory"): _named("states:GetExecutionHistory", _execution_arn),
    ("stepfunctions", "StopExecution"): _named("states:StopExecution", _execution_arn),
    ("stepfunctions", "ListStateMachines"): _everything("states:ListStateMachines"),
    ("stepfunctions", "CreateStateMachine"): _named("states:CreateStateMachine",
                                                    lambda c, a: a.states(f"stateMachine:{_p(c, 'name')}")),
    # SNS
    ("sns", "Publish"): _named("sns:Publish", _topic),
    ("sns", "Subscribe"): _named("sns:Subscribe", _topic),
    ("sns", "CreateTopic"): _named("sns:CreateTopic", lambda c, a: a.sns(_p(c, "Name"))),
    ("sns", "GetTopicAttributes"): _named("sns:GetTopicAttributes", _topic),
    ("sns", "ListSubscriptionsByTopic"): _named("sns:ListSubscriptionsByTopic", _topic),
    ("sns", "ListTopics"): _everything("sns:ListTopics"),
    # Redshift Data API
    ("redshift-data", "ExecuteStatement"): _redshift_data_execute("redshift-data:ExecuteStatement"),
    ("redshift-data", "BatchExecuteStatement"): _redshift_data_execute("redshift-data:BatchExecuteStatement"),
    ("redshift-data", "DescribeStatement"): _redshift_data_owned("redshift-data:DescribeStatement"),
    ("redshift-data", "GetStatementResult"): _redshift_data_owned("redshift-data:GetStatementResult"),
    ("redshift-data", "CancelStatement"): _redshift_data_owned("redshift-data:CancelStatement"),
    # SQS: the crawler's S3 event queue (consumed in event mode) and the deploy's queues. The
    # batch operations are authorized as their single-message actions (SQS API permissions
    # reference: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html).
    ("sqs", "GetQueueUrl"): _sqs("sqs:GetQueueUrl"),
    ("sqs", "ReceiveMessage"): _sqs("sqs:ReceiveMessage"),
    ("sqs", "DeleteMessage"): _sqs("sqs:DeleteMessage"),
    ("sqs", "DeleteMessageBatch"): _sqs("sqs:DeleteMessage"),
    ("sqs", "ChangeMessageVisibility"): _sqs("sqs:ChangeMessageVisibility"),
    ("sqs", "ChangeMessageVisibilityBatch"): _sqs("sqs:ChangeMessageVisibility"),
    ("sqs", "GetQueueAttributes"): _sqs("sqs:GetQueueAttributes"),
    ("sqs", "SetQueueAttributes"): _sqs("sqs:SetQueueAttributes"),
    ("sqs", "PurgeQueue"): _sqs("sqs:PurgeQueue"),
    ("sqs", "CreateQueue"): _sqs("sqs:CreateQueue"),
    # STS (GetCallerIdentity needs no permission: any valid credentials may call it)
    ("sts", "AssumeRole"): _assume_role,
    ("sts", "GetCallerIdentity"): lambda c, a: [],
    # EventBridge
    ("events", "PutEvents"): _events_put,
    ("events", "PutRule"): _named("events:PutRule", lambda c, a: a.events(f"rule/{_p(c, 'Name')}")),
    ("events", "PutTargets"): _named("events:PutTargets", lambda c, a: a.events(f"rule/{_p(c, 'Rule')}")),
    # CloudWatch: the deploy's alarms; SetAlarmState (how an operator tests an alarm's actions)
    ("cloudwatch", "PutMetricAlarm"): _named("cloudwatch:PutMetricAlarm", lambda c, a: _alarm(c, a)),
    ("cloudwatch", "SetAlarmState"): _named("cloudwatch:SetAlarmState", lambda c, a: _alarm(c, a)),
    ("cloudwatch", "DescribeAlarms"): _everything("cloudwatch:DescribeAlarms"),
    # Lambda: a state machine's lambda:invoke task (the function, by name or ARN), and the deploy
    ("awslambda", "Invoke"): _named("lambda:InvokeFunction", _lambda_function),
    ("awslambda", "CreateFunction"): _named("lambda:CreateFunction", _lambda_function),
    # IAM (the deploy)
    ("iam", "CreateRole"): _iam_role("iam:CreateRole"),
    ("iam", "GetRole"): _iam_role("iam:GetRole"),
}


# S3: the REST operation from method, bucket, key, query and headers (moto's ACTION_MAP is lossy).
def s3_operation(method: str, bucket: str | None, key: str | None, query: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    method = method.upper()
    if not bucket:
        if method == "GET":
            return "ListBuckets"
        raise UnmappedRequestError(f"s3: {method} / (no bucket)")
    sub = set(query)
    if key:
        if "uploadId" in sub:
            return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload",
                    "GET": "ListParts"}.get(method, "?")
        if "uploads" in sub and method == "POST":
            return "CreateMultipartUpload"
        if "tagging" in sub:
            return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"}.get(method, "?")
        if sub - {"versionId", "partNumber", "x-id"}:
            return f"{method} object ?{'&'.join(sorted(sub))}"
        if method == "PUT":
            return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, f"{method} object")
    if "notification" in sub:
        return {"GET": "GetBucketNotificationConfiguration", "PUT": "PutBucketNotificationConfiguration"}.get(method, "?")
    if "versioning" in sub:
        return {"GET": "GetBucketVersioning", "PUT": "PutBucketVersioning"}.get(method, "?")
    if "delete" in sub and method == "POST":
        return "DeleteObjects"
    if "versions" in sub and method == "GET":
        return "ListObjectVersions"
    if "location" in sub and method == "GET":
        return "GetBucketLocation"
    if sub - {"list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after", "marker",
              "encoding-type", "fetch-owner", "x-id"}:
        return f"{method} bucket ?{'&'.join(sorted(sub))}"
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"{method} bucket")


def _s3_asks(call: Call) -> list[Ask]:
    op, bucket, key = call.operation, call.bucket, call.key
    bucket_arn = f"arn:aws:s3:::{bucket}"
    object_arn = f"{bucket_arn}/{key}"
    versioned = "versionId" in call.query
    if op == "ListBuckets":
        return [_ask("s3:ListAllMyBuckets", "*")]
    if op in ("ListObjects", "ListObjectsV2", "HeadBucket"):
        context = {f"s3:{name}": call.query[name] for name in ("prefix", "delimiter", "max-keys") if name in call.query}
        return [_ask("s3:ListBucket", bucket_arn, **context)]
    if op in ("GetObject", "HeadObject"):  # HeadObject is authorized as s3:GetObject
        return [_ask("s3:GetObjectVersion" if versioned else "s3:GetObject", object_arn)]
    if op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        return [_ask("s3:PutObject", object_arn)]
    if op == "CopyObject":
        source = unquote(call.headers["x-amz-copy-source"]).lstrip("/")
        source, _, version = source.partition("?versionId=")
        read = "s3:GetObjectVersion" if version else "s3:GetObject"
        return [_ask(read, f"arn:aws:s3:::{source}"), _ask("s3:PutObject", object_arn)]
    if op == "DeleteObject":
        return [_ask("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", object_arn)]
    if op == "DeleteObjects":
        return [_ask("s3:DeleteObject", f"{bucket_arn}/{k}") for k in _delete_keys(call.params.get("body", b""))]
    if op == "AbortMultipartUpload":
        return [_ask("s3:AbortMultipartUpload", object_arn)]
    simple = {
        "CreateBucket": ("s3:CreateBucket", bucket_arn),
        "DeleteBucket": ("s3:DeleteBucket", bucket_arn),
        "GetBucketLocation": ("s3:GetBucketLocation", bucket_arn),
        "ListObjectVersions": ("s3:ListBucketVersions", bucket_arn),
        "GetBucketVersioning": ("s3:GetBucketVersioning", bucket_arn),
        "PutBucketVersioning": ("s3:PutBucketVersioning", bucket_arn),
        "PutBucketNotificationConfiguration": ("s3:PutBucketNotification", bucket_arn),
        "GetBucketNotificationConfiguration": ("s3:GetBucketNotification", bucket_arn),
        "GetObjectTagging": ("s3:GetObjectVersionTagging" if versioned else "s3:GetObjectTagging", object_arn),
        "PutObjectTagging": ("s3:PutObjectVersionTagging" if versioned else "s3:PutObjectTagging", object_arn),
    }
    if op in simple:
        action, resource = simple[op]
        return [_ask(action, resource)]
    raise UnmappedRequestError(f"the local IAM check has no mapping for s3 operation {op!r} "
                               f"(airline_local/aws/iam/requests.py)")


def _delete_keys(body: Any) -> list[str]:
    if isinstance(body, str):
        body = body.encode()
    try:
        root = ElementTree.fromstring(body or b"<Delete/>")
    except ElementTree.ParseError as error:
        raise UnmappedRequestError(f"s3:DeleteObjects with a body that is not XML: {error}") from None
    return [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]


class Resolver:
    """Names the mapping cannot build from the request alone (ask the template, never rebuild)."""

    def __init__(self, workgroups: Mapping[str, str] | None = None,
                 statement_owner: Callable[[str], str | None] | None = None,
                 secrets: Iterable[str] = ()) -> None:
        self.workgroups = dict(workgroups or {})
        self.secrets = frozenset(secrets)
        self._statement_owner = statement_owner

    def workgroup_arn(self, name: str) -> str:
        if name not in self.workgroups:
            raise UnmappedRequestError(f"workgroup {name!r} is not in the template (workgroups: {sorted(self.workgroups)})")
        return self.workgroups[name]

    def secret_arn(self, secret: str) -> str:
        """The ARN of a secret of the template (its key and key policy are known only for those)."""
        if secret not in self.secrets:
            raise UnmappedRequestError(f"secret {secret!r} is not a secret of the template (secrets: {sorted(self.secrets)})")
        return secret

    def statement_owner(self, statement_id: str) -> str | None:
        """aws:userid of who ran the statement (None: an Id that names no statement; the
        condition key is then absent and the owner condition denies, so nothing leaks). Raises
        when owner tracking is not wired: an owner condition left unjudged would silently deny
        every DescribeStatement."""
        if self._statement_owner is None:
            raise UnmappedRequestError(
                "redshift-data statement owner is not known to the local IAM check (the Data API emulator "
                "does not record owners yet: wiring plan step 8), so redshift-data:statement-owner-iam-userid "
                "cannot be judged")
        return self._statement_owner(statement_id)

    @classmethod
    def from_template(cls, template: Any, statement_owner: Callable[[str], str | None] | None = None) -> Resolver:
        workgroups = {}
        for lid in template.resources_of_type("AWS::RedshiftServerless::Workgroup"):
            workgroups[str(template.properties(lid)["WorkgroupName"])] = template.get_att(lid, "Workgroup.WorkgroupArn")
        secrets = [template.ref(lid) for lid in template.resources_of_type("AWS::SecretsManager::Secret")]
        return cls(workgroups, statement_owner, secrets)


def map_request(call: Call, resolver: Resolver | None = None) -> list[Ask]:
    """The authorizations AWS makes for ``call``; :class:`UnmappedRequestError` when not known."""
    if call.service == "s3":
        return _s3_asks(call)
    mapper = OPERATIONS.get((call.service, call.operation))
    if mapper is None:
        raise UnmappedRequestError(
            f"the local IAM check has no mapping for {call.service}:{call.operation} "
            "(add it to OPERATIONS in airline_local/aws/iam/requests.py)")
    return mapper(call, _Arns(call, resolver or Resolver()))


# ------------------------------------------------------------------------------------- check


@dataclass(frozen=True)
class Verdict:
    """What the hook does with a request.

    ``outcome``: ``"allow"``; ``"deny"`` (``code`` is the service's AccessDenied code); ``"unknown-key"``,
    ``"bad-token"`` (authentication failed); ``"unmapped"`` (the check cannot judge the request: an
    unmapped operation, an unjudgeable condition, an unknown key policy; the hook answers
    ``LocalIamCheckError``).
    """

    outcome: str
    message: str = ""
    code: str | None = None
    identity: Identity | None = None
    authorizations: tuple[Authorization, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"


class IamCheck:
    """The IAM check of every emulator request (``RUNTIME.iam_check`` when on)."""

    def __init__(self, store: PolicyStore, registry: PrincipalRegistry, resolver: Resolver | None = None,
                 authorizer: Authorizer | None = None, *, memo_size: int = 65536, operator: str = "unchecked") -> None:
        self.store = store
        self.registry = registry
        self.resolver = resolver or Resolver()
        self.authorizer = authorizer or Authorizer(store)
        self.memo_size = memo_size
        self.operator = operator
        self._memo: dict[tuple[Any, ...], Authorization] = {}
        self._lock = threading.Lock()
        #: Every authorization of a mapped call: (who, action, resource, verdict), verdict one of
        #: "allowed" (a role session), "denied", "allowed unchecked (operator)" and, for an operator
        #: call the map does not know, "allowed unchecked (operator, unmapped)" (resource "").
        self.log: deque[tuple[str, str, str, str]] = deque(maxlen=10000)
        #: Mints the actors' role sessions (principals.RoleBroker; set by Emulator.start_iam_check).
        self.role_broker: Any = None

    def check(self, call: Call, access_key: str | None, session_token: str | None) -> Verdict:
        try:
            identity = self.registry.resolve(access_key, session_token)
        except UnknownAccessKeyError as error:
            return Verdict("unknown-key", str(error))
        except InvalidTokenError as error:
            return Verdict("bad-token", str(error))
        try:
            asks = map_request(call, self.resolver)
        except UnmappedRequestError as error:
            if identity.kind == "operator":
                # The operator (an administrator: tests, the CLI) may call what no actor calls.
                self.log.append((identity.arn, f"{call.service}:{call.operation}", "", "allowed unchecked (operator, unmapped)"))
                return Verdict("allow", identity=identity)
            return Verdict("unmapped", str(error), identity=identity)
        if identity.kind == "broker":
            # The broker has checked the trust policy itself; it may do nothing else.
            if [a.action for a in asks] == ["sts:AssumeRole"]:
                return Verdict("allow", identity=identity)
            return Verdict("deny", f"the local role broker may only call sts:AssumeRole, not {call.service}:{call.operation}",
                           _deny_code(call.service), identity)
        if identity.kind == "operator":
            for ask in asks:
                self.log.append((identity.arn, ask.action, ask.resource, "allowed unchecked (operator)"))
            return Verdict("allow", identity=identity)
        authorizations = []
        for ask in asks:
            try:
                authorization = self._authorize(identity, ask)
            except (PolicyEvaluationError, TemplatePolicyError) as error:
                # A condition the evaluator cannot judge, a key policy the template lacks, ...
                return Verdict("unmapped", f"{ask.action} on {ask.resource}: {error}", identity=identity)
            authorizations.append(authorization)
            if not authorization.allowed:
                self.log.append((identity.arn, ask.action, ask.resource, "denied"))
                return Verdict("deny", authorization.message, authorization.error_code or _deny_code(call.service),
                               identity, tuple(authorizations))
        for ask in asks:
            self.log.append((identity.arn, ask.action, ask.resource, "allowed"))
        return Verdict("allow", identity=identity, authorizations=tuple(authorizations))

    def decisions(self) -> list[tuple[Principal, Ask, Authorization]]:
        """Every distinct decision made so far (what the memo holds): docs/iam-calls.md's input."""
        with self._lock:
            return [(principal, ask, authorization) for (principal, ask), authorization in self._memo.items()]

    def unjudged(self, message: str) -> Verdict:
        """A request the hook could not even read: refused as an error."""
        return Verdict("unmapped", f"the local IAM check cannot judge this request: {message}")

    def authorize_service(self, service_principal: str, action: str, resource: str,
                          context: Mapping[str, Any] | None = None) -> Authorization:
        """A call an AWS service makes as its service principal on the account's behalf, with no
        access key (a CloudWatch alarm publishing, S3 delivering an event): judged by the resource
        and key policies with the request's ``context`` (aws:SourceArn, aws:SourceAccount; the
        service calls over TLS). Memoized and logged as an actor's call is."""
        principal = Principal.service(service_principal)
        authorization = self._authorize_principal(principal, _ask(action, resource, **dict(context or {})))
        self.log.append((principal.arn, action, resource, "allowed" if authorization.allowed else "denied"))
        return authorization

    def _authorize(self, identity: Identity, ask: Ask) -> Authorization:
        principal = identity.principal
        assert principal is not None
        return self._authorize_principal(principal, ask)

    def _authorize_principal(self, principal: Principal, ask: Ask) -> Authorization:
        key = (principal, ask)
        found = self._memo.get(key)
        if found is None:
            found = self.authorizer.authorize(principal, ask.action, ask.resource, dict(ask.context))
            with self._lock:
                if len(self._memo) >= self.memo_size:
                    self._memo.clear()
                self._memo[key] = found
        return found


def _deny_code(service: str) -> str:
    return {"s3": "AccessDenied", "sns": "AuthorizationError", "sts": "AccessDenied", "iam": "AccessDenied"}.get(
        service, "AccessDeniedException")


def describe(asks: Sequence[Ask]) -> str:
    return ", ".join(f"{a.action} on {a.resource}" for a in asks)
