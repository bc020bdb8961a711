"""Every policy a synthesized template defines, with local ARNs, for the local IAM check (issue 12).

:meth:`PolicyStore.from_template` reads the template through :class:`airline_local.aws.cfn.Template`
(every ``Ref``/``Fn::GetAtt``/``Fn::Join``/``Fn::Sub`` resolved, so ARNs are the local ARNs the
emulated resources have) and collects:

- **roles** (``AWS::IAM::Role``): ARN, name, a role id shaped as AWS's (``AROA`` + 17 characters,
  derived from the logical id, so stable across synths), the trust policy, and the identity
  policies attached to the role: ``AWS::IAM::Policy`` and ``AWS::IAM::ManagedPolicy`` listing it
  in ``Roles``, its inline ``Policies``, and its ``ManagedPolicyArns`` (a managed policy of the
  template, or an AWS managed policy from :data:`AWS_MANAGED_POLICIES`; any other AWS managed
  policy raises :class:`UnknownManagedPolicyError`: it is not in the template, and guessing its
  statements would be a silent allow or deny);
- **resource policies** by resource ARN: bucket policies (the bucket ARN; they also govern the
  bucket's objects), topic policies (each topic), queue policies (each queue), KMS key policies
  (the key ARN) and Lambda permissions (the function ARN, one statement per permission);
- **encryption bindings**: the KMS key that protects a bucket (default encryption with SSE-KMS,
  and whether it uses an S3 Bucket Key), a topic (``KmsMasterKeyId``), a log group (``KmsKeyId``),
  a queue (``KmsMasterKeyId``; SQS-managed SSE needs no key) or a secret (``KmsKeyId``; without
  it, the AWS managed key ``aws/secretsmanager``). A key given as a key id, key ARN,
  alias name or alias ARN is resolved to the key's ARN; an AWS managed key (``alias/aws/sns``)
  gets the key policy AWS documents for AWS managed keys.

Each :class:`~airline_local.aws.iam.evaluator.Policy` is named after the logical id it comes from
(an inline policy: ``ROLE/PolicyName``; an AWS managed policy: its ARN), so a denial names the
template resource to change. Resources whose ``Condition`` is false are not created, as in
CloudFormation.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airline_local.aws.iam.evaluator import Policy, Principal
from airline_local.aws.cfn import ACCOUNT_ID, Template

__all__ = [
    "AWS_MANAGED_POLICIES",
    "EncryptionBinding",
    "KmsKey",
    "PolicyStore",
    "Role",
    "TemplatePolicyError",
    "UnknownManagedPolicyError",
]

_VERSION = "2012-10-17"

#: AWS managed policies the template attaches, with their documented statements (AWS managed
#: policies are not in the template). AWSLambdaBasicExecutionRole:
#: https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html
AWS_MANAGED_POLICIES: dict[str, Mapping[str, Any]] = {
    "service-role/AWSLambdaBasicExecutionRole": {
        "Version": _VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
}

# The key policy of an AWS managed key (alias/aws/<service>): any principal of the account may use
# it through that service ("Allow access through <service> for all principals in the account that
# are authorized to use <service>"), https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#aws-managed-key
_AWS_MANAGED_KEY_ACTIONS = [
    "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey",
]


class TemplatePolicyError(ValueError):
    """The template holds a policy the local check cannot take as AWS would."""


class UnknownManagedPolicyError(TemplatePolicyError):
    """A role attaches an AWS managed policy whose statements the store does not know."""


@dataclass(frozen=True)
class Role:
    logical_id: str
    arn: str
    name: str
    role_id: str  # AROA + 17 characters, as aws:userid shows it
    trust_policy: Policy
    policies: tuple[Policy, ...]  # identity policies, in a stable order


@dataclass(frozen=True)
class KmsKey:
    arn: str
    policy: Policy
    logical_id: str | None = None  # None for an AWS managed key
    aws_managed_service: str | None = None  # "sns" for alias/aws/sns


@dataclass(frozen=True)
class EncryptionBinding:
    """``resource_arn`` (a bucket, topic, log group or queue) is encrypted with ``key_arn``."""

    kind: str  # "s3", "sns", "logs", "sqs" or "secretsmanager"
    resource_arn: str
    key_arn: str
    logical_id: str
    bucket_key: bool = False  # S3 only: the bucket uses an S3 Bucket Key


@dataclass
class PolicyStore:
    region: str
    account: str = ACCOUNT_ID
    roles: dict[str, Role] = field(default_factory=dict)  # by logical id
    resource_policies: dict[str, Policy] = field(default_factory=dict)  # by resource ARN
    keys: dict[str, KmsKey] = field(default_factory=dict)  # by key ARN
    encryption: dict[str, EncryptionBinding] = field(default_factory=dict)  # by resource ARN

    # -- queries ----------------------------------------------------------------------------

    def role(self, role: str) -> Role:
        """A role by logical id, ARN or name."""
        if role in self.roles:
            return self.roles[role]
        for candidate in self.roles.values():
            if role in (candidate.arn, candidate.name):
                return candidate
        raise KeyError(f"no role {role!r} in the template (roles: {', '.join(sorted(self.roles))})")

    def session(self, role: str, session_name: str) -> Principal:
        """The principal of ``role``'s session ``session_name`` (aws:userid = ROLE-ID:SESSION)."""
        found = self.role(role)
        return Principal.role_session(found.arn, session_name, found.role_id)

    def identity_policies(self, principal: Principal) -> tuple[Policy, ...]:
        """The identity policies of a role session's role; a service principal has none."""
        if principal.is_service:
            return ()
        if principal.role_arn is None:
            raise KeyError(f"{principal.arn} is not a role session")
        return self.role(principal.role_arn).policies

    def resource_policy(self, resource_arn: str) -> Policy | None:
        """The resource-based policy governing ``resource_arn``: its own, the bucket policy for an
        object ARN (``arn:aws:s3:::bucket/key``), the function's for a qualified Lambda ARN."""
        if resource_arn in self.resource_policies:
            return self.resource_policies[resource_arn]
        owner = _owning_resource(resource_arn)
        return self.resource_policies.get(owner) if owner else None

    def key(self, key_arn: str) -> KmsKey:
        if key_arn not in self.keys:
            raise TemplatePolicyError(
                f"KMS key {key_arn} is not defined in the template: its key policy is unknown, so no "
                "request on it can be judged"
            )
        return self.keys[key_arn]

    def encryption_of(self, resource_arn: str) -> EncryptionBinding | None:
        """The KMS key binding of a bucket (also for its object ARNs), topic, log group or queue."""
        if resource_arn in self.encryption:
            return self.encryption[resource_arn]
        if resource_arn.startswith("arn:") and ":logs:" in resource_arn:
            return self.encryption.get(resource_arn.removesuffix(":*"))
        owner = _owning_resource(resource_arn)
        return self.encryption.get(owner) if owner else None

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_template(cls, template: Template) -> PolicyStore:
        store = cls(region=template.region)
        builder = _Builder(template, store)
        builder.build()
        return store


def role_id_for(logical_id: str) -> str:
    """AROA + 17 characters of base32 (A-Z, 2-7) of the logical id's SHA-256: an id shaped as AWS
    role ids are, the same in every synth of the template."""
    digest = base64.b32encode(hashlib.sha256(logical_id.encode()).digest()).decode()
    return "AROA" + digest[:17]


def _owning_resource(resource_arn: str) -> str | None:
    parts = resource_arn.split(":", 6)
    if len(parts) < 6:
        return None
    if parts[2] == "s3" and "/" in parts[5]:
        return ":".join(parts[:5]) + ":" + parts[5].split("/", 1)[0]
    if parts[2] == "lambda" and len(parts) == 7 and parts[5] == "function":
        return ":".join(parts[:6]) + ":" + parts[6].split(":", 1)[0]
    return None


class _Builder:
    def __init__(self, template: Template, store: PolicyStore) -> None:
        self.t = template
        self.store = store
        self.region = template.region
        self.account = store.account

    def build(self) -> None:
        self._keys()
        roles = self._roles()
        self._attach_policies(roles)
        for lid, (arn, name, trust, policies) in roles.items():
            self.store.roles[lid] = Role(lid, arn, name, role_id_for(lid), trust, tuple(policies))
        self._bucket_policies()
        self._topic_policies()
        self._queue_policies()
        self._lambda_permissions()
        self._encryption()

    # -- helpers --

    def _of_type(self, resource_type: str) -> Iterable[tuple[str, dict[str, Any]]]:
        """(logical id, resolved properties) of each resource of the type that would exist."""
        for lid, resource in self.t.resources_of_type(resource_type).items():
            condition = resource.get("Condition")
            if condition is not None and not self.t.resolve({"Fn::If": [condition, True, False]}):
                continue
            yield lid, self.t.properties(lid)

    def _set_resource_policy(self, arn: str, policy: Policy) -> None:
        existing = self.store.resource_policies.get(arn)
        if existing is not None:
            # Two topic (queue) policies on one resource: each replaces the other on AWS, and which
            # one is left depends on deployment order. Not something to guess.
            raise TemplatePolicyError(f"{arn} has two resource policies: {existing.name} and {policy.name}")
        self.store.resource_policies[arn] = policy

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    # -- KMS --

    def _keys(self) -> None:
        for lid, props in self._of_type("AWS::KMS::Key"):
            arn = self.t.get_att(lid, "Arn")
            if "KeyPolicy" not in props:
                raise TemplatePolicyError(f"KMS key {lid} has no KeyPolicy in the template")
            self.store.keys[arn] = KmsKey(arn, Policy(lid, props["KeyPolicy"]), logical_id=lid)
            self.store.resource_policies[arn] = self.store.keys[arn].policy
        self._aliases: dict[str, str] = {}
        for lid, props in self._of_type("AWS::KMS::Alias"):
            self._aliases[props["AliasName"]] = self.key_arn(props["TargetKeyId"], f"alias {lid}")

    def key_arn(self, value: str, where: str) -> str:
        """The key ARN behind a key id, key ARN, alias name or alias ARN."""
        value = str(value)
        if value.startswith("arn:") and ":key/" in value:
            return value
        alias = value.split(":", 5)[5] if value.startswith("arn:") and ":alias/" in value else value
        if alias.startswith("alias/"):
            if alias in self._aliases:
                return self._aliases[alias]
            if alias.startswith("alias/aws/"):
                return self._aws_managed_key(alias.removeprefix("alias/aws/"))
            raise TemplatePolicyError(f"{where}: KMS alias {alias} is not defined in the template")
        for key in self.store.keys.values():
            if key.logical_id and self.t.ref(key.logical_id) == value:
                return key.arn
        return self._arn("kms", f"key/{value}")

    def _aws_managed_key(self, service: str) -> str:
        arn = self._arn("kms", f"alias/aws/{service}")
        if arn not in self.store.keys:
            document = {
                "Version": _VERSION,
                "Statement": [{
                    "Sid": f"Allow access through {service} for all principals in the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": _AWS_MANAGED_KEY_ACTIONS,
                    "Resource": "*",
                    "Condition": {"StringEquals": {
                        "kms:CallerAccount": self.account,
                        "kms:ViaService": f"{service}.{self.region}.amazonaws.com",
                    }},
                }],
            }
            key = KmsKey(arn, Policy(f"aws/{service} (AWS managed key)", document), aws_managed_service=service)
            self.store.keys[arn] = key
            self.store.resource_policies[arn] = key.policy
        return arn

    # -- IAM --

    def _roles(self) -> dict[str, tuple[str, str, Policy, list[Policy]]]:
        self._managed: dict[str, Policy] = {}
        for lid, props in self._of_type("AWS::IAM::ManagedPolicy"):
            policy = Policy(lid, props["PolicyDocument"])
            name = props.get("ManagedPolicyName", lid)
            path = props.get("Path", "/")
            # Ref of a managed policy is its ARN; the local resolver gives its logical id.
            for ident in (self.t.ref(lid), f"arn:aws:iam::{self.account}:policy{path}{name}"):
                self._managed[ident] = policy
        roles: dict[str, tuple[str, str, Policy, list[Policy]]] = {}
        for lid, props in self._of_type("AWS::IAM::Role"):
            arn = self.t.get_att(lid, "Arn")
            name = self.t.name_of(lid)
            if "AssumeRolePolicyDocument" not in props:
                raise TemplatePolicyError(f"role {lid} has no AssumeRolePolicyDocument")
            trust = Policy(lid, props["AssumeRolePolicyDocument"])
            policies: list[Policy] = []
            for inline in props.get("Policies", []):
                policies.append(Policy(f"{lid}/{inline['PolicyName']}", inline["PolicyDocument"]))
            for managed_arn in props.get("ManagedPolicyArns", []):
                policies.append(self._managed_policy(str(managed_arn), lid))
            roles[lid] = (arn, name, trust, policies)
        return roles

    def _managed_policy(self, arn: str, role: str) -> Policy:
        if arn in self._managed:
            return self._managed[arn]
        prefix = "arn:aws:iam::aws:policy/"
        if arn.startswith(prefix):
            document = AWS_MANAGED_POLICIES.get(arn.removeprefix(prefix))
            if document is not None:
                return Policy(arn, document)
        raise UnknownManagedPolicyError(
            f"role {role} attaches the managed policy {arn}, which is neither in the template nor in "
            f"the known AWS managed policies ({', '.join(sorted(AWS_MANAGED_POLICIES))}): add its "
            "documented statements to airline_local.aws.iam.template_policies.AWS_MANAGED_POLICIES"
        )

    def _attach_policies(self, roles: dict[str, tuple[str, str, Policy, list[Policy]]]) -> None:
        by_name = {name: lid for lid, (_, name, _, _) in roles.items()}
        for resource_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for lid, props in self._of_type(resource_type):
                policy = Policy(lid, props["PolicyDocument"]) if resource_type == "AWS::IAM::Policy" else None
                for role_name in props.get("Roles", []):
                    role_lid = by_name.get(str(role_name))
                    if role_lid is None:
                        continue  # a role of another stack: none of its sessions act locally
                    attached = policy or self._managed[self.t.ref(lid)]
                    roles[role_lid][3].append(attached)

    # -- resource policies --

    def _bucket_policies(self) -> None:
        for lid, props in self._of_type("AWS::S3::BucketPolicy"):
            self._set_resource_policy(f"arn:aws:s3:::{props['Bucket']}", Policy(lid, props["PolicyDocument"]))

    def _topic_policies(self) -> None:
        for lid, props in self._of_type("AWS::SNS::TopicPolicy"):
            for topic in props["Topics"]:
                self._set_resource_policy(str(topic), Policy(lid, props["PolicyDocument"]))

    def _queue_policies(self) -> None:
        queues = {self.t.ref(q): self.t.get_att(q, "Arn") for q in self.t.resources_of_type("AWS::SQS::Queue")}
        for lid, props in self._of_type("AWS::SQS::QueuePolicy"):
            for queue in props["Queues"]:
                url = str(queue)
                arn = queues.get(url) or self._queue_arn_from_url(url)
                self._set_resource_policy(arn, Policy(lid, props["PolicyDocument"]))

    def _queue_arn_from_url(self, url: str) -> str:
        # https://sqs.REGION.amazonaws.com/ACCOUNT/NAME
        account, name = url.rstrip("/").rsplit("/", 2)[-2:]
        return f"arn:aws:sqs:{self.region}:{account}:{name}"

    def _lambda_permissions(self) -> None:
        functions = {}
        for lid in self.t.resources_of_type("AWS::Lambda::Function"):
            arn = self.t.get_att(lid, "Arn")
            functions[self.t.name_of(lid)] = arn
            functions[arn] = arn
        statements: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for lid, props in self._of_type("AWS::Lambda::Permission"):
            target = str(props["FunctionName"])
            arn = functions.get(target)
            if arn is None:
                arn = target if target.startswith("arn:") else self._arn("lambda", f"function:{target}")
            statement: dict[str, Any] = {
                "Sid": lid,
                "Effect": "Allow",
                "Principal": _lambda_principal(str(props["Principal"])),
                "Action": props["Action"],
                "Resource": arn,
            }
            condition: dict[str, dict[str, str]] = {}
            if "SourceArn" in props:
                condition.setdefault("ArnLike", {})["AWS:SourceArn"] = props["SourceArn"]
            if "SourceAccount" in props:
                condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = props["SourceAccount"]
            if "PrincipalOrgID" in props:
                condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = props["PrincipalOrgID"]
            if "FunctionUrlAuthType" in props:
                condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = props["FunctionUrlAuthType"]
            if condition:
                statement["Condition"] = condition
            statements.setdefault(arn, []).append((lid, statement))
        for arn, entries in statements.items():
            name = " + ".join(lid for lid, _ in entries)
            document = {"Version": _VERSION, "Statement": [s for _, s in entries]}
            self._set_resource_policy(arn, Policy(name, document))

    # -- encryption --

    def _encryption(self) -> None:
        for lid, props in self._of_type("AWS::S3::Bucket"):
            rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
            for rule in rules:
                default = rule.get("ServerSideEncryptionByDefault", {})
                if default.get("SSEAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
                    continue
                bucket_arn = self.t.get_att(lid, "Arn")
                key = default.get("KMSMasterKeyID")
                # SSE-KMS without a key id uses the AWS managed key aws/s3.
                key_arn = self.key_arn(key, f"bucket {lid}") if key else self._aws_managed_key("s3")
                bucket_key = rule.get("BucketKeyEnabled") in (True, "true")
                self._bind(EncryptionBinding("s3", bucket_arn, key_arn, lid, bucket_key))
        for lid, props in self._of_type("AWS::SNS::Topic"):
            if props.get("KmsMasterKeyId"):
                topic_arn = self.t.ref(lid)
                self._bind(EncryptionBinding("sns", topic_arn, self.key_arn(props["KmsMasterKeyId"], f"topic {lid}"), lid))
        for lid, props in self._of_type("AWS::Logs::LogGroup"):
            if props.get("KmsKeyId"):
                group_arn = self.t.get_att(lid, "Arn").removesuffix(":*")
                self._bind(EncryptionBinding("logs", group_arn, self.key_arn(props["KmsKeyId"], f"log group {lid}"), lid))
        for lid, props in self._of_type("AWS::SQS::Queue"):
            if props.get("KmsMasterKeyId"):  # SqsManagedSseEnabled: SQS-owned keys, no KMS request
                queue_arn = self.t.get_att(lid, "Arn")
                self._bind(EncryptionBinding("sqs", queue_arn, self.key_arn(props["KmsMasterKeyId"], f"queue {lid}"), lid))

        for lid, props in self._of_type("AWS::SecretsManager::Secret"):
            key = props.get("KmsKeyId")  # none: the AWS managed key aws/secretsmanager
            key_arn = self.key_arn(key, f"secret {lid}") if key else self._aws_managed_key("secretsmanager")
            self._bind(EncryptionBinding("secretsmanager", self.t.ref(lid), key_arn, lid))

    def _bind(self, binding: EncryptionBinding) -> None:
        self.store.encryption[binding.resource_arn] = binding


def _lambda_principal(principal: str) -> Any:
    if principal == "*":
        return "*"
    if principal.endswith(".amazonaws.com") or principal.endswith(".amazonaws.com.cn"):
        return {"Service": principal}
    return {"AWS": principal}
