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


def train_bot_model(bot: str, directory: Path, config_text: str = CONFIG) -> Path:
    """The model archive of a shared bot trained with ``config_text``."""
    from parley.model_training import train

    root = BOTS / bot
    config = directory / "config.yml"
    config.write_text(config_text)
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


# A ResponseSelector with few epochs: enough to tell the bot's two retrieval answers apart.
RESPONSE_SELECTOR_CONFIG = """language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: LogisticRegressionClassifier
  - name: ResponseSelector
    epochs: 30
    random_seed: 1
policies:
  - name: MemoizationPolicy
  - name: RulePolicy
"""


@pytest.fixture(scope="session")
def retrieval_bot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from parley.serving.agent import load

    pytest.importorskip("torch", reason="the ResponseSelector needs the torch extra")
    return load(train_bot_model("rasa-example-responseselectorbot",
                                tmp_path_factory.mktemp("retrieval"), RESPONSE_SELECTOR_CONFIG))
