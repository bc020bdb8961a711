"""Reading the synthesized template: resources by type, references rendered as text."""

from __future__ import annotations

import json


def resources_of(template_json: dict, resource_type: str) -> dict[str, dict]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == resource_type}


def only(template_json: dict, resource_type: str) -> tuple[str, dict]:
    """(logical id, properties) of the one resource of a type; fails if there are more or none."""
    found = resources_of(template_json, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    logical_id, resource = next(iter(found.items()))
    return logical_id, resource.get("Properties", {})


def render(value) -> str:
    """A CloudFormation value as text, references written <LogicalId> / <LogicalId.Attr>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return "<{}.{}>".format(*value["Fn::GetAtt"])
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(render(p) for p in parts)
        if "Fn::Sub" in value:
            return value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        if "Fn::Select" in value:
            return f"<select {value['Fn::Select'][0]}>"
    return json.dumps(value, sort_keys=True)


def policy_statements(template_json: dict, role_logical_id: str) -> list[dict]:
    """Every statement of the inline policies attached to a role."""
    statements = []
    for resource in resources_of(template_json, "AWS::IAM::Policy").values():
        props = resource["Properties"]
        if {"Ref": role_logical_id} in props.get("Roles", []):
            statements.extend(props["PolicyDocument"]["Statement"])
    return statements


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def state_machine_definition(template_json: dict) -> dict:
    """The per-file state machine's ASL (logical id prefix), references rendered <LogicalId>."""
    return machine_definition(template_json, "Orchestration")


def machine_definition(template_json: dict, construct: str) -> dict:
    """The ASL of the state machine of a construct (Orchestration, Backfill), rendered."""
    machines = [
        r for lid, r in resources_of(template_json, "AWS::StepFunctions::StateMachine").items()
        if r["Properties"].get("TracingConfiguration") and lid.startswith(f"{construct}StateMachine")
    ]
    assert len(machines) == 1
    return json.loads(render(machines[0]["Properties"]["DefinitionString"]))
