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


RAISES_IN_FIT = '''
from parley.component import StatelessNLUComponent


class Broken(StatelessNLUComponent):
    def fit(self, training_data):
        raise RuntimeError("boom in fit")

    def process(self, messages):
        pass
'''


def test_a_custom_component_that_raises_should_be_blamed_with_its_config_line(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The fault is in the user's code: the CLI names the component and its line, and does
    not call it a bug in Parley."""
    from parley.cli.main import main

    package = project / "parley_blame_example"  # a name no other test has imported
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text(RAISES_IN_FIT)
    config = project / "config.yml"
    config.write_text(config.read_text().replace(PATH, "parley_blame_example.broken.Broken"))
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1)
                if "broken.Broken" in text)
    assert main(["train", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"config.yml:{line}: your component 'parley_blame_example.broken.Broken' raised " \
           "RuntimeError while training: boom in fit" in err
    assert "bug in Parley" not in err
