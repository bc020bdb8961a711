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
  are described where they are implemented below.

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
is our own, in one module, tested against the documentation's examples
(``tests/unit/test_iam_evaluator.py``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


class PolicyEvaluationError(Exception):
    """The evaluator cannot judge a request: never read as an allow or a deny."""


class UnsupportedConditionError(PolicyEvaluationError):
    """A condition operator this evaluator does not implement (or does not know)."""

    def __init__(self, operator: str, where: str) -> None:
        self.operator = operator
        self.where = where
        super().__init__(f"unsupported condition operator {operator!r} in {where}")


class InvalidPolicyError(PolicyEvaluationError):
    """A policy AWS would reject, or one with an unresolved CloudFormation reference."""


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


# ---------------------------------------------------------------------------- policy variables

# ${key} or ${key, 'default'}; ${*}, ${?}, ${$} stand for the literal characters.
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,]+?)\s*,\s*'(.*)'\s*$", re.DOTALL)


@dataclass(frozen=True)
class _Template:
    """A policy string after variable substitution: parts that are literal text (substituted
    values, escapes) and parts where ``*`` and ``?`` keep their wildcard meaning."""

    parts: tuple[tuple[bool, str], ...]  # (is_literal, text)

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.parts)


def _substitute(value: str, context: _Context, variables: bool) -> _Template | None:
    """Replace policy variables; None when one has no value (then the string matches nothing:
    "any attempt to match it fails", reference_policies_variables.html, "Principal key values")."""
    if not variables or "${" not in value:
        return _Template(((False, value),))
    parts: list[tuple[bool, str]] = []
    pos = 0
    for found in _VARIABLE.finditer(value):
        parts.append((False, value[pos : found.start()]))
        pos = found.end()
        inner = found.group(1)
        if inner in ("*", "?", "$"):
            parts.append((True, inner))
            continue
        default = _DEFAULT.match(inner)
        key, fallback = (default.group(1), default.group(2)) if default else (inner.strip(), None)
        values = context.get(key)
        # Only a single-valued key can be a variable (single-vs-multi-valued-context-keys page).
        if values is not None and len(values) == 1:
            parts.append((True, values[0]))
        elif fallback is not None:
            parts.append((True, fallback))
        else:
            return None
    parts.append((False, value[pos:]))
    return _Template(tuple(p for p in parts if p[1]))


@functools.lru_cache(maxsize=4096)
def _like_regex(template: _Template, ignore_case: bool = False) -> re.Pattern[str]:
    """StringLike and Action: ``*`` any run of characters, ``?`` any one character."""
    out = []
    for literal, text in template.parts:
        for ch in text:
            if literal:
                out.append(re.escape(ch))
            else:
                out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@functools.lru_cache(maxsize=4096)
def _arn_regex(template: _Template) -> re.Pattern[str]:
    """Resource and Arn* operators: wildcards stay inside their colon-separated segment, except a
    ``*`` that ends a segment, which "can expand to match beyond the colon boundaries", and
    anything in the sixth segment (the resource part may contain colons).
    reference_policies_elements_resource.html, "Using wildcards in resource ARNs"."""
    chars = [(literal, ch) for literal, text in template.parts for ch in text]
    out = []
    colons = 0
    for i, (literal, ch) in enumerate(chars):
        in_resource_part = colons >= 5
        if literal or ch not in "*?":
            out.append(re.escape(ch))
            colons += ch == ":"
        elif ch == "*":
            ends_segment = i + 1 == len(chars) or chars[i + 1][1] == ":"
            out.append(".*" if in_resource_part or ends_segment else "[^:]*")
        else:  # ?
            out.append("." if in_resource_part else "[^:]")
    return re.compile("".join(out), re.DOTALL)


# ------------------------------------------------------------------------------------- context


class _Context:
    """Condition context with case-insensitive keys ("Key names are case-insensitive") and every
    value normalized to a list of strings; an empty list counts as absent."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in raw.items():
            items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            if items:
                self._values[key.lower()] = [_as_context_string(v) for v in items]

    def get(self, key: str) -> list[str] | None:
        return self._values.get(key.lower())


def _as_context_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _as_policy_string(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    # A dict here is a CloudFormation intrinsic ({"Ref": ...}) the caller forgot to resolve.
    raise InvalidPolicyError(f"{where}: value {value!r} is not a string (unresolved reference?)")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------- condition operators


def _string_equals(actual: str, expected: _Template) -> bool:
    return actual == expected.text


def _string_equals_ignore_case(actual: str, expected: _Template) -> bool:
    return actual.lower() == expected.text.lower()


def _string_like(actual: str, expected: _Template) -> bool:
    return _like_regex(expected).fullmatch(actual) is not None


def _arn_like(actual: str, expected: _Template) -> bool:
    # ArnEquals and ArnLike behave the same: each of the six colon-delimited components is matched
    # separately, with * and ? wildcards (condition operators page, "Amazon Resource Name (ARN)").
    if len(actual.split(":", 5)) != 6:
        return False
    return _arn_regex(expected).fullmatch(actual) is not None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _ordered(parse: Callable[[str], Any], kind: str, compare: Callable[[Any, Any], bool]) -> Callable[[str, str], bool]:
    """A Numeric*/Date* operator: both sides parsed; a policy value that does not parse is an
    error in the policy, a request value that does not parse matches nothing."""
    def match(actual: str, expected: str) -> bool:
        a, e = parse(actual), parse(expected)
        if e is None:
            raise InvalidPolicyError(f"{kind} condition value {expected!r} is not a {kind}")
        return a is not None and compare(a, e)

    return match


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    return _ordered(_number, "number", compare)


def _timestamp(text: str) -> dt.datetime | None:
    # Dates are ISO 8601 (2020-04-01T00:00:00Z, 2020-04-01) or epoch seconds.
    number = _number(text)
    if number is not None:
        return dt.datetime.fromtimestamp(number, tz=dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _date(compare: Callable[[dt.datetime, dt.datetime], bool]) -> Callable[[str, str], bool]:
    return _ordered(_timestamp, "date", compare)


def _bool(actual: str, expected: str) -> bool:
    return actual.lower() == expected.lower()


def _binary_equals(actual: str, expected: str) -> bool:
    # Both sides base64: the policy value as AWS requires, the context value as _Context wrote it.
    try:
        return base64.b64decode(actual, validate=True) == base64.b64decode(expected, validate=True)
    except (binascii.Error, ValueError):
        return False


def _ip_address(actual: str, expected: str) -> bool:
    try:
        network = ipaddress.ip_network(expected, strict=False)
    except ValueError as exc:
        raise InvalidPolicyError(f"IP condition value {expected!r}: {exc}") from None
    try:
        address = ipaddress.ip_address(actual)
    except ValueError:
        return False
    return address.version == network.version and address in network


@dataclass(frozen=True)
class _Operator:
    match: Callable[[str, Any], bool]  # does ONE context value satisfy ONE policy value
    negated: bool = False  # the Not... operators: true when the key matches none of the values
    variables: bool = False  # policy variables are substituted (string and ARN operators only)


_OPERATORS: dict[str, _Operator] = {
    "StringEquals": _Operator(_string_equals, variables=True),
    "StringNotEquals": _Operator(_string_equals, negated=True, variables=True),
    "StringEqualsIgnoreCase": _Operator(_string_equals_ignore_case, variables=True),
    "StringNotEqualsIgnoreCase": _Operator(_string_equals_ignore_case, negated=True, variables=True),
    "StringLike": _Operator(_string_like, variables=True),
    "StringNotLike": _Operator(_string_like, negated=True, variables=True),
    "NumericEquals": _Operator(_numeric(lambda a, e: a == e)),
    "NumericNotEquals": _Operator(_numeric(lambda a, e: a == e), negated=True),
    "NumericLessThan": _Operator(_numeric(lambda a, e: a < e)),
    "NumericLessThanEquals": _Operator(_numeric(lambda a, e: a <= e)),
    "NumericGreaterThan": _Operator(_numeric(lambda a, e: a > e)),
    "NumericGreaterThanEquals": _Operator(_numeric(lambda a, e: a >= e)),
    "DateEquals": _Operator(_date(lambda a, e: a == e)),
    "DateNotEquals": _Operator(_date(lambda a, e: a == e), negated=True),
    "DateLessThan": _Operator(_date(lambda a, e: a < e)),
    "DateLessThanEquals": _Operator(_date(lambda a, e: a <= e)),
    "DateGreaterThan": _Operator(_date(lambda a, e: a > e)),
    "DateGreaterThanEquals": _Operator(_date(lambda a, e: a >= e)),
    "Bool": _Operator(_bool),
    "BinaryEquals": _Operator(_binary_equals),
    "IpAddress": _Operator(_ip_address),
    "NotIpAddress": _Operator(_ip_address, negated=True),
    "ArnEquals": _Operator(_arn_like, variables=True),
    "ArnLike": _Operator(_arn_like, variables=True),
    "ArnNotEquals": _Operator(_arn_like, negated=True, variables=True),
    "ArnNotLike": _Operator(_arn_like, negated=True, variables=True),
}

#: Every operator name :func:`evaluate` accepts (each also with ``IfExists`` and with the
#: ``ForAllValues:`` / ``ForAnyValue:`` prefixes), plus ``Null``.
SUPPORTED_CONDITION_OPERATORS: tuple[str, ...] = (*_OPERATORS, "Null")


def _condition_holds(condition: Mapping[str, Any], context: _Context, variables: bool, where: str) -> bool:
    """All operators AND'ed, all keys of one operator AND'ed (multi-value-conditions page)."""
    if not isinstance(condition, Mapping):
        raise InvalidPolicyError(f"{where}: Condition must be an object")
    for operator_name, block in condition.items():
        if not isinstance(block, Mapping):
            raise InvalidPolicyError(f"{where}: condition operator {operator_name!r} needs key/value pairs")
        for key, policy_values in block.items():
            values = [_as_policy_string(v, where) for v in _as_list(policy_values)]
            if not _key_holds(operator_name, key, values, context, variables, where):
                return False
    return True


def _key_holds(
    operator_name: str, key: str, values: list[str], context: _Context, variables: bool, where: str
) -> bool:
    name, set_operator = operator_name, None
    for prefix in ("ForAllValues:", "ForAnyValue:"):
        if name.startswith(prefix):
            name, set_operator = name[len(prefix) :], prefix[:-1]
    if_exists = name.endswith("IfExists")
    base = name[: -len("IfExists")] if if_exists else name
    actual = context.get(key)

    if base == "Null":
        if if_exists or set_operator:
            raise UnsupportedConditionError(operator_name, where)
        # Null: "true" = the key is absent, "false" = it is present; several values are OR'ed.
        return any((v.lower() == "true") == (actual is None) for v in values)

    operator = _OPERATORS.get(base)
    if operator is None:
        raise UnsupportedConditionError(operator_name, where)

    # ...IfExists: "If the policy key is present in the context of the request, process the key as
    # specified in the policy. If it is not present, evaluate the condition element as true."
    if actual is None and if_exists:
        return True
    if actual is None:
        if set_operator == "ForAllValues":
            # "returns true if there are no context keys in the request" (single-vs-multi page).
            return True
        if set_operator == "ForAnyValue":
            return False
        # "If the key ... is not present in the request context, the values do not match and the
        # condition is false. If the policy condition requires that the key is not matched, such
        # as StringNotLike or ArnNotLike, and the right key is not present, the condition is true."
        return operator.negated

    expected = [_substitute(v, context, variables and operator.variables) for v in values]
    if not operator.variables:
        expected = [v.text if v else None for v in expected]

    def one(value: str) -> bool:
        # Several policy values are OR'ed; for a negated operator NOR'ed (the value must match
        # none of them). A value whose variable has no value matches nothing.
        matched = any(e is not None and operator.match(value, e) for e in expected)
        return not matched if operator.negated else matched

    if set_operator == "ForAllValues":
        return all(one(v) for v in actual)
    if set_operator == "ForAnyValue":
        return any(one(v) for v in actual)
    if len(actual) == 1:
        return one(actual[0])
    # A multivalued key without a set operator (the docs say to use one): read as ForAnyValue of
    # the positive operator, negated for a Not... operator, i.e. "no request value matches".
    return all(one(v) for v in actual) if operator.negated else any(one(v) for v in actual)


# ------------------------------------------------------------------------------- statement match


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    # Action names are case-insensitive; * and ? are wildcards.
    return any(_like_regex(_Template(((False, p),)), True).fullmatch(action) for p in patterns)


def _resource_matches(patterns: Iterable[str], resource: str, context: _Context, variables: bool) -> bool:
    # ARNs are case-sensitive. Variables are substituted in Resource (reference_policies_variables).
    for pattern in patterns:
        if pattern == "*":
            return True
        template = _substitute(pattern, context, variables)
        if template is not None and _arn_regex(template).fullmatch(resource):
            return True
    return False


def _strings(statement: Mapping[str, Any], element: str, where: str) -> list[str]:
    return [_as_policy_string(v, f"{where}, {element}") for v in _as_list(statement[element])]


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
        for value in (_as_policy_string(v, f"{where}, Principal") for v in _as_list(raw)):
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
            listed.update(_as_policy_string(v, f"{where}, NotPrincipal") for v in _as_list(raw))
    if principal.is_service:
        return principal.arn not in listed
    if principal.account in listed:
        listed.add(principal.account_root_arn or "")
    identities = {principal.arn, principal.role_arn, principal.account_root_arn}
    return not identities <= listed


def _applicable_statements(
    policy: Policy, kind: str, request: Request, context: _Context
) -> list[MatchedStatement]:
    """The statements of one policy that apply to the request (effect not yet considered)."""
    document = policy.document
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise InvalidPolicyError(f"{kind} policy {policy.name}: no Statement")
    variables = document.get("Version") == _VARIABLES_VERSION
    matched = []
    for index, statement in enumerate(_as_list(document["Statement"])):
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

        if "Condition" in statement and not _condition_holds(statement["Condition"], context, variables, where):
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
    context = _Context(request.context)

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
