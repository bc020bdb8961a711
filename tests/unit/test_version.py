"""One release number everywhere: pyproject.toml's version is what `airline-ingest --version`
prints (the installed package's metadata) and the newest entry of CHANGELOG.md (the stack's
`airline:version` tag: tests/infra/test_upgrades.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from airline_local.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_version_option_prints_the_installed_release():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"airline-ingest {_pyproject_version()}\n", (
        f"{result.output!r}: the installed package's metadata is not pyproject.toml's version; "
        "run `make install` after changing the version"
    )


def test_changelog_starts_with_this_version():
    """Keep a Changelog: the newest entry is the version in pyproject.toml, dated when it is
    released and marked `Unreleased` while it is being prepared."""
    entries = re.findall(r"^## \[([^\]]+)\] - (\S+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert entries, "CHANGELOG.md has no `## [x.y.z] - YYYY-MM-DD` entry"
    version, date = entries[0]
    assert version == _pyproject_version(), f"CHANGELOG.md's newest entry is {version}, pyproject.toml says {_pyproject_version()}"
    assert date == "Unreleased" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", date), date
