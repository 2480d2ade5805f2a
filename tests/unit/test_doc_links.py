"""Every pointer to a page resolves: relative Markdown links (and their #anchors) in every tracked
Markdown file, and every `docs/...` or `*.md` mention in the Markdown, in the JSON Schemas'
descriptions (what an editor shows on hover) and in the comments of the example's release and
environment files (what a release author copies). A page that moved or never existed, such as a
`DESIGN.md` the repository does not ship, fails here rather than in a reader's editor."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title"), not images
MENTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md(?!\w)|docs/[\w./-]*[\w/])(#[\w-]+)?")
EXTERNAL = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "--", *patterns], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:  # not a git checkout (an sdist): walk the tree instead
        return sorted(p for pattern in patterns for p in ROOT.glob(pattern) if ".venv" not in p.parts)
    return sorted(ROOT / name for name in listed.stdout.split("\0") if name)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def prose_lines(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks (``` or longer fences, closed by a fence at
    least as long)."""
    fence = ""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        opening = re.match(r"\s*(`{3,}|~{3,})", line)
        if opening and not fence:
            fence = opening.group(1)
        elif opening and opening.group(1).startswith(fence) and not line.strip().strip(fence[0]):
            fence = ""
        elif not fence:
            yield number, line


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(page):
        if heading := re.match(r"#{1,6}\s+(.*?)\s*#*$", line):
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def problem(target: str, anchor: str, *bases: Path) -> str | None:
    """None when `target` (a path relative to one of `bases`) exists and has `anchor`; else why not."""
    for base in bases:
        page = (base / target) if target else base
        if page.exists():
            if anchor and page.suffix == ".md" and anchor not in anchors(page):
                return f"{target}#{anchor}: no such heading"
            return None
    return f"{target}: no such file"


def markdown_pointers() -> Iterator[tuple[str, str, tuple[Path, ...]]]:
    """(where, pointer, folders it may be relative to) for each link and mention in the Markdown."""
    for page in tracked("*.md"):
        for number, line in prose_lines(page):
            where = f"{page.relative_to(ROOT)}:{number}"
            for target in LINK.findall(line):
                if not EXTERNAL.match(target):
                    yield where, target, (page.parent,) if target.split("#")[0] else (page,)
            for match in MENTION.finditer(LINK.sub("", line)):
                yield where, match.group(0), (page.parent, ROOT)


def schema_descriptions(node: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield path, value
            else:
                yield from schema_descriptions(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schema_descriptions(value, f"{path}[{i}]")


def other_pointers() -> Iterator[tuple[str, str, tuple[Path, ...]]]:
    """Mentions in schema descriptions and in the example's YAML comments, relative to the repository."""
    for schema in tracked("schemas/*.json"):
        for where, text in schema_descriptions(json.loads(schema.read_text(encoding="utf-8")), ""):
            for match in MENTION.finditer(text):
                yield f"{schema.relative_to(ROOT)} {where}", match.group(0), (ROOT,)
    for file in tracked("releases/*.yaml", "releases/**/*.yaml", "environments/*.yaml"):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            comment = line.partition("#")[2] if "#" in line else ""
            for match in MENTION.finditer(comment):
                yield f"{file.relative_to(ROOT)}:{number}", match.group(0), (ROOT,)


def broken(pointers: Iterator[tuple[str, str, tuple[Path, ...]]]) -> list[str]:
    out = []
    for where, pointer, bases in pointers:
        target, _, anchor = pointer.partition("#")
        why = problem(target, anchor, *bases)
        if why:
            out.append(f"{where}: {why}")
    return out


def test_markdown_links_and_page_mentions_resolve() -> None:
    assert broken(markdown_pointers()) == []


def test_schema_descriptions_and_example_comments_point_to_pages_that_exist() -> None:
    found = list(other_pointers())
    assert any("docs/formats.md" in pointer for _, pointer, _ in found)  # the check sees them at all
    assert broken(iter(found)) == []


@pytest.mark.parametrize(("pointer", "expected"), [
    ("docs/formats.md#default-stages-per-strategy", None),
    ("docs/rules.md#immutable", None),
    ("DESIGN.md", "DESIGN.md: no such file"),
    ("docs/formats.md#no-such-heading", "docs/formats.md#no-such-heading: no such heading"),
])
def test_the_check_tells_a_page_that_exists_from_one_that_does_not(pointer: str, expected: str | None) -> None:
    target, _, anchor = pointer.partition("#")
    assert problem(target, anchor, ROOT) == expected


def test_a_mention_is_found_in_prose_and_a_link_is_not_counted_twice() -> None:
    line = "See [the rules](rules.md#immutable) and DESIGN.md, or docs/cli.md; not Artifact.md5."
    assert LINK.findall(line) == ["rules.md#immutable"]
    assert [m.group(0) for m in MENTION.finditer(LINK.sub("", line))] == ["DESIGN.md", "docs/cli.md"]


def test_code_blocks_are_not_prose(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n````markdown\n```\n# not a heading\n[run](x.md)\n```\n````\n## After\n")
    assert [line for _, line in prose_lines(page)] == ["# Title", "## After"]
    assert anchors(page) == {"title", "after"}
