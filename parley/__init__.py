"""Parley: train Rasa 3.x assistants fast on a plain CPU.

The public names are listed in ``__all__`` and imported on first use (PEP 562), so
``import parley`` stays light: no torch, scikit-learn, scipy or server code is imported until
something that needs it is used::

    import parley
    result = parley.train("domain.yml", "config.yml", "data")
    agent = parley.load("models")          # an archive, or a folder → its newest archive
    agent.parse("hello")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name → the module that defines it.
_EXPORTS = {
    "load": "parley.serving.agent",
    "Agent": "parley.serving.agent",
    "train": "parley.model_training",
    "train_nlu": "parley.model_training",
    "train_core": "parley.model_training",
    "TrainingResult": "parley.model_training",
    "ParleyError": "parley.errors",
}

__all__ = ["Agent", "ParleyError", "TrainingResult", "__version__", "load", "train",
           "train_core", "train_nlu"]

if TYPE_CHECKING:
    from parley.errors import ParleyError
    from parley.model_training import TrainingResult, train, train_core, train_nlu
    from parley.serving.agent import Agent, load


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'parley' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
