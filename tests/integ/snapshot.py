"""The integ test's snapshot: tests/integ/integ_pipeline.py.snapshot/, integ-runner's convention.

    python -m tests.integ.snapshot        # (make integ-snapshot) rewrite it after a deliberate change

It is the cloud assembly of tests/integ/integ_pipeline.py as integ-runner keeps it: the templates,
asset manifests, manifest, integ.json and tree, without the asset files themselves (the test
disables the update workflow, for which integ-runner removes them too). Creation stack traces
(absolute temp paths, different on every synth) are dropped from the metadata files.
Templates are compared as integ-runner compares them (diffAssets off): asset hashes, which change
with every edit of the Glue script or the schema handler, are replaced by placeholders.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

INTEG_DIR = Path(__file__).resolve().parent
SNAPSHOT_DIR = INTEG_DIR / "integ_pipeline.py.snapshot"
KEPT = re.compile(r"^(manifest\.json|integ\.json|cdk\.out|tree\.json|.+\.(template|assets|metadata)\.json)$")


def synthesize(out_dir: Path) -> Path:
    from tests.integ.integ_pipeline import build

    build(outdir=str(out_dir))[0].synth()
    return out_dir


def _clean_metadata(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _clean_metadata(v) for k, v in document.items() if k != "trace"}
    if isinstance(document, list):
        return [_clean_metadata(v) for v in document
                if not (isinstance(v, dict) and v.get("type") == "aws:cdk:creationStack")]
    return document


def write_snapshot(assembly: Path, snapshot_dir: Path = SNAPSHOT_DIR) -> list[str]:
    """Copy the kept files of a synthesized assembly into the snapshot directory (replacing it)."""
    if snapshot_dir.exists():
        shutil.rmtree(snapshot_dir)
    snapshot_dir.mkdir(parents=True)
    written = []
    for path in sorted(assembly.iterdir()):
        if not path.is_file() or not KEPT.match(path.name):
            continue
        if path.name.endswith(".metadata.json"):
            cleaned = _clean_metadata(json.loads(path.read_text()))
            (snapshot_dir / path.name).write_text(json.dumps(cleaned, indent=2) + "\n")
        else:
            shutil.copyfile(path, snapshot_dir / path.name)
        written.append(path.name)
    return written


def stacks_of(assembly: Path) -> list[str]:
    """The stacks integ-runner compares: the test cases' stacks and their assertion stacks."""
    integ = json.loads((assembly / "integ.json").read_text())
    names: list[str] = []
    for case in integ["testCases"].values():
        names += case["stacks"] + [case["assertionStackName"]]
    return names


def asset_ids(assembly: Path, stack: str) -> list[str]:
    manifest_file = assembly / f"{stack}.assets.json"
    if not manifest_file.is_file():
        return []
    manifest = json.loads(manifest_file.read_text())
    return [*manifest.get("files", {}), *manifest.get("dockerImages", {})]


def canonical_template(assembly: Path, stack: str) -> Any:
    """The stack's template with its asset hashes replaced, as integ-runner's canonicalizeTemplate,
    and the assertion calls' `salt` (integ-tests sets it to the synth's Date.now(), so that every
    deploy runs the assertions again) replaced too."""
    text = (assembly / f"{stack}.template.json").read_text()
    for index, asset in enumerate(asset_ids(assembly, stack), start=1):
        text = text.replace(asset, f"Asset{index}")
    template = json.loads(text)
    for resource in template.get("Resources", {}).values():
        if str(resource.get("Type", "")).startswith("Custom::DeployAssert@") and "salt" in resource.get("Properties", {}):
            resource["Properties"]["salt"] = "<salt>"
    return template


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="integ-snapshot-") as tmp:
        written = write_snapshot(synthesize(Path(tmp) / "cdk.out"))
    print(f"wrote {SNAPSHOT_DIR.relative_to(INTEG_DIR.parents[1])}/: {', '.join(written)}")


if __name__ == "__main__":
    main()
