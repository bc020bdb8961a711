"""The template a release deploys, as `cdk deploy` synthesizes it, kept for the upgrade test.

    python tests/infra/release_template.py                      this checkout, at pyproject's version
    python tests/infra/release_template.py --project-dir DIR    another checkout (e.g. an old release's)

writes tests/infra/releases/<version>.template.json (`make release-template`, when a release is
cut: docs/upgrading.md). tests/infra/test_upgrades.py compares today's template with every file
there: a stateful resource that a release has must keep its logical ID and create-only properties.

The CDK CLI runs the app with CDK_DEFAULT_ACCOUNT/REGION from the profile, so the template has
literal ARNs and region-specific choices: synthesize with a fixed account and region, and the test
synthesizes today's app the same way. cdk-nag is off here: it validates the assembly and changes
no template (the infra tests run it), and 0.1.0's acknowledgments did not yet match an
environment's literal ARNs (fixed in c9c39d2), so that release fails validation with one.

Runs as a script, standalone (no import from tests/): the project directory's `stacks` package
comes first on sys.path, so an old checkout synthesizes its own code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ACCOUNT = "123456789012"  # moto's, the fake account tests may name (test_security)
REGION = "us-east-1"
STACK_NAME = "AirlineBookingPipeline"
RELEASES = Path(__file__).resolve().parent / "releases"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def deploy_environment() -> Iterator[None]:
    """CDK_DEFAULT_ACCOUNT/REGION as the CDK CLI sets them for the app, restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    os.environ.update(CDK_DEFAULT_ACCOUNT=ACCOUNT, CDK_DEFAULT_REGION=REGION)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# What the CLI's context lookups would have cached in cdk.context.json: 0.1.0 placed its subnets in
# the account's zones, looked up at synth (0.2.0 resolves them at deploy time, with no lookup).
LOOKUPS = {f"availability-zones:account={ACCOUNT}:region={REGION}": [f"{REGION}a", f"{REGION}b", f"{REGION}c"]}


def deployed_template(outdir: Path) -> dict:
    """The importable `stacks` package's app (cdk.json context), synthesized into outdir."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from stacks.pipeline_stack import create_app

    with deploy_environment():
        create_app(context=LOOKUPS, outdir=str(outdir), nag=False).synth()
    missing = json.loads((outdir / "manifest.json").read_text(encoding="utf-8")).get("missing")
    if missing:  # the CLI would look these up in the account and synthesize again
        raise RuntimeError(f"the app needs context lookups this synth does not provide: {[m['key'] for m in missing]}")
    return json.loads((outdir / f"{STACK_NAME}.template.json").read_text(encoding="utf-8"))


def project_version(project_dir: Path) -> str:
    return tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, default=PROJECT_ROOT,
                        help="the checkout to synthesize (default: this one)")
    parser.add_argument("--version", help="the release's number (default: the checkout's pyproject.toml)")
    args = parser.parse_args(argv)
    project_dir = args.project_dir.resolve()
    sys.path.insert(0, str(project_dir))
    version = args.version or project_version(project_dir)
    with tempfile.TemporaryDirectory(prefix="release-synth-") as outdir:
        template = deployed_template(Path(outdir))
    RELEASES.mkdir(exist_ok=True)
    target = RELEASES / f"{version}.template.json"
    target.write_text(json.dumps(template, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {target.relative_to(PROJECT_ROOT)} ({len(template['Resources'])} resources) from {project_dir}")
    return target


if __name__ == "__main__":
    main()
