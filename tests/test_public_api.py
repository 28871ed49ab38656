"""The public names of ``parley`` and what ``import parley`` costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import parley

ROOT = Path(__file__).resolve().parents[1]


def test_public_names_should_be_exactly_these():
    assert parley.__all__ == ["Agent", "ParleyError", "TrainingResult", "__version__", "load",
                              "train", "train_core", "train_nlu"]


def test_every_public_name_should_resolve_to_its_object():
    from parley.errors import ParleyError
    from parley.model_training import TrainingResult, train, train_core, train_nlu
    from parley.serving.agent import Agent, load

    assert (parley.load, parley.Agent, parley.train, parley.train_nlu, parley.train_core,
            parley.TrainingResult, parley.ParleyError) == (
        load, Agent, train, train_nlu, train_core, TrainingResult, ParleyError)
    assert isinstance(parley.__version__, str)
    assert set(parley.__all__) <= set(dir(parley))


def test_an_unknown_name_should_raise_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        parley.nope  # noqa: B018


def test_import_parley_should_import_nothing_heavy():
    code = ("import json, sys, parley\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    heavy = {"torch", "sklearn", "scipy", "numpy", "dask", "yaml", "ruamel", "aiohttp",
             "sanic", "fastapi", "starlette", "uvicorn"}
    assert not loaded & heavy
    assert not {m for m in json.loads(out) if m.startswith("parley.")}
