"""Step Functions' 256 KiB payload limit (airline_local/aws/patches/stepfunctions_data_limit.py),
against the real moto server with tiny definitions: over 262,144 bytes a state's input, its output
or a task's result fails with States.DataLimitExceeded, which no Retry or Catch takes (not even States.ALL)."""

from __future__ import annotations

import json
import uuid

import pytest
from emulator_helpers import ROLE_ARN, history, wait_for_execution

from airline_local.aws.patches.stepfunctions_data_limit import PAYLOAD_LIMIT_BYTES, payload_bytes

CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
RETRY_ALL = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}]
CAUGHT = {"Type": "Pass", "End": True}


def run(emulator, definition: dict, payload: dict | None = None) -> tuple[dict, list[dict]]:
    sfn = emulator.client("stepfunctions")
    arn = sfn.create_state_machine(name=f"limit-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
                                   roleArn=ROLE_ARN)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="run", input=json.dumps(payload or {}))
    description = wait_for_execution(sfn, execution["executionArn"], timeout=60)
    return description, history(sfn, execution["executionArn"])


def value_of_json_size(size: int, char: str = "x") -> dict:
    """{"s": "xx..."} whose compact JSON text is `size` UTF-8 bytes."""
    width, overhead = len(char.encode("utf-8")), len('{"s":""}')
    assert (size - overhead) % width == 0
    return {"s": char * ((size - overhead) // width)}


def assert_failed_with_data_limit(description: dict, events: list[dict]) -> None:
    assert description["status"] == "FAILED", description
    assert description["error"] == "States.DataLimitExceeded", description
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert "Caught" not in entered  # terminal: the Catch on States.ALL did not take it


def test_size_is_utf8_bytes_of_compact_json():
    assert payload_bytes({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert payload_bytes({"k": "é"}) == len('{"k":"é"}'.encode("utf-8")) == 10  # not \u00e9
    assert payload_bytes(value_of_json_size(PAYLOAD_LIMIT_BYTES, "é")) == PAYLOAD_LIMIT_BYTES


def test_a_pass_output_over_the_limit_fails_the_execution_through_a_catch_on_states_all(emulator):
    # A Pass state has no Catch: its branch's Parallel has one, and a Retry, on States.ALL.
    big = value_of_json_size(PAYLOAD_LIMIT_BYTES + 1)
    branch = {"StartAt": "Big", "States": {"Big": {"Type": "Pass", "Result": big, "End": True}}}
    definition = {"StartAt": "Parallel", "States": {
        "Parallel": {"Type": "Parallel", "Branches": [branch], "Retry": RETRY_ALL, "Catch": CATCH_ALL, "End": True},
        "Caught": CAUGHT}}
    description, events = run(emulator, definition)
    assert_failed_with_data_limit(description, events)
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert entered.count("Big") == 1  # and no retry


@pytest.mark.parametrize("char", ["x", "é"])
def test_exactly_the_limit_passes(emulator, char):
    branch = {"StartAt": "Big", "States": {"Big": {"Type": "Pass", "Result": value_of_json_size(PAYLOAD_LIMIT_BYTES, char),
                                                   "End": True}}}
    definition = {"StartAt": "Branch", "States": {
        "Branch": {"Type": "Parallel", "Branches": [branch], "OutputPath": "$[0]", "End": True}}}
    description, _ = run(emulator, definition)
    assert description["status"] == "SUCCEEDED", description
    assert payload_bytes(json.loads(description["output"])) == PAYLOAD_LIMIT_BYTES


def test_a_task_result_over_the_limit_is_not_caught(emulator):
    # The backfill's old design: an S3 object's body read into the state by an aws-sdk task.
    bucket = f"limit-{uuid.uuid4().hex[:8]}"
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="big.json", Body=json.dumps(["x" * 1000] * 300).encode())
    read = {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
            "Parameters": {"Bucket": bucket, "Key": "big.json"}, "ResultSelector": {"body.$": "$.Body"},
            "ResultPath": "$.file", "Retry": RETRY_ALL, "Catch": CATCH_ALL, "Next": "Caught"}
    description, events = run(emulator, {"StartAt": "Read", "States": {"Read": read, "Caught": CAUGHT}})
    assert_failed_with_data_limit(description, events)
    assert any(e.get("taskFailedEventDetails", {}).get("error") == "States.DataLimitExceeded" for e in events)


def test_an_inline_map_iteration_over_the_limit_fails_the_map_by_that_name(emulator):
    # Each iteration's input (ItemSelector: ~300 KB) is over the limit; moto reported the
    # iteration's States.* error as States.Runtime, which the Map's Catch on States.ALL took.
    chunk = "x" * 10_000
    each = {"Type": "Map", "ItemsPath": "$.items",
            "ItemSelector": {"big.$": f"States.Array({', '.join(['$.chunk'] * 30)})"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Stop",
                              "States": {"Stop": {"Type": "Fail", "Error": "ChildFailed"}}},
            "Catch": CATCH_ALL, "Next": "Caught"}
    description, events = run(emulator, {"StartAt": "Each", "States": {"Each": each, "Caught": CAUGHT}},
                              {"items": [1], "chunk": chunk})
    assert_failed_with_data_limit(description, events)
