"""The policy evaluation engine (airline_local.aws.iam.evaluator) on the AWS documentation's examples
and on real statements of this project's synthesized template.

Doc pages are cited by their path under https://docs.aws.amazon.com/IAM/latest/UserGuide/ unless a
full URL is given. The documentation's IAM-user examples are run with a role session, the only
kind of identity principal local mode has.
"""

from __future__ import annotations

import pytest

from airline_local.aws.iam.evaluator import (
    SUPPORTED_CONDITION_OPERATORS,
    InvalidPolicyError,
    Policy,
    Principal,
    Request,
    UnsupportedConditionError,
    evaluate,
)

ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/carlossalazar"
ROLE_ID = "AROAEXAMPLEROLEID"
SESSION = Principal.role_session(ROLE_ARN, "session-1", role_id=ROLE_ID)
OTHER_SESSION = Principal.role_session(ROLE_ARN, "session-2", role_id=ROLE_ID)


def doc(*statements: dict, version: str | None = "2012-10-17") -> dict:
    document: dict = {"Statement": list(statements)}
    if version:
        document["Version"] = version
    return document


def identity(*statements: dict, name: str = "RolePolicy", version: str | None = "2012-10-17") -> Policy:
    return Policy(name, doc(*statements, version=version))


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def request(action: str, resource: str, principal: Principal = SESSION, **context) -> Request:
    return Request(principal, action, resource, {**principal.context_keys(), **context})


def check_condition(condition: dict, **context) -> bool:
    """Whether an identity Allow statement with this condition applies to a request."""
    policy = identity(allow("s3:GetObject", Condition=condition))
    return evaluate(request("s3:GetObject", "arn:aws:s3:::b/k", **context), [policy]).allowed


# ------------------------------------------------------------------------------ evaluation logic

CARLOS_POLICY = identity(
    {
        "Sid": "AllowS3ListRead",
        "Effect": "Allow",
        "Action": ["s3:GetBucketLocation", "s3:GetObject", "s3:ListAllMyBuckets"],
        "Resource": "*",
    },
    {
        "Sid": "AllowS3Self",
        "Effect": "Allow",
        "Action": "s3:*",
        "Resource": [
            "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/*",
            "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar",
        ],
    },
    {"Sid": "DenyS3Logs", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::*log*"},
    name="CarlosPolicy",
)


def test_identity_policy_allow_alone():
    """reference_policies_evaluation-logic_policy-eval-basics.html, "Example identity-based and
    resource-based policy evaluation": AllowS3Self lets Carlos write to his own bucket, which has
    no bucket policy."""
    decision = evaluate(
        request("s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/file.txt"), [CARLOS_POLICY]
    )
    assert decision.allowed and decision.reason == "allow"
    assert [s.sid for s in decision.statements] == ["AllowS3Self"]
    assert "AllowS3Self" in decision.explanation


def test_explicit_deny_beats_allow_in_both_policies():
    """reference_policies_evaluation-logic_policy-eval-basics.html, same example: DenyS3Logs denies
    Carlos the logs bucket although its bucket policy allows him ("An explicit deny in any of the
    policies overrides the allow")."""
    logs = "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar-logs"
    bucket_policy = Policy(
        "LogsBucketPolicy",
        doc({"Sid": "AllowCarlos", "Effect": "Allow", "Principal": {"AWS": ROLE_ARN}, "Action": "s3:*", "Resource": f"{logs}/*"}),
    )
    decision = evaluate(request("s3:PutObject", f"{logs}/file.txt"), [CARLOS_POLICY], bucket_policy)
    assert not decision.allowed and decision.reason == "explicit-deny"
    assert [(s.sid, s.policy_name) for s in decision.statements] == [("DenyS3Logs", "CarlosPolicy")]
    assert "explicit deny" in decision.explanation and "DenyS3Logs" in decision.explanation
    assert "identity policy CarlosPolicy" in decision.explanation


def test_resource_policy_allow_alone_in_the_same_account():
    """reference_policies_evaluation-logic.html, "Evaluating identity-based policies with
    resource-based policies": within one account the permissions are the union of both, so a
    bucket policy naming the role (or the session) allows a role that has no identity policy."""
    for named in (ROLE_ARN, SESSION.arn):
        bucket_policy = Policy(
            "BucketPolicy",
            doc({"Effect": "Allow", "Principal": {"AWS": [named]}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*"}),
        )
        decision = evaluate(request("s3:GetObject", "arn:aws:s3:::shared/a.csv"), [], bucket_policy)
        assert decision.allowed, named
        assert decision.statements[0].kind == "resource"
    # The session ARN covers that session only.
    bucket_policy = Policy(
        "BucketPolicy",
        doc({"Effect": "Allow", "Principal": {"AWS": SESSION.arn}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*"}),
    )
    assert not evaluate(request("s3:GetObject", "arn:aws:s3:::shared/a.csv", OTHER_SESSION), [], bucket_policy)


def test_account_principal_in_resource_policy_only_delegates():
    """reference_policies_elements_principal.html, "AWS account principals": naming the account
    delegates to its identity policies, so it grants a same-account role nothing by itself."""
    for account in (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root"):
        bucket_policy = Policy(
            "BucketPolicy",
            doc({"Effect": "Allow", "Principal": {"AWS": account}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}),
        )
        decision = evaluate(request("s3:GetObject", "arn:aws:s3:::b/k"), [], bucket_policy)
        assert not decision.allowed and decision.reason == "implicit-deny"


def test_implicit_deny_names_principal_action_resource_and_policies():
    """reference_policies_evaluation-logic_policy-eval-denyallow.html: "By default, all requests
    are implicitly denied"; the explanation says which policies could have allowed it."""
    resource = "arn:aws:s3:::other-bucket/k"
    decision = evaluate(request("s3:PutObject", resource), [CARLOS_POLICY])
    assert not decision.allowed and decision.reason == "implicit-deny" and decision.statements == ()
    text = decision.explanation
    assert SESSION.arn in text and ROLE_ARN in text and "s3:PutObject" in text and resource in text
    assert f"no statement in the identity policies of {ROLE_ARN} (CarlosPolicy)" in text
    assert f"a resource policy of {resource} (it has none)" in text


def test_service_principal_needs_the_resource_policy():
    """reference_policies_elements_principal.html, "AWS service principals": a service is allowed
    by the resource policy naming it; there are no identity policies to fall back on."""
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
    policy = Policy(
        "TopicPolicy",
        doc({"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish", "Resource": topic}),
    )
    assert evaluate(request("sns:Publish", topic, Principal.service("events.amazonaws.com")), [], policy)
    denied = evaluate(request("sns:Publish", topic, Principal.service("s3.amazonaws.com")), [], policy)
    assert not denied and "s3.amazonaws.com" in denied.explanation and "TopicPolicy" in denied.explanation


# ------------------------------------------------------------------------------------ KMS / trust

KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ROOT = {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
ROLE_KMS = identity(allow(["kms:Decrypt", "kms:GenerateDataKey*"], KEY), name="RoleKms")


def test_kms_identity_allow_alone_is_not_enough():
    """https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html: "Unless the key
    policy explicitly allows it, you cannot use IAM policies to allow access to a KMS key."""
    key_policy = Policy("KeyPolicy", doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/admin"}, "Action": "kms:*", "Resource": "*"}))
    decision = evaluate(request("kms:Decrypt", KEY), [ROLE_KMS], key_policy, kms_key=True)
    assert not decision.allowed and decision.reason == "implicit-deny"
    assert "key policy" in decision.explanation and "not enough" in decision.explanation


def test_kms_default_key_policy_delegates_to_identity_policies():
    """https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html, "Allows access
    to the AWS account and enables IAM policies": with the root statement, the identity policy
    decides; without an identity allow, the request is denied."""
    key_policy = Policy("KeyPolicy", doc(KEY_ROOT))
    decision = evaluate(request("kms:GenerateDataKey", KEY), [ROLE_KMS], key_policy, kms_key=True)
    assert decision.allowed
    assert {s.kind for s in decision.statements} == {"identity", "resource"}
    denied = evaluate(request("kms:Encrypt", KEY), [ROLE_KMS], key_policy, kms_key=True)
    assert not denied and "only to the account" in denied.explanation
    assert not evaluate(request("kms:Decrypt", KEY), [], key_policy, kms_key=True)


def test_kms_key_policy_naming_the_role_allows_directly():
    """https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html: a key policy
    statement for the role grants it without any IAM policy."""
    key_policy = Policy("KeyPolicy", doc({"Effect": "Allow", "Principal": {"AWS": ROLE_ARN}, "Action": "kms:Decrypt", "Resource": "*"}))
    assert evaluate(request("kms:Decrypt", KEY), [], key_policy, kms_key=True)


def test_role_trust_policy_is_authoritative_too():
    """reference_policies_evaluation-logic_policy-eval-basics.html ("Policy evaluation for an IAM
    role") and id_roles_terms-and-concepts.html ("Trust policy"): AssumeRole needs the trust policy."""
    target = f"arn:aws:iam::{ACCOUNT}:role/target"
    trust = Policy("TargetTrust", doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}))
    may_assume = identity(allow("sts:AssumeRole", target))
    assert evaluate(request("sts:AssumeRole", target), [may_assume], trust, trust_policy=True)
    assert not evaluate(request("sts:AssumeRole", target), [], trust, trust_policy=True)
    service_trust = Policy("GlueTrust", doc({"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}))
    assert not evaluate(request("sts:AssumeRole", target), [may_assume], service_trust, trust_policy=True)
    assert evaluate(request("sts:AssumeRole", target, Principal.service("glue.amazonaws.com")), [], service_trust, trust_policy=True)


# -------------------------------------------------------------- Action, Resource, NotAction, ...


def test_not_action_allow_everything_but_iam():
    """reference_policies_elements_notaction.html, "Using NotAction with Allow": every action
    except the IAM ones."""
    policy = identity({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate(request("s3:GetObject", "arn:aws:s3:::b/k"), [policy])
    assert not evaluate(request("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/x"), [policy])


def test_not_action_deny_without_mfa_with_bool_if_exists():
    """reference_policies_elements_notaction.html, "Using NotAction with Deny": deny everything but
    IAM when aws:MultiFactorAuthPresent is false or absent (BoolIfExists)."""
    policy = identity(
        allow("*"),
        {"Sid": "DenyAllUsersNotUsingMFA", "Effect": "Deny", "NotAction": "iam:*", "Resource": "*", "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
    )
    assert not evaluate(request("s3:ListBucket", "arn:aws:s3:::b"), [policy])  # absent: denied
    assert not evaluate(request("s3:ListBucket", "arn:aws:s3:::b", **{"aws:MultiFactorAuthPresent": False}), [policy])
    assert evaluate(request("s3:ListBucket", "arn:aws:s3:::b", **{"aws:MultiFactorAuthPresent": True}), [policy])
    assert evaluate(request("iam:ListUsers", "*"), [policy])


def test_not_resource_allow_and_deny():
    """reference_policies_elements_notresource.html: NotResource with Allow grants all but the
    listed resources; with Deny, it denies all but them."""
    payroll = ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"]
    allow_all_but_payroll = identity({"Effect": "Allow", "Action": "s3:*", "NotResource": payroll})
    assert evaluate(request("s3:GetObject", "arn:aws:s3:::HRBucket/Other/x"), [allow_all_but_payroll])
    assert not evaluate(request("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/x"), [allow_all_but_payroll])
    deny_all_but_payroll = identity(allow("s3:*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": payroll})
    assert evaluate(request("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/x"), [deny_all_but_payroll])
    assert evaluate(request("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll"), [deny_all_but_payroll])
    assert not evaluate(request("s3:GetObject", "arn:aws:s3:::HRBucket/Other/x"), [deny_all_but_payroll])


def test_action_wildcards_are_case_insensitive():
    """reference_policies_elements_action.html: wildcards in actions, and "the prefix and the
    action name are case insensitive"."""
    policy = identity(allow(["iam:*AccessKey*", "s3:Get?bject"]))
    assert evaluate(request("IAM:createaccesskey", "*"), [policy])
    assert evaluate(request("iam:UpdateAccessKey", "*"), [policy])
    assert evaluate(request("s3:GetObject", "*"), [policy])
    assert not evaluate(request("s3:GetObjectAcl", "*"), [policy])
    assert not evaluate(request("iam:CreateUser", "*"), [policy])


def test_resource_wildcards_and_case_sensitivity():
    """reference_policies_elements_resource.html, "Using wildcards in resource ARNs": * and ?
    within a segment; a * that ends a segment may expand beyond colons; ARNs are case-sensitive."""
    policy = identity(
        allow("*", [
            "arn:aws:s3:::amzn-s3-demo-bucket/*",
            f"arn:aws:iam::{ACCOUNT}:user/accounting/*",
            "arn:aws:sqs:us-east-?:*:queue1",
            f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws-glue/jobs*",
        ])
    )
    allowed = [
        "arn:aws:s3:::amzn-s3-demo-bucket/a/b/c.txt",
        f"arn:aws:iam::{ACCOUNT}:user/accounting/bob",
        f"arn:aws:sqs:us-east-2:{ACCOUNT}:queue1",
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws-glue/jobs/output:log-stream:run-1",
    ]
    denied = [
        "arn:aws:s3:::AMZN-S3-DEMO-BUCKET/a.txt",
        "arn:aws:s3:::amzn-s3-demo-bucket",
        f"arn:aws:sqs:us-east-12:{ACCOUNT}:queue1",
        f"arn:aws:sqs:us-west-2:{ACCOUNT}:queue1",
    ]
    for resource in allowed:
        assert evaluate(request("x:Y", resource), [policy]), resource
    for resource in denied:
        assert not evaluate(request("x:Y", resource), [policy]), resource
    # Inside a segment, * does not cross a colon.
    segment = identity(allow("*", "arn:aws:sqs:us-*-1:*:queue1"))
    assert evaluate(request("x:Y", f"arn:aws:sqs:us-east-1:{ACCOUNT}:queue1"), [segment])
    assert not evaluate(request("x:Y", f"arn:aws:sqs:us-east:x-1:{ACCOUNT}:queue1"), [segment])


def test_not_principal_deny_must_list_session_role_and_account():
    """reference_policies_elements_notprincipal.html, "Specifying NotPrincipal with Deny": to
    exempt a role session, list the session ARN, the role ARN and the account."""
    bucket = "arn:aws:s3:::secret"
    base = {"Effect": "Deny", "Action": "s3:*", "Resource": f"{bucket}/*"}
    everyone = identity(allow("s3:*"))
    complete = Policy("BucketPolicy", doc({**base, "NotPrincipal": {"AWS": [SESSION.arn, ROLE_ARN, ACCOUNT]}}))
    role_only = Policy("BucketPolicy", doc({**base, "NotPrincipal": {"AWS": [ROLE_ARN]}}))
    assert evaluate(request("s3:GetObject", f"{bucket}/k"), [everyone], complete)
    assert not evaluate(request("s3:GetObject", f"{bucket}/k", OTHER_SESSION), [everyone], complete)
    assert not evaluate(request("s3:GetObject", f"{bucket}/k"), [everyone], role_only)


# ------------------------------------------------------------------------------- policy variables


def test_policy_variable_aws_userid_as_redshift_data_api_uses_it():
    """reference_policies_variables.html, "Condition element" and "Principal key values":
    ${aws:userid} is ROLE-ID:SESSION for a role session; the Redshift Data API's
    redshift-data:statement-owner-iam-userid holds the id of the caller that ran the statement."""
    policy = identity(allow("redshift-data:DescribeStatement", Condition={"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}))
    own = {"redshift-data:statement-owner-iam-userid": f"{ROLE_ID}:session-1"}
    assert SESSION.context_keys()["aws:userid"] == f"{ROLE_ID}:session-1"
    assert evaluate(request("redshift-data:DescribeStatement", "*", **own), [policy])
    assert not evaluate(request("redshift-data:DescribeStatement", "*", OTHER_SESSION, **own), [policy])


def test_policy_variable_in_resource_and_missing_value():
    """reference_policies_variables.html, "Resource element" and "Principal key values": a variable
    with no value ("not present") makes the match fail; aws:username is absent for a role."""
    policy = identity(allow("s3:GetObject", ["arn:aws:s3:::home/${aws:userid}/*", "arn:aws:s3:::users/${aws:username}/*"]))
    assert evaluate(request("s3:GetObject", f"arn:aws:s3:::home/{ROLE_ID}:session-1/a"), [policy])
    assert not evaluate(request("s3:GetObject", f"arn:aws:s3:::home/{ROLE_ID}:session-2/a"), [policy])
    assert not evaluate(request("s3:GetObject", "arn:aws:s3:::users/${aws:username}/a"), [policy])
    # Variable names are case-insensitive (same page, "Key names are case-insensitive").
    upper = identity(allow("s3:GetObject", "arn:aws:s3:::home/${AWS:UserId}/*"))
    assert evaluate(request("s3:GetObject", f"arn:aws:s3:::home/{ROLE_ID}:session-1/a"), [upper])


def test_policy_variable_default_and_special_characters():
    """reference_policies_variables.html, "Specifying default values" and "Special characters":
    ${key, 'default'} and the literal ${*}, ${?}, ${$}."""
    default = identity(allow("s3:GetObject", "arn:aws:s3:::b/${aws:username, 'anonymous'}/*"))
    assert evaluate(request("s3:GetObject", "arn:aws:s3:::b/anonymous/x"), [default])
    assert check_condition({"StringLike": {"s3:prefix": "a${*}b${?}${$}"}}, **{"s3:prefix": "a*b?$"})
    assert not check_condition({"StringLike": {"s3:prefix": "a${*}b"}}, **{"s3:prefix": "axxb"})
    assert check_condition({"StringLike": {"s3:prefix": "a*b"}}, **{"s3:prefix": "axxb"})


def test_policy_variables_need_version_2012_10_17():
    """reference_policies_variables.html, "Introduction": without Version 2012-10-17, variables
    "are treated as literal strings in the policy"."""
    old = identity(allow("s3:GetObject", "arn:aws:s3:::home/${aws:userid}/*"), version=None)
    assert not evaluate(request("s3:GetObject", f"arn:aws:s3:::home/{ROLE_ID}:session-1/a"), [old])
    assert evaluate(request("s3:GetObject", "arn:aws:s3:::home/${aws:userid}/a"), [old])


# ------------------------------------------------------------------------------------ conditions


def test_string_operators():
    """reference_policies_elements_condition_operators.html, "String condition operators":
    StringEquals is case-sensitive, ...IgnoreCase is not, StringLike takes wildcards."""
    assert check_condition({"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, **{"aws:principaltag/JOB-CATEGORY": "iamuser-admin"})
    assert not check_condition({"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, **{"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"})
    assert check_condition({"StringEqualsIgnoreCase": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, **{"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"})
    assert not check_condition({"StringNotEqualsIgnoreCase": {"k": "ABC"}}, k="abc")
    assert check_condition({"StringLike": {"s3:prefix": ["", "home/", "home/*"]}}, **{"s3:prefix": "home/x/y"})
    assert not check_condition({"StringLike": {"s3:prefix": ["", "home/", "home/?"]}}, **{"s3:prefix": "home/xy"})


def test_missing_key_positive_false_negated_true():
    """reference_policies_elements_condition_operators.html, the "Important" note: a key absent
    from the request context makes the condition false, except a negated operator (StringNotLike,
    ArnNotLike...) which is then true."""
    assert not check_condition({"StringEquals": {"aws:PrincipalTag/team": "data"}})
    assert not check_condition({"StringLike": {"aws:PrincipalTag/team": "*"}})
    assert check_condition({"StringNotEquals": {"aws:PrincipalTag/team": "data"}})
    assert check_condition({"StringNotLike": {"aws:PrincipalTag/team": "d*"}})
    assert check_condition({"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::*"}})
    assert check_condition({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}})
    assert not check_condition({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})


def test_negated_operator_with_several_values_is_nor():
    """reference_policies_multi-value-conditions.html: "If a single negated matching condition
    operator includes multiple values for a context key, those values are evaluated using a
    logical NOR"; positive operators OR them; several keys and operators are AND'ed."""
    values = {"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}
    assert not check_condition(values, **{"aws:PrincipalTag/role": "audit"})
    assert check_condition(values, **{"aws:PrincipalTag/role": "dev"})
    assert check_condition({"StringEquals": {"k": ["a", "b"]}}, k="b")
    both = {"StringEquals": {"k1": "a", "k2": "b"}, "Bool": {"aws:SecureTransport": "true"}}
    assert check_condition(both, k1="a", k2="b", **{"aws:SecureTransport": True})
    assert not check_condition(both, k1="a", k2="x", **{"aws:SecureTransport": True})
    assert not check_condition(both, k1="a", k2="b", **{"aws:SecureTransport": False})


def test_if_exists():
    """reference_policies_elements_condition_operators.html, "...IfExists condition operators":
    StringLikeIfExists on ec2:InstanceType is true when the key is absent."""
    condition = {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}
    assert check_condition(condition)
    assert check_condition(condition, **{"ec2:InstanceType": "t2.micro"})
    assert not check_condition(condition, **{"ec2:InstanceType": "m5.large"})


def test_null():
    """reference_policies_elements_condition_operators.html, "Condition operator to check
    existence of condition keys": Null true = key absent (e.g. aws:TokenIssueTime without
    temporary credentials), false = present."""
    assert check_condition({"Null": {"aws:TokenIssueTime": "true"}})
    assert not check_condition({"Null": {"aws:TokenIssueTime": "true"}}, **{"aws:TokenIssueTime": "2024-01-01T00:00:00Z"})
    assert check_condition({"Null": {"aws:TokenIssueTime": False}}, **{"aws:TokenIssueTime": "2024-01-01T00:00:00Z"})


def test_for_all_values_deny_table_including_missing_key():
    """reference_policies_condition_examples-multi-valued-context-keys.html, "Deny policy with
    condition set operator ForAllValues": ForAllValues:StringNotLike key1* on aws:TagKeys. The
    documented edge: with no aws:TagKeys in the request, ForAllValues is true (the Deny matches)."""
    deny = identity(
        allow("iam:*"),
        {"Sid": "DenyRestrictedTags", "Effect": "Deny", "Action": ["iam:Tag*", "iam:UnTag*"], "Resource": ["*"], "Condition": {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}},
    )
    role = f"arn:aws:iam::{ACCOUNT}:role/x"

    def tagged(*keys):
        context = {"aws:TagKeys": list(keys)} if keys else {}
        return evaluate(request("iam:TagRole", role, **context), [deny])

    assert tagged("key1:legal").allowed  # no match: may be allowed by another statement
    assert tagged("key1:hr", "key1:personnel").allowed
    assert tagged("key2:audit").reason == "explicit-deny"
    assert tagged().reason == "explicit-deny"  # missing key: ForAllValues is true


def test_for_any_value():
    """reference_policies_condition-single-vs-multi-valued-context-keys.html, "ForAnyValue": true
    if at least one request value matches one policy value; false when the key is absent."""
    condition = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["webserver", "database"]}}
    assert check_condition(condition, **{"aws:TagKeys": ["env", "webserver"]})
    assert not check_condition(condition, **{"aws:TagKeys": ["env", "owner"]})
    assert not check_condition(condition)
    assert check_condition({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "owner"]}}, **{"aws:TagKeys": ["env"]})
    assert not check_condition({"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, **{"aws:TagKeys": ["env", "x"]})


def test_numeric_date_ip_binary_and_arn_operators():
    """reference_policies_elements_condition_operators.html: "Numeric", "Date", "Boolean",
    "Binary", "IP address" and "Amazon Resource Name (ARN)" condition operators."""
    assert check_condition({"NumericLessThanEquals": {"s3:max-keys": "10"}}, **{"s3:max-keys": 10})
    assert not check_condition({"NumericLessThanEquals": {"s3:max-keys": "10"}}, **{"s3:max-keys": "11"})
    assert check_condition({"NumericNotEquals": {"n": ["1", "2"]}}, n="3")
    assert check_condition({"DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:01Z"}}, **{"aws:CurrentTime": "2021-01-01T00:00:00Z"})
    assert not check_condition({"DateLessThan": {"aws:CurrentTime": "2020-04-01"}}, **{"aws:CurrentTime": "2021-01-01T00:00:00Z"})
    assert check_condition({"DateGreaterThan": {"aws:EpochTime": "1585699200"}}, **{"aws:EpochTime": "1609459200"})
    assert check_condition({"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}}, **{"aws:SourceIp": "2001:db8:1234:5678::1"})
    assert not check_condition({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, **{"aws:SourceIp": "198.51.100.7"})
    assert check_condition({"BinaryEquals": {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}, key=b"BinaryValueInBase64")
    source = "arn:aws:sqs:us-east-1:123456789012:queue-1"
    assert check_condition({"ArnEquals": {"aws:SourceArn": source}}, **{"aws:SourceArn": source})
    assert check_condition({"ArnLike": {"aws:SourceArn": "arn:aws:sqs:us-east-1:*:queue-*"}}, **{"aws:SourceArn": source})
    assert not check_condition({"ArnLike": {"aws:SourceArn": "arn:aws:sqs:*:*:queue-2"}}, **{"aws:SourceArn": source})
    assert not check_condition({"ArnNotEquals": {"aws:SourceArn": source}}, **{"aws:SourceArn": source})
    assert not check_condition({"ArnLike": {"aws:SourceArn": "*"}}, **{"aws:SourceArn": "not-an-arn"})


def test_condition_keys_are_case_insensitive_values_are_not():
    """reference_policies_elements_condition.html, "The condition block": key names are not
    case-sensitive; values are, unless the operator ignores case."""
    assert check_condition({"StringEquals": {"AWS:SOURCEACCOUNT": ACCOUNT}}, **{"aws:sourceaccount": ACCOUNT})
    assert not check_condition({"StringEquals": {"s3:prefix": "Home/"}}, **{"s3:prefix": "home/"})


def test_unsupported_operator_raises_naming_it_and_the_statement():
    """reference_policies_elements_condition_operators.html lists the operators; anything else (or
    Null with a set prefix) is an error naming the operator and the statement, never a silent
    allow or deny."""
    policy = identity(allow("s3:GetObject", Sid="Regexy", Condition={"StringMatchesRegex": {"s3:prefix": "^a"}}), name="JobPolicy")
    with pytest.raises(UnsupportedConditionError) as raised:
        evaluate(request("s3:GetObject", "arn:aws:s3:::b/k"), [policy])
    assert raised.value.operator == "StringMatchesRegex"
    assert "Regexy" in str(raised.value) and "JobPolicy" in str(raised.value)
    with pytest.raises(UnsupportedConditionError, match="ForAllValues:Null"):
        check_condition({"ForAllValues:Null": {"k": "true"}})
    assert "Null" in SUPPORTED_CONDITION_OPERATORS and "ArnNotLike" in SUPPORTED_CONDITION_OPERATORS


def test_unresolved_cloudformation_reference_is_an_error():
    """A statement still holding {"Ref": ...} cannot be judged: InvalidPolicyError, not a deny."""
    with pytest.raises(InvalidPolicyError, match="unresolved"):
        check_condition({"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}})


# ------------------------------------------- real statements of the synthesized template (snapshot)

# tests/infra/snapshots/AirlineBookingPipeline.template.json, CloudFormation references replaced by
# example ARNs (account 123456789012, us-east-1).
PROJECT_ACCOUNT = "123456789012"
RAW_BUCKET = "arn:aws:s3:::airline-raw-bucket"
DATA_KEY = f"arn:aws:kms:us-east-1:{PROJECT_ACCOUNT}:key/0000aaaa-11bb-22cc-33dd-444455556666"
WORKGROUP = f"arn:aws:redshift-serverless:us-east-1:{PROJECT_ACCOUNT}:workgroup/airline-bookings"
ETL_ROLE = f"arn:aws:iam::{PROJECT_ACCOUNT}:role/AirlineBookingPipeline-EtlRole378F0859-ABC"
ETL_SESSION = Principal.role_session(ETL_ROLE, "GlueJobRunnerSession", role_id="AROAETLROLEEXAMPLE")

ETL_ROLE_POLICY = Policy(
    "EtlRoleDefaultPolicy1A10231C",
    doc(
        {"Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"], "Effect": "Allow", "Resource": DATA_KEY},
        {
            "Action": ["s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*", "s3:PutObject", "s3:PutObjectLegalHold", "s3:PutObjectRetention", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"],
            "Effect": "Allow",
            "Resource": [RAW_BUCKET, f"{RAW_BUCKET}/quarantine/*", f"{RAW_BUCKET}/runs/*", f"{RAW_BUCKET}/staging/*"],
        },
        {"Action": ["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"], "Effect": "Allow", "Resource": WORKGROUP, "Sid": "RedshiftDataApiOnTheWarehouse"},
        {
            "Action": ["redshift-data:CancelStatement", "redshift-data:DescribeStatement", "redshift-data:GetStatementResult"],
            "Condition": {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}},
            "Effect": "Allow",
            "Resource": "*",
            "Sid": "RedshiftDataApiOwnStatements",
        },
    ),
)
RAW_BUCKET_POLICY = Policy(
    "StorageRawBucketPolicy171D5812",
    doc({"Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}, "Effect": "Deny", "Principal": {"AWS": "*"}, "Resource": [RAW_BUCKET, f"{RAW_BUCKET}/*"]}),
)
DATA_KEY_POLICY = Policy(
    "StorageDataKeyE15BA43B",
    doc(
        {"Action": "kms:*", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{PROJECT_ACCOUNT}:root"}, "Resource": "*"},
        {
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Condition": {"StringEquals": {"aws:SourceAccount": PROJECT_ACCOUNT}},
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Resource": "*",
            "Sid": "AllowCloudWatchAlarmsToPublish",
        },
    ),
)


def test_project_glue_role_data_api_own_statements():
    """Template: EtlRoleDefaultPolicy's RedshiftDataApiOwnStatements (Condition with ${aws:userid},
    reference_policies_variables.html): the job may describe its own statements only."""
    own = {"redshift-data:statement-owner-iam-userid": "AROAETLROLEEXAMPLE:GlueJobRunnerSession"}
    decision = evaluate(request("redshift-data:DescribeStatement", "*", ETL_SESSION, **own), [ETL_ROLE_POLICY])
    assert decision.allowed and decision.statements[0].sid == "RedshiftDataApiOwnStatements"
    someone_else = {"redshift-data:statement-owner-iam-userid": "AROASCHEMAHANDLER:schema-handler"}
    denied = evaluate(request("redshift-data:DescribeStatement", "*", ETL_SESSION, **someone_else), [ETL_ROLE_POLICY])
    assert not denied and "EtlRoleDefaultPolicy1A10231C" in denied.explanation
    assert evaluate(request("redshift-data:ExecuteStatement", WORKGROUP, ETL_SESSION), [ETL_ROLE_POLICY])
    assert not evaluate(request("redshift-data:ExecuteStatement", WORKGROUP.replace("airline-bookings", "other"), ETL_SESSION), [ETL_ROLE_POLICY])


def test_project_raw_bucket_tls_only_deny():
    """Template: the raw bucket policy's Deny s3:* when aws:SecureTransport is false (Bool
    operator); over TLS the Glue role's identity policy allows writing staging/."""
    staging = f"{RAW_BUCKET}/staging/run-1/part-0.parquet"
    tls = {"aws:SecureTransport": True}
    assert evaluate(request("s3:PutObject", staging, ETL_SESSION, **tls), [ETL_ROLE_POLICY], RAW_BUCKET_POLICY)
    plain = evaluate(request("s3:PutObject", staging, ETL_SESSION, **{"aws:SecureTransport": False}), [ETL_ROLE_POLICY], RAW_BUCKET_POLICY)
    assert plain.reason == "explicit-deny"
    assert "statement #0 of resource policy StorageRawBucketPolicy171D5812" in plain.explanation
    # Not granted: writing under raw/ (the job only reads it) is an implicit deny.
    raw = evaluate(request("s3:PutObject", f"{RAW_BUCKET}/raw/bookings/x.csv", ETL_SESSION, **tls), [ETL_ROLE_POLICY], RAW_BUCKET_POLICY)
    assert raw.reason == "implicit-deny" and "StorageRawBucketPolicy171D5812" in raw.explanation


def test_project_data_key_cloudwatch_alarms_source_account():
    """Template: the data key's AllowCloudWatchAlarmsToPublish (service principal with
    aws:SourceAccount, a KMS key policy)."""
    cloudwatch = Principal.service("cloudwatch.amazonaws.com")
    ok = evaluate(request("kms:GenerateDataKey", DATA_KEY, cloudwatch, **{"aws:SourceAccount": PROJECT_ACCOUNT}), [], DATA_KEY_POLICY, kms_key=True)
    assert ok.allowed and ok.statements[0].sid == "AllowCloudWatchAlarmsToPublish"
    assert not evaluate(request("kms:GenerateDataKey", DATA_KEY, cloudwatch, **{"aws:SourceAccount": "999999999999"}), [], DATA_KEY_POLICY, kms_key=True)
    assert not evaluate(request("kms:GenerateDataKey", DATA_KEY, cloudwatch), [], DATA_KEY_POLICY, kms_key=True)
    assert not evaluate(request("kms:Encrypt", DATA_KEY, cloudwatch, **{"aws:SourceAccount": PROJECT_ACCOUNT}), [], DATA_KEY_POLICY, kms_key=True)


def test_project_glue_role_decrypt_needs_the_key_policy_root_statement():
    """Template: the Glue role's kms:Decrypt on the data key works through the key policy's
    account statement; a key policy without it denies (the mutation issue 12 asks for)."""
    decrypt = request("kms:Decrypt", DATA_KEY, ETL_SESSION)
    assert evaluate(decrypt, [ETL_ROLE_POLICY], DATA_KEY_POLICY, kms_key=True)
    without_root = Policy("StorageDataKeyE15BA43B", doc(*DATA_KEY_POLICY.document["Statement"][1:]))
    denied = evaluate(decrypt, [ETL_ROLE_POLICY], without_root, kms_key=True)
    assert not denied and "key policy of " + DATA_KEY in denied.explanation
