"""Helpers to write cdk-nag (AwsSolutions) acknowledgments next to the constructs they concern.

cdk-nag 3 reports one finding per wildcard, named after the CloudFormation reference it contains
(e.g. `AwsSolutions-IAM5[Resource::<RawBucketLogicalId.Arn>/staging/*]`), and each finding must be
acknowledged on its own with `Validations.of(construct).acknowledge(...)`.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Token, Validations
from constructs import IConstruct


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of a construct's resource (L2: its default child)."""
    element = construct if isinstance(construct, CfnElement) else construct.node.default_child
    stack = Stack.of(construct)
    return stack.resolve(stack.get_logical_id(element))


def arn_of(construct: IConstruct) -> str:
    """How cdk-nag writes `Fn::GetAtt [<construct>, Arn]` in a finding."""
    return f"<{logical_id(construct)}.Arn>"


def pseudo(scope: IConstruct, text: str) -> str:
    """`text` with {partition}, {region} and {account} written as cdk-nag writes them in a finding.

    An environment-agnostic stack renders them as pseudo parameters (`<AWS::Region>`); a stack
    with an account and region, as the CDK CLI synthesizes for `cdk deploy`, as literals. An
    acknowledgment written for one form does not match the other."""
    stack = Stack.of(scope)

    def written(value: str, parameter: str) -> str:
        return f"<AWS::{parameter}>" if Token.is_unresolved(value) else value

    return text.format(
        partition=written(stack.partition, "Partition"),
        region=written(stack.region, "Region"),
        account=written(stack.account, "AccountId"),
    )


def finding(rule: str, detail: str, reason: str) -> Acknowledgment:
    """An acknowledgment of one finding, e.g. finding("IAM5", "Action::s3:List*", "why")."""
    return Acknowledgment(id=f"AwsSolutions-{rule}[{detail}]", reason=reason)


def rule(rule_id: str, reason: str) -> Acknowledgment:
    """An acknowledgment of a rule that reports one finding per resource (e.g. "S1")."""
    return Acknowledgment(id=f"AwsSolutions-{rule_id}", reason=reason)


def acknowledge(construct: IConstruct, *acknowledgments: Acknowledgment) -> None:
    Validations.of(construct).acknowledge(*acknowledgments)


LAMBDA_BASIC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
