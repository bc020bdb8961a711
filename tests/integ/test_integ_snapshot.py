"""The CDK integ test (tests/integ/integ_pipeline.py), checked offline: its app synthesizes
(environment-agnostic, cdk-nag off) into the templates of the committed snapshot
(integ_pipeline.py.snapshot/, integ-runner's convention), asset hashes aside as integ-runner's
own snapshot check does. Refresh the snapshot with `make integ-snapshot` after a deliberate
change of the stack. One synthesis for the module.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.integ import integ_pipeline, snapshot

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "bookings_sample.csv"


@pytest.fixture(scope="module")
def assembly(tmp_path_factory) -> Path:
    return snapshot.synthesize(tmp_path_factory.mktemp("integ") / "cdk.out")


def _refresh_hint() -> str:
    return "the integ app's templates changed; review the diff, then `make integ-snapshot`"


def test_the_snapshot_lists_the_same_stacks_and_test_case(assembly):
    assert snapshot.SNAPSHOT_DIR.is_dir(), f"no snapshot: run `make integ-snapshot` ({snapshot.SNAPSHOT_DIR})"
    actual = json.loads((assembly / "integ.json").read_text())
    expected = json.loads((snapshot.SNAPSHOT_DIR / "integ.json").read_text())
    assert actual == expected, _refresh_hint()
    assert snapshot.stacks_of(assembly) == [integ_pipeline.STACK_NAME,
                                            "AirlineBookingIntegTestDefaultTestDeployAssert53ACEF09"]
    case = actual["testCases"]["AirlineBookingIntegTest/DefaultTest"]
    assert case["stackUpdateWorkflow"] is False and case["diffAssets"] is False


@pytest.mark.parametrize("stack", [integ_pipeline.STACK_NAME, "AirlineBookingIntegTestDefaultTestDeployAssert53ACEF09"])
def test_templates_match_the_snapshot(assembly, stack):
    actual = snapshot.canonical_template(assembly, stack)
    expected = snapshot.canonical_template(snapshot.SNAPSHOT_DIR, stack)
    assert actual == expected, _refresh_hint()


def test_the_stack_is_environment_agnostic_and_separate_from_the_app(assembly):
    manifest = json.loads((assembly / "manifest.json").read_text())
    for name in snapshot.stacks_of(assembly):
        assert manifest["artifacts"][name]["environment"] == "aws://unknown-account/unknown-region"
    template = json.loads((assembly / f"{integ_pipeline.STACK_NAME}.template.json").read_text())
    kinds = {r["Type"]: r for r in template["Resources"].values()}
    assert kinds["AWS::RedshiftServerless::Workgroup"]["Properties"]["WorkgroupName"] == integ_pipeline.WAREHOUSE_NAME
    assert kinds["AWS::RedshiftServerless::Namespace"]["DeletionPolicy"] == "Delete"  # retainData=false
    assert "CDKMetadata" not in template["Resources"]  # as integ-runner synthesizes: no version reporting


def test_the_assertions_chain(assembly):
    """put the file -> wait for a SUCCEEDED execution -> COUNT(*) -> wait FINISHED -> expect the rows."""
    template = json.loads((assembly / "AirlineBookingIntegTestDefaultTestDeployAssert53ACEF09.template.json").read_text())
    calls = {r["Properties"].get("api"): (lid, r) for lid, r in template["Resources"].items()
             if r["Type"].startswith("Custom::DeployAssert@SdkCall")}
    assert set(calls) == {"putObject", "listExecutions", "executeStatement", "describeStatement", "getStatementResult"}
    put = calls["putObject"][1]["Properties"]
    assert json.loads(put["parameters"]["Key"]) == integ_pipeline.FIXTURE_KEY
    result = calls["getStatementResult"][1]["Properties"]
    assert json.loads(result["expected"]) == {"$ObjectLike": {"Records": [[{"longValue": integ_pipeline.FIXTURE_ROWS}]]}}
    # each call waits for the one before it
    order = ["putObject", "listExecutions", "executeStatement", "describeStatement", "getStatementResult"]
    for before, after in zip(order, order[1:]):
        depends = calls[after][1].get("DependsOn", [])
        assert any(d.startswith(calls[before][0][:20]) or d == calls[before][0] for d in depends) or \
            _waits_for(template, calls[after][0], calls[before][0]), (before, after, depends)


def _waits_for(template: dict, later: str, earlier: str) -> bool:
    """A waited-for call is a state machine + custom resource pair: accept a dependency on either."""
    depends = template["Resources"][later].get("DependsOn", [])
    prefix = earlier[: len(earlier) - 8]  # the logical id without its hash
    return any(d.startswith(prefix[:30]) for d in depends)


def test_the_fixture_is_five_new_bookings_with_the_sample_header():
    with integ_pipeline.FIXTURE.open(newline="") as f:
        rows = list(csv.reader(f))
    with SAMPLE.open(newline="") as f:
        header = next(csv.reader(f))
    assert rows[0] == header
    assert len(rows) - 1 == integ_pipeline.FIXTURE_ROWS == len({r[0] for r in rows[1:]})
