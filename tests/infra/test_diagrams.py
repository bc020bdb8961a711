"""The state machine pictures in docs/architecture.md are generated from the synthesized template
(airline_local/diagram.py): the committed block must be what the current definitions generate."""

from __future__ import annotations

import re
import subprocess

from airline_local import diagram
from tests.infra.conftest import PROJECT_ROOT
from tests.infra.template_helpers import resources_of


def test_the_committed_diagrams_are_the_synthesized_definitions(template_json):
    committed = diagram.ARCHITECTURE_DOC.read_text(encoding="utf-8")
    expected = diagram.update_document(committed, diagram.diagrams_block(template_json))
    assert committed == expected, (
        "docs/architecture.md's state machine diagrams differ from the synthesized definitions: "
        "run `make diagrams` and commit the result")


def test_every_state_machine_and_every_state_is_drawn(template_json):
    block = diagram.diagrams_block(template_json)
    machines = diagram.state_machines(template_json)
    assert set(machines) == set(resources_of(template_json, "AWS::StepFunctions::StateMachine"))
    for logical_id, (_, definition) in machines.items():
        assert f"({logical_id})" in block or f"`{logical_id}`" in block
        chart = diagram.mermaid(definition)
        for name in _all_state_names(definition):
            assert re.search(r'["]' + re.escape(diagram._label(name)) + r'(<br/>|["])', chart), name


def _all_state_names(definition: dict) -> set[str]:
    names = set()
    for name, state in definition["States"].items():
        names.add(name)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        for nested in ([processor] if processor else []) + state.get("Branches", []):
            names |= _all_state_names(nested)
    return names


DISTRIBUTED = {
    "StartAt": "List",
    "States": {
        "List": {"Type": "Pass", "Next": "Each file"},
        "Each file": {
            "Type": "Map", "Next": "Done?",
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Run job",
                "States": {"Run job": {"Type": "Task", "Resource": "arn:aws:states:::glue:startJobRun.sync",
                                       "End": True,
                                       "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Note failure"}]},
                           "Note failure": {"Type": "Pass", "End": True}},
            },
            "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Too many failed"}],
        },
        "Done?": {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.failed", "IsPresent": True},
                     {"Variable": "$.failed", "NumericGreaterThan": 0}], "Next": "Too many failed"}],
            "Default": "Ok"},
        "Too many failed": {"Type": "Fail", "Error": "E"},
        "Ok": {"Type": "Succeed"},
    },
}


def test_a_distributed_map_is_a_subgraph_of_its_item_processor():
    chart = diagram.mermaid(DISTRIBUTED)
    assert chart == diagram.mermaid(DISTRIBUTED)  # deterministic
    assert 'subgraph s1["Each file<br/><small>Map (distributed)</small>"]' in chart
    inner = chart.split("subgraph s1", 1)[1].split("\n  end\n", 1)[0]
    assert "Run job<br/><small>glue:startJobRun.sync</small>" in inner and "Note failure" in inner
    assert 's1 -.->|"catch States.ExceedToleratedFailureThreshold"|' in chart
    assert '|"$.failed present and $.failed #gt; 0"|' in chart
    assert '|"otherwise"|' in chart


def test_nested_conditions_keep_their_grouping():
    either = {"Or": [{"Variable": "$.s", "StringEquals": "RUNNING"}, {"Variable": "$.s", "StringEquals": "STOPPING"}]}
    text = diagram.condition_text({"And": [either, {"Variable": "$polls", "NumericLessThan": 60}]})
    assert text == '($.s == "RUNNING" or $.s == "STOPPING") and $polls < 60'
    assert diagram.condition_text({"Not": {"Variable": "$.x", "IsNull": True}}) == "not ($.x null)"
    assert diagram.condition_text({"Variable": "$.a", "NumericGreaterThanPath": "$.b"}) == "$.a > $.b"


def test_check_mode_fails_on_a_stale_document(tmp_path, cloud_assembly, monkeypatch):
    template = cloud_assembly / diagram.STACK_TEMPLATE
    stale = tmp_path / "architecture.md"
    stale.write_text(f"# x\n\n{diagram.BEGIN}\nold picture\n{diagram.END}\n", encoding="utf-8")
    monkeypatch.setattr(diagram, "ARCHITECTURE_DOC", stale)
    assert diagram.main(["--template", str(template), "--check"]) == 1
    assert diagram.main(["--template", str(template)]) == 0
    assert "old picture" not in stale.read_text() and "```mermaid" in stale.read_text()
    assert diagram.main(["--template", str(template), "--check"]) == 0


def test_make_diagrams_runs_the_generator():
    dry = subprocess.run(["make", "-n", "diagrams"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert "-m airline_local.diagram" in dry.stdout
