"""The local IAM check against the REAL synthesized template (issue 12): policies, KMS on the caller's
behalf, and mutations of the template that must each produce a named denial.

One synthesis per module (the cloud assembly local mode deploys, ~30 s); everything else is pure
policy evaluation. Principals and resources are found through the template's structure (the rule's
target role, the job's role, the job's COPY role argument, ...), not through hashed logical ids.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from airline_local.aws.iam.authorizer import AccessDeniedError, Authorization, Authorizer
from airline_local.aws.iam.evaluator import Principal
from airline_local.aws.iam.template_policies import (
    PolicyStore,
    TemplatePolicyError,
    UnknownManagedPolicyError,
    role_id_for,
)
from airline_local.aws.cfn import ACCOUNT_ID, Template
from airline_local.local_stack import synthesize
from airline_local.pipeline import LOCAL_CONTEXT

TLS = {"aws:SecureTransport": True}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def body(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, Any]:
    cdk_out = synthesize(tmp_path_factory.mktemp("iam-check") / "cdk.out", LOCAL_CONTEXT)
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a.get("type") == "aws:cloudformation:stack"]
    assert len(stacks) == 1
    return json.loads((Path(cdk_out) / stacks[0]["properties"]["templateFile"]).read_text())


class Stack:
    """The template, its policy store and authorizer, and the pipeline's actors found by structure."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.template = Template(body)
        self.store = PolicyStore.from_template(self.template)
        self.authorizer = Authorizer(self.store)
        t = self.template
        (rule_lid,) = t.resources_of_type("AWS::Events::Rule")
        (target,) = t.properties(rule_lid)["Targets"]
        self.state_machine_arn = target["Arn"]
        self.rule_role = self.lid_of_role(target["RoleArn"])
        (machine_lid,) = [m for m in t.resources_of_type("AWS::StepFunctions::StateMachine") if t.ref(m) == self.state_machine_arn]
        machine = t.properties(machine_lid)
        self.state_machine_role = self.lid_of_role(machine["RoleArn"])
        self.state_machine_log_group = machine["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
        (job_lid,) = t.resources_of_type("AWS::Glue::Job")
        job = t.properties(job_lid)
        self.glue_role = self.lid_of_role(job["Role"])
        self.copy_role = self.lid_of_role(job["DefaultArguments"]["--redshift_copy_role_arn"])
        (topic_lid,) = t.resources_of_type("AWS::SNS::Topic")
        self.topic_arn = t.ref(topic_lid)
        self.bucket_lid = next(lid for lid in t.resources_of_type("AWS::S3::Bucket")
                               if t.ref(lid) in job["DefaultArguments"]["--data_root_uri"])
        self.bucket_arn = t.get_att(self.bucket_lid, "Arn")
        self.key_arn = self.store.encryption_of(self.bucket_arn).key_arn

    def lid_of_role(self, role_arn: str) -> str:
        return self.store.role(role_arn).logical_id

    def object(self, key: str) -> str:
        return f"{self.bucket_arn}/{key}"

    def session(self, role_lid: str, name: str = "session") -> Principal:
        return self.store.session(role_lid, name)

    def authorize(self, role_lid: str, action: str, resource: str, context: Mapping[str, Any] = TLS) -> Authorization:
        return self.authorizer.authorize(self.session(role_lid), action, resource, context)

    def policy_of(self, role_lid: str) -> dict[str, Any]:
        """The (mutable, in a copied body) document of the role's one AWS::IAM::Policy."""
        resources = self.body["Resources"]
        (lid,) = [lid for lid, r in resources.items() if r["Type"] == "AWS::IAM::Policy"
                  and {"Ref": role_lid} in r["Properties"].get("Roles", [])]
        return resources[lid]["Properties"]["PolicyDocument"]


@pytest.fixture(scope="module")
def stack(body) -> Stack:
    return Stack(body)


@pytest.fixture
def mutated(body) -> Callable[[Callable[[Stack], None]], Stack]:
    """Apply a mutation to a deep copy of the template body; return the stack built from it."""

    def apply(mutation: Callable[[Stack], None]) -> Stack:
        copied = Stack(copy.deepcopy(body))
        mutation(copied)
        return Stack(copied.body)

    return apply


def statements_with(document: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in document["Statement"] if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]


def assert_names(text: str, *parts: str) -> None:
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


# ------------------------------------------------------------------------------ the store


def test_store_holds_roles_policies_resource_policies_and_keys(stack):
    store, t = stack.store, stack.template
    role = store.role(stack.glue_role)
    assert role.arn == f"arn:aws:iam::{ACCOUNT_ID}:role/{role.name}"
    assert role.role_id.startswith("AROA") and len(role.role_id) == 21 and role.role_id == role_id_for(stack.glue_role)
    assert store.role(role.arn) is role and store.role(role.name) is role
    assert role.trust_policy.document["Statement"][0]["Principal"] == {"Service": "glue.amazonaws.com"}
    assert [p.name for p in role.policies] == [lid for lid in t.resources_of_type("AWS::IAM::Policy")
                                               if {"Ref": stack.glue_role} in t.resources[lid]["Properties"]["Roles"]]
    # Resource policies by ARN: the bucket's (also for its objects), the topic's, the queue's, the keys'.
    assert store.resource_policy(stack.object("staging/a.parquet")) is store.resource_policy(stack.bucket_arn) is not None
    assert store.resource_policy(stack.topic_arn) is not None
    (queue,) = [q for q in t.resources_of_type("AWS::SQS::Queue") if "Orchestration" in q]  # the rule's DLQ
    assert store.resource_policy(t.get_att(queue, "Arn")) is not None
    assert store.resource_policy(stack.key_arn) is store.key(stack.key_arn).policy
    # Everything is resolved: no CloudFormation intrinsic is left in any policy.
    documents = [p.document for r in store.roles.values() for p in (r.trust_policy, *r.policies)]
    documents += [p.document for p in store.resource_policies.values()]
    assert not any('"Ref"' in json.dumps(d) or '"Fn::' in json.dumps(d) for d in documents)


def test_encryption_bindings_come_from_the_template(stack):
    store = stack.store
    bucket = store.encryption_of(stack.object("staging/x.parquet"))
    assert bucket.kind == "s3" and bucket.resource_arn == stack.bucket_arn and bucket.bucket_key
    assert bucket.key_arn.startswith(f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/")
    assert store.encryption_of(stack.topic_arn).key_arn == bucket.key_arn
    log_group = store.encryption_of(stack.state_machine_log_group)  # the Arn attribute ends in ":*"
    assert log_group.kind == "logs" and not log_group.resource_arn.endswith(":*")
    (queue,) = [q for q in stack.template.resources_of_type("AWS::SQS::Queue") if "Orchestration" in q]
    assert store.encryption_of(stack.template.get_att(queue, "Arn")) is None  # SQS-managed SSE: no KMS key


def test_a_session_carries_the_role_id_as_aws_userid(stack):
    principal = stack.session(stack.glue_role, "GlueJobRunnerSession")
    role = stack.store.role(stack.glue_role)
    assert principal.arn == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role.name}/GlueJobRunnerSession"
    assert principal.context_keys()["aws:userid"] == f"{role.role_id}:GlueJobRunnerSession"
    assert stack.store.session(role.arn, "s") == stack.session(stack.glue_role, "s")


# ---------------------------------------------------------------------- allowed, as deployed


def test_state_machine_publishes_to_the_encrypted_topic_with_its_kms_requests(stack):
    result = stack.authorize(stack.state_machine_role, "sns:Publish", stack.topic_arn)
    assert result.allowed, result.message
    assert [(c.action, c.resource) for c in result.checks] == [
        ("sns:Publish", stack.topic_arn),
        ("kms:GenerateDataKey", stack.key_arn),
        ("kms:Decrypt", stack.key_arn),
    ]
    kms = result.checks[1].decision.request.context
    assert kms["kms:EncryptionContext:aws:sns:topicArn"] == stack.topic_arn
    assert kms["kms:ViaService"] == "sns.us-east-1.amazonaws.com" and kms["kms:CallerAccount"] == ACCOUNT_ID
    assert result.checks[1].on_behalf_of == f"sns:Publish on {stack.topic_arn}"


def test_glue_job_writes_staging_with_the_data_key_but_not_raw_bookings(stack):
    staging = stack.authorize(stack.glue_role, "s3:PutObject", stack.object("staging/run-1/part-0.parquet"))
    assert staging.allowed, staging.message
    assert [c.action for c in staging.checks] == ["s3:PutObject", "kms:GenerateDataKey"]
    # The bucket uses an S3 Bucket Key: the encryption context is the bucket ARN, not the object's.
    assert staging.checks[1].decision.request.context["kms:EncryptionContext:aws:s3:arn"] == stack.bucket_arn

    raw = stack.authorize(stack.glue_role, "s3:PutObject", stack.object("raw/bookings/new.csv"))
    assert not raw.allowed and raw.error_code == "AccessDenied"
    assert len(raw.checks) == 1  # refused by S3: no KMS request is made
    assert_names(raw.message, "User: arn:aws:sts::", stack.store.role(stack.glue_role).name,
                 "is not authorized to perform: s3:PutObject on resource: " + stack.object("raw/bookings/new.csv"),
                 "because no identity-based policy allows the s3:PutObject action",
                 *(p.name for p in stack.store.role(stack.glue_role).policies))


def test_copy_role_reads_staging_with_decrypt_but_not_run_summaries(stack):
    staging = stack.authorize(stack.copy_role, "s3:GetObject", stack.object("staging/run-1/part-0.parquet"))
    assert staging.allowed, staging.message
    assert [c.action for c in staging.checks] == ["s3:GetObject", "kms:Decrypt"]

    runs = stack.authorize(stack.copy_role, "s3:GetObject", stack.object("runs/run-1.json"))
    assert not runs.allowed
    role = stack.store.role(stack.copy_role)
    assert_names(runs.message, role.name, "s3:GetObject", stack.object("runs/run-1.json"),
                 *(p.name for p in role.policies))


def test_rule_role_starts_the_state_machine(stack):
    result = stack.authorize(stack.rule_role, "states:StartExecution", stack.state_machine_arn)
    assert result.allowed, result.message
    assert len(result.checks) == 1


def test_describe_statement_only_by_the_identity_that_ran_it(stack):
    glue = stack.session(stack.glue_role, "GlueJobRunnerSession")
    own = {**TLS, "redshift-data:statement-owner-iam-userid": glue.context_keys()["aws:userid"]}
    assert stack.authorizer.authorize(glue, "redshift-data:DescribeStatement", "*", own)

    other = stack.session(stack.state_machine_role, "exec-1")
    theirs = {**TLS, "redshift-data:statement-owner-iam-userid": other.context_keys()["aws:userid"]}
    denied = stack.authorizer.authorize(glue, "redshift-data:DescribeStatement", "*", theirs)
    assert not denied.allowed
    assert_names(denied.message, "redshift-data:DescribeStatement", glue.arn, "no identity-based policy allows")


def test_plain_http_to_the_raw_bucket_is_denied_by_the_bucket_policy(stack):
    result = stack.authorize(stack.glue_role, "s3:PutObject", stack.object("staging/x.parquet"),
                             {"aws:SecureTransport": False})
    assert not result.allowed and result.denial.decision.reason == "explicit-deny"
    bucket_policy = stack.store.resource_policy(stack.bucket_arn).name
    assert_names(result.message, "with an explicit deny in a resource-based policy", bucket_policy, "s3:PutObject")
    # A request that does not say it used TLS matches Bool aws:SecureTransport "false"? No: the key
    # is absent, so the Deny's condition is false and the identity policy's Allow decides.
    assert stack.authorize(stack.glue_role, "s3:PutObject", stack.object("staging/x.parquet"), {}).allowed


def test_cloudwatch_logs_may_write_the_state_machine_log_group(stack):
    result = stack.authorizer.authorize_log_group_write(stack.state_machine_log_group)
    assert result.allowed, result.message
    assert [c.action for c in result.checks] == ["kms:GenerateDataKey", "kms:Decrypt"]
    request = result.checks[0].decision.request
    assert request.principal.arn == "logs.us-east-1.amazonaws.com"
    assert request.context["kms:EncryptionContext:aws:logs:arn"] == stack.state_machine_log_group.removesuffix(":*")
    assert_names(result.checks[0].message, "AllowCloudWatchLogs")


def test_a_service_principal_assumes_a_role_through_its_trust_policy(stack):
    glue_service = Principal.service("glue.amazonaws.com")
    role_arn = stack.store.role(stack.glue_role).arn
    assert stack.authorizer.authorize(glue_service, "sts:AssumeRole", role_arn, {})
    denied = stack.authorizer.authorize(Principal.service("lambda.amazonaws.com"), "sts:AssumeRole", role_arn, {})
    assert not denied.allowed and "trust policy" in denied.message


# ----------------------------------------------------------------- mutations: one grant removed


def test_without_generate_data_key_the_publish_fails_its_kms_request(stack, mutated):
    def drop(s: Stack) -> None:
        (statement,) = statements_with(s.policy_of(s.state_machine_role), "kms:GenerateDataKey*")
        statement["Action"] = [a for a in statement["Action"] if a != "kms:GenerateDataKey*"]

    broken = mutated(drop)
    result = broken.authorize(broken.state_machine_role, "sns:Publish", broken.topic_arn)
    assert not result.allowed
    assert [c.allowed for c in result.checks] == [True, False]  # SNS allowed the call; KMS refused
    assert result.error_code == "KMSAccessDenied"
    role = broken.store.role(broken.state_machine_role)
    assert_names(
        result.message,
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role.name}/session is not authorized to perform: "
        f"kms:GenerateDataKey on resource: {broken.key_arn} because no identity-based policy allows the "
        "kms:GenerateDataKey action",
        f"on behalf of sns:Publish on {broken.topic_arn}",
        *(p.name for p in role.policies),
    )
    with pytest.raises(AccessDeniedError, match="kms:GenerateDataKey"):
        result.raise_for_denial()


def test_without_put_on_staging_the_glue_job_cannot_stage(mutated):
    def drop(s: Stack) -> None:
        (statement,) = statements_with(s.policy_of(s.glue_role), "s3:PutObject")
        staging = {"Fn::Join": ["", [{"Fn::GetAtt": [s.bucket_lid, "Arn"]}, "/staging/*"]]}
        assert staging in statement["Resource"]
        statement["Resource"].remove(staging)

    broken = mutated(drop)
    result = broken.authorize(broken.glue_role, "s3:PutObject", broken.object("staging/run-1/part-0.parquet"))
    assert not result.allowed and len(result.checks) == 1
    role = broken.store.role(broken.glue_role)
    assert_names(result.message, role.name, "s3:PutObject", broken.object("staging/run-1/part-0.parquet"),
                 "because no identity-based policy allows the s3:PutObject action", *(p.name for p in role.policies))
    # The other prefixes still work.
    assert broken.authorize(broken.glue_role, "s3:PutObject", broken.object("runs/run-1.json")).allowed


def test_without_its_read_of_staging_the_copy_fails(mutated):
    def drop(s: Stack) -> None:
        (statement,) = statements_with(s.policy_of(s.copy_role), "s3:GetObject*")
        statement["Resource"] = [r for r in statement["Resource"] if "/staging/*" not in json.dumps(r)]

    broken = mutated(drop)
    result = broken.authorize(broken.copy_role, "s3:GetObject", broken.object("staging/run-1/part-0.parquet"))
    assert not result.allowed
    role = broken.store.role(broken.copy_role)
    assert_names(result.message, role.name, "s3:GetObject", "staging/run-1/part-0.parquet", *(p.name for p in role.policies))


def test_without_start_execution_the_rule_cannot_start_the_state_machine(mutated):
    def drop(s: Stack) -> None:
        document = s.policy_of(s.rule_role)
        document["Statement"] = [st for st in document["Statement"] if st["Action"] != "states:StartExecution"]

    broken = mutated(drop)
    result = broken.authorize(broken.rule_role, "states:StartExecution", broken.state_machine_arn)
    assert not result.allowed and result.error_code == "AccessDeniedException"
    role = broken.store.role(broken.rule_role)
    assert_names(result.message, role.name, "states:StartExecution", broken.state_machine_arn,
                 "because no identity-based policy allows the states:StartExecution action", *(p.name for p in role.policies))


def test_an_added_explicit_deny_wins_over_the_allow(mutated):
    def deny(s: Stack) -> None:
        s.policy_of(s.glue_role)["Statement"].append({
            "Sid": "NoStagingWrites",
            "Effect": "Deny",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [s.bucket_lid, "Arn"]}, "/staging/*"]]},
        })

    broken = mutated(deny)
    result = broken.authorize(broken.glue_role, "s3:PutObject", broken.object("staging/run-1/part-0.parquet"))
    assert not result.allowed and result.denial.decision.reason == "explicit-deny"
    (policy,) = broken.store.role(broken.glue_role).policies
    assert_names(result.message, "with an explicit deny in an identity-based policy",
                 f"Sid 'NoStagingWrites' of identity policy {policy.name}", "s3:PutObject")


def test_a_key_policy_without_the_account_delegation_refuses_even_an_allowed_role(mutated):
    """The key policy is authoritative: without its account statement (the "enable IAM policies"
    statement), the role's own kms:GenerateDataKey* grant is not enough, and AWS's message blames
    the resource-based policy."""
    def drop(s: Stack) -> None:
        for lid, resource in s.body["Resources"].items():
            if resource["Type"] == "AWS::KMS::Key" and s.template.get_att(lid, "Arn") == s.key_arn:
                statements = resource["Properties"]["KeyPolicy"]["Statement"]
                resource["Properties"]["KeyPolicy"]["Statement"] = [st for st in statements if st["Action"] != "kms:*"]

    broken = mutated(drop)
    result = broken.authorize(broken.state_machine_role, "sns:Publish", broken.topic_arn)
    assert not result.allowed
    assert_names(result.message, "because no resource-based policy allows the kms:GenerateDataKey action",
                 f"key policy of {broken.key_arn}")
    # ... and CloudWatch Logs, named by the key policy itself, still may.
    assert broken.authorizer.authorize_log_group_write(broken.state_machine_log_group).allowed


def test_logs_cannot_write_when_the_key_policy_lacks_the_logs_statement(mutated):
    def drop(s: Stack) -> None:
        for resource in s.body["Resources"].values():
            if resource["Type"] == "AWS::KMS::Key":
                policy = resource["Properties"]["KeyPolicy"]
                policy["Statement"] = [st for st in policy["Statement"] if st.get("Sid") != "AllowCloudWatchLogs"]

    broken = mutated(drop)
    result = broken.authorizer.authorize_log_group_write(broken.state_machine_log_group)
    assert not result.allowed
    assert_names(result.message, "User: logs.us-east-1.amazonaws.com is not authorized to perform: kms:GenerateDataKey",
                 broken.key_arn, "because no resource-based policy allows the kms:GenerateDataKey action",
                 "on behalf of logs:PutLogEvents")


# ------------------------------------------------------------------- what the store refuses


def test_an_unknown_aws_managed_policy_is_an_error_naming_it(body):
    changed = copy.deepcopy(body)
    role = next(r for r in changed["Resources"].values() if r["Type"] == "AWS::IAM::Role")
    role["Properties"]["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]
    with pytest.raises(UnknownManagedPolicyError, match="AmazonS3FullAccess"):
        PolicyStore.from_template(Template(changed))


def test_a_kms_encrypted_queue_needs_its_key_for_send_message(stack, body):
    changed = copy.deepcopy(body)
    # The rule's DLQ (the crawler's S3 events queue and its DLQ are the template's other queues).
    (queue_lid,) = [q for q in Template(changed).resources_of_type("AWS::SQS::Queue") if "Orchestration" in q]
    properties = changed["Resources"][queue_lid]["Properties"]
    properties.pop("SqsManagedSseEnabled", None)
    properties["KmsMasterKeyId"] = "alias/aws/sqs"  # the AWS managed key
    changed_stack = Stack(changed)
    queue_arn = changed_stack.template.get_att(queue_lid, "Arn")
    binding = changed_stack.store.encryption_of(queue_arn)
    assert binding.key_arn == f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:alias/aws/sqs"
    # The queue policy lets only the rule (events.amazonaws.com, its SourceArn) send; a role may
    # not, whatever the key says.
    role_send = changed_stack.authorize(stack.glue_role, "sqs:SendMessage", queue_arn)
    assert not role_send.allowed and len(role_send.checks) == 1
    # An AWS managed key allows any principal of the account through SQS: a role with
    # sqs:SendMessage on the queue would pass; the service principal of the rule is not a caller
    # of the account, so its KMS request is refused (AWS: use a customer managed key for that).
    rule_arn = changed_stack.template.get_att(next(iter(changed_stack.template.resources_of_type("AWS::Events::Rule"))), "Arn")
    events = Principal.service("events.amazonaws.com")
    result = changed_stack.authorizer.authorize(events, "sqs:SendMessage", queue_arn, {**TLS, "aws:SourceArn": rule_arn})
    assert [c.action for c in result.checks] == ["sqs:SendMessage", "kms:GenerateDataKey"]
    assert not result.allowed and "no resource-based policy allows the kms:GenerateDataKey action" in result.message


def test_a_key_outside_the_template_cannot_be_judged(body):
    changed = copy.deepcopy(body)
    (topic_lid,) = Template(changed).resources_of_type("AWS::SNS::Topic")
    changed["Resources"][topic_lid]["Properties"]["KmsMasterKeyId"] = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/elsewhere"
    changed_stack = Stack(changed)
    with pytest.raises(TemplatePolicyError, match="key/elsewhere"):
        changed_stack.authorize(changed_stack.state_machine_role, "sns:Publish", changed_stack.topic_arn)


def test_local_mode_synthesizes_the_template_cdk_deploy_would_deploy(body: Mapping[str, Any]) -> None:
    """As the CDK CLI does for `cdk deploy`, the local synth runs with an account and region (the
    emulator's), so ARNs are literals and region-specific choices are made as in a deployment."""
    from airline_local.local_stack import LOCAL_REGION

    text = json.dumps(body)
    assert f"arn:aws:glue:{LOCAL_REGION}:{ACCOUNT_ID}:crawler/" in text
    assert f"cdk-hnb659fds-assets-{ACCOUNT_ID}-{LOCAL_REGION}" in text


def test_cloudwatch_publishes_for_this_accounts_alarms_through_the_topic_and_key_policies(stack):
    """An alarm's action: sns:Publish as cloudwatch.amazonaws.com, then the KMS requests SNS makes for
    it, which carry the sender's aws:SourceAccount / aws:SourceArn (the key policy conditions on it)."""
    cloudwatch = Principal.service("cloudwatch.amazonaws.com")
    alarm_arn = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT_ID}:alarm:AnyAlarmOfTheAccount"
    sent = {**TLS, "aws:SourceArn": alarm_arn, "aws:SourceAccount": ACCOUNT_ID}
    allowed = stack.authorizer.authorize(cloudwatch, "sns:Publish", stack.topic_arn, sent)
    assert allowed.allowed, allowed.message
    assert [c.action for c in allowed.checks] == ["sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"]
    # Another account's alarm: the topic policy's conditions refuse it.
    foreign = {**sent, "aws:SourceArn": alarm_arn.replace(ACCOUNT_ID, "999999999999"), "aws:SourceAccount": "999999999999"}
    refused = stack.authorizer.authorize(cloudwatch, "sns:Publish", stack.topic_arn, foreign)
    assert not refused.allowed and refused.denial.action == "sns:Publish"
