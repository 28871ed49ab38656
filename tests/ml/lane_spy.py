"""Helpers for tests of a training's lane process (parley/ml/lane_process.py)."""

from __future__ import annotations

from typing import Any


def forks_counted(monkeypatch: Any) -> list[int]:
    """Every batch in two lanes on two threads, and each lane process started recorded:
    the returned list gets its pid."""
    from parley.dialogue.neural.training import TEDTrainer
    from parley.ml import training

    monkeypatch.setattr(training, "MIN_SHARD_ROWS", 1)
    monkeypatch.setattr(TEDTrainer, "min_shard_rows", 1)  # (TED asks more of its own)
    monkeypatch.setenv("PARLEY_TORCH_THREADS", "2")
    forked: list[int] = []

    class Counted(training.LaneProcess):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            forked.append(self.pid)

    monkeypatch.setattr(training, "LaneProcess", Counted)
    return forked
