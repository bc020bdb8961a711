"""Step Functions' payload limit in moto 5.2.5's interpreter, made to fail as on AWS. Registered
from patches/registry.py; tested in tests/local/test_data_limit.py; listed in docs/local-mode.md's
"Differences from AWS".

AWS (docs/aws-notes.md, "Payload limit"): a state's input, its output and a task's result are
each at most 256 KiB (262,144 bytes) of UTF-8 JSON; past that the state fails with
States.DataLimitExceeded, a *terminal* error: no Retry and no Catch takes it, not even States.ALL,
and the execution FAILS.

moto 5.2.5: it measures `json.dumps` with spaces and \\u escapes (a non-ASCII character counts 6
bytes, UTF-8 has 2-4), refuses exactly 262,144 bytes, never checks a state's input, lets a Retry
or Catch on States.ALL take the error, and inside a Parallel branch or an inline Map iteration
turns it (or any States.* error) into States.Runtime ("Custom Error Names MUST NOT begin with the
prefix 'States.'"), which the parent's Catch on States.ALL then takes.
"""

from __future__ import annotations

import json
from typing import Any

from airline_local.aws.patches.patching import replace

#: 256 KiB: the largest state input, output or task result Step Functions accepts, in bytes.
PAYLOAD_LIMIT_BYTES = 256 * 1024
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"


def payload_bytes(value: Any) -> int:
    """The size Step Functions limits: the UTF-8 bytes of the value as compact JSON."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def is_within_size_quota(value: Any) -> bool:
    return payload_bytes(value) <= PAYLOAD_LIMIT_BYTES


def measure_payloads_like_aws() -> None:
    """moto's size check (state output, task result) measures as AWS does, up to 262,144 bytes
    included. moto imported `is_within_size_quota` into each checking module by name.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html.
    Test: tests/local/test_data_limit.py::test_exactly_the_limit_passes.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser import quotas
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    for module in (quotas, state, state_task_lambda, state_task_service):
        replace(module, "is_within_size_quota", is_within_size_quota)


def check_state_input() -> None:
    """A state's input (after InputPath) over the limit fails the state, as its output does.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html.
    Test: tests/local/test_data_limit.py.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    original = CommonStateField.__dict__["_eval_state_input"]

    def _eval_state_input(self: Any, env: Any) -> None:
        original(self, env)
        self._verify_size_quota(env=env, value=env.stack[-1])

    replace(CommonStateField, "_eval_state_input", _eval_state_input)


def make_data_limit_terminal() -> None:
    """No Retry or Catch matches States.DataLimitExceeded (both match through ErrorEqualsDecl).

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html.
    Test: tests/local/test_data_limit.py::test_a_task_result_over_the_limit_is_not_caught.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

    original = ErrorEqualsDecl.__dict__["_eval_body"]

    def _eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        if getattr(error_name, "error_name", None) == DATA_LIMIT_EXCEEDED:
            env.stack.pop()
            env.stack.append(False)
            return
        original(self, env)

    replace(ErrorEqualsDecl, "_eval_body", _eval_body)


def error_name_of(error_name: str | None) -> Any:
    """The error name a failed branch or iteration passes up: a States.* name stays one."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    if isinstance(error_name, str) and error_name.startswith("States."):
        try:
            return StatesErrorName.from_name(error_name)
        except ValueError:  # a States.* name moto does not know: keep it, by name
            name = CustomErrorName(None)
            name.error_name = error_name
            return name
    return CustomErrorName(error_name)


def propagate_states_errors_from_branches() -> None:
    """A Parallel branch's or an inline Map iteration's States.* error reaches the parent state by
    its name (moto raised ValueError, reported as States.Runtime). Both modules build the name
    with `CustomErrorName(error_name=...)`: they get `error_name_of` instead.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html.
    Test: tests/local/test_data_limit.py::test_an_inline_map_iteration_over_the_limit_fails_the_map_by_that_name.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl

    def custom_error_name(error_name: str | None = None) -> Any:
        return error_name_of(error_name)

    for module in (iteration_worker, branches_decl):
        replace(module, "CustomErrorName", custom_error_name)


PATCHES = (measure_payloads_like_aws, check_state_input, make_data_limit_terminal,
           propagate_states_errors_from_branches)
