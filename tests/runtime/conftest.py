"""Models of the shared bots, trained once per test run for the runtime tests.

Parley's default pipeline and Memoization + Rule policies (TED is not needed to hold these
conversations, and keeps training to a few seconds)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA

BOTS = SHARED_DATA / "bots"
CONFIG = "language: en\npolicies:\n  - name: MemoizationPolicy\n  - name: RulePolicy\n"


def train_bot(bot: str, directory: Path) -> Any:
    from parley.serving.agent import load

    return load(train_bot_model(bot, directory))


def train_bot_model(bot: str, directory: Path) -> Path:
    """The model archive of a shared bot trained with :data:`CONFIG`."""
    from parley.model_training import train

    root = BOTS / bot
    config = directory / "config.yml"
    config.write_text(CONFIG)
    cwd = Path.cwd()
    os.chdir(directory)  # the training cache goes to the temporary folder
    try:
        result = train(str(root / "domain.yml"), str(config), [str(root / "data")],
                       str(directory / "models"))
    finally:
        os.chdir(cwd)
    return Path(result.model)


@pytest.fixture(scope="session")
def moodbot_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_bot_model("rasa-example-moodbot", tmp_path_factory.mktemp("moodbot"))


@pytest.fixture(scope="session")
def moodbot(moodbot_model: Path) -> Any:
    from parley.serving.agent import load

    return load(moodbot_model)


@pytest.fixture(scope="session")
def formbot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return train_bot("rasa-example-formbot", tmp_path_factory.mktemp("formbot"))
