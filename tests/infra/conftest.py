"""Shared fixtures of the infrastructure tests: ONE synthesis of the real app (with cdk-nag) per
test session, read back as a template; jsii starts once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# jsii prints an end-of-life banner on Node 20 unless the major version is listed here.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

STACK_NAME = "AirlineBookingPipeline"


@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory) -> Path:
    """cdk.out of the app as users synthesize it (cdk.json context, cdk-nag AwsSolutions on)."""
    from stacks.pipeline_stack import create_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    create_app(outdir=str(outdir)).synth()
    return outdir


@pytest.fixture(scope="session")
def template_json(cloud_assembly: Path) -> dict:
    return json.loads((cloud_assembly / f"{STACK_NAME}.template.json").read_text())


@pytest.fixture(scope="session")
def template(template_json: dict):
    from aws_cdk.assertions import Template

    return Template.from_json(template_json)
