"""Mutations of the synthesized template for the IAM-checked local pipeline (issue 12).

Each mutation edits a template body in place: one grant removed, or one explicit Deny added, in the
policies the template attaches to a role. Hand them to ``LocalPipeline(iam_check=True,
template_transform=...)``, which applies them to a deep copy of the synthesized template before
the deploy and the IAM check read it:

    def no_get_crawler(body):
        remove_action(body, actor_role(body, "state_machine"), "glue:GetCrawler")

    with LocalPipeline(state_dir, iam_check=True, template_transform=no_get_crawler) as pipeline: ...

A mutation that finds nothing to change raises (a test must never pass on an unchanged template).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from airline_local.aws.cfn import Template

__all__ = ["ACTORS", "actor_role", "add_deny", "policy_documents", "remove_action", "remove_service_grant", "transform"]

_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")

#: The pipeline's actors whose role :func:`actor_role` finds by the template's structure.
ACTORS = ("state_machine", "rule", "glue_job", "crawler", "copy")


def actor_role(body: Mapping[str, Any], actor: str) -> str:
    """The logical id of the role ``actor`` (one of :data:`ACTORS`) runs as in the template."""
    template = Template(body)
    roles = {template.get_att(lid, "Arn"): lid for lid in template.resources_of_type("AWS::IAM::Role")}
    (rule,) = template.resources_of_type("AWS::Events::Rule")
    (target,) = [t for t in template.properties(rule)["Targets"] if ":states:" in t["Arn"]]
    if actor == "rule":
        return roles[target["RoleArn"]]
    if actor == "state_machine":
        (machine,) = [m for m in template.resources_of_type("AWS::StepFunctions::StateMachine")
                      if template.ref(m) == target["Arn"]]
        return roles[template.properties(machine)["RoleArn"]]
    if actor == "crawler":
        (crawler,) = template.resources_of_type("AWS::Glue::Crawler")
        return roles[template.properties(crawler)["Role"]]
    (job,) = template.resources_of_type("AWS::Glue::Job")
    job_props = template.properties(job)
    if actor == "glue_job":
        return roles[job_props["Role"]]
    if actor == "copy":
        return roles[job_props["DefaultArguments"]["--redshift_copy_role_arn"]]
    raise ValueError(f"unknown actor {actor!r}; one of {ACTORS}")


def policy_documents(body: Mapping[str, Any], role_or_policy: str) -> Iterator[dict[str, Any]]:
    """The (mutable) identity policy documents of a role (logical id): the AWS::IAM::Policy and
    ManagedPolicy resources listing it in ``Roles``, and its inline ``Policies``; or the one document
    of an AWS::IAM::Policy / ManagedPolicy given by its logical id."""
    resources = body["Resources"]
    resource = resources.get(role_or_policy)
    if resource is None:
        raise KeyError(f"no resource {role_or_policy!r} in the template")
    if resource["Type"] in _POLICY_TYPES:
        yield resource["Properties"]["PolicyDocument"]
        return
    if resource["Type"] != "AWS::IAM::Role":
        raise ValueError(f"{role_or_policy} is a {resource['Type']}, not a role or an identity policy")
    for lid, candidate in resources.items():
        if candidate["Type"] in _POLICY_TYPES and {"Ref": role_or_policy} in candidate["Properties"].get("Roles", []):
            yield candidate["Properties"]["PolicyDocument"]
    for inline in resource.get("Properties", {}).get("Policies", []):
        yield inline["PolicyDocument"]


def remove_action(body: dict[str, Any], role_or_policy: str, action: str, resource: str | None = None) -> int:
    """Remove the grant of ``action`` (spelled as in the template, e.g. ``kms:GenerateDataKey*``)
    from the Allow statements of a role's identity policies. With ``resource``, only for the
    statement resources whose JSON contains that text (e.g. ``"/staging/*"``); the statement's other
    actions and resources keep their grant. Returns the number of statements changed; raises
    ``ValueError`` when there was nothing to remove."""
    changed = 0
    for document in policy_documents(body, role_or_policy):
        statements = _statements(document)
        kept: list[dict[str, Any]] = []
        for statement in statements:
            actions = _as_list(statement.get("Action"))
            if statement.get("Effect") != "Allow" or not any(a.lower() == action.lower() for a in actions):
                kept.append(statement)
                continue
            others = [a for a in actions if a.lower() != action.lower()]
            resources = _as_list(statement.get("Resource"))
            remaining = resources if resource is None else [r for r in resources if resource not in json.dumps(r)]
            if resource is not None and len(remaining) == len(resources):
                kept.append(statement)
                continue
            changed += 1
            if others:
                kept.append({**statement, "Action": others if len(others) > 1 else others[0]})
            if resource is not None and remaining:
                kept.append({**copy.deepcopy(statement), "Action": action, "Resource": remaining})
        document["Statement"] = kept
    if not changed:
        where = f" on a resource containing {resource!r}" if resource else ""
        raise ValueError(f"no Allow statement of {role_or_policy} grants {action}{where}")
    return changed


def add_deny(body: dict[str, Any], role_or_policy: str, action: str | list[str], resource: Any,
             sid: str = "LocalMutationDeny", condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Append an explicit Deny of ``action`` on ``resource`` (an ARN or a CloudFormation expression
    such as ``{"Fn::Join": ...}``) to the role's first identity policy. Returns the statement."""
    documents = list(policy_documents(body, role_or_policy))
    if not documents:
        raise ValueError(f"{role_or_policy} has no identity policy to add a Deny to")
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Deny", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = dict(condition)
    documents[0]["Statement"] = [*_statements(documents[0]), statement]
    return statement


def remove_service_grant(body: dict[str, Any], service: str, action: str) -> list[str]:
    """Remove, from every resource policy (topic, queue, bucket policies and key policies), the Allow
    statements that give the service principal ``service`` the ``action`` (spelled as in the
    template, e.g. ``sns:Publish`` or ``kms:GenerateDataKey*``). Returns the logical ids of the
    policies changed; raises ``ValueError`` when none grants it."""
    changed = []
    for lid, resource in body["Resources"].items():
        properties = resource.get("Properties", {})
        document = properties.get("KeyPolicy") if resource["Type"] == "AWS::KMS::Key" else properties.get("PolicyDocument")
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role") or not document:
            continue
        statements = _statements(document)
        kept = [s for s in statements if not (
            s.get("Effect") == "Allow" and service in _as_list((s.get("Principal") or {}).get("Service"))
            and any(a.lower() == action.lower() for a in _as_list(s.get("Action"))))]
        if len(kept) != len(statements):
            document["Statement"] = kept
            changed.append(lid)
    if not changed:
        raise ValueError(f"no resource policy allows {service} {action}")
    return changed


def transform(*mutations: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """One ``template_transform`` applying the mutations in order to the body it is given."""

    def apply(body: dict[str, Any]) -> dict[str, Any]:
        for mutation in mutations:
            mutation(body)
        return body

    return apply


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
