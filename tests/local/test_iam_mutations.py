"""The IAM mutation facility (issue 12): a grant removed or a Deny added in a copy of the REAL
synthesized template, and a local pipeline deployed and IAM-checked against that copy."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from airline_local.aws.cfn import ACCOUNT_ID, Template
from airline_local.aws.iam.authorizer import Authorizer
from airline_local.aws.iam.template_policies import PolicyStore
from airline_local.local_stack import CloudAssembly, synthesize
from airline_local.pipeline import LOCAL_CONTEXT, LocalPipeline, temporary_state_dir
from tests.local.iam_mutations import ACTORS, actor_role, add_deny, remove_action, transform

TLS = {"aws:SecureTransport": True}


@pytest.fixture(scope="module")
def body(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    assembly = CloudAssembly.load(synthesize(tmp_path_factory.mktemp("mutations") / "cdk.out", LOCAL_CONTEXT))
    return dict(assembly.template.body)


def authorize(body: dict[str, Any], actor: str, action: str, resource: str) -> Any:
    store = PolicyStore.from_template(Template(body))
    return Authorizer(store).authorize(store.session(actor_role(body, actor), "s"), action, resource, TLS)


def crawler_arn(body: dict[str, Any]) -> str:
    template = Template(body)
    (crawler,) = template.resources_of_type("AWS::Glue::Crawler")
    return f"arn:aws:glue:us-east-1:{ACCOUNT_ID}:crawler/{template.name_of(crawler)}"


def test_every_actor_has_a_role_in_the_template(body):
    roles = {actor: actor_role(body, actor) for actor in ACTORS}
    assert len(set(roles.values())) == len(ACTORS)
    assert all(Template(body).resources[lid]["Type"] == "AWS::IAM::Role" for lid in roles.values())


def test_remove_action_takes_away_one_action_and_keeps_the_statements_others(body):
    mutated = copy.deepcopy(body)
    remove_action(mutated, actor_role(mutated, "state_machine"), "glue:GetCrawler")
    denied = authorize(mutated, "state_machine", "glue:GetCrawler", crawler_arn(mutated))
    assert not denied.allowed and "no identity-based policy allows the glue:GetCrawler action" in denied.message
    assert authorize(mutated, "state_machine", "glue:StartCrawler", crawler_arn(mutated)).allowed
    assert authorize(body, "state_machine", "glue:GetCrawler", crawler_arn(body)).allowed  # the original is untouched


def test_remove_action_on_one_resource_keeps_the_action_on_the_others(body):
    mutated = copy.deepcopy(body)
    remove_action(mutated, actor_role(mutated, "crawler"), "s3:GetObject*", resource="/raw/bookings/*")
    bucket = next(lid for lid in Template(body).resources_of_type("AWS::S3::Bucket") if "Raw" in lid)
    bucket_arn = Template(body).get_att(bucket, "Arn")
    assert not authorize(mutated, "crawler", "s3:GetObject", f"{bucket_arn}/raw/bookings/a.csv").allowed
    # the statement's other resource (the bucket ARN) keeps s3:GetObject*: policy evaluation matches
    # the ARN as a string, so asking on the bucket ARN shows the grant left there
    assert authorize(mutated, "crawler", "s3:GetObject", bucket_arn).allowed
    assert authorize(mutated, "crawler", "s3:GetObjectVersion", bucket_arn).allowed
    assert authorize(mutated, "crawler", "s3:ListBucket", bucket_arn).allowed
    assert authorize(mutated, "crawler", "s3:GetBucketLocation", bucket_arn).allowed


def test_add_deny_wins_over_the_allow(body):
    mutated = copy.deepcopy(body)
    add_deny(mutated, actor_role(mutated, "state_machine"), "glue:StartCrawler", crawler_arn(mutated), sid="NoCrawls")
    denied = authorize(mutated, "state_machine", "glue:StartCrawler", crawler_arn(mutated))
    assert not denied.allowed and denied.denial.decision.reason == "explicit-deny"
    assert "with an explicit deny in an identity-based policy" in denied.message and "NoCrawls" in denied.message


def test_a_mutation_that_changes_nothing_raises(body):
    with pytest.raises(ValueError, match="grants glue:DeleteJob"):
        remove_action(copy.deepcopy(body), actor_role(body, "state_machine"), "glue:DeleteJob")
    with pytest.raises(ValueError, match="containing '/nowhere/'"):
        remove_action(copy.deepcopy(body), actor_role(body, "crawler"), "s3:GetObject*", resource="/nowhere/")


# --- through a local pipeline with the check on ---------------------------------------------


@pytest.fixture(scope="module")
def pipeline(body) -> Iterator[LocalPipeline]:
    no_get_crawler = transform(lambda b: remove_action(b, actor_role(b, "state_machine"), "glue:GetCrawler"))
    with temporary_state_dir("airline-iam-mutation-") as state_dir, \
            LocalPipeline(state_dir, iam_check=True, template_transform=no_get_crawler, warm_workers=0) as running:
        yield running


def test_the_pipeline_deploys_and_checks_the_mutated_copy(pipeline, body):
    assert pipeline.iam is not None
    role = actor_role(pipeline.template.body, "state_machine")
    glue = pipeline.emulator.role_broker.client("glue", role, "ExecutionSession", "states.amazonaws.com",
                                                pipeline.stack.state_machine_arn, ACCOUNT_ID)
    crawler = pipeline.stack.crawler_names[0]
    with pytest.raises(ClientError) as denied:
        glue.get_crawler(Name=crawler)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "glue:GetCrawler" in denied.value.response["Error"]["Message"]
    glue.start_crawler(Name=crawler)  # the statement's other action is still granted
    # The synthesized app (shared synth cache) still holds the grant.
    synthesized = CloudAssembly.load(Path(pipeline.cloud_assembly_dir)).template.body
    assert authorize(dict(synthesized), "state_machine", "glue:GetCrawler", crawler_arn(body)).allowed
