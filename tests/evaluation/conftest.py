"""Models of real bots trained once for these tests: small linear NLU, memoization + rules."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, SHARED_DATA

BOTS = SHARED_DATA / "bots"
# No TEDPolicy yet (it is being written): the policies that replay stories and rules.
MEMO_RULES = FIXTURES / "core_test" / "memo-rules.yml"


@pytest.fixture(scope="session")
def bot_model(tmp_path_factory: pytest.TempPathFactory):
    """``bot_model(name)`` → the path of that bot's model, trained once per session."""
    from parley.model_training import train

    models: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("bots")

    def get(name: str) -> Path:
        if name not in models:
            bot = BOTS / name
            with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e2ebot: "an end-to-end model is trained"
                patch.setenv("PARLEY_CACHE_DIR", str(root / "cache"))
                result = train(str(bot / "domain.yml"), str(MEMO_RULES), [str(bot / "data")],
                               str(root / name), fixed_model_name="model")
            models[name] = Path(result.model)
        return models[name]

    return get
