"""The local deploy creates the synthesized template's resources in CloudFormation's order, and fails
where AWS would refuse a creation (issue 21, defect 1): CreateCrawler reads the event queue as the
crawler role, so a crawler that does not depend on its role's policy fails the first deploy.

Each mutation removes one DependsOn of the REAL synthesized template; the deploy (or, for the
resources local mode does not create, the check it runs) must then fail naming both resources.
No emulator here: a refused deploy calls none."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from airline_local.aws.cfn import Template
from airline_local.aws.cfn_order import created_before, creation_order
from airline_local.aws.iam.creation_checks import CreationCheckError, CreationChecks
from airline_local.local_stack import CloudAssembly, deploy, synthesize
from airline_local.pipeline import LOCAL_CONTEXT
from iam_mutations import actor_role, remove_action


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    # The session's one synth for the IAM modules (synthesize reuses an unchanged cdk.out).
    return CloudAssembly.load(synthesize(tmp_path_factory.getbasetemp() / "iam-cdk.out", LOCAL_CONTEXT))


def only(template: Template, resource_type: str) -> str:
    (lid,) = template.resources_of_type(resource_type)
    return lid


def default_policy(body: dict[str, Any], role: str) -> str:
    """The AWS::IAM::Policy CDK attaches to ``role`` (its DefaultPolicy)."""
    (lid,) = [lid for lid, r in body["Resources"].items() if r["Type"] == "AWS::IAM::Policy"
              and r["Properties"]["Roles"] == [{"Ref": role}] and "DefaultPolicy" in lid]
    return lid


def without_depends_on(assembly: CloudAssembly, resource: str, dependency: str) -> CloudAssembly:
    """The assembly with ``dependency`` removed from ``resource``'s DependsOn (it must be there)."""
    body = copy.deepcopy(dict(assembly.template.body))
    depends_on = body["Resources"][resource]["DependsOn"]
    depends_on.remove(dependency)
    return replace(assembly, template=replace(assembly.template, body=body))


def test_the_crawler_is_created_after_its_role_policy_and_its_queue(assembly):
    template = assembly.template
    crawler = only(template, "AWS::Glue::Crawler")
    role = actor_role(template.body, "crawler")
    before = created_before(template.body, crawler)
    assert {role, default_policy(template.body, role)} <= before
    order = creation_order(template.body)
    assert all(order.index(lid) < order.index(crawler) for lid in before)


def untouched_emulator(service: str) -> Any:
    raise AssertionError(f"the deploy called {service}: it must refuse before creating anything")


def test_a_crawler_not_depending_on_its_role_policy_fails_the_deploy_naming_both(assembly):
    crawler = only(assembly.template, "AWS::Glue::Crawler")
    policy = default_policy(assembly.template.body, actor_role(assembly.template.body, "crawler"))
    mutated = without_depends_on(assembly, crawler, policy)
    # Refused before anything is created, as a rollback leaves nothing (the template as synthesized
    # deploys: tests/local/test_iam_hook.py, test_iam_principals.py and every pipeline test).
    with pytest.raises(CreationCheckError) as raised:
        deploy(mutated, untouched_emulator, job_runner=None)
    message = str(raised.value)
    assert raised.value.resource == crawler and raised.value.missing == (policy,)
    assert message.startswith(f"{crawler} (AWS::Glue::Crawler) was created before {policy} (AWS::IAM::Policy)")
    assert "CreateCrawler checks its event queue as role" in message and "sqs:GetQueueUrl on arn:aws:sqs:" in message


@pytest.mark.parametrize("resource_type, dependency_type, api", [
    ("AWS::StepFunctions::StateMachine", "AWS::IAM::Policy", "CreateStateMachine checks log delivery"),
    ("AWS::CloudTrail::Trail", "AWS::S3::BucketPolicy", "CreateTrail checks the bucket policy"),
    ("Custom::S3BucketNotifications", "AWS::SQS::QueuePolicy", "PutBucketNotificationConfiguration checks its SQS"),
])
def test_every_resource_checked_at_creation_fails_without_its_policy_dependency(assembly, resource_type, dependency_type, api):
    template = assembly.template
    checked = [lid for lid in template.resources_of_type(resource_type)
               if any(template.resources[d]["Type"] == dependency_type for d in template.resources[lid].get("DependsOn", []))]
    assert checked, f"no {resource_type} depends on a {dependency_type}"
    for lid in checked:
        CreationChecks(template).verify(lid)  # as synthesized: allowed
        for dependency in [d for d in template.resources[lid]["DependsOn"] if template.resources[d]["Type"] == dependency_type]:
            mutated = without_depends_on(assembly, lid, dependency).template
            with pytest.raises(CreationCheckError, match=f"^{lid} .* was created before {dependency} .*{api}"):
                CreationChecks(mutated).verify(lid)


def test_a_permission_no_policy_grants_is_named_as_such(assembly):
    body = copy.deepcopy(dict(assembly.template.body))
    remove_action(body, actor_role(body, "crawler"), "sqs:GetQueueAttributes")
    template = replace(assembly.template, body=body)
    crawler = only(template, "AWS::Glue::Crawler")
    with pytest.raises(CreationCheckError, match="sqs:GetQueueAttributes on .* is not allowed by any policy of the template") as raised:
        CreationChecks(template).verify(crawler)
    assert raised.value.missing == ()
