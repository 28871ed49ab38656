"""Persistence helpers shared by the NLU components: JSON and ``.npz`` only, never pickle."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from parley.component import Component
from parley.errors import ModelArchiveError

STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"


def write_json(directory: Path, data: Any, name: str = STATE_FILE) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(data, ensure_ascii=False, sort_keys=True))


def read_json(directory: Path, name: str = STATE_FILE) -> Any:
    path = directory / name
    if not path.is_file():
        raise ModelArchiveError(f"{directory} has no '{name}'; it is not a saved trained component.")
    return json.loads(path.read_text())


# numpy >= 2.1 takes allow_pickle in savez; older versions would store it as an array.
_SAVEZ_TAKES_ALLOW_PICKLE = "allow_pickle" in inspect.signature(np.savez).parameters


def write_arrays(directory: Path, arrays: dict[str, np.ndarray], name: str = ARRAYS_FILE) -> None:
    for key, array in arrays.items():
        if array.dtype.kind == "O":
            raise TypeError(f"array '{key}' holds Python objects; only plain arrays are saved")
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / name).open("wb") as handle:
        if _SAVEZ_TAKES_ALLOW_PICKLE:
            np.savez(handle, allow_pickle=False, **arrays)  # type: ignore[arg-type]
        else:
            np.savez(handle, **arrays)  # type: ignore[arg-type]


def read_arrays(directory: Path, name: str = ARRAYS_FILE) -> dict[str, np.ndarray]:
    path = directory / name
    if not path.is_file():
        raise ModelArchiveError(f"{directory} has no '{name}'; it is not a saved trained component.")
    with np.load(path, allow_pickle=False) as loaded:
        return {key: loaded[key] for key in loaded.files}


def check_params_file(directory: Path) -> None:
    """A clear error for a directory that holds no saved component at all."""
    if not (directory / "params.json").is_file():
        raise ModelArchiveError(
            f"{directory} holds no saved component (no params.json); save() writes one."
        )


_C = TypeVar("_C", bound=Component)


def new_from_saved(cls: type[_C], directory: Path) -> _C:
    """An unfitted ``cls`` built from the params saved in ``directory``.

    Raises a clear error when the directory holds nothing saved or another component.
    """
    check_params_file(directory)
    return cls(**cls.load_params(directory))


def save_stateless(component: Component, directory: Path) -> None:
    """Persist a component whose only state is its parameters (it learns nothing)."""
    component.check_is_fitted()
    component.save_params(directory)
    write_json(directory, {"fitted": True})


def load_stateless(cls: type[_C], directory: Path) -> _C:
    """Load what :func:`save_stateless` wrote, ready to use."""
    from parley.data.training_data import TrainingData

    component = new_from_saved(cls, directory)
    read_json(directory)
    fitted: _C = component.fit(TrainingData())  # type: ignore[attr-defined]
    return fitted
