"""What a running stack (`airline-ingest local up`) deploys by itself after a change: the Glue job's
files only (airline_local.pipeline._without_job_files), on the synthesized template's snapshot.
The whole loop (change the script, run on the running stack) was checked by hand: see the report
of issue 24."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from airline_local.pipeline import _without_job_files

SNAPSHOT = Path(__file__).resolve().parents[1] / "infra" / "snapshots" / "AirlineBookingPipeline.template.json"


def _job(body: dict) -> dict:
    [job] = [r for r in body["Resources"].values() if r["Type"] == "AWS::Glue::Job"]
    return job["Properties"]


def test_a_new_script_or_extra_py_files_asset_is_a_job_files_change_only():
    deployed = json.loads(SNAPSHOT.read_text())
    changed = copy.deepcopy(deployed)
    _job(changed)["Command"]["ScriptLocation"] = "s3://cdk-assets/0000.py"
    _job(changed)["DefaultArguments"]["--extra-py-files"] = "s3://cdk-assets/0000.zip"
    assert changed != deployed
    assert _without_job_files(changed) == _without_job_files(deployed)
    assert _job(changed)["Command"]["ScriptLocation"] == "s3://cdk-assets/0000.py"  # the input is untouched


def test_any_other_change_is_not():
    deployed = json.loads(SNAPSHOT.read_text())
    for edit in (lambda j: j["DefaultArguments"].update({"--quarantine_prefix": "elsewhere/"}),
                 lambda j: j.update({"Timeout": 1}),
                 lambda j: j["Command"].update({"PythonVersion": "2"})):
        changed = copy.deepcopy(deployed)
        edit(_job(changed))
        assert _without_job_files(changed) != _without_job_files(deployed)
