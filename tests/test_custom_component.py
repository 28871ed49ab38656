"""A component given by module path in config.yml, trained and served end to end."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from parley.model_training import train
from parley.serving.agent import load

FIXTURE = Path(__file__).parent / "fixtures" / "custom_component"
PATH = "parley_custom_example.length.SentenceLengthFeaturizer"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))  # as running `parley train` in the project does
    return root


def test_a_custom_component_should_train_save_and_serve(project: Path) -> None:
    result = train(str(project / "domain.yml"), str(project / "config.yml"),
                   [str(project / "data")], str(project / "models"))
    assert result.model
    with tarfile.open(result.model) as archive:
        names = archive.getnames()
        member = archive.extractfile("metadata.json")
        assert member is not None
        metadata = json.loads(member.read())
        node = next(n for n in metadata["train_graph"]["nlu"] if n["component"] == PATH)
        state = next(n for n in names if n.endswith(f"{node['name']}/state.json"))
        learned = json.loads(archive.extractfile(state).read())  # type: ignore[union-attr]
    assert node["params"] == {"min_spread": 0.5}
    assert learned["mean"] > 0
    agent = load(result.model)
    parsed = agent.parse("what are your opening hours on sunday")
    assert parsed["intent"]["name"] == "ask_opening_hours"
    assert agent.parse("hello")["intent"]["name"] == "greet"
