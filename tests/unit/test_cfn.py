"""The template resolver gives every reference a local meaning, the way CloudFormation would."""

import pytest

from airline_local.aws.cfn import ACCOUNT_ID, Template, UnresolvableError

TEMPLATE = {
    "Parameters": {"BootstrapVersion": {"Type": "String", "Default": "/cdk-bootstrap/hnb659fds/version"}},
    "Conditions": {"IsServerless": {"Fn::Equals": ["serverless", "serverless"]}},
    "Resources": {
        "RawBucketA1B2": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Job": {"Type": "AWS::Glue::Job", "Properties": {"Name": {"Fn::Join": ["-", ["bookings", {"Ref": "AWS::Region"}]]}}},
        "Db": {"Type": "AWS::Glue::Database", "Properties": {"DatabaseInput": {"Name": "airline_raw"}}},
        "Flow": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
    },
}


@pytest.fixture
def template() -> Template:
    return Template(TEMPLATE, region="eu-west-1")


def test_unnamed_bucket_gets_a_valid_lowercase_name(template):
    assert template.ref("RawBucketA1B2") == "rawbucketa1b2"
    assert template.get_att("RawBucketA1B2", "Arn") == "arn:aws:s3:::rawbucketa1b2"


def test_explicit_name_properties_are_resolved(template):
    assert template.ref("Job") == "bookings-eu-west-1"
    assert template.ref("Db") == "airline_raw"


def test_refs_that_are_arns(template):
    assert template.ref("Topic") == f"arn:aws:sns:eu-west-1:{ACCOUNT_ID}:Topic"
    assert template.ref("Flow") == f"arn:aws:states:eu-west-1:{ACCOUNT_ID}:stateMachine:Flow"
    assert template.get_att("Role", "Arn") == f"arn:aws:iam::{ACCOUNT_ID}:role/Role"


def test_join_sub_select_split_and_if(template):
    value = {
        "Fn::Join": ["", ['{"Bucket":"', {"Ref": "RawBucketA1B2"}, '","Job":"', {"Ref": "Job"}, '"}']],
    }
    assert template.resolve(value) == '{"Bucket":"rawbucketa1b2","Job":"bookings-eu-west-1"}'
    assert template.resolve({"Fn::Sub": "s3://${RawBucketA1B2}/raw/${AWS::AccountId}/${!Literal}"}) == (
        f"s3://rawbucketa1b2/raw/{ACCOUNT_ID}/${{Literal}}"
    )
    assert template.resolve({"Fn::Sub": ["${X}-${Role.Arn}", {"X": {"Ref": "Db"}}]}) == (
        f"airline_raw-arn:aws:iam::{ACCOUNT_ID}:role/Role"
    )
    assert template.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert template.resolve({"Fn::If": ["IsServerless", "yes", "no"]}) == "yes"
    assert template.resolve([{"Ref": "AWS::NoValue"}, "kept"]) == ["kept"]


def test_unknown_references_fail_loudly(template):
    with pytest.raises(UnresolvableError, match="NoSuchThing"):
        template.ref("NoSuchThing")
    with pytest.raises(UnresolvableError, match="Fn::ImportValue"):
        template.resolve({"Fn::ImportValue": "shared"})


def test_arns_policies_are_written_against():
    """IAM policies name these resources by ARN, so the local ARN must have AWS's shape: a Lambda
    function is function:NAME, a secret's Ref is its ARN (name plus Secrets Manager's six-character
    suffix), a Redshift Serverless workgroup/namespace ARN carries its id (a UUID), not its name."""
    template = Template({"Resources": {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "handler"}},
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
        "Wg": {"Type": "AWS::RedshiftServerless::Workgroup", "Properties": {"WorkgroupName": "airline"}},
        "Ns": {"Type": "AWS::RedshiftServerless::Namespace", "Properties": {"NamespaceName": "airline"}},
    }})
    assert template.get_att("Fn", "Arn") == f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:handler"
    secret = template.ref("Secret")
    assert secret.startswith(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:Secret-") and len(secret.rsplit("-", 1)[1]) == 6
    assert template.ref("Secret") == secret  # deterministic
    workgroup_id = template.get_att("Wg", "Workgroup.WorkgroupId")
    assert len(workgroup_id) == 36 and workgroup_id.count("-") == 4
    assert template.get_att("Wg", "Workgroup.WorkgroupArn") == (
        f"arn:aws:redshift-serverless:us-east-1:{ACCOUNT_ID}:workgroup/{workgroup_id}"
    )
    assert template.get_att("Wg", "Workgroup.WorkgroupName") == "airline"
    assert template.get_att("Ns", "Namespace.NamespaceArn").startswith(
        f"arn:aws:redshift-serverless:us-east-1:{ACCOUNT_ID}:namespace/"
    )
    assert template.get_att("Ns", "Namespace.NamespaceArn") != template.get_att("Wg", "Workgroup.WorkgroupArn")
