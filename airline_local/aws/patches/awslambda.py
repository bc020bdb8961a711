"""The template's Lambda functions that a state machine invokes, run in this process.

A state machine's `arn:aws:states:::lambda:invoke` task calls Lambda's Invoke as the state
machine's role; moto 5.2.5 would then run the function's code in a Docker container. Locally the
deploy creates each such function in the emulator (so that the call, and its IAM check of
lambda:InvokeFunction, happen as on AWS) and registers its handler: the Python file of the cloud
assembly's asset (the code Lambda would run), loaded and called as the schema custom resource's
handler is (airline_local.custom_resources.function_handler), with an AWS client signing as the
function's execution role, function name as role session name (function_session_client), minted
per invocation by the IAM check in force (the operator's client when it is off). The handler
receives that client as its ``client`` argument; its module names the service in
``CLIENT_SERVICE``.

What Lambda does around the call, as the Invoke API reference says: the response payload is the
handler's return value as JSON; a handler that raises gives status 200 with
``X-Amz-Function-Error: Unhandled`` and the payload ``{"errorMessage", "errorType", "stackTrace"}``
(Step Functions then fails the task with error = errorType). Not emulated: the function's
timeout, memory and concurrency (docs/local-mode.md, "Differences from AWS").
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME

LOG = logging.getLogger(__name__)


class LocalFunctionError(RuntimeError):
    """A function a state machine invokes cannot run locally; names the function."""


@dataclass(frozen=True)
class LocalFunction:
    logical_id: str
    arn: str
    handler: Callable[..., Any]
    client: Callable[[], Any]  # a client signing as the function's role
    context: Callable[[], Any]  # a fresh Lambda context object per invocation

    def invoke(self, payload: bytes | str | None, response_headers: dict[str, str]) -> bytes:
        event = json.loads(payload or "{}")
        try:
            result = self.handler(event, self.context(), client=self.client())
        except Exception as error:  # Lambda reports an unhandled error in the payload
            LOG.warning("function %s failed: %s: %s", self.logical_id, type(error).__name__, error)
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorMessage": str(error), "errorType": type(error).__name__,
                               "requestId": str(uuid.uuid4()),
                               "stackTrace": traceback.format_tb(error.__traceback__)}).encode("utf-8")
        return json.dumps(result).encode("utf-8")


_FUNCTIONS: dict[str, LocalFunction] = {}  # function ARN -> its local runner (the last deploy's)
_LOCK = threading.Lock()


def registered(arn: str) -> LocalFunction | None:
    with _LOCK:
        return _FUNCTIONS.get(arn)


def invoked_functions(template: Any, state_machine_arns: Collection[str]) -> list[str]:
    """The Lambda functions these state machines of the template invoke (a definition names the
    function's ARN), in template order."""
    definitions = [json.dumps(template.properties(lid)) for lid in template.resources_of_type("AWS::StepFunctions::StateMachine")
                   if template.ref(lid) in state_machine_arns]
    return [lid for lid in template.resources_of_type("AWS::Lambda::Function")
            if any(template.get_att(lid, "Arn") in definition for definition in definitions)]


def deploy_function(assembly: Any, lid: str, clients: Callable[[str], Any]) -> str:
    """Create one function of the template in the emulator and register its handler; its ARN."""
    from airline_local.custom_resources import CustomResourceError, function_context, function_handler

    template = assembly.template
    try:
        handler = function_handler(assembly, lid)
    except CustomResourceError as error:
        raise LocalFunctionError(f"{lid}: a state machine invokes it, and it cannot run locally: {error}") from None
    service = getattr(handler, "__globals__", {}).get("CLIENT_SERVICE")  # the handler's module's
    if service is None or "client" not in inspect.signature(handler).parameters:
        raise LocalFunctionError(
            f"{lid}: its handler {template.properties(lid)['Handler']} must take a `client` argument and its "
            "module name that client's service in CLIENT_SERVICE, so that local mode can hand it credentials of its role")
    props = template.properties(lid)
    arn = clients("lambda").create_function(
        FunctionName=template.name_of(lid), Runtime=props["Runtime"], Role=props["Role"], Handler=props["Handler"],
        Code={"ZipFile": _EMPTY_ZIP}, Timeout=int(props.get("Timeout", 3)),
        MemorySize=int(props.get("MemorySize", 128)))["FunctionArn"]
    if arn != template.get_att(lid, "Arn"):
        raise LocalFunctionError(f"the emulator created {arn} for function {lid}, but the template's ARN is "
                                 f"{template.get_att(lid, 'Arn')}")
    with _LOCK:
        _FUNCTIONS[arn] = LocalFunction(lid, arn, handler, _role_client(template, lid, service, clients(service)),
                                        lambda: function_context(template, lid))
    return arn


def _role_client(template: Any, function: str, service: str, operator: Any) -> Callable[[], Any]:
    """The function's client, signing as its role through the IAM check in force at each call
    (a test may install another: LocalPipeline.check_iam_with); the operator's with the check off."""
    from airline_local.custom_resources import function_session_client

    def client() -> Any:
        check = RUNTIME.iam_check
        if check is None or check.role_broker is None:
            return operator
        return function_session_client(template, check.role_broker, lambda _service: operator)(function, service)

    return client


# The emulator stores the code it is given; the handler runs from the cloud assembly's asset.
_EMPTY_ZIP = bytes.fromhex("504b0506" + "00" * 18)


def run_registered_functions_in_process() -> None:
    """Lambda Invoke of a registered function runs its handler here (moto: Docker).

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html.
    Test: tests/e2e/test_local_backfill.py::test_the_summary_is_authorized_as_aws_would.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.awslambda.models import LambdaFunction


    original = LambdaFunction.__dict__["invoke"]

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        function = registered(self.function_arn)
        if function is None:
            return original(self, body, request_headers, response_headers)
        if request_headers.get("x-amz-invocation-type", "RequestResponse") != "RequestResponse":
            raise LocalFunctionError(f"{function.logical_id}: only synchronous (RequestResponse) invocations run locally")
        return function.invoke(body, response_headers)

    replace(LambdaFunction, "invoke", invoke)


PATCHES = (run_registered_functions_in_process,)
