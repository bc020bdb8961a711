"""The project's security contract, checked on the synthesized templates and on the repository.

IAM (no service-wide grants, every `Resource: "*"` justified below, no NotAction/NotResource,
no open principals, no other account), encryption at rest, TLS-only resource policies, blocked
public access, the audit trail, the private warehouse, and no secret or real account id in the
template or in the files the repository holds. cdk-nag's AwsSolutions rules run in
test_compliance.py; these tests state the properties this project promises, and each failure
names the resource and statement that breaks them.

The default configuration uses the session's template; the existing-workgroup and
existing-cluster configurations of test_configurations.py are synthesized once for this module
(without cdk-nag, which test_configurations.py runs on them).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.infra.conftest import PROJECT_ROOT
from tests.infra.template_helpers import as_list, only, render, resources_of
from tests.infra.test_configurations import VARIANTS

# --------------------------------------------------------------------------------------------
# Allow-lists: every entry says why AWS needs it. An entry no configuration uses is an error.
# --------------------------------------------------------------------------------------------

# Actions granted on `Resource: "*"` in identity policies (roles' inline policies, IAM policies,
# managed policies) and in bucket/topic/queue policies. Keys are groups of actions; a "*"
# statement may hold any mix of listed actions (CDK merges statements with equal resources).
WILDCARD_RESOURCE_ACTIONS: dict[frozenset[str], str] = {
    frozenset({
        "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }): (
        "Step Functions logging (the pipeline state machine and the schema Provider's waiter): Step "
        "Functions sets up a CloudWatch Logs vended-log delivery as the state machine's role. Log "
        "deliveries and the account's CloudWatch Logs resource policy are account-level objects with "
        "no ARN, and DescribeLogGroups lists the account's log groups, so the Step Functions logging "
        "guide grants these on '*'. (The role never writes log events itself: CreateLogStream/"
        "PutLogEvents are scoped to the waiter's log group, see stacks/warehouse.py.)"
    ),
    frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}): (
        "X-Ray tracing of the pipeline state machine: these X-Ray actions support no resource-level "
        "permissions (traces and telemetry have no ARN; sampling rules are read account-wide)."
    ),
    frozenset({"cloudwatch:PutMetricData"}): (
        "Glue job metrics: CloudWatch metrics have no ARN, so PutMetricData only takes '*'; the "
        "cloudwatch:namespace condition limits it to the Glue namespace."
    ),
    frozenset({"redshift-data:DescribeStatement", "redshift-data:GetStatementResult",
               "redshift-data:CancelStatement"}): (
        "Redshift Data API results and cancels (Glue job, schema handler): statement ids are not IAM "
        "resources; the redshift-data:statement-owner-iam-userid condition limits them to the "
        "caller's own statements."
    ),
}

# A "*" grant of these actions is acceptable only under this condition key (any operator).
WILDCARD_RESOURCE_CONDITIONS: dict[str, str] = {
    "cloudwatch:PutMetricData": "cloudwatch:namespace",
    "redshift-data:DescribeStatement": "redshift-data:statement-owner-iam-userid",
    "redshift-data:GetStatementResult": "redshift-data:statement-owner-iam-userid",
    "redshift-data:CancelStatement": "redshift-data:statement-owner-iam-userid",
}

# AWS managed policies (their statements are not in the template, so they are listed here).
AWS_MANAGED_POLICIES: dict[str, str] = {
    "service-role/AWSLambdaBasicExecutionRole": (
        "Attached by CDK to every Lambda function it creates (schema handlers, the Provider "
        "framework, the bucket-notification and default-security-group handlers): "
        "logs:CreateLogGroup/CreateLogStream/PutLogEvents on '*' so a function can write its own "
        "logs. A residual wildcard outside the template; cdk-nag IAM4 is acknowledged per function."
    ),
}

# Key-policy statements granting an AWS service principal without a condition.
UNCONDITIONED_SERVICE_KEY_GRANTS: dict[tuple[str, frozenset[str]], str] = {
    ("cloudtrail.amazonaws.com", frozenset({"kms:DescribeKey"})): (
        "CloudTrail reads the trail key's metadata when the trail is created or updated; DescribeKey "
        "returns no key material and cannot encrypt or decrypt."
    ),
}

# The only 12-digit numbers the repository may hold in ARNs or account-id assignments, and
# where: fake accounts of the offline runtime and the tests. A real account id anywhere fails.
FAKE_ACCOUNTS: dict[str, str] = {
    "123456789012": "moto's default account, used by the local runtime (airline_local/) and its tests",
    "111111111111": "placeholder account of an 'existing admin secret' ARN in the configuration tests",
    "999999999999": "someone else's account in the IAM check's tests (a foreign aws:SourceArn)",
}
FAKE_ACCOUNT_DIRECTORIES = ("airline_local/", "tests/")

RESTRICTIVE_CONDITION_KEYS = {
    "aws:sourcearn", "aws:sourceaccount", "aws:sourceowner", "aws:principalorgid", "aws:principalaccount",
    "aws:sourcevpc", "aws:sourcevpce", "aws:principalarn",
}

CONFIGURATIONS = ("default", *VARIANTS)
SERVICE_WIDE = re.compile(r"^[a-z0-9-]+:\*$")
ACCOUNT_ROOT = "arn:<AWS::Partition>:iam::<AWS::AccountId>:root"


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def variant_templates(tmp_path_factory) -> dict[str, dict]:
    from aws_cdk import App

    from stacks.config import config_from_context
    from stacks.pipeline_stack import PipelineStack

    outdir = tmp_path_factory.mktemp("security-variants")
    cdk_json = json.loads((PROJECT_ROOT / "cdk.json").read_text())
    feature_flags = {k: v for k, v in cdk_json["context"].items() if k.startswith("@aws-cdk")}
    app = App(outdir=str(outdir), context=feature_flags)
    for name, context in VARIANTS.items():
        PipelineStack(app, name, config=config_from_context(context))
    app.synth()
    return {name: json.loads((outdir / f"{name}.template.json").read_text()) for name in VARIANTS}


@pytest.fixture(params=CONFIGURATIONS)
def any_template(request, template_json) -> dict:
    """The template of each configuration in turn (default, existing workgroup, existing cluster)."""
    if request.param == "default":
        return template_json
    return request.getfixturevalue("variant_templates")[request.param]


@pytest.fixture
def all_templates(template_json, variant_templates) -> dict[str, dict]:
    return {"default": template_json, **variant_templates}


# --------------------------------------------------------------------------------------------
# Policy statements
# --------------------------------------------------------------------------------------------

# Where each resource type keeps its policy documents, and what kind of policy they are.
_DOCUMENT_PROPERTIES = {
    "AWS::IAM::Policy": (("PolicyDocument", "identity"),),
    "AWS::IAM::ManagedPolicy": (("PolicyDocument", "identity"),),
    "AWS::S3::BucketPolicy": (("PolicyDocument", "resource"),),
    "AWS::SNS::TopicPolicy": (("PolicyDocument", "resource"),),
    "AWS::SQS::QueuePolicy": (("PolicyDocument", "resource"),),
    "AWS::SecretsManager::ResourcePolicy": (("ResourcePolicy", "resource"),),
    "AWS::Logs::ResourcePolicy": (("PolicyDocument", "resource"),),
    "AWS::KMS::Key": (("KeyPolicy", "key"),),
    "AWS::IAM::Role": (("AssumeRolePolicyDocument", "trust"),),
}
_POLICY_PROPERTY_NAMES = {"PolicyDocument", "KeyPolicy", "ResourcePolicy", "AssumeRolePolicyDocument", "Policies"}


def policy_statements(template: dict) -> list[tuple[str, str, dict]]:
    """(where, kind, statement) of every policy in the template; kind is identity, resource, key
    or trust. Fails on a resource that carries a policy this scanner does not know."""
    found = []
    for logical_id, resource in template["Resources"].items():
        rtype, props = resource["Type"], resource.get("Properties", {})
        known = _DOCUMENT_PROPERTIES.get(rtype, ())
        unknown = (_POLICY_PROPERTY_NAMES & set(props)) - {name for name, _ in known} - (
            {"Policies"} if rtype in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group") else set()
        )
        assert not unknown, f"{logical_id} ({rtype}) carries {sorted(unknown)}, which this test does not scan"
        documents = [(name, kind, props[name]) for name, kind in known if name in props]
        documents += [(f"Policies[{p.get('PolicyName')}]", "identity", p["PolicyDocument"]) for p in props.get("Policies", [])]
        for name, kind, document in documents:
            if isinstance(document, str):
                document = json.loads(document)
            for statement in as_list(document["Statement"]):
                found.append((f"{logical_id}.{name}", kind, statement))
    return found


def _actions(statement: dict) -> list[str]:
    return as_list(statement.get("Action", []))


def _principals(statement: dict) -> list[tuple[str, str]]:
    """(type, rendered principal) pairs; a bare "*" principal is ("*", "*")."""
    principal = statement.get("Principal")
    if principal is None:
        return []
    if principal == "*":
        return [("*", "*")]
    return [(kind, render(p)) for kind, values in principal.items() for p in as_list(values)]


def _condition_keys(statement: dict) -> set[str]:
    return {key.lower() for operator in statement.get("Condition", {}).values() for key in operator}


def _is_account_root_key_administration(kind: str, statement: dict) -> bool:
    """The default key policy statement: the key's own account may administer and use the key, and
    delegates that to IAM policies. Without it the key could become unmanageable (AWS KMS refuses
    key policies that lock the account out); `Resource: "*"` in a key policy means this key."""
    return (
        kind == "key"
        and statement["Effect"] == "Allow"
        and _principals(statement) == [("AWS", ACCOUNT_ROOT)]
        and _actions(statement) == ["kms:*"]
    )


def _role_arns(template: dict) -> set[str]:
    return {f"<{logical_id}.Arn>" for logical_id in resources_of(template, "AWS::IAM::Role")}


def _referenced_id(value) -> str | None:
    """The logical id a Ref / Fn::GetAtt points to."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


# --------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------

def test_the_policy_scanner_reads_every_kind_of_policy(template_json):
    kinds = Counter(kind for _, kind, _ in policy_statements(template_json))
    assert kinds["identity"] >= 20 and kinds["resource"] >= 5 and kinds["key"] >= 5 and kinds["trust"] >= 10, kinds
    where = {w.split(".")[0] for w, _, _ in policy_statements(template_json)}
    for rtype in ("AWS::IAM::Policy", "AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy", "AWS::KMS::Key"):
        assert set(resources_of(template_json, rtype)) <= where, f"some {rtype} was not scanned"


def test_no_allow_statement_grants_every_action_or_every_action_of_a_service(any_template):
    """Service-wide actions appear only in Deny statements (the TLS-only policies deny `s3:*` /
    `sqs:*` without TLS, which is the stronger the broader) and in the key's own account's
    administration of a key."""
    offending = [
        (where, action)
        for where, kind, statement in policy_statements(any_template)
        if statement["Effect"] == "Allow" and not _is_account_root_key_administration(kind, statement)
        for action in _actions(statement)
        if action == "*" or SERVICE_WIDE.match(action)
    ]
    assert offending == []


def test_every_wildcard_resource_grant_is_on_the_allow_list(any_template):
    allowed = set().union(*WILDCARD_RESOURCE_ACTIONS)
    offending = []
    for where, kind, statement in policy_statements(any_template):
        # In a key policy "*" is the key itself; key policies are checked by principal below.
        if kind in ("key", "trust") or statement["Effect"] != "Allow":
            continue
        if "*" not in as_list(statement.get("Resource", [])):
            continue
        for action in _actions(statement):
            if action not in allowed:
                offending.append((where, action, "not on the allow-list"))
            elif action in WILDCARD_RESOURCE_CONDITIONS and WILDCARD_RESOURCE_CONDITIONS[action].lower() not in _condition_keys(statement):
                offending.append((where, action, f"needs the {WILDCARD_RESOURCE_CONDITIONS[action]} condition"))
    assert offending == []


def test_every_allow_list_entry_is_used_by_some_configuration(all_templates):
    used_actions, used_other = set(), set()
    for template in all_templates.values():
        for _, kind, statement in policy_statements(template):
            if kind not in ("key", "trust") and statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource", [])):
                used_actions.update(_actions(statement))
            if kind == "key" and statement["Effect"] == "Allow" and "Condition" not in statement:
                for ptype, principal in _principals(statement):
                    if ptype == "Service":
                        used_other.add((principal, frozenset(_actions(statement))))
        for role in resources_of(template, "AWS::IAM::Role").values():
            used_other.update(render(arn).split(":policy/")[-1] for arn in role["Properties"].get("ManagedPolicyArns", []))
    stale = [sorted(group) for group in WILDCARD_RESOURCE_ACTIONS if not group <= used_actions]
    stale += [name for name in AWS_MANAGED_POLICIES if name not in used_other]
    stale += [grant for grant in UNCONDITIONED_SERVICE_KEY_GRANTS if grant not in used_other]
    assert stale == [], "allow-list entries no configuration needs any more: remove them"


def test_no_allow_statement_uses_not_action_not_resource_or_not_principal(any_template):
    offending = [
        (where, sorted({"NotAction", "NotResource", "NotPrincipal"} & set(statement)))
        for where, _, statement in policy_statements(any_template)
        if statement["Effect"] == "Allow" and {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
    ]
    assert offending == []


def test_an_open_principal_appears_only_in_deny_statements_or_under_a_restrictive_condition(any_template):
    open_grants = [
        (where, statement)
        for where, _, statement in policy_statements(any_template)
        if any(p == "*" for _, p in _principals(statement))
        and statement["Effect"] == "Allow"
        and not (_condition_keys(statement) & RESTRICTIVE_CONDITION_KEYS)
    ]
    assert open_grants == []
    # The TLS-only policies are the Deny statements with an open principal: they must exist.
    assert any(
        statement["Effect"] == "Deny" and any(p == "*" for _, p in _principals(statement))
        for _, _, statement in policy_statements(any_template)
    )


def test_resource_and_key_policies_trust_only_this_account_its_roles_and_aws_services(any_template):
    roles = _role_arns(any_template)
    foreign = [
        (where, principal)
        for where, kind, statement in policy_statements(any_template)
        if kind in ("resource", "key", "trust")
        for ptype, principal in _principals(statement)
        if ptype == "Federated"
        or (ptype == "AWS" and principal not in {ACCOUNT_ROOT, "*"} | roles)
        or (ptype == "Service" and not re.fullmatch(r"[A-Za-z0-9.<>:-]+\.amazonaws\.com", principal))
    ]
    assert foreign == []


def test_key_policies_grant_aws_services_only_under_a_condition_or_as_listed(any_template):
    unconditioned = [
        (where, principal, sorted(_actions(statement)))
        for where, kind, statement in policy_statements(any_template)
        if kind == "key" and statement["Effect"] == "Allow" and "Condition" not in statement
        for ptype, principal in _principals(statement)
        if ptype == "Service" and (principal, frozenset(_actions(statement))) not in UNCONDITIONED_SERVICE_KEY_GRANTS
    ]
    assert unconditioned == []


def test_only_listed_aws_managed_policies_are_attached(any_template):
    attached = {
        (logical_id, render(arn))
        for logical_id, role in resources_of(any_template, "AWS::IAM::Role").items()
        for arn in role["Properties"].get("ManagedPolicyArns", [])
    }
    unlisted = [
        (logical_id, arn) for logical_id, arn in attached
        if not any(arn == f"arn:<AWS::Partition>:iam::aws:policy/{name}" or arn == f"arn:${{AWS::Partition}}:iam::aws:policy/{name}"
                   for name in AWS_MANAGED_POLICIES)
    ]
    assert attached and unlisted == []


# --------------------------------------------------------------------------------------------
# Encryption at rest, TLS, public access
# --------------------------------------------------------------------------------------------

def _data_bucket_id(template: dict) -> str:
    """The bucket the Glue job reads and writes (its --data_root_uri), i.e. the pipeline's data."""
    _, job = only(template, "AWS::Glue::Job")
    match = re.fullmatch(r"s3://<([A-Za-z0-9]+)>", render(job["DefaultArguments"]["--data_root_uri"]))
    assert match, job["DefaultArguments"]["--data_root_uri"]
    return match.group(1)


def _log_delivery_target_ids(template: dict) -> set[str]:
    """Buckets that AWS services write logs into: server access log targets and trail buckets."""
    targets = {
        _referenced_id(bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"])
        for bucket in resources_of(template, "AWS::S3::Bucket").values()
        if "LoggingConfiguration" in bucket.get("Properties", {})
    }
    targets |= {_referenced_id(t["Properties"]["S3BucketName"]) for t in resources_of(template, "AWS::CloudTrail::Trail").values()}
    return targets


def test_every_bucket_is_encrypted_with_kms_unless_it_receives_aws_service_logs(any_template):
    """SSE-S3 only where AWS requires or makes it sufficient: S3 server access logging supports only
    SSE-S3 on its target bucket, and CloudTrail log files are encrypted with the trail's own KMS key
    (checked below) whatever the bucket default is. The data bucket uses the pipeline's KMS key."""
    keys = set(resources_of(any_template, "AWS::KMS::Key"))
    log_targets = _log_delivery_target_ids(any_template)
    data_bucket = _data_bucket_id(any_template)
    buckets = resources_of(any_template, "AWS::S3::Bucket")
    assert data_bucket in buckets
    problems = []
    for logical_id, bucket in buckets.items():
        rules = bucket["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        defaults = [rule["ServerSideEncryptionByDefault"] for rule in rules]
        if not defaults:
            problems.append((logical_id, "no default encryption"))
            continue
        algorithm = defaults[0]["SSEAlgorithm"]
        if algorithm in ("aws:kms", "aws:kms:dsse"):
            if _referenced_id(defaults[0].get("KMSMasterKeyID")) not in keys:
                problems.append((logical_id, "KMS without a key of this stack"))
        elif not (algorithm == "AES256" and logical_id in log_targets and logical_id != data_bucket):
            problems.append((logical_id, f"{algorithm} on a bucket that is not an AWS log target"))
    assert problems == []
    assert buckets[data_bucket]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["BucketKeyEnabled"] is True


def test_every_bucket_blocks_all_public_access(any_template):
    flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    not_blocked = [
        (logical_id, flag)
        for logical_id, bucket in resources_of(any_template, "AWS::S3::Bucket").items()
        for flag in flags
        if bucket["Properties"].get("PublicAccessBlockConfiguration", {}).get(flag) is not True
    ]
    assert not_blocked == []


def _denies_plain_transport(statement: dict, actions: set[str]) -> bool:
    return (
        statement["Effect"] == "Deny"
        and any(p == "*" for _, p in _principals(statement))
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        and bool(actions & set(_actions(statement)))
    )


def test_every_bucket_refuses_requests_without_tls(any_template):
    policies = {
        _referenced_id(policy["Properties"]["Bucket"]): policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in resources_of(any_template, "AWS::S3::BucketPolicy").values()
    }
    missing = []
    for logical_id in resources_of(any_template, "AWS::S3::Bucket"):
        covered = set()
        for statement in policies.get(logical_id, []):
            if _denies_plain_transport(statement, {"s3:*", "*"}):
                covered |= {render(r) for r in as_list(statement["Resource"])}
        if not {f"<{logical_id}.Arn>", f"<{logical_id}.Arn>/*"} <= covered:
            missing.append(logical_id)
    assert missing == []


def test_topics_are_kms_encrypted_and_refuse_publishing_without_tls(any_template):
    keys = set(resources_of(any_template, "AWS::KMS::Key"))
    topics = resources_of(any_template, "AWS::SNS::Topic")
    assert topics
    assert [t for t, topic in topics.items() if _referenced_id(topic["Properties"].get("KmsMasterKeyId")) not in keys] == []
    tls_only = {
        _referenced_id(topic)
        for policy in resources_of(any_template, "AWS::SNS::TopicPolicy").values()
        if any(_denies_plain_transport(s, {"sns:Publish", "sns:*", "*"}) for s in policy["Properties"]["PolicyDocument"]["Statement"])
        for topic in policy["Properties"]["Topics"]
    }
    assert set(topics) <= tls_only


def test_queues_are_encrypted_and_refuse_requests_without_tls(any_template):
    queues = resources_of(any_template, "AWS::SQS::Queue")
    assert queues
    unencrypted = [
        q for q, queue in queues.items()
        if not queue["Properties"].get("KmsMasterKeyId") and queue["Properties"].get("SqsManagedSseEnabled") is not True
    ]
    assert unencrypted == []
    tls_only = {
        _referenced_id(queue)
        for policy in resources_of(any_template, "AWS::SQS::QueuePolicy").values()
        if any(_denies_plain_transport(s, {"sqs:*", "*"}) for s in policy["Properties"]["PolicyDocument"]["Statement"])
        for queue in policy["Properties"]["Queues"]
    }
    assert set(queues) <= tls_only


def test_log_groups_secrets_and_keys_are_encrypted_and_keys_rotate(any_template):
    keys = resources_of(any_template, "AWS::KMS::Key")
    assert keys and [k for k, key in keys.items() if key["Properties"].get("EnableKeyRotation") is not True] == []
    log_groups = resources_of(any_template, "AWS::Logs::LogGroup")
    assert log_groups
    assert [g for g, group in log_groups.items() if _referenced_id(group["Properties"].get("KmsKeyId")) not in keys] == []
    secrets = resources_of(any_template, "AWS::SecretsManager::Secret")
    assert [s for s, secret in secrets.items() if _referenced_id(secret["Properties"].get("KmsKeyId")) not in keys] == []


def test_glue_security_configuration_encrypts_everything_and_guards_the_job_and_the_crawler(any_template):
    name_id, security = only(any_template, "AWS::Glue::SecurityConfiguration")
    keys = set(resources_of(any_template, "AWS::KMS::Key"))
    encryption = security["EncryptionConfiguration"]
    assert [e["S3EncryptionMode"] for e in encryption["S3Encryptions"]] == ["SSE-KMS"]
    assert encryption["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"
    assert encryption["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"] == "CSE-KMS"
    for setting in (*encryption["S3Encryptions"], encryption["CloudWatchEncryption"], encryption["JobBookmarksEncryption"]):
        assert _referenced_id(setting["KmsKeyArn"]) in keys
    _, job = only(any_template, "AWS::Glue::Job")
    _, crawler = only(any_template, "AWS::Glue::Crawler")
    assert _referenced_id(job.get("SecurityConfiguration")) == name_id
    assert _referenced_id(crawler.get("CrawlerSecurityConfiguration")) == name_id


def test_the_trail_validates_encrypts_and_records_every_object_access_of_the_data_bucket(any_template):
    _, trail = only(any_template, "AWS::CloudTrail::Trail")
    assert trail["EnableLogFileValidation"] is True and trail["IsLogging"] is True
    trail_key = _referenced_id(trail["KMSKeyId"])
    assert trail_key in resources_of(any_template, "AWS::KMS::Key")
    # A key of its own: whoever may decrypt the data cannot read or forge the trail with that grant.
    data_bucket = _data_bucket_id(any_template)
    assert trail_key != _referenced_id(
        resources_of(any_template, "AWS::S3::Bucket")[data_bucket]["Properties"]["BucketEncryption"]
        ["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]
    )
    # Whatever the trail's region scope, it must record the raw bucket's object reads and writes.
    recorded = {
        render(value)
        for selector in trail.get("EventSelectors", [])
        if selector.get("ReadWriteType", "All") == "All"
        for data in selector.get("DataResources", [])
        if data["Type"] == "AWS::S3::Object"
        for value in data["Values"]
    }
    assert f"<{data_bucket}.Arn>/" in recorded, recorded


def test_the_serverless_warehouse_is_encrypted_private_and_routes_through_the_vpc(template_json):
    keys = set(resources_of(template_json, "AWS::KMS::Key"))
    _, namespace = only(template_json, "AWS::RedshiftServerless::Namespace")
    assert _referenced_id(namespace["KmsKeyId"]) in keys
    _, workgroup = only(template_json, "AWS::RedshiftServerless::Workgroup")
    assert workgroup["PubliclyAccessible"] is False
    assert workgroup["EnhancedVpcRouting"] is True
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in workgroup["ConfigParameters"]}
    assert parameters["require_ssl"] == "true"


# --------------------------------------------------------------------------------------------
# No secrets or account ids in the template
# --------------------------------------------------------------------------------------------

ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
TWELVE_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{12}(?![0-9A-Za-z])")
ARN_ACCOUNT = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(\d{12}):")
ACCOUNT_ASSIGNMENT = re.compile(r"account[_ -]?id\w*[\"']?\s*[:=]\s*[\"'](\d{12})[\"']", re.IGNORECASE)
SECRET_KEY_ASSIGNMENT = re.compile(r"secret_?access_?key[\"']?\s*[:=]\s*[\"']([A-Za-z0-9/+]{40})[\"']", re.IGNORECASE)
UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
SQL_PASSWORD = re.compile(r"\bPASSWORD\s+'[^']*'", re.IGNORECASE)


def _strings(value):
    """Every string of a JSON value, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _char_class(ch: str) -> str:
    return "upper" if ch.isupper() else "lower" if ch.islower() else "digit" if ch.isdigit() else "other"


def looks_like_secret(token: str) -> bool:
    """A random-looking token: 20+ characters mixing upper, lower and digits, high Shannon entropy,
    and changing character class often (identifiers change class at word starts only)."""
    if len(token) < 20 or not {"upper", "lower", "digit"} <= {_char_class(c) for c in token}:
        return False
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    changes = sum(_char_class(a) != _char_class(b) for a, b in zip(token, token[1:])) / (len(token) - 1)
    return entropy >= 4.0 and changes >= 0.4


def _configured_accounts(name: str) -> set[str]:
    """Account ids the user wrote into a configuration (e.g. an existing secret's ARN)."""
    return set(TWELVE_DIGITS.findall(json.dumps(VARIANTS.get(name, {}))))


def test_the_secret_detectors_recognize_secrets_and_pass_identifiers():
    import random
    import string

    # Seeded, so the test is deterministic. (Measured: the heuristic flags ~99% of random
    # 32-character base64 tokens and ~97% of 27-character ones.)
    rng, alphabet = random.Random(0), string.ascii_letters + string.digits + "+/"
    assert all(looks_like_secret("".join(rng.choice(alphabet) for _ in range(40))) for _ in range(50))
    assert looks_like_secret("wJalrXUtnFEMI/K7MDENG/bPxRf" + "iCYEXAMPLEKEY")  # AWS's documented example key
    assert ACCESS_KEY.search("key=" + "AKIA" + "IOSFODNN7EXAMPLE")
    assert PRIVATE_KEY.search("-----BEGIN " + "RSA PRIVATE KEY-----")
    for identifier in (
        "WarehouseSchemaProviderframeworkisCompleteServiceRoleE1A71D6F",
        "AirlineBookingPipelineCatalogSecurityConfiguration390D75CF",
        "policy/service-role/AWSLambdaBasicExecutionRole",
        "e16ffb3b34af185b8b30c88fdb19faa13b6c42bb38580485c4e84b384ee48b63",
    ):
        assert not looks_like_secret(identifier), identifier
    assert ARN_ACCOUNT.findall("arn:aws:iam::" + "210987654321" + ":role/x") == ["210987654321"]
    assert ACCOUNT_ASSIGNMENT.findall('ACCOUNT_ID = "' + "210987654321" + '"') == ["210987654321"]


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_the_template_holds_no_account_id_but_those_configured(configuration, template_json, request):
    """No AWS-owned, account-independent 12-digit id is needed by this stack, so every 12-digit
    number must come from the user's own configuration (an existing secret's ARN)."""
    template = template_json if configuration == "default" else request.getfixturevalue("variant_templates")[configuration]
    text = UUID.sub("", json.dumps(template))
    assert set(TWELVE_DIGITS.findall(text)) <= _configured_accounts(configuration)


def test_password_properties_are_dynamic_references(any_template):
    literal = []
    for logical_id, resource in any_template["Resources"].items():
        stack = [(logical_id, resource.get("Properties", {}))]
        while stack:
            path, value = stack.pop()
            if isinstance(value, dict):
                for key, item in value.items():
                    if "password" in key.lower() and isinstance(item, (str, dict)):
                        text = render(item)
                        if not text.startswith(("{{resolve:secretsmanager:", "{{resolve:ssm-secure:")):
                            literal.append((f"{path}.{key}", text))
                    else:
                        stack.append((f"{path}.{key}", item))
            elif isinstance(value, list):
                stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    assert literal == []
    if resources_of(any_template, "AWS::RedshiftServerless::Namespace"):
        _, namespace = only(any_template, "AWS::RedshiftServerless::Namespace")
        assert render(namespace["AdminUserPassword"]).startswith("{{resolve:secretsmanager:")


def test_the_template_holds_no_key_material_or_random_looking_secret(any_template):
    logical_ids = sorted(
        (name for section in ("Resources", "Outputs", "Parameters", "Conditions", "Rules", "Mappings")
         for name in any_template.get(section, {})),
        key=len, reverse=True,
    )
    found = []
    for text in _strings(any_template):
        found += [("access key", m) for m in ACCESS_KEY.findall(text)]
        found += [("private key", m) for m in PRIVATE_KEY.findall(text)]
        found += [("SQL password", m) for m in SQL_PASSWORD.findall(text)]
        for logical_id in logical_ids:  # CDK-made names end in a hash-like suffix by design
            text = text.replace(logical_id, " ")
        found += [("random-looking", t) for t in re.findall(r"[A-Za-z0-9+/=_-]{20,}", text) if looks_like_secret(t)]
    assert found == []


# --------------------------------------------------------------------------------------------
# No secrets or real account ids in the repository
# --------------------------------------------------------------------------------------------

def _repository_texts() -> dict[str, str]:
    """Text of every file git tracks or would add (tracked + untracked, minus .gitignore'd):
    binary files skipped, package-lock.json's integrity hashes dropped."""
    result = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"git ls-files failed in {PROJECT_ROOT}: {result.stderr}"
    texts = {}
    for name in filter(None, result.stdout.split("\0")):
        path = PROJECT_ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        text = data.decode("utf-8", errors="replace")
        if Path(name).name == "package-lock.json":
            text = "\n".join(line for line in text.splitlines() if '"integrity"' not in line)
        texts[name] = text
    return texts


@pytest.fixture(scope="module")
def repository_texts() -> dict[str, str]:
    texts = _repository_texts()
    assert "app.py" in texts and "tests/infra/test_security.py" in texts, sorted(texts)[:20]
    return texts


def test_repository_files_hold_no_access_keys_secret_keys_or_private_keys(repository_texts):
    found = [
        (name, kind, match)
        for name, text in repository_texts.items()
        for kind, pattern in (("access key", ACCESS_KEY), ("private key", PRIVATE_KEY), ("secret access key", SECRET_KEY_ASSIGNMENT))
        for match in pattern.findall(text)
    ]
    assert found == []


def test_repository_account_ids_are_only_fake_ones_in_the_local_runtime_and_tests(repository_texts):
    found = [
        (name, account)
        for name, text in repository_texts.items()
        for account in {*ARN_ACCOUNT.findall(text), *ACCOUNT_ASSIGNMENT.findall(text)}
    ]
    misplaced = [(name, a) for name, a in found if a not in FAKE_ACCOUNTS or not name.startswith(FAKE_ACCOUNT_DIRECTORIES)]
    assert misplaced == []
    # The local runtime does use moto's account (so the scan above has something to see).
    assert any(a == "123456789012" and name.startswith("airline_local/") for name, a in found)
