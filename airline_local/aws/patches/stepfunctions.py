"""Step Functions (moto.stepfunctions.parser, the state machine interpreter): service integrations
and state data as on AWS, and tasks that call AWS as the state machine's role.

Targets moto 5.2.5. The Distributed Map and the 256 KiB payload limit have their own modules
(stepfunctions_distributed_map.py, stepfunctions_data_limit.py). Newer moto: getmoto/moto@0af643a5 (5.2.4.dev, the newest stored snapshot) still has the gap.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airline_local.aws.patches.glue_jobs import JOB_RUNS_ENDED
from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME, role_broker


SYNC_POLL_FALLBACK_SECONDS = 5.0


def support_glue_start_job_run_sync() -> None:
    """`arn:aws:states:::glue:startJobRun.sync` waits for the job run to end: SUCCEEDED -> the
    GetJobRun JobRun is the task output; FAILED / ERROR / TIMEOUT / STOPPED -> the task fails with
    States.TaskFailed and Cause = the JobRun as JSON (with its ErrorMessage). moto 5.2.5 dies in
    its callback clean-up (`'NoneType' object has no attribute 'interrupt_all'`: Glue has no
    task-token endpoint) and treats STOPPED as success.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-glue.html.
    Test: tests/local/test_moto_patches.py::test_start_job_run_sync_fails_the_task_with_the_job_run_as_cause.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_glue as glue_task,
    )

    glue_task._JOB_RUN_STATE_ABNORMAL_TERMINAL_VALUE.add("STOPPED")

    def _eval_integration_pattern(
        self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
    ) -> None:
        start_output = env.stack.pop()
        self.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()
        env.stack.append(start_output)  # the sync resolver reads JobName / JobRunId from it
        resolver = self._build_sync_resolver(
            env=env,
            resource_runtime_part=resource_runtime_part,
            normalised_parameters=normalised_parameters,
            state_credentials=state_credentials,
        )
        # moto's _eval_sync polls GetJobRun every 0.5 s (each poll a signed HTTP call through the IAM
        # check): most of the emulator's CPU while jobs run. Poll again when a local run ends instead;
        # the timeout only bounds a missed wake-up.
        outcome = None
        while env.is_running():
            seen = JOB_RUNS_ENDED.count
            outcome = resolver()
            if outcome:
                break
            JOB_RUNS_ENDED.wait_past(seen, timeout=SYNC_POLL_FALLBACK_SECONDS)
        env.stack.append(json_native(outcome))

    replace(glue_task.StateTaskServiceGlue, "_eval_integration_pattern", _eval_integration_pattern)


def name_aws_sdk_errors_like_aws() -> None:
    """aws-sdk integration errors are named `<Service>.<Exception>` with AWS's service spelling:
    `Glue.CrawlerRunningException`, `S3.NoSuchKeyException`. moto spells the service as in the
    ARN (`glue.CrawlerRunningException`), so a Catch written for AWS would not match.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html.
    Test: tests/local/test_moto_patches.py::test_busy_crawler_error_is_named_like_aws_in_step_functions.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    aws_sdk._SERVICE_ERROR_NAMES.setdefault("glue", "Glue")
    aws_sdk._SERVICE_ERROR_NAMES.setdefault("s3", "S3")


def json_native(value: Any) -> Any:
    """State data is JSON: timestamps from service responses become epoch milliseconds, the way
    Step Functions shows e.g. a Glue JobRun's StartedOn."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: json_native(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_native(item) for item in value]
    return value


def keep_task_results_json() -> None:
    """Task results are JSON documents in AWS; moto 5.2.5 keeps the boto3 response's datetime
    objects in the state data, and DescribeExecution then fails with a 500 (`Object of type
    datetime is not JSON serializable`) once they reach the execution's output.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html.
    Test: tests/local/test_moto_patches.py::test_s3_get_object_body_is_text_and_task_results_are_json.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    def _normalise_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(response, dict):  # in place: the caller keeps its reference
            for key, value in list(response.items()):
                response[key] = json_native(value)

    replace(StateTaskService, "_normalise_response", _normalise_response)


def return_aws_sdk_bodies_as_text() -> None:
    """aws-sdk integrations return streaming members as text: `s3:getObject` gives `Body` as a
    string the next state can read (e.g. `States.StringToJson($.Body)`). moto 5.2.5 leaves the
    botocore stream object in the state's output, and the next state fails with
    `'StreamingChecksumBody' object has no attribute 'strip'`.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html.
    Test: tests/local/test_moto_patches.py::test_s3_get_object_body_is_text_and_task_results_are_json.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from botocore.response import StreamingBody
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    original = aws_sdk.StateTaskServiceAwsSdk._eval_service_task

    def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        response = env.stack[-1]
        if isinstance(response, dict):
            for key, value in list(response.items()):
                if isinstance(value, StreamingBody):
                    response[key] = value.read().decode("utf-8", errors="replace")

    replace(aws_sdk.StateTaskServiceAwsSdk, "_eval_service_task", _eval_service_task)


_VARIABLE_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)((?:\.|\[).*)?$", re.DOTALL)


def read_workflow_variables_without_jsonata() -> None:
    """In a JSONPath state, `$name` (or `$name.path`) reads the workflow variable `name` set by an
    Assign, as on AWS: e.g. `States.MathAdd($polls, 1)`, or a Choice on `$polls`. moto 5.2.5
    sends every variable reference to a JSONata evaluator it does not ship, and the execution
    dies with `'NoneType' object is not callable`: FAILED without its failure path or email.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html.
    Test: tests/reliability/test_emulator_fixes.py::test_workflow_variables_are_read_in_jsonpath_states.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringVariableSample
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    original = StringVariableSample._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        match = _VARIABLE_REFERENCE.match(self.expression.strip())
        if match is None:  # a real JSONata expression: moto's own path
            return original(self, env)
        value = env.variable_store.get(match.group(1))
        if match.group(2):
            value = extract_json("$" + match.group(2), value)
        env.stack.append(copy.deepcopy(value))
        return None

    replace(StringVariableSample, "_eval_body", _eval_body)


def scale_wait_states() -> None:
    """Not an AWS behaviour: lets the local runtime shorten the definition's Wait states by
    `RUNTIME.wait_time_scale` (default 1.0 = exactly as written). The state machine polls a
    crawler that takes minutes on AWS and about a second locally.

    Targets moto 5.2.5. AWS: none (a local speed knob).
    Test: tests/local/test_moto_patches.py::test_wait_states_last_as_written_unless_scaled.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    original = WaitFunction._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        scale = RUNTIME.wait_time_scale
        if scale == 1.0:
            return original(self, env)
        deadline = time.monotonic() + max(0.0, self._get_wait_seconds(env=env) * scale)
        while env.is_running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if env.program_state_event.wait(remaining):  # woken early: don't spin
                time.sleep(min(remaining, 0.05))
        return None

    replace(WaitFunction, "_eval_body", _eval_body)


#: Step Functions' session name for the role it assumes is opaque (not documented): one fixed name
#: keeps one credential per role (only equality matters, for ${aws:userid}; docs/aws-notes.md).
STATE_MACHINE_SESSION_NAME = "StepFunctionsExecution"
STATES_SERVICE_PRINCIPAL = "states.amazonaws.com"

_task_clients: dict[tuple[str, str, str, str], Any] = {}
_task_clients_lock = threading.Lock()


def sign_state_machine_tasks_with_its_role() -> None:
    """A state machine's tasks call AWS as the state machine's role, which Step Functions assumes
    as states.amazonaws.com with aws:SourceArn = the state machine. moto 5.2.5 hands each task the
    role ARN and then signs every integration (aws-sdk, glue, sns, ...) with the fixed key `ak`. With
    the IAM check on, the tasks' clients carry the role session's credentials from the RoleBroker
    (the trust policy is checked first); with it off, moto's client, unchanged. moto imported
    `boto_client_for` into each integration module by name: every such module gets ours.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html.
    Test: tests/local/test_iam_pipeline.py::test_no_interpreter_module_keeps_motos_client_and_tasks_sign_as_the_role.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    import importlib
    import pkgutil

    from moto.stepfunctions.parser import asl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
    from moto.stepfunctions.parser.asl.utils import boto_client

    original_credentials = state_task.StateTask.__dict__["_eval_state_credentials"]
    moto_boto_client_for = getattr(boto_client.boto_client_for, "__wrapped_moto__", boto_client.boto_client_for)

    def _eval_state_credentials(self: Any, env: Any) -> Any:
        credentials = original_credentials(self, env)
        if self.credentials:  # a task's own Credentials.RoleArn (a role the state machine role assumes)
            return credentials
        machine_arn = env.states.context_object.context_object_data["StateMachine"]["Id"]
        return StateMachineCredentials(role_arn=credentials.role_arn, state_machine_arn=machine_arn)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        check = RUNTIME.iam_check
        if check is None:
            return moto_boto_client_for(region, service, state_credentials)
        return _state_machine_client(role_broker(check), region, service, state_credentials)

    boto_client_for.__wrapped_moto__ = moto_boto_client_for  # type: ignore[attr-defined]

    @dataclass
    class StateMachineCredentials(StateCredentials):
        state_machine_arn: str = ""

    replace(state_task.StateTask, "_eval_state_credentials", _eval_state_credentials)
    for module in state_machine_modules_using_moto_client(pkgutil, importlib, asl, moto_boto_client_for):
        replace(module, "boto_client_for", boto_client_for)
    replace(boto_client, "boto_client_for", boto_client_for)


def state_machine_modules_using_moto_client(pkgutil: Any, importlib: Any, package: Any, moto_client: Any) -> list[Any]:
    """Every module of moto's state machine interpreter holding moto's own `boto_client_for`."""
    found = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".", onerror=lambda _name: None):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # moto 5.2.5 ships modules it cannot import (static_analyser): never run
            continue
        if getattr(module, "boto_client_for", None) is moto_client:
            found.append(module)
    return found



def _only_state_machine_of(role_arn: str | None, region: str) -> str:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    account = (role_arn or "::::").split(":")[4]
    arns = [m.arn for m in stepfunctions_parser_backends[account][region].state_machines if m.roleArn == role_arn]
    if len(arns) != 1:
        raise RuntimeError(f"local IAM check: cannot tell which state machine calls as role {role_arn} "
                           f"(state machines with that role: {arns}); a task's own Credentials are not emulated")
    return arns[0]


def _state_machine_client(broker: Any, region: str, service: str, state_credentials: Any) -> Any:
    from botocore.config import Config
    import boto3

    role_arn = getattr(state_credentials, "role_arn", None)
    # moto's distributed Map S3 reader/writer build plain StateCredentials: the machine of that role.
    machine_arn = getattr(state_credentials, "state_machine_arn", "") or _only_state_machine_of(role_arn, region)
    account = machine_arn.split(":")[4]
    credentials = broker.credentials(role_arn, STATE_MACHINE_SESSION_NAME, STATES_SERVICE_PRINCIPAL,
                                     machine_arn, account)
    key = (service, region, RUNTIME.endpoint_url or "", credentials.access_key_id)
    client = _task_clients.get(key)
    if client is None:
        with _task_clients_lock:  # creating boto3 clients is not thread-safe; using them is
            client = _task_clients.get(key)
            if client is None:
                from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

                # moto's own client settings (no validation, one attempt), signed as the role session.
                client = boto3.session.Session().client(
                    service, region_name=region, endpoint_url=RUNTIME.endpoint_url,
                    config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                                  connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                                  read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS),
                    **credentials.as_client_kwargs())
                _task_clients[key] = client
    return client



PATCHES = (support_glue_start_job_run_sync, name_aws_sdk_errors_like_aws, return_aws_sdk_bodies_as_text,
           keep_task_results_json, scale_wait_states, read_workflow_variables_without_jsonata,
           sign_state_machine_tasks_with_its_role)
