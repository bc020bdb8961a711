"""The synth cache shared by the test session's pipelines (airline_local.local_stack.synthesize):
one synthesis per input fingerprint, whoever asks, and a new one when an input changes. A stand-in
app counts its runs, so no CDK synth is needed."""

from __future__ import annotations

import json
from pathlib import Path

from airline_local.local_stack import SYNTH_CACHE_ENV, synthesize

STAND_IN_APP = """
import json, os, pathlib
out = pathlib.Path(os.environ["CDK_OUTDIR"])
out.mkdir(parents=True, exist_ok=True)
(out / "manifest.json").write_text(json.dumps({"env": [os.environ["CDK_DEFAULT_ACCOUNT"], os.environ["CDK_DEFAULT_REGION"]]}))
with open(pathlib.Path(__file__).with_name("runs.log"), "a") as runs:
    runs.write("run\\n")
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(STAND_IN_APP)
    (project / "cdk.json").write_text(json.dumps({"context": {"crawlerPollIntervalSeconds": 30}}))
    return project


def _runs(project: Path) -> int:
    log = project / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_pipelines_sharing_the_cache_synthesize_once_per_fingerprint(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.setenv(SYNTH_CACHE_ENV, str(tmp_path / "cache"))
    first = synthesize(tmp_path / "a" / "cdk.out", {"crawlerPollIntervalSeconds": 1}, project_dir=project)
    second = synthesize(tmp_path / "b" / "cdk.out", {"crawlerPollIntervalSeconds": 1}, project_dir=project)
    assert first == second and first.is_relative_to(tmp_path / "cache") and _runs(project) == 1
    # As `cdk deploy` does: with an account and region (the emulator's).
    assert json.loads((first / "manifest.json").read_text())["env"] == ["123456789012", "us-east-1"]
    other = synthesize(tmp_path / "c" / "cdk.out", {"crawlerPollIntervalSeconds": 2}, project_dir=project)
    assert other != first and _runs(project) == 2
    (project / "app.py").write_text(STAND_IN_APP + "\n# an edit\n")
    edited = synthesize(tmp_path / "d" / "cdk.out", {"crawlerPollIntervalSeconds": 1}, project_dir=project)
    assert edited != first and _runs(project) == 3


def test_without_the_cache_each_state_directory_keeps_its_own_synth(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.delenv(SYNTH_CACHE_ENV, raising=False)
    out = synthesize(tmp_path / "state" / "cdk.out", None, project_dir=project)
    assert out == tmp_path / "state" / "cdk.out"
    assert synthesize(tmp_path / "state" / "cdk.out", None, project_dir=project) == out and _runs(project) == 1
