"""The user's CI (.github/workflows/ci.yml) is a valid GitHub workflow that runs `make test` and the
project's `npx cdk synth`: checked offline against GitHub's workflow schema (SchemaStore's, vendored
from check-jsonschema: tests/infra/schemas/README.md)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib

import jsonschema
import pytest
import yaml

from tests.infra.conftest import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"
SCHEMA = PROJECT_ROOT / "tests" / "infra" / "schemas" / "github-workflow.json"
SCHEMA_SHA256 = "d10c9f4656e1bd5bc6727e9b35080e017dc167154726fca93da33c7a6bd1c4f3"


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans, as GitHub reads workflows: only true/false. PyYAML's YAML 1.1 would turn
    the `on:` key into True (and yes/no/on/off values into booleans)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def _load(text: str) -> dict:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256, (
        f"{SCHEMA} is not the vendored file: see tests/infra/schemas/README.md")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return _load(WORKFLOW.read_text(encoding="utf-8"))


def _errors(validator, document) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))]


def test_the_workflow_is_valid_against_githubs_schema(validator, workflow):
    assert "on" in workflow, "the `on:` key was read as a boolean: the loader is not YAML 1.2"
    assert not _errors(validator, workflow), "\n".join(_errors(validator, workflow))


@pytest.mark.parametrize("mutation", ["misspelt runs-on", "step with uses and run", "no trigger"])
def test_the_schema_check_catches_a_broken_workflow(validator, workflow, mutation):
    """The check can fail: each mutation is something GitHub refuses to run."""
    broken = copy.deepcopy(workflow)
    (job,) = broken["jobs"].values()
    if mutation == "misspelt runs-on":
        job["runs_on"] = job.pop("runs-on")
    elif mutation == "step with uses and run":
        job["steps"][0]["run"] = "echo both"
    else:
        del broken["on"]
    assert _errors(validator, broken), f"{mutation}: still valid"


def _runs(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def test_the_workflow_runs_the_tests_and_the_projects_cdk_synth(workflow):
    assert "make test" in _runs(workflow)
    assert "make synth" in _runs(workflow)
    assert _runs(workflow).index("make test") < _runs(workflow).index("make synth")
    # make synth is the project's own CDK CLI (node_modules, package-lock.json), not a global one.
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    synth_recipe = re.search(r"^synth:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert synth_recipe and "npx cdk synth" in synth_recipe.group(1), "Makefile's synth target no longer runs npx cdk synth"


def test_the_workflow_sets_up_the_python_the_project_requires(workflow):
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    versions = [step["with"]["python-version"] for job in workflow["jobs"].values() for step in job["steps"]
                if str(step.get("uses", "")).startswith("actions/setup-python")]
    assert versions == ["3.11"] and requires == ">=3.11,<3.12", (versions, requires)
