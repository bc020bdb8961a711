"""cfn-lint and cdk-nag (AwsSolutions) over the synthesized app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import STACK_NAME


def test_cfn_lint_reports_no_errors(cloud_assembly: Path):
    template = cloud_assembly / f"{STACK_NAME}.template.json"
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    assert cfn_lint.exists(), "cfn-lint is not installed in the venv (pip install -e .[dev])"
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--", str(template)], capture_output=True, text=True, timeout=300
    )
    # Exit code bits: 2 errors, 4 warnings, 8 informational; anything else is cfn-lint failing to run.
    assert result.returncode in (0, 4, 8, 12), result.stdout + result.stderr
    rules = [line.split(":")[5] for line in result.stdout.splitlines() if line.count(":") >= 6]
    assert not [r for r in rules if r.startswith("E")], result.stdout


def _acknowledgments(cloud_assembly: Path) -> dict[str, dict[str, str]]:
    metadata = json.loads((cloud_assembly / f"{STACK_NAME}.metadata.json").read_text())
    found: dict[str, dict[str, str]] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules":
                found.setdefault(path, {}).update(entry["data"])
    return found


def test_every_nag_acknowledgment_names_one_finding_with_a_specific_reason(cloud_assembly: Path):
    acknowledgments = _acknowledgments(cloud_assembly)
    assert acknowledgments, "the app acknowledges no cdk-nag findings at all?"
    reasons = []
    for path, rules in acknowledgments.items():
        for rule_id, reason in rules.items():
            if "AwsSolutions-" not in rule_id:
                continue  # CDK's own (e.g. CloudFormation-Validate::W3010 on the stack)
            assert len(reason) >= 40, f"{path} {rule_id}: reason too short to be specific: {reason!r}"
            reasons.append(reason)
    # Blanket reasons copied everywhere are not reasons.
    assert len(set(reasons)) >= len(reasons) // 3


def test_synth_with_cdk_nag_passes_and_an_unacknowledged_finding_fails_it(tmp_path):
    """The passing synth of the session fixture proves zero unacknowledged findings; this proves the
    check is live: the same app plus one non-compliant bucket fails, naming only that bucket."""
    from aws_cdk import aws_s3 as s3

    from stacks.pipeline_stack import create_app

    app = create_app(outdir=str(tmp_path))
    stack = app.node.find_child(STACK_NAME)
    s3.Bucket(stack, "NonCompliantBucket")
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    nag = next(p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions")
    paths = {c["constructPath"] for v in nag["violations"] for c in v["violatingConstructs"]}
    assert paths and all("/NonCompliantBucket/" in p for p in paths), paths
