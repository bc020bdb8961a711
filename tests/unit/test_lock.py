"""requirements.lock (what `make install` installs) agrees with pyproject.toml.

The local runtime patches moto, botocore and pyarrow internals, so `make install` installs the
exact versions pinned in requirements.lock. These tests fail when someone edits pyproject.toml's
dependencies without refreshing the lock (`make lock`), or edits the lock by hand into something
pip-compile would not have written.

`packaging` is a dependency of pytest (and pinned in the lock), so it is always installed here.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"

# The local runtime reaches into these packages' internals (airline_local/): never unpinned.
PATCHED = ["moto", "botocore", "boto3", "pyarrow", "pyspark"]


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def _declared() -> list[Requirement]:
    project = _project()
    lines = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return [Requirement(line) for line in lines]


def _lock_lines() -> list[str]:
    lines = []
    for raw in LOCK.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in _lock_lines():
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one specifier ...
        assert spec.operator == "==" and "*" not in spec.version, f"not pinned: {line!r}"  # ... ==
        name = canonicalize_name(req.name)
        assert name not in pins, f"{req.name} pinned twice in {LOCK.name}"
        pins[name] = Version(spec.version)
    return pins


def test_lock_lines_are_plain_pins_without_options_or_locations():
    for line in _lock_lines():
        assert not line.startswith("-"), f"{LOCK.name} must hold pins only, found option {line!r}"
        assert "://" not in line and " @ " not in line, f"{LOCK.name} must not name a location: {line!r}"
        req = Requirement(line)
        assert not req.extras, f"extras are stripped in the lock: {line!r}"
        assert req.marker is None, f"the lock is for one platform, no markers: {line!r}"


def test_lock_does_not_pin_the_project_itself():
    # `make install` installs the project editable with --no-deps after the lock.
    assert canonicalize_name(_project()["name"]) not in _pins()


@pytest.mark.parametrize("req", _declared(), ids=str)
def test_every_declared_requirement_is_pinned_within_its_specifier(req: Requirement):
    pins = _pins()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is in pyproject.toml but not in {LOCK.name}: run `make lock`"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"{LOCK.name} pins {req.name}=={pins[name]}, outside pyproject.toml's {req}: run `make lock`"
    )


@pytest.mark.parametrize("name", PATCHED)
def test_packages_whose_internals_are_patched_are_pinned(name: str):
    assert canonicalize_name(name) in _pins(), f"{name} must be pinned in {LOCK.name}"


def test_lock_is_closed_under_the_installed_dependency_metadata():
    """Every package a pinned package requires (extras included) is pinned too.

    Reads the installed distributions' metadata, so it checks what this environment has; a package
    that is not installed here is skipped (its pin is still checked by the tests above).
    """
    pins = _pins()
    wanted: list[tuple[Requirement, frozenset[str]]] = [(r, frozenset(r.extras)) for r in _declared()]
    seen: set[tuple[str, frozenset[str]]] = set()
    missing: list[str] = []
    while wanted:
        req, extras = wanted.pop()
        name = canonicalize_name(req.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in pins:
            missing.append(str(req))
            continue
        try:
            requires = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            dep = Requirement(line)
            if dep.marker is not None and not any(
                dep.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            wanted.append((dep, frozenset(dep.extras)))
    assert not missing, f"required but not pinned in {LOCK.name} (run `make lock`): {sorted(missing)}"
