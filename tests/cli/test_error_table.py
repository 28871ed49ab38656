"""docs/errors.md shows the exact messages users see; it must match what Parley prints now."""

from __future__ import annotations

from parley.cli.error_cases import CASES, render
from tests.conftest import REPO


def test_error_page_should_match_what_parley_prints():
    page = (REPO / "docs" / "errors.md").read_text()
    assert page == render(), "regenerate: python -m parley.cli.error_cases > docs/errors.md"


def test_every_case_should_produce_a_located_message():
    for line in render().splitlines()[8:]:
        message = line.split(" | ")[2]  # "| mistake | file | message |"
        assert ": error: " in message or ": warning: " in message, line
    assert len(render().splitlines()) == 8 + len(CASES)
