"""``parley interactive``: corrected conversations exported as stories and NLU examples."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from parley.cli.main import main
from parley.data.formats.nlu_yaml import read_nlu_file
from parley.data.formats.story_yaml import read_story_file
from parley.errors import DataError
from parley.serving.agent import load
from parley.serving.interactive import run_interactive


@pytest.fixture(scope="module")
def agent(trained):
    return load(trained)


def _run(agent, script, path, **kwargs):
    out = io.StringIO()
    session = run_interactive(agent, io.StringIO(script), out, path, seed=0, **kwargs)
    return session, out.getvalue()


def _steps(story):
    return [getattr(step, "intent", None) or getattr(step, "name", None)
            for step in story.steps]


def test_confirmed_turns_should_export_as_a_story_and_examples(agent, tmp_path):
    path = tmp_path / "data" / "interactive.yml"
    # hello: intent right, utter_greet right, listen right; then the menu: export
    _, out = _run(agent, "hello\ny\ny\ny\n/stop\n4\n", path)
    assert "Parsed: intent 'greet'" in out and "bot: Hello!" in out
    assert "Added 1 stories and 1 NLU examples" in out
    story = read_story_file(path).stories[0]
    assert story.name == "interactive_story_1"
    assert _steps(story) == ["greet", "utter_greet"]
    assert [(m.text, m.intent) for m in read_nlu_file(path).examples] == [("hello", "greet")]


def test_corrections_should_be_what_is_exported(agent, tmp_path):
    path = tmp_path / "out.yml"
    script = ("water my cactus\n"
              "n\nask_watering\n"                # the intent, by name
              "water my [cactus](plnt)\n"        # not an entity of the domain: asked again
              "water my [cactus(plant)\n"        # not the same text: asked again
              "water my [cactus](plant\n"        # not a marked message: asked again
              "water my [cactus](plant)\n"
              "n\nutter_greet\n"                 # another action than the bot's
              "n\naction_listen\n"               # and then listen (no fallback)
              "/stop\n4\n")
    _, out = _run(agent, script, path)
    assert "Not entities of the domain: plnt" in out
    assert 'The text changed ("water my [cactus(plant)")' in out
    assert "That is not a message with [value](entity) marks: malformed entity" in out
    story = read_story_file(path).stories[0]
    assert _steps(story) == ["ask_watering", None, "utter_greet"]  # None: the slot step
    user = story.steps[0]
    assert [(e.entity, e.value) for e in user.entities] == [("plant", "cactus")]
    example = read_nlu_file(path).examples[0]
    assert (example.text, example.intent) == ("water my cactus", "ask_watering")
    assert [(e.entity, e.start, e.end) for e in example.entities] == [("plant", 9, 15)]


def test_undo_restart_and_a_second_export_should_add_not_replace(agent, tmp_path):
    path = tmp_path / "interactive.yml"
    script = ("hello\ny\ny\ny\n"
              "bye\ny\ny\ny\n/stop\n2\n"         # undo the goodbye
              "/stop\n3\n"                       # keep this conversation, start another
              "thanks\ny\ny\ny\n/stop\n4\n")
    session, out = _run(agent, script, path)
    assert "The last message and what followed are undone." in out
    assert len(session.done) == 2
    stories = read_story_file(path).stories
    assert [_steps(s) for s in stories] == [["greet", "utter_greet"],
                                            ["thank", "utter_you_are_welcome"]]
    assert [m.text for m in read_nlu_file(path).examples] == ["hello", "thanks"]
    _run(agent, "hello\ny\ny\ny\n/stop\n4\n", path)
    assert [s.name for s in read_story_file(path).stories] == [
        "interactive_story_1", "interactive_story_2", "interactive_story_3"]
    assert [m.text for m in read_nlu_file(path).examples] == ["hello", "thanks"]


def test_end_of_input_should_quit_without_writing(agent, tmp_path):
    path = tmp_path / "interactive.yml"
    _, out = _run(agent, "hello\ny\n", path)  # the input ends mid-turn
    assert "Quit without exporting." in out and not path.exists()
    _, out = _run(agent, "/stop\n2\n/stop\n5\n", path)
    assert "Nothing to undo." in out and not path.exists()


def test_a_model_without_dialogue_should_be_refused(tmp_path):
    from parley.model_training import train_nlu
    from parley.starter import create_starter_project

    create_starter_project(tmp_path)
    model = train_nlu(str(tmp_path / "config.yml"), str(tmp_path / "data"),
                      str(tmp_path / "models"))
    with pytest.raises(DataError, match="no dialogue part"):
        run_interactive(load(model), io.StringIO(""), io.StringIO(), tmp_path / "x.yml")


def test_cli_should_train_a_model_first_when_there_is_none(tmp_path, monkeypatch, capsys):
    main(["init", "--no-prompt", str(tmp_path / "bot")])
    monkeypatch.chdir(tmp_path / "bot")
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\ny\ny\ny\n/stop\n4\n"))
    assert main(["interactive"]) == 0
    out = capsys.readouterr().out
    assert "No model in models/: training one from the project first." in out
    assert any(Path("models").glob("*.tar.gz"))
    assert _steps(read_story_file("data/interactive.yml").stories[0]) == ["greet", "utter_greet"]
