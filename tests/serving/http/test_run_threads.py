"""``parley run`` keeps PyTorch to one thread per model call: DIET and TED choose their
threads per call from PARLEY_TORCH_THREADS, which the server sets to 1 unless it is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parley.cli.main import main
from tests.conftest import needs_shared_data

pytestmark = needs_shared_data


@pytest.mark.parametrize(("given", "used"), [("", "1"), ("2", "2")])
def test_parley_run_should_give_pytorch_one_thread_unless_told(
        given: str, used: str, moodbot_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    monkeypatch.setenv("PARLEY_TORCH_THREADS", given)
    monkeypatch.setattr("parley.serving.http.run.serve",
                        lambda *args, **kwargs: served.append(os.environ["PARLEY_TORCH_THREADS"]))
    assert main(["run", "-m", str(moodbot_model), "--port", "5999"]) == 0
    assert served == [used]
