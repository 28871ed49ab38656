"""Shared test helpers: where ../shared/data is, and a skip when a fresh clone lacks it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The models trained in tests are tiny: one torch thread is fastest, and keeps parallel
# test runs from fighting over cores.
os.environ.setdefault("PARLEY_TORCH_THREADS", "1")
os.environ.setdefault("PARLEY_QUIET", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason="../shared/data (the benchmark sets and bots) is not beside this clone",
)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter bot trained once for the whole run; tests that tamper with it work on a
    copy (or an extraction) and never on this file."""
    from parley.model_training import train
    from parley.starter import create_starter_project

    root = tmp_path_factory.mktemp("starter")
    create_starter_project(root)
    model = Path(train(str(root / "domain.yml"), str(root / "config.yml"),
                       [str(root / "data")], str(root / "models")).model)
    return model
