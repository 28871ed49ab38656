"""``parley run`` leaves PyTorch's threads as the user set them: the served models predict
in numpy, so PyTorch runs only when ``POST /model/train`` trains — on every core, as
``parley train`` does, unless PARLEY_TORCH_THREADS says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parley.cli.main import main
from tests.conftest import needs_shared_data

pytestmark = needs_shared_data


@pytest.mark.parametrize("given", ["", "2"])
def test_parley_run_should_leave_pytorchs_threads_to_training(
        given: str, moodbot_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    monkeypatch.setenv("PARLEY_TORCH_THREADS", given)
    monkeypatch.setattr("parley.serving.http.run.serve",
                        lambda *args, **kwargs: served.append(os.environ["PARLEY_TORCH_THREADS"]))
    assert main(["run", "-m", str(moodbot_model), "--port", "5999"]) == 0
    assert served == [given]
