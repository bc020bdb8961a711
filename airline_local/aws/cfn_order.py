"""The order in which CloudFormation creates the resources of a template.

CloudFormation creates a resource only once every resource it depends on exists: the ones its
``DependsOn`` names and the ones whose values it reads (``Ref``, ``Fn::GetAtt``, and ``${X}`` /
``${X.Attribute}`` in ``Fn::Sub``), at any depth of its properties. Resources with no dependency
between them are created in parallel, in an order nobody can rely on
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html).
So when a resource is created, what is sure to exist is exactly its transitive dependencies:
:func:`created_before`. :func:`creation_order` is one order CloudFormation could take (a resource
after all its dependencies; otherwise the template's order).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["DependencyCycleError", "created_before", "creation_order", "dependencies"]

# ${Name} or ${Name.Attribute} in Fn::Sub; ${!Literal} is not a reference.
_SUB_REFERENCE = re.compile(r"\$\{([^!}][^}.]*)(?:\.[^}]*)?\}")


class DependencyCycleError(ValueError):
    """Resources that depend on each other (CloudFormation rejects the template: "Circular dependency")."""


def dependencies(body: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Each resource's direct dependencies (logical ids of other resources of the template)."""
    resources = body.get("Resources", {})
    found = {}
    for lid, resource in resources.items():
        depends_on = resource.get("DependsOn", [])
        depends_on = [depends_on] if isinstance(depends_on, str) else list(depends_on)
        unknown = [name for name in depends_on if name not in resources]
        if unknown:
            raise ValueError(f"{lid}: DependsOn names no resource of the template: {', '.join(unknown)}")
        # References to parameters and pseudo parameters (AWS::Region) are not resources.
        names = set(depends_on) | {n for n in _references(resource.get("Properties", {})) if n in resources}
        found[lid] = frozenset(names - {lid})
    return found


def creation_order(body: Mapping[str, Any]) -> list[str]:
    """Every resource after all of its dependencies; among those ready at once, template order."""
    direct = dependencies(body)
    order: list[str] = []
    done: set[str] = set()
    pending = list(direct)
    while pending:
        ready = [lid for lid in pending if direct[lid] <= done]
        if not ready:
            raise DependencyCycleError(f"circular dependency between {', '.join(sorted(pending))}")
        order.append(ready[0])
        done.add(ready[0])
        pending.remove(ready[0])
    return order


def created_before(body: Mapping[str, Any], logical_id: str) -> frozenset[str]:
    """The resources sure to exist when ``logical_id`` is created: its transitive dependencies."""
    direct = dependencies(body)
    seen: set[str] = set()
    stack = list(direct[logical_id])
    while stack:
        lid = stack.pop()
        if lid not in seen:
            seen.add(lid)
            stack.extend(direct[lid])
    return frozenset(seen)


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, Mapping):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and isinstance(arg, str):
                yield arg
                return
            if key == "Fn::GetAtt":
                yield arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                return
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                yield from (name for name in _SUB_REFERENCE.findall(text) if name not in variables)
                yield from _references(variables)
                return
        for item in value.values():
            yield from _references(item)
