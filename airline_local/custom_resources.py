"""The stack's Provider-framework custom resources, created locally the way CloudFormation would.

A custom resource whose ServiceToken is a CDK Provider framework's onEvent function (handler
``framework.onEvent``) is created by the user functions that framework wraps (named in its
environment: ``USER_ON_EVENT_FUNCTION_ARN``, ``USER_IS_COMPLETE_FUNCTION_ARN``): onEvent with
CloudFormation's Create request, then isComplete with that request merged with onEvent's result,
again and again until it answers ``IsComplete`` (the framework's waiter state machine), and a handler
that raises fails the resource, so the deploy, with the handler's message (the framework reports it
as the FAILED reason). Locally each user function's handler, the Python file of the cloud
assembly's asset (the code Lambda would run), runs in this process; its AWS client signs as the
function's execution role with the function's name as role session name, as Lambda's credentials do
(docs/aws-notes.md, "Schema custom resource"), minted by the IAM check's role broker. With the IAM
check off the client is the emulator's own (nothing is checked then).

Each local deploy sends Create, also on a state directory deployed before (its warehouse persists):
where CloudFormation would send Update, the schema resource's handler does the same thing for both
(apply the pending migrations, then the grants), so an existing local warehouse is migrated as
`cdk deploy` migrates one on AWS.

The handler receives its client as the ``client`` argument (stacks/schema_handler/handler.py); the
AWS service of that client comes from :data:`HANDLER_SERVICES` by resource type. A Provider resource
of another type is an error naming it: the local deploy would otherwise silently skip it.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from airline_local.aws.cfn import Template

__all__ = ["CustomResourceError", "CreatedResource", "HANDLER_SERVICES", "ProviderResource", "function_context",
           "function_handler", "function_session_client", "provider_resources", "run_custom_resources"]

#: The AWS service whose client each local custom resource's handler takes as ``client``.
HANDLER_SERVICES: Mapping[str, str] = {"Custom::RedshiftSchema": "redshift-data"}
LAMBDA_SERVICE_PRINCIPAL = "lambda.amazonaws.com"
# The waiter polls isComplete every query interval (10 s in the stack); locally the batch takes
# milliseconds: poll fast, backing off, for at most the framework's total timeout.
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.25
DEFAULT_TIMEOUT_SECONDS = 30 * 60

FunctionClient = Callable[[str, str], Any]  # (function logical id, service) -> boto3 client


class CustomResourceError(RuntimeError):
    """A custom resource failed to create (CloudFormation's CREATE_FAILED); names the resource and
    carries the handler's error."""


@dataclass(frozen=True)
class ProviderResource:
    logical_id: str
    resource_type: str
    on_event: str  # the user onEvent function's logical id
    is_complete: str | None  # the user isComplete function's logical id


@dataclass(frozen=True)
class CreatedResource:
    logical_id: str
    physical_id: str
    data: Mapping[str, Any]
    is_complete_calls: int
    seconds: float


def provider_resources(template: Template) -> list[ProviderResource]:
    """The custom resources served by a Provider framework, in template order."""
    found = []
    for lid, resource in template.resources.items():
        kind = str(resource.get("Type", ""))
        if not (kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource"):
            continue
        framework = _function_of(template, resource.get("Properties", {}).get("ServiceToken"))
        if framework is None:
            continue
        props = template.resources[framework].get("Properties", {})
        variables = props.get("Environment", {}).get("Variables", {})
        if props.get("Handler") != "framework.onEvent" or "USER_ON_EVENT_FUNCTION_ARN" not in variables:
            continue  # a provider of its own (CDK's singleton handlers): not the Provider framework
        on_event = _function_of(template, variables["USER_ON_EVENT_FUNCTION_ARN"])
        if on_event is None:
            raise CustomResourceError(f"{lid}: the Provider framework's onEvent names no function of the template")
        found.append(ProviderResource(lid, kind, on_event,
                                      _function_of(template, variables.get("USER_IS_COMPLETE_FUNCTION_ARN"))))
    return found


def _function_of(template: Template, reference: Any) -> str | None:
    """The logical id of the Lambda function a ``Fn::GetAtt [lid, Arn]`` (or ``Ref``) names."""
    if isinstance(reference, Mapping):
        if "Fn::GetAtt" in reference:
            target = reference["Fn::GetAtt"]
            lid = target[0] if isinstance(target, list) else str(target).split(".", 1)[0]
        else:
            lid = reference.get("Ref")
        if lid in template.resources_of_type("AWS::Lambda::Function"):
            return str(lid)
    return None


def function_session_client(template: Template, role_broker: Any, operator_client: Callable[[str], Any]) -> FunctionClient:
    """``(function, service) -> client`` signing as the function's execution role, session = the
    function's name (Lambda's); the operator's client when the IAM check is off (no broker)."""
    # The operator's clients come from boto3's default session, which the deploy uses in its own
    # thread meanwhile: make them here, in the caller's thread (creating clients is not thread-safe).
    operator = {service: operator_client(service) for service in set(HANDLER_SERVICES.values())} \
        if role_broker is None else {}

    def client(function: str, service: str) -> Any:
        if role_broker is None:
            return operator[service]
        role = template.properties(function)["Role"]
        return role_broker.client(service, role, template.name_of(function), LAMBDA_SERVICE_PRINCIPAL)

    return client


def run_custom_resources(assembly: Any, function_client: FunctionClient, *,
                         timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[CreatedResource]:
    """Create each Provider-framework custom resource of ``assembly`` (a local_stack.CloudAssembly)
    as CloudFormation's Create does; raises :class:`CustomResourceError` on the first failure."""
    template = assembly.template
    created = []
    for resource in provider_resources(template):
        service = HANDLER_SERVICES.get(resource.resource_type)
        if service is None:
            raise CustomResourceError(
                f"{resource.logical_id} ({resource.resource_type}): a Provider-framework custom resource the local "
                f"deploy cannot run: add the AWS service its handler calls to HANDLER_SERVICES "
                f"(airline_local/custom_resources.py) or give it a local stand-in")
        created.append(_create(assembly, resource, service, function_client, timeout))
    return created


def _create(assembly: Any, resource: ProviderResource, service: str, function_client: FunctionClient,
            timeout: float) -> CreatedResource:
    template: Template = assembly.template
    started = time.monotonic()
    properties = _as_cloudformation_sends(template.properties(resource.logical_id))
    request = {
        "RequestType": "Create",
        "ServiceToken": properties.get("ServiceToken"),
        "ResponseURL": "...",  # the framework answers CloudFormation itself; its handlers never see the URL
        "StackId": template.ref("AWS::StackId"),
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": resource.logical_id,
        "ResourceType": resource.resource_type,
        "ResourceProperties": properties,
    }
    result = _invoke(assembly, resource, resource.on_event, service, function_client, request) or {}
    event = {**request, **result,
             "PhysicalResourceId": result.get("PhysicalResourceId") or request["RequestId"]}
    data = dict(result.get("Data") or {})
    calls = 0
    if resource.is_complete is not None:
        pause = FIRST_POLL_SECONDS
        while True:
            calls += 1
            answer = _invoke(assembly, resource, resource.is_complete, service, function_client, event) or {}
            if answer.get("IsComplete"):
                data.update(answer.get("Data") or {})
                break
            if answer.get("Data"):  # the framework refuses it: its waiter calls again with onEvent's event
                raise CustomResourceError(f"{resource.logical_id} ({resource.resource_type}) CREATE_FAILED: "
                                          '"Data" is not allowed if "IsComplete" is "False"')
            if time.monotonic() - started > timeout:
                raise CustomResourceError(f"{resource.logical_id} ({resource.resource_type}) CREATE_FAILED: "
                                          f"not complete after {timeout:.0f} s (the Provider framework's total timeout)")
            time.sleep(pause)
            pause = min(pause * 2, MAX_POLL_SECONDS)
    return CreatedResource(resource.logical_id, str(event["PhysicalResourceId"]), data, calls,
                           round(time.monotonic() - started, 3))


def _invoke(assembly: Any, resource: ProviderResource, function: str, service: str,
            function_client: FunctionClient, event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    template: Template = assembly.template
    handler = function_handler(assembly, function)
    if "client" not in inspect.signature(handler).parameters:
        raise CustomResourceError(f"{resource.logical_id}: the handler of {function} takes no `client` argument: "
                                  "the local deploy cannot hand it credentials of its role")
    name = template.name_of(function)
    context = function_context(template, function)
    try:
        client = function_client(function, service)
        return handler(dict(event), context, client=client)
    except Exception as error:  # the Provider framework reports any handler error as FAILED
        raise CustomResourceError(
            f"{resource.logical_id} ({resource.resource_type}) CREATE_FAILED: {function} ({name}) "
            f"failed: {type(error).__name__}: {error}") from error


_MODULES: dict[Path, ModuleType] = {}


def function_context(template: Template, function: str) -> Any:
    """The context object Lambda hands a handler (the fields a handler may read)."""
    name = template.name_of(function)
    return SimpleNamespace(function_name=name, function_version="$LATEST",
                           invoked_function_arn=template.get_att(function, "Arn"),
                           aws_request_id=str(uuid.uuid4()), log_stream_name=f"local/{name}",
                           get_remaining_time_in_millis=lambda: 60_000)


def function_handler(assembly: Any, function: str) -> Callable[..., Any]:
    """The Python handler of a function: ``module.attr`` of its Handler, from its code asset."""
    template: Template = assembly.template
    props = template.properties(function)
    runtime = str(props.get("Runtime", ""))
    if not runtime.startswith("python"):
        raise CustomResourceError(f"{function}: runtime {runtime or '?'} cannot run locally (Python handlers only)")
    code = props.get("Code", {})
    if "S3Key" not in code:
        raise CustomResourceError(f"{function}: its code is not a file asset of the cloud assembly")
    directory = assembly.asset_path(f"s3://{code.get('S3Bucket', '')}/{code['S3Key']}")
    module_name, _, attribute = str(props["Handler"]).rpartition(".")
    path = Path(directory) / f"{module_name.replace('.', '/')}.py"
    if not path.is_file():
        raise CustomResourceError(f"{function}: handler {props['Handler']} has no file {path}")
    module = _MODULES.get(path)
    if module is None:
        spec = importlib.util.spec_from_file_location(f"airline_local_function_{function}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Registered before it runs, as Lambda's import does: dataclasses look their module up there.
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _MODULES[path] = module
    return getattr(module, attribute)


def _as_cloudformation_sends(value: Any) -> Any:
    """Properties as CloudFormation hands them to a custom resource: every scalar a string."""
    if isinstance(value, Mapping):
        return {k: _as_cloudformation_sends(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_cloudformation_sends(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value
