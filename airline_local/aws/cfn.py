"""Resolve CloudFormation intrinsic functions in a synthesized template to local names.

The local stack is built from the very template `cdk deploy` would deploy. CloudFormation fills in
references at deploy time; here every resource gets a deterministic local name instead (its
explicit name property when the template sets one, otherwise its logical id), and `Ref`,
`Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, `Fn::Select`, `Fn::Split` and `Fn::If` resolve against them.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account

# Where each resource type keeps its explicit name, and which service its ARN belongs to.
_NAME_PROPERTY: dict[str, tuple[str, ...]] = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::SNS::Topic": ("TopicName",),
    "AWS::SQS::Queue": ("QueueName",),
    "AWS::StepFunctions::StateMachine": ("StateMachineName",),
    "AWS::Glue::Job": ("Name",),
    "AWS::Glue::Crawler": ("Name",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::SecurityConfiguration": ("Name",),
    "AWS::IAM::Role": ("RoleName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::Events::Rule": ("Name",),
    "AWS::RedshiftServerless::Workgroup": ("WorkgroupName",),
    "AWS::RedshiftServerless::Namespace": ("NamespaceName",),
    "AWS::Lambda::Function": ("FunctionName",),
    "AWS::SecretsManager::Secret": ("Name",),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
}


_REDSHIFT_SERVERLESS = {
    "AWS::RedshiftServerless::Workgroup": "Workgroup",
    "AWS::RedshiftServerless::Namespace": "Namespace",
}


class UnresolvableError(ValueError):
    """A template value the local stack cannot give a local meaning to."""


@dataclass(frozen=True)
class Template:
    """A synthesized CloudFormation template with local names for its resources."""

    body: Mapping[str, Any]
    region: str = "us-east-1"
    stack_name: str = "local"

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return self.body.get("Resources", {})

    def resources_of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resource's properties with every intrinsic resolved."""
        return self.resolve(self.resources[logical_id].get("Properties", {}))

    # -- names -------------------------------------------------------------------------------

    def name_of(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise UnresolvableError(f"no resource {logical_id!r} in the template")
        keys = _NAME_PROPERTY.get(resource["Type"])
        if keys:
            value: Any = resource.get("Properties", {})
            for key in keys:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                return str(self.resolve(value))
        return _local_name(resource["Type"], logical_id)

    def ref(self, logical_id: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
            "AWS::NoValue": None,
        }
        if logical_id in pseudo:
            return pseudo[logical_id]  # type: ignore[return-value]
        if logical_id in self.body.get("Parameters", {}):
            default = self.body["Parameters"][logical_id].get("Default")
            if default is None:
                raise UnresolvableError(f"parameter {logical_id!r} has no default")
            return str(default)
        resource_type = self.resources.get(logical_id, {}).get("Type", "")
        name = self.name_of(logical_id)
        # Resources whose Ref is an ARN or URL rather than a name.
        if resource_type == "AWS::SNS::Topic":
            return self._arn("sns", name)
        if resource_type == "AWS::StepFunctions::StateMachine":
            return self._arn("states", f"stateMachine:{name}")
        if resource_type == "AWS::SQS::Queue":
            return f"http://sqs.{self.region}.localhost/{ACCOUNT_ID}/{name}"
        if resource_type == "AWS::SecretsManager::Secret":
            # Ref is the secret's ARN: its name and six characters Secrets Manager appends.
            suffix = hashlib.sha256(logical_id.encode()).hexdigest()[:6]
            return self._arn("secretsmanager", f"secret:{name}-{suffix}")
        return name

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource_type = self.resources.get(logical_id, {}).get("Type", "")
        name = self.name_of(logical_id)
        if attribute == "Arn":
            return self._resource_arn(resource_type, name)
        if attribute in ("Name", "TopicName", "QueueName", "StateMachineName"):
            return name
        if attribute == "TopicArn":
            return self._arn("sns", name)
        if attribute.endswith("WorkgroupName") or attribute.endswith("NamespaceName"):
            return name
        serverless = _REDSHIFT_SERVERLESS.get(resource_type)
        if serverless and attribute in (f"{serverless}.{serverless}Arn", f"{serverless}.{serverless}Id"):
            # Redshift Serverless ARNs name the workgroup/namespace by its id (a UUID), not its name.
            resource_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_type}/{logical_id}"))
            if attribute.endswith("Id"):
                return resource_id
            return self._arn("redshift-serverless", f"{serverless.lower()}/{resource_id}")
        return f"{name}.{attribute}"

    def _resource_arn(self, resource_type: str, name: str) -> str:
        service, _, kind = resource_type.removeprefix("AWS::").partition("::")
        if resource_type == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if resource_type == "AWS::IAM::Role":
            return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        if resource_type == "AWS::SNS::Topic":
            return self._arn("sns", name)
        if resource_type == "AWS::SQS::Queue":
            return self._arn("sqs", name)
        if resource_type == "AWS::StepFunctions::StateMachine":
            return self._arn("states", f"stateMachine:{name}")
        if resource_type == "AWS::Logs::LogGroup":
            return self._arn("logs", f"log-group:{name}:*")
        if resource_type == "AWS::Events::Rule":
            return self._arn("events", f"rule/{name}")
        if resource_type == "AWS::Lambda::Function":
            return self._arn("lambda", f"function:{name}")
        if resource_type == "AWS::CloudWatch::Alarm":
            return self._arn("cloudwatch", f"alarm:{name}")
        return self._arn(service.lower(), f"{kind.lower()}/{name}")

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{resource}"

    # -- intrinsics --------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not None]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.resolve(parts))
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, source = arg
                return str(self.resolve(source)).split(separator)
            if key == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self._condition(condition) else when_false)
            if key.startswith("Fn::") or key == "Condition":
                raise UnresolvableError(f"unsupported intrinsic {key}")
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not None}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        resolved_vars = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in resolved_vars:
                return str(resolved_vars[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _condition(self, name: str) -> bool:
        condition = self.body.get("Conditions", {}).get(name)
        if condition is None:
            raise UnresolvableError(f"unknown condition {name!r}")
        return bool(self._evaluate(condition))

    def _evaluate(self, expression: Any) -> Any:
        if isinstance(expression, Mapping) and len(expression) == 1:
            (key, arg), = expression.items()
            if key == "Fn::Equals":
                left, right = (self._evaluate(a) for a in arg)
                return left == right
            if key == "Fn::Not":
                return not self._evaluate(arg[0])
            if key == "Fn::And":
                return all(self._evaluate(a) for a in arg)
            if key == "Fn::Or":
                return any(self._evaluate(a) for a in arg)
            if key == "Condition":
                return self._condition(arg)
        return self.resolve(expression)


def _local_name(resource_type: str, logical_id: str) -> str:
    """A valid name for a resource the template leaves unnamed (S3 wants lower case)."""
    if resource_type == "AWS::S3::Bucket":
        return re.sub(r"[^a-z0-9-]", "-", logical_id.lower())[:63].strip("-")
    return logical_id[:64]
