"""Authorize one AWS call the way AWS does, including the KMS requests AWS makes on the caller's behalf.

:meth:`Authorizer.authorize` takes who calls (a role session from :meth:`PolicyStore.session`, or a
service principal), the IAM action, the resource ARN and the request's condition context, and
returns an :class:`Authorization`: one :class:`Check` per authorization AWS makes, in AWS's order,
stopping at the first denial as AWS does (a call it refuses never reaches KMS):

1. the call itself: the principal's identity policies and the resource's policy (the bucket policy
   for an object ARN); a KMS key's policy and a role's trust policy are authoritative
   (``kms_key=True`` / ``trust_policy=True`` in :func:`evaluator.evaluate`);
2. the KMS requests the service then makes *as the same principal* (forward access), each evaluated
   against the key's key policy (``kms_key=True``) plus the principal's identity policies, with the
   condition keys KMS sees: ``kms:EncryptionContext:<key>`` (and ``kms:EncryptionContextKeys``),
   ``kms:ViaService``, ``kms:CallerAccount`` and ``aws:ViaAWSService``:

   - ``s3:PutObject`` to a bucket with SSE-KMS default encryption: ``kms:GenerateDataKey``;
     ``s3:GetObject``/``s3:GetObjectVersion``: ``kms:Decrypt``. Encryption context ``aws:s3:arn`` =
     the object ARN, or the *bucket* ARN when the bucket uses an S3 Bucket Key ("When an S3 Bucket
     Key is enabled ... the encryption context will be the bucket Amazon Resource Name (ARN) and
     not the object ARN"), https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html,
     https://docs.aws.amazon.com/AmazonS3/latest/userguide/configuring-bucket-key.html,
     https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html ("To upload an
     object encrypted with an AWS KMS key to Amazon S3, you need kms:GenerateDataKey permissions on
     the key. To download an object encrypted with an AWS KMS key, you need kms:Decrypt").
   - ``sns:Publish`` to a topic with ``KmsMasterKeyId``: ``kms:GenerateDataKey`` and
     ``kms:Decrypt`` (publishers need ``kms:GenerateDataKey*`` and ``kms:Decrypt``,
     https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html), encryption context
     ``aws:sns:topicArn`` = the topic ARN (the condition key AWS's own examples use, e.g.
     https://docs.aws.amazon.com/gamelift/latest/flexmatchguide/queue-notification-sns-sse.html).
   - ``sqs:SendMessage`` to a queue with ``KmsMasterKeyId``: ``kms:GenerateDataKey`` and
     ``kms:Decrypt``; ``sqs:ReceiveMessage``: ``kms:Decrypt``; context ``aws:sqs:arn`` = the queue
     ARN (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html).
   - ``secretsmanager:GetSecretValue`` of a secret: ``kms:Decrypt`` on its key ("If the secret is
     encrypted using a customer-managed key instead of the AWS managed key aws/secretsmanager, then
     you also need kms:Decrypt permissions for that key",
     https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html; the AWS
     managed key's policy lets the account's principals use it through Secrets Manager), encryption
     context ``SecretARN`` and ``SecretVersionId``
     (https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html; the
     version id is a local stand-in: AWS generates it at deploy time).

:meth:`Authorizer.authorize_log_group_write` checks the other kind: a write to a log group encrypted
with ``KmsKeyId`` is encrypted by CloudWatch Logs itself, as the service principal
``logs.<region>.amazonaws.com``, with encryption context ``aws:logs:arn`` = the log group ARN
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html): only the
key policy can allow it.

A denial's message has the shape of AWS's AccessDenied messages ("User: <principal ARN> is not
authorized to perform: <action> on resource: <resource ARN> because no identity-based policy allows
the <action> action" / "... with an explicit deny in a resource-based policy",
https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html; KMS returns the
same sentence, with "no resource-based policy" when the key policy does not allow the principal),
followed by the evaluator's explanation naming the policy that would have had to allow it.

Not checked here: the encryption headers of one request (``x-amz-server-side-encryption*``: the
bucket's default encryption is assumed), objects written before the bucket's encryption changed,
multipart uploads' extra ``kms:Decrypt``, KMS grants, and everything :mod:`evaluator` leaves out
(SCPs, RCPs, permissions boundaries, session and VPC endpoint policies, cross-account requests).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airline_local.aws.iam.evaluator import Decision, Policy, Principal, Request, evaluate
from airline_local.aws.iam.template_policies import EncryptionBinding, PolicyStore

__all__ = ["AccessDeniedError", "Authorization", "Authorizer", "Check"]

# Error code a service returns for its own AccessDenied (best effort: for the wiring slice).
_ERROR_CODES = {
    "s3": "AccessDenied",
    "sns": "AuthorizationError",
    "sqs": "AccessDenied",
    "kms": "AccessDeniedException",
    "sts": "AccessDenied",
}
# Error code a service returns when the KMS request it made for the caller is denied.
_KMS_ERROR_CODES = {"s3": "AccessDenied", "sns": "KMSAccessDenied", "sqs": "KmsAccessDenied",
                    "secretsmanager": "AccessDeniedException"}

# A probe identity policy allowing everything: used only to tell, for a KMS denial, whether the key
# policy or the identity policies were missing the allow (AWS says which in its message).
_ALLOW_ALL = Policy("probe", {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@dataclass(frozen=True)
class Check:
    """One authorization decision AWS makes for the call."""

    decision: Decision
    message: str  # AWS-shaped; for a denial the AccessDenied message plus the explanation
    on_behalf_of: str | None = None  # a KMS request: "s3:PutObject on arn:aws:s3:::b/k"
    key_arn: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def action(self) -> str:
        return self.decision.request.action

    @property
    def resource(self) -> str:
        return self.decision.request.resource


@dataclass(frozen=True)
class Authorization:
    """The checks of one call; allowed when every check is. Truthy when allowed."""

    principal: Principal
    action: str
    resource: str
    checks: tuple[Check, ...]
    error_code: str | None = None  # the error AWS would return on a denial

    @property
    def allowed(self) -> bool:
        return all(c.allowed for c in self.checks)

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def decisions(self) -> list[Decision]:
        return [c.decision for c in self.checks]

    @property
    def denial(self) -> Check | None:
        return next((c for c in self.checks if not c.allowed), None)

    @property
    def message(self) -> str:
        denial = self.denial
        if denial is not None:
            return denial.message
        return "; ".join(c.message for c in self.checks) or f"{self.action} on {self.resource}: nothing to check"

    def raise_for_denial(self) -> None:
        if not self.allowed:
            raise AccessDeniedError(self)


class AccessDeniedError(Exception):
    """A denied call, with the error code and message AWS would return."""

    def __init__(self, authorization: Authorization) -> None:
        self.authorization = authorization
        self.code = authorization.error_code or "AccessDenied"
        super().__init__(f"{self.code}: {authorization.message}")


class Authorizer:
    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    # -- calls by a principal ------------------------------------------------------------------

    def authorize(
        self, principal: Principal, action: str, resource_arn: str, context: Mapping[str, Any] | None = None
    ) -> Authorization:
        """Authorize ``action`` on ``resource_arn`` by ``principal``, then the KMS requests the
        service makes for it. ``context``: the request's condition keys (``aws:SecureTransport``,
        ``aws:SourceArn``, service keys such as ``redshift-data:statement-owner-iam-userid``); the
        principal's own keys (``aws:userid``, ``aws:PrincipalArn``, ...) are added here."""
        context = dict(context or {})
        service = action.split(":", 1)[0].lower()
        checks = [self._call_check(principal, action, resource_arn, context)]
        if checks[0].allowed:
            for kms_action, binding, encryption_context in self._kms_requests(action, resource_arn):
                check = self._kms_check(principal, kms_action, binding, encryption_context, f"{action} on {resource_arn}",
                                        _source_keys(principal, context))
                checks.append(check)
                if not check.allowed:
                    return Authorization(principal, action, resource_arn, tuple(checks), _KMS_ERROR_CODES.get(service, "AccessDenied"))
        code = None if checks[0].allowed else _ERROR_CODES.get(service, "AccessDeniedException")
        return Authorization(principal, action, resource_arn, tuple(checks), code)

    def authorize_log_group_write(self, log_group_arn: str) -> Authorization:
        """May CloudWatch Logs encrypt what is written to ``log_group_arn`` (and read it back)? The
        service principal ``logs.<region>.amazonaws.com`` asks KMS for kms:GenerateDataKey and
        kms:Decrypt with encryption context ``aws:logs:arn`` = the log group ARN; only the key
        policy can allow a service principal. An unencrypted log group needs no check."""
        group_arn = log_group_arn.removesuffix(":*")
        principal = Principal.service(f"logs.{self.store.region}.amazonaws.com")
        binding = self.store.encryption_of(group_arn)
        checks: list[Check] = []
        if binding is not None:
            for kms_action in ("kms:GenerateDataKey", "kms:Decrypt"):
                check = self._kms_check(principal, kms_action, binding, {"aws:logs:arn": group_arn},
                                        f"logs:PutLogEvents on {group_arn}")
                checks.append(check)
                if not check.allowed:
                    break
        code = None if all(c.allowed for c in checks) else "AccessDeniedException"
        return Authorization(principal, "logs:PutLogEvents", group_arn, tuple(checks), code)

    # -- the call itself -----------------------------------------------------------------------

    def _call_check(self, principal: Principal, action: str, resource_arn: str, context: Mapping[str, Any]) -> Check:
        request = Request(principal, action, resource_arn, {**context, **principal.context_keys()})
        identity = self.store.identity_policies(principal)
        kms_key = resource_arn in self.store.keys
        trust = action.lower().startswith("sts:assumerole") and ":role/" in resource_arn
        if trust:
            resource_policy: Policy | None = self.store.role(resource_arn).trust_policy
        else:
            resource_policy = self.store.resource_policy(resource_arn)
        decision = evaluate(request, identity, resource_policy, kms_key=kms_key, trust_policy=trust)
        return Check(decision, _message(decision, identity, resource_policy, kms_key or trust))

    # -- KMS on the caller's behalf ------------------------------------------------------------

    def _kms_requests(self, action: str, resource_arn: str) -> list[tuple[str, EncryptionBinding, dict[str, str]]]:
        binding = self.store.encryption_of(resource_arn)
        if binding is None:
            return []
        name = action.lower()
        if binding.kind == "s3" and resource_arn != binding.resource_arn:  # an object of the bucket
            s3_context = {"aws:s3:arn": binding.resource_arn if binding.bucket_key else resource_arn}
            if name == "s3:putobject":
                return [("kms:GenerateDataKey", binding, s3_context)]
            if name in ("s3:getobject", "s3:getobjectversion"):
                return [("kms:Decrypt", binding, s3_context)]
        if binding.kind == "sns" and name == "sns:publish":
            sns_context = {"aws:sns:topicArn": binding.resource_arn}
            return [("kms:GenerateDataKey", binding, sns_context), ("kms:Decrypt", binding, sns_context)]
        if binding.kind == "sqs":
            sqs_context = {"aws:sqs:arn": binding.resource_arn}
            if name == "sqs:sendmessage":
                return [("kms:GenerateDataKey", binding, sqs_context), ("kms:Decrypt", binding, sqs_context)]
            if name == "sqs:receivemessage":
                return [("kms:Decrypt", binding, sqs_context)]
        if binding.kind == "secretsmanager" and name == "secretsmanager:getsecretvalue":
            secret_context = {"SecretARN": binding.resource_arn, "SecretVersionId": local_secret_version_id(binding.resource_arn)}
            return [("kms:Decrypt", binding, secret_context)]
        return []

    def _kms_check(
        self,
        principal: Principal,
        kms_action: str,
        binding: EncryptionBinding,
        encryption_context: Mapping[str, str],
        on_behalf_of: str,
        source_keys: Mapping[str, Any] | None = None,
    ) -> Check:
        key = self.store.key(binding.key_arn)
        context: dict[str, Any] = {f"kms:EncryptionContext:{k}": v for k, v in encryption_context.items()}
        context.update(source_keys or {})
        context["kms:EncryptionContextKeys"] = list(encryption_context)
        if not principal.is_service:
            # Forward access: the service calls KMS with the caller's identity.
            service = binding.kind
            context["kms:ViaService"] = f"{service}.{self.store.region}.amazonaws.com"
            context["kms:CallerAccount"] = principal.account
            context["aws:ViaAWSService"] = True
        # The caller's own request keys (aws:SecureTransport, aws:SourceIp, ...) are not carried
        # into the service's KMS request: AWS does not document them there (a service principal's
        # aws:SourceArn / aws:SourceAccount are: _source_keys).
        request = Request(principal, kms_action, key.arn, {**context, **principal.context_keys()})
        identity = self.store.identity_policies(principal)
        decision = evaluate(request, identity, key.policy, kms_key=True)
        message = _message(decision, identity, key.policy, True)
        if not decision.allowed:
            message = f"{message} (KMS request made by {binding.kind} on behalf of {on_behalf_of})"
        return Check(decision, message, on_behalf_of=on_behalf_of, key_arn=key.arn)


def _source_keys(principal: Principal, context: Mapping[str, Any]) -> dict[str, Any]:
    """A service principal acting for a resource of the account (a CloudWatch alarm publishing, S3
    delivering an event) carries aws:SourceArn / aws:SourceAccount into the KMS request the
    destination service makes for it: AWS's key-policy examples for such senders condition on them
    (docs/aws-notes.md, "CloudWatch alarms publishing to the encrypted topic")."""
    if not principal.is_service:
        return {}
    return {k: context[k] for k in ("aws:SourceArn", "aws:SourceAccount") if k in context}


def local_secret_version_id(secret_arn: str) -> str:
    """The version id of a secret's current value, locally: a UUID (as AWS's are) derived from the
    secret's ARN. AWS generates the real one when it stores the value."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"secret-version/{secret_arn}"))


def _message(decision: Decision, identity: Sequence[Policy], resource_policy: Policy | None, authoritative: bool) -> str:
    """AWS's AccessDenied sentence for a denial, then the evaluator's explanation."""
    if decision.allowed:
        return decision.explanation
    request = decision.request
    head = f"User: {request.principal.arn} is not authorized to perform: {request.action} on resource: {request.resource}"
    if decision.reason == "explicit-deny":
        kinds = {s.kind for s in decision.statements}
        kind = "an identity-based" if "identity" in kinds else "a resource-based"
        sentence = f"{head} with an explicit deny in {kind} policy"
    else:
        missing = "identity-based"
        if request.principal.is_service:
            missing = "resource-based"
        elif authoritative and resource_policy is not None:
            # Would the key (trust) policy allow it if the identity policies did? Then the identity
            # policies are what is missing; otherwise the key policy is.
            probe = evaluate(request, [_ALLOW_ALL], resource_policy, kms_key=True)
            missing = "identity-based" if probe.allowed else "resource-based"
        sentence = f"{head} because no {missing} policy allows the {request.action} action"
    names = ", ".join(p.name for p in identity)
    detail = decision.explanation
    if not request.principal.is_service and names and names not in detail:
        detail += f" [identity policies of the role: {names}]"
    return f"{sentence}. {detail}"
