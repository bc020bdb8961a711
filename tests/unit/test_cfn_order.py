"""CloudFormation's creation order (airline_local.aws.cfn_order), on small hand-written templates."""

from __future__ import annotations

import pytest

from airline_local.aws.cfn_order import DependencyCycleError, created_before, creation_order, dependencies

BODY = {
    "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
    "Resources": {
        # Listed before what it depends on: the order must not be the template's.
        "Crawler": {"Type": "AWS::Glue::Crawler", "DependsOn": "Database", "Properties": {
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Targets": {"S3Targets": [{"Path": {"Fn::Sub": "s3://${Bucket}/${Stage}/${!Literal}"},
                                       "EventQueueArn": {"Fn::GetAtt": "Queue.Arn"}}]}}},
        "Policy": {"Type": "AWS::IAM::Policy", "Properties": {
            "Roles": [{"Ref": "Role"}],
            "PolicyDocument": {"Statement": [{"Resource": {"Fn::Sub": ["${Q}", {"Q": {"Fn::GetAtt": ["Queue", "Arn"]}}]}}]}}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"Description": {"Fn::Sub": "role in ${AWS::Region}"}}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::Sub": "${Dlq.Arn}"}}}},
        "Dlq": {"Type": "AWS::SQS::Queue"},
        "Database": {"Type": "AWS::Glue::Database", "Properties": {"Name": {"Ref": "AWS::StackName"}}},
        "Bucket": {"Type": "AWS::S3::Bucket"},
    },
}


def test_dependencies_are_refs_getatts_subs_and_depends_on_but_not_parameters_or_pseudo_parameters():
    found = dependencies(BODY)
    assert found["Crawler"] == {"Database", "Role", "Bucket", "Queue"}  # not Stage, Literal
    assert found["Policy"] == {"Role", "Queue"}  # Fn::Sub's own variables are read for references
    assert found["Queue"] == {"Dlq"}  # ${Dlq.Arn}
    assert found["Role"] == found["Database"] == found["Bucket"] == found["Dlq"] == frozenset()


def test_each_resource_comes_after_its_dependencies_and_otherwise_in_template_order():
    order = creation_order(BODY)
    assert order == ["Role", "Dlq", "Queue", "Policy", "Database", "Bucket", "Crawler"]
    for lid, needs in dependencies(BODY).items():
        assert all(order.index(n) < order.index(lid) for n in needs)


def test_only_transitive_dependencies_are_sure_to_exist_at_creation():
    # The policy is created before the crawler in creation_order, but nothing makes CloudFormation
    # wait for it: it is not among what exists for sure when the crawler is created.
    assert created_before(BODY, "Crawler") == {"Database", "Role", "Bucket", "Queue", "Dlq"}
    assert created_before(BODY, "Policy") == {"Role", "Queue", "Dlq"}
    assert created_before(BODY, "Dlq") == frozenset()


def test_a_cycle_and_a_depends_on_naming_no_resource_are_errors():
    cycle = {"Resources": {"A": {"Type": "T", "DependsOn": ["B"]}, "B": {"Type": "T", "Properties": {"X": {"Ref": "A"}}}}}
    with pytest.raises(DependencyCycleError, match="A, B"):
        creation_order(cycle)
    with pytest.raises(ValueError, match="A: DependsOn names no resource of the template: Nope"):
        dependencies({"Resources": {"A": {"Type": "T", "DependsOn": "Nope"}}})
