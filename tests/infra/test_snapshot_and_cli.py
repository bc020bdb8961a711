"""A snapshot of the template (asset hashes normalized), and `npx cdk synth` with the project's own
CLI as `cdk deploy` runs it, offline: the CLI runs `python3 app.py` (cdk.json), so app.py's own
set-up (the jsii banner silenced) is checked there too. The env-agnostic synthesis without
credentials is the session's fixture (tests/infra/conftest.py), compared with the snapshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import PROJECT_ROOT, STACK_NAME
from tests.infra.template_helpers import state_machine_definition

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / f"{STACK_NAME}.template.json"
_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def normalized(template: dict) -> str:
    """Template text with content hashes (assets, schema hash) replaced: stable across edits of the
    Glue script or handler code, sensitive to every resource and property."""
    return _HASH.sub("<hash>", json.dumps(template, indent=1, sort_keys=True)) + "\n"


def test_template_matches_the_snapshot(template_json):
    text = normalized(template_json)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.is_file(), f"no snapshot yet: run UPDATE_SNAPSHOTS=1 pytest {__file__}"
    assert text == SNAPSHOT.read_text(), (
        "the template changed; review the diff and refresh with UPDATE_SNAPSHOTS=1 pytest tests/infra"
    )


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # cdk.json runs python3
        HOME=str(tmp_path),  # no ~/.aws
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_VERSION_CHECK="1",
        CDK_DISABLE_CLI_TELEMETRY="true",
    )
    # Not set here: app.py silences jsii's end-of-life banner itself (checked below).
    env.pop("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", None)
    return env


def test_npx_cdk_synth_uses_the_project_cli_offline(tmp_path):
    cli = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "node_modules is missing: run `npm ci` in the project root first"
    assert shutil.which("npx"), "npx (Node.js) is not installed"
    pinned = json.loads((PROJECT_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    version = subprocess.run(["npx", "--no-install", "cdk", "--version"], cwd=PROJECT_ROOT, env=_offline_env(tmp_path),
                             capture_output=True, text=True, timeout=120)
    assert version.stdout.startswith(pinned), version.stdout + version.stderr
    out = tmp_path / "cdk.out"
    # As `cdk deploy` runs it: the CLI asks STS for the credentials' account (here the emulated
    # STS on 127.0.0.1) and hands the app CDK_DEFAULT_ACCOUNT/REGION (here us-west-1, a two-zone
    # region), so ARNs are literals and cdk-nag's acknowledgments must match them.
    from moto.server import ThreadedMotoServer

    from airline_local.warehouse.postgres import free_port

    port = free_port()
    sts = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    sts.start()
    env = _offline_env(tmp_path) | {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-west-1",
        "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{port}",
    }
    try:
        result = subprocess.run(
            ["npx", "--no-install", "cdk", "synth", "--no-notices", "--quiet", "--output", str(out),
             "-c", "crawlerPollIntervalSeconds=1"],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
    finally:
        sts.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No notification e-mail addresses are configured" in result.stdout + result.stderr
    assert "end-of-life" not in result.stderr  # app.py silenced the jsii banner
    template = json.loads((out / f"{STACK_NAME}.template.json").read_text())
    assert "arn:aws:glue:us-west-1:123456789012:crawler/" in json.dumps(template)  # moto's account
    # -c values override cdk.json (as strings) — local mode synthesizes with a 1 s poll.
    assert state_machine_definition(template)["States"]["Wait for crawler"]["Seconds"] == 1
