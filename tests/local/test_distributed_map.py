"""The Distributed Map patches (airline_local/aws/patches/stepfunctions_distributed_map.py), each
against the real moto server with a small definition: children are Pass/Fail states, so no Spark runs here."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from emulator_helpers import ROLE_ARN, wait_for_execution

from airline_local.aws.patches.stepfunctions_distributed_map import decimal_percentage, s3_listing_item, threshold_exceeded


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def distributed_map(bucket: str, child: dict, *, tolerated: float | int | None = None,
                    results_prefix: str = "results/", after: dict | None = None, page_size: int | None = None) -> dict:
    """A Distributed Map over s3://bucket/<$.prefix>, its children `child`, results to S3."""
    # page_size: MaxKeys, only to make the listing's pages small here (AWS takes Bucket and Prefix).
    listing = {"Bucket": bucket, "Prefix.$": "$.prefix", **({"MaxKeys": page_size} if page_size else {})}
    state = {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": listing},
        "ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "size.$": "$$.Map.Item.Value.Size",
                         "id.$": "States.Format('{}-{}', $$.Execution.Name, $$.Map.Item.Index)"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "Child", "States": {"Child": child}},
        "MaxConcurrency": 3,
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                         "Parameters": {"Bucket": bucket, "Prefix": results_prefix}},
        "ResultPath": "$.map",
    }
    if tolerated is not None:
        state["ToleratedFailurePercentage"] = tolerated
    states = {"Each": state}
    if after:
        state["Next"] = "After"
        states["After"] = after
    else:
        state["End"] = True
    return {"StartAt": "Each", "States": states}


def run(emulator, definition: dict, payload: dict) -> dict:
    sfn = emulator.client("stepfunctions")
    arn = sfn.create_state_machine(name=unique("dm"), definition=json.dumps(definition),
                                   roleArn=ROLE_ARN)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=unique("run"), input=json.dumps(payload))
    return wait_for_execution(sfn, execution["executionArn"], timeout=60)


@pytest.fixture()
def bucket(emulator):
    name = unique("dm")
    emulator.client("s3").create_bucket(Bucket=name)
    return name


def put(emulator, bucket: str, keys: list[str]) -> None:
    for key in keys:
        emulator.client("s3").put_object(Bucket=bucket, Key=key, Body=b"x" * len(key))


def read_json(emulator, bucket: str, key: str):
    return json.loads(emulator.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


ECHO = {"Type": "Pass", "End": True}


def test_item_reader_lists_every_page_with_aws_item_shape(emulator, bucket):
    # Five objects in pages of two: three ListObjectsV2 pages (moto read only the first).
    keys = [f"in/{i:04d}.csv" for i in range(5)] + ["other/x.csv"]
    put(emulator, bucket, keys)
    description = run(emulator, distributed_map(bucket, ECHO, page_size=2), {"prefix": "in/"})
    assert description["status"] == "SUCCEEDED", description
    output = json.loads(description["output"])
    manifest = read_json(emulator, bucket, output["map"]["ResultWriterDetails"]["Key"])
    [succeeded] = manifest["ResultFiles"]["SUCCEEDED"]
    entries = read_json(emulator, bucket, succeeded["Key"])
    inputs = [json.loads(e["Input"]) for e in entries]
    assert sorted(i["key"] for i in inputs) == keys[:-1]
    assert all(i["size"] == len(i["key"]) for i in inputs)
    # Each child's id is distinct (the backfill's execution ids of the Glue job runs).
    assert len({i["id"] for i in inputs}) == 5


def test_item_shape_matches_aws():
    from datetime import datetime, timezone

    item = s3_listing_item({"Key": "a.csv", "ETag": '"e"', "Size": 3, "StorageClass": "STANDARD",
                            "LastModified": datetime(2024, 1, 2, tzinfo=timezone.utc)})
    assert item == {"Etag": '"e"', "Key": "a.csv", "LastModified": 1704153600, "Size": 3, "StorageClass": "STANDARD"}


def test_empty_prefix_is_an_empty_map_run(emulator, bucket):
    description = run(emulator, distributed_map(bucket, ECHO), {"prefix": "nothing/"})
    assert description["status"] == "SUCCEEDED", description
    manifest = read_json(emulator, bucket, json.loads(description["output"])["map"]["ResultWriterDetails"]["Key"])
    assert manifest["ResultFiles"] == {"FAILED": [], "PENDING": [], "SUCCEEDED": []}


FAIL_BAD = {"Type": "Choice", "Choices": [{"Variable": "$.key", "StringMatches": "*bad*", "Next": "Fail"}],
            "Default": "Ok"}


def machine_with_failures(bucket: str, tolerated) -> dict:
    definition = distributed_map(bucket, FAIL_BAD, tolerated=tolerated)
    processor = definition["States"]["Each"]["ItemProcessor"]
    processor["States"].update({
        "Fail": {"Type": "Fail", "ErrorPath": "$.key", "CausePath": "States.Format('{} is bad', $.key)"},
        "Ok": {"Type": "Pass", "Parameters": {"key.$": "$.key", "ok": True}, "End": True},
    })
    processor["StartAt"] = "Child"
    return definition


def test_result_writer_writes_results_and_a_manifest_like_aws(emulator, bucket):
    put(emulator, bucket, ["in/a.csv", "in/bad1.csv", "in/b.csv"])
    description = run(emulator, machine_with_failures(bucket, 50), {"prefix": "in/"})
    assert description["status"] == "SUCCEEDED", description
    details = json.loads(description["output"])["map"]
    assert re.fullmatch(r"arn:aws:states:[^:]+:\d{12}:mapRun:.+", details["MapRunArn"])
    folder = f"results/{details['MapRunArn'].split(':')[-1]}/"
    assert details["ResultWriterDetails"] == {"Bucket": bucket, "Key": f"{folder}manifest.json"}
    manifest = read_json(emulator, bucket, details["ResultWriterDetails"]["Key"])
    assert manifest["DestinationBucket"] == bucket and manifest["MapRunArn"] == details["MapRunArn"]
    assert [f["Key"] for f in manifest["ResultFiles"]["SUCCEEDED"]] == [f"{folder}SUCCEEDED_0.json"]
    assert [f["Key"] for f in manifest["ResultFiles"]["FAILED"]] == [f"{folder}FAILED_0.json"]
    succeeded = read_json(emulator, bucket, f"{folder}SUCCEEDED_0.json")
    assert sorted(json.loads(e["Output"])["key"] for e in succeeded) == ["in/a.csv", "in/b.csv"]
    assert {e["Status"] for e in succeeded} == {"SUCCEEDED"}
    [failed] = read_json(emulator, bucket, f"{folder}FAILED_0.json")
    assert failed["Status"] == "FAILED" and json.loads(failed["Input"])["key"] == "in/bad1.csv"
    assert (failed["Error"], failed["Cause"]) == ("in/bad1.csv", "in/bad1.csv is bad")
    assert "Output" not in failed


def test_failures_past_the_tolerated_percentage_fail_the_map(emulator, bucket):
    put(emulator, bucket, ["in/a.csv", "in/bad1.csv", "in/bad2.csv"])
    description = run(emulator, machine_with_failures(bucket, 50), {"prefix": "in/"})  # 67 % > 50 %
    assert description["status"] == "FAILED"
    assert description["error"] == "States.ExceedToleratedFailureThreshold"
    assert "2 of 3" in description["cause"]
    # Absent threshold = none tolerated (AWS default): one failure fails the map.
    put(emulator, bucket, ["one/bad.csv", "one/a.csv"])
    description = run(emulator, machine_with_failures(bucket, None), {"prefix": "one/"})
    assert description["error"] == "States.ExceedToleratedFailureThreshold"


def test_threshold_rule():
    assert not threshold_exceeded(0, 10, 0, 0.0)
    assert threshold_exceeded(1, 10, 0, 0.0)
    assert not threshold_exceeded(1, 10, 10, 10.0)  # exactly 10 %: tolerated
    assert threshold_exceeded(2, 10, 10, 10.0)


def test_integer_tolerated_failure_percentage_parses_as_on_aws():
    assert decimal_percentage('{"ToleratedFailurePercentage": 10, "X": 1}') == '{"ToleratedFailurePercentage": 10.0, "X": 1}'
    assert decimal_percentage('{"ToleratedFailurePercentage":7.5}') == '{"ToleratedFailurePercentage":7.5}'


def test_jsonata_state_sums_the_results(emulator, bucket):
    put(emulator, bucket, ["in/a.csv", "in/bb.csv"])
    summarize = {"Type": "Pass", "QueryLanguage": "JSONata", "End": True,
                 "Output": "{% {'n': $count($states.input.items), 'size': $sum($states.input.items.size),"
                           " 'parsed': $parse('{\"a\": 1}').a, 'execution': $states.context.Execution.Name} %}"}
    definition = {"StartAt": "Items", "States": {
        "Items": {"Type": "Pass", "Parameters": {"items": [{"size": 2}, {"size": 3}]}, "Next": "Sum"},
        "Sum": summarize}}
    description = run(emulator, definition, {})
    assert description["status"] == "SUCCEEDED", description
    output = json.loads(description["output"])
    assert output == {"n": 2, "size": 5, "parsed": 1, "execution": description["name"]}
