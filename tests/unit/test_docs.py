"""The README stays a front door, and no link of README.md or docs/*.md leads nowhere.

The README is read in five minutes: at most README_MAX_LINES lines, the rest in docs/. Every relative
link (file, and heading anchor where one is given) of README.md and docs/*.md must resolve, so that
moving a section cannot silently break the way to it.
"""
import json
import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`+[^`\n]*`+")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code blanked (links there are not links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else _INLINE_CODE.sub(lambda m: "x" * len(m.group()), line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = "".join(c for c in text.lower()
                   if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    text = "\n".join(prose(path.read_text(encoding="utf-8")))
    links = []
    for match in _LINK.finditer(text):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        links.append((text.count("\n", 0, match.start()) + 1, target))
    return links


def broken_links(path: Path) -> list[str]:
    broken = []
    for line, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{line}: ({target})"
        if not resolved.exists():
            broken.append(f"{where}: no file {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}")
        elif anchor and resolved.suffix == ".md" and unquote(anchor).lower() not in anchors(resolved):
            broken.append(f"{where}: no heading with anchor #{anchor} in {resolved.relative_to(ROOT)}")
    return broken


def test_the_readme_is_a_front_door_of_at_most_250_lines():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move the detail to a page of docs/ and link it")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_its_heading(document):
    assert broken_links(document) == []


def test_the_readme_links_every_page_of_docs():
    """A page the README does not link is a page a newcomer never finds."""
    linked = {(ROOT / unquote(target.partition("#")[0])).resolve()
              for _, target in relative_links(ROOT / "README.md")}
    assert [p.name for p in DOCUMENTS[1:] if p.resolve() not in linked] == []


def test_the_configuration_page_lists_every_context_key_of_cdk_json():
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    table = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = [key for key in context if not key.startswith("@")
               and not any(f"`{key}`" in row.split(" | ")[0] for row in rows)]
    assert missing == [], f"docs/configuration.md has no row for context key(s) {missing}"


# The checker itself, on a page built to break it: a link that must fail does.
def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Payload limit: `States.DataLimitExceeded` is terminal\n## Repeat\n## Repeat\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#payload-limit-statesdatalimitexceeded-is-terminal) [ok](other.md#repeat-1)\n"
                    "[self](#here)\n# Here\n`[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n"
                    "[gone](gone.md) [bad anchor](other.md#payload-limit) [web](https://example.com/x.md)\n")
    assert broken_links(page) == [
        "page.md:8: (gone.md): no file gone.md",
        "page.md:8: (other.md#payload-limit): no heading with anchor #payload-limit in other.md",
    ]
