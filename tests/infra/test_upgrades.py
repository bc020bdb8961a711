"""No upgrade replaces stored data: today's template, deployed over any release's, keeps every
stateful resource (same logical ID, same create-only properties), and the version tag that every
release changes is an in-place update.

The releases' templates are in tests/infra/releases/ (`make release-template` writes one when a
release is cut: tests/infra/release_template.py); today's app is synthesized the same way, as
`cdk deploy` does (account and region), so like is compared with like.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.infra.conftest import PROJECT_ROOT
from tests.infra.release_template import REGION, RELEASES, deployed_template
from tests.infra.replacements import STATEFUL_TYPES, replacements, resource_schema

RELEASE_FILES = sorted(RELEASES.glob("*.template.json"))
# (release, logical ID, property or None) -> why replacing it is accepted (also in CHANGELOG.md and
# docs/upgrading.md, with the migration path). Empty: no release replaces stored data so far.
ACCEPTED: dict[tuple[str, str, str | None], str] = {}
VERSION_TAG = "airline:version"


def _release(path: Path) -> str:
    return path.name.removesuffix(".template.json")


def _version() -> str:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


@pytest.fixture(scope="module")
def current(tmp_path_factory) -> dict:
    return deployed_template(tmp_path_factory.mktemp("upgrade-synth"))


@pytest.fixture(scope="module")
def first_release() -> dict:
    return json.loads(RELEASE_FILES[0].read_text(encoding="utf-8"))


def test_every_released_version_has_its_template():
    """A release cut without `make release-template` would leave the next upgrade unchecked."""
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}",
                          (PROJECT_ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert released, "CHANGELOG.md names no released version"
    missing = [v for v in released if not (RELEASES / f"{v}.template.json").is_file()]
    assert not missing, f"no tests/infra/releases/<version>.template.json for {missing}: run `make release-template` on the release's commit"


@pytest.mark.parametrize("release_file", RELEASE_FILES, ids=_release)
def test_upgrading_from_a_release_replaces_no_stateful_resource(release_file, current):
    release = _release(release_file)
    found = replacements(json.loads(release_file.read_text(encoding="utf-8")), current, REGION)
    unaccepted = [r for r in found if (release, r.logical_id, r.property) not in ACCEPTED]
    assert not unaccepted, (
        f"deploying this template over release {release} would replace stored data (or fail on a name "
        "the service cannot change):\n  "
        + "\n  ".join(map(str, unaccepted))
        + "\nKeep the construct id / property (or override the logical ID), or accept it in ACCEPTED "
          "with the reason and document the migration in docs/upgrading.md and CHANGELOG.md"
    )


def test_accepted_replacements_are_explained_and_still_happen(current):
    for (release, lid, prop), reason in ACCEPTED.items():
        assert len(reason) > 20, f"ACCEPTED[{release}, {lid}, {prop}] needs its reason"
        found = replacements(json.loads((RELEASES / f"{release}.template.json").read_text()), current, REGION)
        assert any((r.logical_id, r.property) == (lid, prop) for r in found), (
            f"ACCEPTED[{release}, {lid}, {prop}] no longer happens: remove it")


def test_the_check_sees_every_kind_of_stateful_resource(first_release):
    """The type list matches real resources (a misspelt type would exempt them silently)."""
    present = {r["Type"] for r in first_release["Resources"].values()}
    assert STATEFUL_TYPES <= present, f"stateful types the template does not have: {sorted(STATEFUL_TYPES - present)}"


# --- the check fails as it should: mutations of a real template -------------------------------

def _rename(template: dict, old: str, new: str) -> dict:
    """The template with a logical ID renamed everywhere, as a renamed construct id would."""
    return json.loads(json.dumps(template).replace(f'"{old}"', f'"{new}"'))


def _first_of_type(template: dict, resource_type: str) -> str:
    return next(lid for lid, r in template["Resources"].items() if r["Type"] == resource_type)


def test_a_renamed_bucket_construct_is_a_replacement(first_release, current):
    bucket = _first_of_type(first_release, "AWS::S3::Bucket")
    found = replacements(first_release, _rename(current, bucket, "StorageRenamedBucketB0B0B0B0"), REGION)
    assert [(r.logical_id, r.property) for r in found] == [(bucket, None)], found
    assert "logical ID no longer in the template" in str(found[0])


def test_a_named_bucket_is_a_replacement_naming_the_property(first_release, current):
    bucket = _first_of_type(first_release, "AWS::S3::Bucket")
    mutated = copy.deepcopy(current)
    mutated["Resources"][bucket]["Properties"]["BucketName"] = "airline-raw"
    found = replacements(first_release, mutated, REGION)
    assert [(r.logical_id, r.property) for r in found] == [(bucket, "/properties/BucketName")], found
    assert str(found[0]).endswith('/properties/BucketName (absent) -> "airline-raw"'), str(found[0])


def test_a_renamed_glue_database_fails_naming_the_property(first_release, current):
    database = _first_of_type(first_release, "AWS::Glue::Database")
    mutated = copy.deepcopy(current)
    mutated["Resources"][database]["Properties"]["DatabaseInput"]["Name"] = "airline_bookings_v2"
    found = replacements(first_release, mutated, REGION)
    assert [(r.logical_id, r.property) for r in found] == [(database, "/properties/DatabaseInput/Name")], found


def test_a_replaced_namespace_replaces_its_workgroup_too(first_release, current):
    namespace = _first_of_type(first_release, "AWS::RedshiftServerless::Namespace")
    workgroup = _first_of_type(first_release, "AWS::RedshiftServerless::Workgroup")
    found = replacements(first_release, _rename(current, namespace, "WarehouseNamespaceV2"), REGION)
    assert {r.logical_id for r in found} == {namespace, workgroup}, found


# --- the release tag ------------------------------------------------------------------------

def _tags(resource: dict) -> dict[str, str]:
    tags = resource.get("Properties", {}).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else dict(tags)


def test_every_taggable_stateful_resource_carries_the_release(current):
    untagged = [
        f"{lid} ({r['Type']})" for lid, r in current["Resources"].items()
        if r["Type"] in STATEFUL_TYPES and resource_schema(r["Type"], REGION).get("tagging", {}).get("taggable")
        and _tags(r).get(VERSION_TAG) != _version()
    ]
    assert not untagged, f"without {VERSION_TAG}={_version()}: {untagged}"


def test_the_release_tag_is_updated_in_place_wherever_it_is(current):
    """Every release changes the tag's value: a type whose tags are not updatable would be replaced."""
    tagged = {r["Type"] for r in current["Resources"].values() if VERSION_TAG in _tags(r)}
    assert "AWS::S3::Bucket" in tagged
    not_updatable = sorted(t for t in tagged if not resource_schema(t, REGION).get("tagging", {}).get("tagUpdatable"))
    assert not not_updatable, f"tags of these types cannot change in place: {not_updatable}"
