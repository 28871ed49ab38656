"""The links between Parley's own pages resolve: files exist, and #anchors name a heading.

Pages move (docs/learned-nlu.md split into a reference and lab notes); a link left pointing at
the old place, or at a section that moved, would fail silently for the reader.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOC_PATH = re.compile(r"`((?:docs/)[^`\s]+\.md)`")  # a page named in backticks, from the root


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


def broken_links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    found = []
    prose = re.sub(r"`[^`]*`", "", text)  # code spans hold Rasa's [text](entity), not links
    targets = [(page.parent, t) for t in LINK.findall(prose)]
    targets += [(ROOT, t) for t in DOC_PATH.findall(text)]
    for base, target in targets:
        if re.match(r"[a-z]+:", target):  # http:, mailto: — not ours to check
            continue
        if not ("/" in target or target.startswith("#") or ".md" in target):
            continue  # an entity annotation in an error message, [text](entity), not a link
        path, _, anchor = target.partition("#")
        resolved = (base / path).resolve() if path else page
        if not resolved.exists():
            found.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            found.append(f"{page.relative_to(ROOT)}: {target} (no heading #{anchor})")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_pages_should_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checker_should_catch_a_missing_page_and_a_missing_heading(tmp_path: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Title\n\n## Choosing dense_norm: why\n")
    page = tmp_path / "docs" / "a.md"
    page.write_text("[ok](b.md#choosing-dense_norm-why) [gone](c.md) [nohead](b.md#nope) "
                    "see `docs/b.md` and `docs/old.md`\n")
    assert slug("LogisticRegressionClassifier: choosing dense_norm") == \
        "logisticregressionclassifier-choosing-dense_norm"
    found = broken_links(page)
    assert len(found) == 3
    assert any("c.md (no such file)" in f for f in found)
    assert any("#nope" in f for f in found)
    assert any("docs/old.md" in f for f in found)
