"""The policy language's values, and the condition operators that compare them with a request.

What a statement's strings mean before they are matched: policy variables
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html) substituted
from the request's context, the wildcards of Action / Resource patterns and of the String*/Arn*
operators, and the context itself (case-insensitive keys, every value a list of strings). Then the
condition operators
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html):
:func:`condition_holds` decides a statement's ``Condition`` block. Pure logic; the evaluation
around it (which statements apply, Deny over Allow, resource policies) is evaluator.py, which also
re-exports the errors below as part of its interface. Tested through it
(``tests/unit/test_iam_evaluator.py``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


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


# ---------------------------------------------------------------------------- policy variables

# ${key} or ${key, 'default'}; ${*}, ${?}, ${$} stand for the literal characters.
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,]+?)\s*,\s*'(.*)'\s*$", re.DOTALL)


@dataclass(frozen=True)
class Template:
    """A policy string after variable substitution: parts that are literal text (substituted
    values, escapes) and parts where ``*`` and ``?`` keep their wildcard meaning."""

    parts: tuple[tuple[bool, str], ...]  # (is_literal, text)

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.parts)


def substitute(value: str, context: Context, variables: bool) -> Template | None:
    """Replace policy variables; None when one has no value (then the string matches nothing:
    "any attempt to match it fails", reference_policies_variables.html, "Principal key values")."""
    if not variables or "${" not in value:
        return Template(((False, value),))
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
    return Template(tuple(p for p in parts if p[1]))


@functools.lru_cache(maxsize=4096)
def like_regex(template: Template, ignore_case: bool = False) -> re.Pattern[str]:
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
def arn_regex(template: Template) -> re.Pattern[str]:
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


class Context:
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


def as_policy_string(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    # A dict here is a CloudFormation intrinsic ({"Ref": ...}) the caller forgot to resolve.
    raise InvalidPolicyError(f"{where}: value {value!r} is not a string (unresolved reference?)")


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------- condition operators


def _string_equals(actual: str, expected: Template) -> bool:
    return actual == expected.text


def _string_equals_ignore_case(actual: str, expected: Template) -> bool:
    return actual.lower() == expected.text.lower()


def _string_like(actual: str, expected: Template) -> bool:
    return like_regex(expected).fullmatch(actual) is not None


def _arn_like(actual: str, expected: Template) -> bool:
    # ArnEquals and ArnLike behave the same: each of the six colon-delimited components is matched
    # separately, with * and ? wildcards (condition operators page, "Amazon Resource Name (ARN)").
    if len(actual.split(":", 5)) != 6:
        return False
    return arn_regex(expected).fullmatch(actual) is not None


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
    # Both sides base64: the policy value as AWS requires, the context value as Context wrote it.
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


def condition_holds(condition: Mapping[str, Any], context: Context, variables: bool, where: str) -> bool:
    """All operators AND'ed, all keys of one operator AND'ed (multi-value-conditions page)."""
    if not isinstance(condition, Mapping):
        raise InvalidPolicyError(f"{where}: Condition must be an object")
    for operator_name, block in condition.items():
        if not isinstance(block, Mapping):
            raise InvalidPolicyError(f"{where}: condition operator {operator_name!r} needs key/value pairs")
        for key, policy_values in block.items():
            values = [as_policy_string(v, where) for v in as_list(policy_values)]
            if not _key_holds(operator_name, key, values, context, variables, where):
                return False
    return True


def _key_holds(
    operator_name: str, key: str, values: list[str], context: Context, variables: bool, where: str
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

    expected = [substitute(v, context, variables and operator.variables) for v in values]
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
