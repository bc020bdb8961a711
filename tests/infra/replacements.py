"""Which stateful resources an upgrade from one template to another would replace.

CloudFormation matches resources by logical ID: a stateful resource whose ID is gone from the new
template is removed (our DeletionPolicy Retain keeps it, orphaned) and, under its new ID, created
again EMPTY; a change to a create-only property (the resource provider schema's
`createOnlyProperties`) creates a new resource too. The schemas are the ones cfn-lint bundles,
read offline from its package (never its download cache), for the region synthesized.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

# What keeps data, history or an address others use: replacing one loses it or breaks them.
STATEFUL_TYPES = frozenset({
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::RedshiftServerless::Namespace",
    "AWS::RedshiftServerless::Workgroup",
    "AWS::Glue::Database",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::Logs::LogGroup",
    "AWS::CloudTrail::Trail",
    "AWS::SecretsManager::Secret",
})

# Properties that name a resource but that its schema does not list as create-only: a change is an
# in-place update the service refuses, so the upgrade fails (docs/aws-notes.md).
NAMING_PROPERTIES = {
    # The schema's create-only DatabaseName is unset here: the name is DatabaseInput.Name, and Glue's
    # UpdateDatabase refuses a rename ("Database cannot be renamed").
    "AWS::Glue::Database": ("/properties/DatabaseInput/Name",),
}


@dataclass(frozen=True)
class Replacement:
    logical_id: str
    resource_type: str
    property: str | None  # None: the logical ID is gone (or its type changed)
    before: Any = None
    after: Any = None
    cause: str = ""

    def __str__(self) -> str:
        where = f"{self.logical_id} ({self.resource_type})"
        if self.property is None:
            return f"{where}: {self.cause}"
        return f"{where}: {self.property} {_short(self.before)} -> {_short(self.after)}{self.cause}"


def _short(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


_ABSENT = object()


@lru_cache(maxsize=1)
def _schema_manager():
    import cfnlint
    from cfnlint.schema.manager import ProviderSchemaManager

    bundled = Path(cfnlint.__file__).resolve().parent / "data" / "schemas"
    return ProviderSchemaManager(providers_dir=bundled / "providers", resources_dir=bundled / "resources")


def resource_schema(resource_type: str, region: str) -> dict:
    return _schema_manager().get_resource_schema(region, resource_type).schema


def create_only_properties(resource_type: str, region: str) -> tuple[str, ...]:
    """The JSON pointers whose change replaces the resource: create-only, conditionally create-only
    (CloudFormation may replace), and the naming properties above."""
    schema = resource_schema(resource_type, region)
    return (*schema.get("createOnlyProperties", ()), *schema.get("conditionalCreateOnlyProperties", ()),
            *NAMING_PROPERTIES.get(resource_type, ()))


def _value_at(resource: dict, pointer: str) -> Any:
    """The value at a schema pointer (/properties/A/B); a `*` (array items) compares the whole array."""
    value: Any = resource.get("Properties", {})
    for part in pointer.split("/")[2:]:
        if part == "*":
            return value
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def _references(value: Any) -> set[str]:
    """Logical IDs a value points at (Ref, Fn::GetAtt, ${X} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else str(inner).split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:])
            found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    return found


def replacements(previous: dict, current: dict, region: str) -> list[Replacement]:
    """The stateful resources of `previous` that deploying `current` over it would replace.

    Every resource type counts for the chain: a stateful resource whose create-only property points
    at a resource that is itself replaced gets a new value at deploy time, so it is replaced too."""
    before, after = previous["Resources"], current["Resources"]
    replaced: dict[str, Replacement] = {}
    for lid, old in before.items():
        new = after.get(lid)
        if new is None:
            replaced[lid] = Replacement(lid, old["Type"], None, cause="logical ID no longer in the template "
                                        "(a renamed or moved construct creates an empty resource under a new ID)")
        elif new["Type"] != old["Type"]:
            replaced[lid] = Replacement(lid, old["Type"], None, cause=f"type changed to {new['Type']}")
        elif not old["Type"].startswith("Custom::"):
            for pointer in create_only_properties(old["Type"], region):
                a, b = _value_at(old, pointer), _value_at(new, pointer)
                if a != b:
                    replaced[lid] = Replacement(lid, old["Type"], pointer, a, b)
                    break
    changed = True
    while changed:  # follow references to replaced resources until nothing new is found
        changed = False
        for lid, old in before.items():
            if lid in replaced or lid not in after or old["Type"].startswith("Custom::"):
                continue
            for pointer in create_only_properties(old["Type"], region):
                hit = sorted(_references(_value_at(after[lid], pointer)) & replaced.keys())
                if hit:
                    value = _value_at(after[lid], pointer)
                    replaced[lid] = Replacement(lid, old["Type"], pointer, value, value,
                                                cause=f" (unchanged, but {hit[0]} it points at is replaced)")
                    changed = True
                    break
    return [r for lid, r in replaced.items() if r.resource_type in STATEFUL_TYPES]
