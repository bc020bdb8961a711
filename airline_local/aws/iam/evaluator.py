"""Decide one AWS request the way AWS's policy evaluation logic does, for a same-account principal.

Pure logic: given who calls (a role session or an AWS service principal), the action, the resource
ARN, the request's condition context, the caller's identity policies and the resource's
resource-based policy, :func:`evaluate` returns a :class:`Decision` (allowed or not, the deciding
statements and where they come from, and an explanation naming what would have had to allow it).

Semantics, from the IAM User Guide:

- Policy evaluation logic,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html, and
  "Policy evaluation for requests within a single account",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-basics.html:
  every request starts implicitly denied; an explicit ``Deny`` in any applicable policy wins; within
  one account an ``Allow`` in *either* the identity policies *or* the resource-based policy is
  enough ("If either the identity-based policy or the resource-based policy within the same account
  allows the request and the other doesn't, the request is still allowed").
- Except for AWS KMS keys and IAM role trust policies, where the resource policy is authoritative:
  the key (trust) policy must allow, either by naming the principal, or by allowing the account
  (``arn:aws:iam::ACCOUNT:root`` or the bare account id), which delegates to the identity policies:
  then an identity policy must allow too.
- A resource-policy statement whose ``Principal`` is only the account is such a delegation
  everywhere: in the same account it grants nothing the identity policies do not already grant.
- Statement matching (``Action``/``NotAction``, ``Resource``/``NotResource``, ``Principal``/
  ``NotPrincipal``), policy variables
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html) and
  condition operators
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html)
  are in conditions.py; statement matching and the decision are here.

Out of scope (the caller must not rely on them): cross-account requests (a principal of another
account needs an allow on *both* sides; this module assumes the principal's account owns the
resource), service control and resource control policies, permissions boundaries, session policies,
VPC endpoint policies, ACLs, and IAM users (only role sessions and service principals call in
local mode).

Library decision. moto 5.2.5's own ``moto.iam.access_control`` (maintained, already installed)
only checks ``"Principal": "*"``, treats a statement whose principal differs as a *Deny*, has no
``NotResource``, and evaluates only ``StringEquals`` conditions, silently ignoring every other
operator (so it would allow what AWS denies). principalmapper's
``principalmapper.querying.local_policy_simulation`` is the closest fit, but its last release
(1.1.5) is from January 2022, it is AGPL-3.0 (this project is Apache-2.0), it skips unknown
operators silently and gets documented edge cases wrong (``StringNotLike`` on a missing key is
false there, true on AWS). iam-ape (GPL-3.0) flattens a principal's policies into one effective
policy and carries conditions along unevaluated; it does not decide a request. None fits, so this
is our own, in two modules (this one and conditions.py), tested against the documentation's examples
(``tests/unit/test_iam_evaluator.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airline_local.aws.iam.conditions import (
    SUPPORTED_CONDITION_OPERATORS,
    Context,
    InvalidPolicyError,
    PolicyEvaluationError,
    Template,
    UnsupportedConditionError,
    arn_regex,
    as_list,
    as_policy_string,
    condition_holds,
    like_regex,
    substitute,
)

__all__ = [
    "Decision",
    "InvalidPolicyError",
    "MatchedStatement",
    "Policy",
    "PolicyEvaluationError",
    "Principal",
    "Request",
    "UnsupportedConditionError",
    "SUPPORTED_CONDITION_OPERATORS",
    "evaluate",
]

# Policy variables only exist in this version of the policy language; in older documents
# "${aws:username}" is a literal string (reference_policies_variables.html, "Introduction").
_VARIABLES_VERSION = "2012-10-17"


# --------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Principal:
    """Who makes the request: a role session or an AWS service principal.

    ``arn`` is the session ARN (``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``) for a role
    session, or the service principal's name (``sns.amazonaws.com``) for a service.
    """

    arn: str
    kind: str  # "role-session" or "service"
    role_arn: str | None = None
    role_id: str | None = None  # the role's unique id (AROA...), for aws:userid

    @classmethod
    def role_session(cls, role_arn: str, session_name: str, role_id: str | None = None) -> Principal:
        parts = role_arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
            raise ValueError(f"not an IAM role ARN: {role_arn!r}")
        # The session ARN drops the role's path: arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION.
        role_name = parts[5].rsplit("/", 1)[-1]
        session_arn = f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{role_name}/{session_name}"
        return cls(arn=session_arn, kind="role-session", role_arn=role_arn, role_id=role_id)

    @classmethod
    def service(cls, name: str) -> Principal:
        return cls(arn=name, kind="service")

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def account(self) -> str | None:
        return None if self.is_service else self.arn.split(":")[4]

    @property
    def account_root_arn(self) -> str | None:
        if self.is_service:
            return None
        return f"arn:{self.arn.split(':')[1]}:iam::{self.account}:root"

    @property
    def session_name(self) -> str | None:
        return None if self.is_service else self.arn.rsplit("/", 1)[-1]

    def label(self) -> str:
        if self.is_service:
            return f"service principal {self.arn}"
        return f"{self.arn} (role {self.role_arn})"

    def context_keys(self) -> dict[str, str]:
        """The global condition keys AWS puts in a request by this principal.

        For a role session (reference_policies_variables.html, "Principal key values"):
        aws:userid is ``ROLE-ID:SESSION``, aws:PrincipalArn is the *role* ARN, and aws:username is
        not present. Service principals carry none of these (aws:SourceArn / aws:SourceAccount
        come from the service's request, not from here).
        """
        if self.is_service:
            return {"aws:PrincipalServiceName": self.arn}
        keys = {
            "aws:PrincipalArn": self.role_arn or "",
            "aws:PrincipalAccount": self.account or "",
            "aws:PrincipalType": "AssumedRole",
        }
        if self.role_id:
            keys["aws:userid"] = f"{self.role_id}:{self.session_name}"
        return keys


@dataclass(frozen=True)
class Policy:
    """A policy document and the name it is reported under (e.g. the template's logical id)."""

    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    """One request: principal, ``service:Action``, resource ARN (or ``*``) and condition context.

    Context keys are case-insensitive; a value is a string (or bool/number, written as AWS does),
    or a list of them for a multivalued key.
    """

    principal: Principal
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


# -------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class MatchedStatement:
    """A statement that applies to the request, and where it comes from."""

    policy_name: str
    kind: str  # "identity" or "resource"
    index: int  # position in the policy's Statement list
    statement: Mapping[str, Any]
    via_account: bool = False  # resource policy: matched only through the account principal

    @property
    def sid(self) -> str | None:
        return self.statement.get("Sid")

    @property
    def effect(self) -> str:
        return self.statement["Effect"]

    @property
    def origin(self) -> str:
        what = "identity policy" if self.kind == "identity" else "resource policy"
        return f"{what} {self.policy_name}"

    def describe(self) -> str:
        name = f"Sid {self.sid!r}" if self.sid else f"statement #{self.index}"
        return f"{name} of {self.origin}"


@dataclass(frozen=True)
class Decision:
    """The outcome. ``reason`` is "allow", "explicit-deny" or "implicit-deny"."""

    allowed: bool
    reason: str
    request: Request
    statements: tuple[MatchedStatement, ...]
    explanation: str

    def __bool__(self) -> bool:
        return self.allowed



# ------------------------------------------------------------------------------- statement match


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    # Action names are case-insensitive; * and ? are wildcards.
    return any(like_regex(Template(((False, p),)), True).fullmatch(action) for p in patterns)


def _resource_matches(patterns: Iterable[str], resource: str, context: Context, variables: bool) -> bool:
    # ARNs are case-sensitive. Variables are substituted in Resource (reference_policies_variables).
    for pattern in patterns:
        if pattern == "*":
            return True
        template = substitute(pattern, context, variables)
        if template is not None and arn_regex(template).fullmatch(resource):
            return True
    return False


def _strings(statement: Mapping[str, Any], element: str, where: str) -> list[str]:
    return [as_policy_string(v, f"{where}, {element}") for v in as_list(statement[element])]


def _principal_match(principal_element: Any, principal: Principal, where: str) -> str | None:
    """How a ``Principal`` element names the caller: "direct", "account" or None
    (reference_policies_elements_principal.html). "account" in an Allow is a delegation to the
    identity policies; in a Deny it covers every principal of the account, so it denies."""
    if principal_element == "*":
        return "direct"
    if not isinstance(principal_element, Mapping):
        raise InvalidPolicyError(f"{where}: Principal must be \"*\" or an object")
    found = None
    for kind, raw in principal_element.items():
        for value in (as_policy_string(v, f"{where}, Principal") for v in as_list(raw)):
            if kind == "Service" and principal.is_service and value == principal.arn:
                return "direct"
            if kind != "AWS":
                continue  # Federated, CanonicalUser: never a role session or a service here
            if value == "*":
                return "direct"
            if principal.is_service:
                continue
            # A role ARN covers every session of the role; a session ARN only that session.
            if value in (principal.arn, principal.role_arn):
                return "direct"
            if value in (principal.account, principal.account_root_arn):
                found = "account"
    return found


def _not_principal_match(not_principal: Any, principal: Principal, where: str) -> bool:
    """``NotPrincipal`` excludes the caller only if it lists every identity AWS evaluates for it:
    for a role session the session ARN, the role ARN and the account (principal element page,
    "NotPrincipal"); the account may be written as its id or its root ARN."""
    if not isinstance(not_principal, Mapping):
        raise InvalidPolicyError(f"{where}: NotPrincipal must be an object")
    listed: set[str] = set()
    for kind, raw in not_principal.items():
        if kind in ("AWS", "Service"):
            listed.update(as_policy_string(v, f"{where}, NotPrincipal") for v in as_list(raw))
    if principal.is_service:
        return principal.arn not in listed
    if principal.account in listed:
        listed.add(principal.account_root_arn or "")
    identities = {principal.arn, principal.role_arn, principal.account_root_arn}
    return not identities <= listed


def _applicable_statements(
    policy: Policy, kind: str, request: Request, context: Context
) -> list[MatchedStatement]:
    """The statements of one policy that apply to the request (effect not yet considered)."""
    document = policy.document
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise InvalidPolicyError(f"{kind} policy {policy.name}: no Statement")
    variables = document.get("Version") == _VARIABLES_VERSION
    matched = []
    for index, statement in enumerate(as_list(document["Statement"])):
        where = f"statement {statement.get('Sid') or '#' + str(index)} of {kind} policy {policy.name}"
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise InvalidPolicyError(f"{where}: Effect must be Allow or Deny")

        if "Action" in statement:
            if not _action_matches(_strings(statement, "Action", where), request.action):
                continue
        elif "NotAction" in statement:
            if _action_matches(_strings(statement, "NotAction", where), request.action):
                continue
        else:
            raise InvalidPolicyError(f"{where}: needs Action or NotAction")

        if "Resource" in statement:
            if not _resource_matches(_strings(statement, "Resource", where), request.resource, context, variables):
                continue
        elif "NotResource" in statement:
            if _resource_matches(_strings(statement, "NotResource", where), request.resource, context, variables):
                continue
        elif kind == "identity":
            raise InvalidPolicyError(f"{where}: needs Resource or NotResource")
        # A resource policy statement without Resource (trust policies, some key policies)
        # applies to the resource the policy is attached to.

        via_account = False
        if kind == "identity":
            if "Principal" in statement or "NotPrincipal" in statement:
                raise InvalidPolicyError(f"{where}: an identity policy has no Principal")
        elif "Principal" in statement:
            how = _principal_match(statement["Principal"], request.principal, where)
            if how is None:
                continue
            via_account = how == "account"
        elif "NotPrincipal" in statement:
            if not _not_principal_match(statement["NotPrincipal"], request.principal, where):
                continue
        else:
            raise InvalidPolicyError(f"{where}: a resource policy statement needs Principal or NotPrincipal")

        if "Condition" in statement and not condition_holds(statement["Condition"], context, variables, where):
            continue
        matched.append(MatchedStatement(policy.name, kind, index, statement, via_account))
    return matched


# ------------------------------------------------------------------------------------- evaluate


def evaluate(
    request: Request,
    identity_policies: Sequence[Policy] = (),
    resource_policy: Policy | None = None,
    *,
    kms_key: bool = False,
    trust_policy: bool = False,
) -> Decision:
    """Decide ``request`` as AWS would for a principal in the resource's own account.

    ``identity_policies``: the role's policies (inline and managed); a service principal has none.
    ``resource_policy``: the bucket/topic/queue/key/trust policy or Lambda permissions, if any.
    ``kms_key`` (or ``trust_policy`` for sts:AssumeRole on a role): the resource policy must allow,
    directly or by allowing the account and so delegating to the identity policies.

    Raises :class:`UnsupportedConditionError` for a condition operator it cannot judge in an
    applicable statement, and :class:`InvalidPolicyError` for a malformed policy.
    """
    principal = request.principal
    if principal.is_service and identity_policies:
        raise ValueError("a service principal has no identity policies in the account")
    context = Context(request.context)

    statements: list[MatchedStatement] = []
    for policy in identity_policies:
        statements += _applicable_statements(policy, "identity", request, context)
    if resource_policy is not None:
        statements += _applicable_statements(resource_policy, "resource", request, context)

    # 1. An explicit deny in any applicable policy overrides every allow.
    denies = tuple(s for s in statements if s.effect == "Deny")
    if denies:
        return Decision(False, "explicit-deny", request, denies, _explain_explicit_deny(request, denies))

    identity_allows = tuple(s for s in statements if s.effect == "Allow" and s.kind == "identity")
    resource_allows = tuple(s for s in statements if s.effect == "Allow" and s.kind == "resource")
    direct = tuple(s for s in resource_allows if not s.via_account)
    delegated = tuple(s for s in resource_allows if s.via_account)

    if kms_key or trust_policy:
        # 2a. Key and trust policies: the resource policy decides; allowing the account delegates.
        if direct:
            return _allow(request, direct)
        if delegated and identity_allows:
            return _allow(request, delegated + identity_allows)
        return Decision(
            False,
            "implicit-deny",
            request,
            (),
            _explain_authoritative_deny(request, resource_policy, bool(delegated), bool(identity_allows), kms_key),
        )

    # 2b. Same account: an allow on either side suffices. An account-principal allow in the
    # resource policy only delegates, so it adds nothing beyond the identity policies.
    if direct or identity_allows:
        return _allow(request, direct + identity_allows)
    return Decision(
        False, "implicit-deny", request, (), _explain_implicit_deny(request, identity_policies, resource_policy)
    )


def _allow(request: Request, statements: tuple[MatchedStatement, ...]) -> Decision:
    why = "; ".join(s.describe() for s in statements)
    text = f"{request.principal.label()} may {request.action} on {request.resource}: allowed by {why}"
    return Decision(True, "allow", request, statements, text)


def _denied(request: Request) -> str:
    return f"{request.principal.label()} is not authorized to perform {request.action} on {request.resource}"


def _explain_explicit_deny(request: Request, denies: tuple[MatchedStatement, ...]) -> str:
    return f"{_denied(request)}: explicit deny in " + "; ".join(s.describe() for s in denies)


def _explain_implicit_deny(
    request: Request, identity_policies: Sequence[Policy], resource_policy: Policy | None
) -> str:
    principal = request.principal
    resource_part = (
        f"the resource policy of {request.resource} ({resource_policy.name})"
        if resource_policy is not None
        else f"a resource policy of {request.resource} (it has none)"
    )
    if principal.is_service:
        return (
            f"{_denied(request)}: no statement in {resource_part} allows {principal.arn} "
            f"to {request.action} (implicit deny)"
        )
    names = ", ".join(p.name for p in identity_policies) or "none"
    return (
        f"{_denied(request)}: no statement in the identity policies of {principal.role_arn} "
        f"({names}) or {resource_part} allows {request.action} on {request.resource} (implicit deny)"
    )


def _explain_authoritative_deny(
    request: Request, resource_policy: Policy | None, delegated: bool, identity_allows: bool, kms_key: bool
) -> str:
    what = "key policy" if kms_key else "trust policy"
    principal = request.principal
    name = f" ({resource_policy.name})" if resource_policy is not None else " (none given)"
    who = principal.arn if principal.is_service else principal.role_arn
    if delegated and not identity_allows:
        return (
            f"{_denied(request)}: the {what} of {request.resource}{name} allows it only to the account "
            f"{principal.account_root_arn}, and no statement in the identity policies of {who} "
            f"allows {request.action} on {request.resource} (implicit deny)"
        )
    account = "" if principal.is_service else f", or allow the account {principal.account_root_arn} with an identity policy of {who} allowing it too"
    return (
        f"{_denied(request)}: the {what} of {request.resource}{name} must allow {request.action} to "
        f"{who}{account}; none of its statements does (implicit deny"
        f"{'; an identity policy allows it, which is not enough for a ' + what if identity_allows else ''})"
    )
