from __future__ import annotations

import random
import re
from datetime import datetime
from pathlib import Path

import pytest

from parley.engine.naming import ADJECTIVES, NOUNS, default_model_name, resolve_model_path

WHEN = datetime(2024, 1, 31, 15, 45, 2)


@pytest.mark.parametrize(("prefix", "head"), [("", ""), ("nlu", "nlu-"), ("core-", "core-")])
def test_default_name_should_follow_the_pattern(prefix: str, head: str) -> None:
    name = default_model_name(prefix, now=WHEN, rng=random.Random(0))
    match = re.fullmatch(rf"{head}20240131-154502-([a-z]+)-([a-z]+)", name)
    assert match, name
    assert match.group(1) in ADJECTIVES and match.group(2) in NOUNS


def test_default_name_should_be_reproducible_with_a_seeded_rng() -> None:
    assert default_model_name(now=WHEN, rng=random.Random(7)) == default_model_name(
        now=WHEN, rng=random.Random(7)
    )


def test_default_name_should_not_touch_the_global_random_state() -> None:
    random.seed(42)
    expected = random.random()
    random.seed(42)
    default_model_name()
    assert random.random() == expected


def test_word_lists_should_be_distinct_lowercase_words() -> None:
    for words in (ADJECTIVES, NOUNS):
        assert len(words) >= 30 and len(set(words)) == len(words)
        assert all(re.fullmatch("[a-z]+", word) for word in words)


def test_fixed_name_should_get_the_suffix_when_missing(tmp_path: Path) -> None:
    assert resolve_model_path(tmp_path, "my-bot") == tmp_path / "my-bot.tar.gz"
    assert resolve_model_path(tmp_path, "my-bot.tar.gz") == tmp_path / "my-bot.tar.gz"


def test_fixed_name_with_a_directory_should_stay_inside_the_output(tmp_path: Path) -> None:
    assert resolve_model_path(tmp_path, "exp/v2") == tmp_path / "exp" / "v2.tar.gz"


def test_without_a_fixed_name_a_default_name_should_be_made(tmp_path: Path) -> None:
    path = resolve_model_path(tmp_path / "models", prefix="core")
    assert path.parent == tmp_path / "models"
    assert re.fullmatch(r"core-\d{8}-\d{6}-[a-z]+-[a-z]+\.tar\.gz", path.name)
    assert resolve_model_path(tmp_path, "").name.endswith(".tar.gz")


def test_a_default_name_should_never_be_one_a_model_in_the_output_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two trainings in one second drawing the same words: the second must not overwrite.
    taken = tmp_path / "20240131-154502-tidy-river.tar.gz"
    taken.write_bytes(b"an earlier model")
    draws = iter(["20240131-154502-tidy-river", "20240131-154502-calm-otter"])
    monkeypatch.setattr("parley.engine.naming.default_model_name", lambda prefix: next(draws))
    assert resolve_model_path(tmp_path).name == "20240131-154502-calm-otter.tar.gz"
    assert taken.read_bytes() == b"an earlier model"
