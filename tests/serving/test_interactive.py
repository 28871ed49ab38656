"""``parley interactive``: corrected conversations exported as stories and NLU examples."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from parley.cli.main import main
from parley.data.formats.nlu_yaml import read_nlu_file
from parley.data.formats.story_yaml import read_story_file
from parley.errors import DataError
from parley.serving.agent import load
from parley.serving.interactive import run_interactive
from tests.conftest import needs_shared_data


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


class Terminal(io.StringIO):
    """A terminal where the user presses Ctrl-D (``^D`` lines): the read gives the end of
    input, and reading goes on after it."""

    def readline(self, *args):
        line = super().readline(*args)
        return "" if line == "^D\n" else line


def _run_terminal(agent, script, path):
    out = io.StringIO()
    run_interactive(agent, Terminal(script), out, path, seed=0)
    return out.getvalue()


def test_end_of_input_should_offer_the_export_before_quitting(agent, tmp_path):
    path = tmp_path / "interactive.yml"
    asked = f"The input ended. Export the conversations to {path} before quitting? [Y/n]"
    # The input ends mid-turn: the menu opens; it ends there: the export is offered; and
    # it ends again: nothing is written, and the screen says so.
    _, out = _run(agent, "hello\ny\n", path)
    assert "What now?" in out and asked in out
    assert "The input ended again: the conversations are not exported." in out
    assert "Quit without exporting." in out and not path.exists()
    # Ctrl-D at the message prompt, Ctrl-D at the menu, then yes: the conversation is kept.
    out = _run_terminal(agent, "hello\ny\ny\ny\n^D\n^D\ny\n", path)
    assert asked in out and "Added 1 stories and 1 NLU examples" in out
    assert _steps(read_story_file(path).stories[0]) == ["greet", "utter_greet"]
    path.unlink()
    out = _run_terminal(agent, "hello\ny\ny\ny\n^D\n^D\nn\n", path)
    assert asked in out and "Quit without exporting." in out and not path.exists()


def test_end_of_input_with_nothing_to_export_should_just_quit(agent, tmp_path):
    path = tmp_path / "interactive.yml"
    _, out = _run(agent, "/stop\n2\n", path)
    assert "Nothing to undo." in out and "Export the conversations" not in out
    assert "Quit without exporting." in out and not path.exists()


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


def test_export_should_keep_what_the_file_held(agent, tmp_path):
    # --export data/rules.yml: the rules, responses and stories there must survive
    path = tmp_path / "rules.yml"
    path.write_text("""version: "3.1"
rules:
- rule: say bye
  steps:
  - intent: goodbye
  - action: utter_goodbye
stories:
- story: mine
  steps:
  - checkpoint: somewhere
  - intent: greet
  - action: utter_greet
responses:
  utter_chitchat/ask_name:
  - text: I am a bot.
nlu:
- intent: greet
  examples: |
    - hello
- synonym: cactus
  examples: |
    - cacti
""")
    path.chmod(0o640)
    _run(agent, "hello there\ny\ny\ny\n/stop\n4\n", path)
    found = read_story_file(path)
    assert [r.name for r in found.rules] == ["say bye"]
    assert [s.name for s in found.stories] == ["mine", "interactive_story_2"]
    assert _steps(found.stories[0])[0] == "somewhere"  # the checkpoint, as written
    data = read_nlu_file(path)
    assert "utter_chitchat/ask_name" in data.responses and data.synonyms == {"cactus": ["cacti"]}
    assert [m.text for m in data.examples] == ["hello", "hello there"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_new_export_file_should_get_the_usual_mode(agent, tmp_path):
    path = tmp_path / "interactive.yml"
    old = os.umask(0o022)
    try:
        _run(agent, "hello\ny\ny\ny\n/stop\n4\n", path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_intent_messages_should_not_become_nlu_examples(agent, tmp_path):
    # "/greet" names its intent: a story step, but no text to learn (as in Rasa)
    path = tmp_path / "interactive.yml"
    _, out = _run(agent, "/greet\ny\ny\ny\n/stop\n4\n", path)
    assert "Added 1 stories and 0 NLU examples" in out
    assert _steps(read_story_file(path).stories[0]) == ["greet", "utter_greet"]
    assert not read_nlu_file(path).examples


def test_a_reverted_message_should_not_export_an_empty_story(agent, tmp_path):
    # the fallback takes the user's message back: nothing of the conversation is left
    path = tmp_path / "interactive.yml"
    _, out = _run(agent, "hello\ny\nn\naction_default_fallback\ny\n/stop\n4\n", path)
    assert "Added 0 stories" in out
    assert not read_story_file(path).stories


def test_a_core_only_model_should_ask_the_intent_of_a_text(tmp_path):
    # A Core-only model cannot parse "water my fern": the intent is asked, not a crash
    from parley.model_training import train_core
    from parley.starter import create_starter_project

    create_starter_project(tmp_path)
    model = train_core(str(tmp_path / "domain.yml"), str(tmp_path / "config.yml"),
                       str(tmp_path / "data"), str(tmp_path / "models"))
    path = tmp_path / "interactive.yml"
    _, out = _run(load(model), "hi there\ngreet\n\ny\ny\n/stop\n4\n", path)
    assert "Which intent is it?" in out and "Added 1 stories and 1 NLU examples" in out
    assert _steps(read_story_file(path).stories[0]) == ["greet", "utter_greet"]
    assert [(m.text, m.intent) for m in read_nlu_file(path).examples] == [("hi there", "greet")]


def test_cli_should_read_bytes_that_are_not_utf8_on_a_strict_stdin(trained, tmp_path,
                                                                     monkeypatch, capsys):
    # en_US.UTF-8 gives Python a strict stdin: a Latin-1 "é" must not end the session
    stdin = io.TextIOWrapper(io.BytesIO(b"caf\xe9 hello\ny\ny\ny\n/stop\n4\n"),
                             encoding="utf-8", errors="strict")
    monkeypatch.setattr("sys.stdin", stdin)
    path = tmp_path / "out.yml"
    assert main(["interactive", "-m", str(trained), "--export", str(path)]) == 0
    assert "Added 1 stories and 1 NLU examples" in capsys.readouterr().out
    assert [m.text for m in read_nlu_file(path).examples] == ["caf\ufffd hello"]


def test_an_export_file_that_cannot_be_added_to_should_fail_before_the_talk(agent, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("stories: [\n")
    for path, message in ((bad, "invalid YAML"), (tmp_path, "this is a folder")):
        out = io.StringIO()
        with pytest.raises(DataError, match=message):
            run_interactive(agent, io.StringIO("hello\n"), out, path)
        assert "Your input" not in out.getvalue()  # nothing asked, nothing to lose


def test_a_failed_export_should_keep_the_conversations(agent, tmp_path):
    path = tmp_path / "interactive.yml"

    class BreaksTheFile(io.StringIO):
        # someone breaks the file while the menu is open; then mends it
        menus = 0

        def readline(self, *args):
            line = super().readline(*args)
            if line == "/stop\n":
                self.menus += 1
                if self.menus == 1:
                    path.write_text("stories: [\n")
                else:
                    path.unlink()
            return line

    script = "hello\ny\ny\ny\n/stop\n4\n/stop\n4\n"
    session = run_interactive(agent, BreaksTheFile(script), out := io.StringIO(), path, seed=0)
    assert "Could not export: " in out.getvalue() and "invalid YAML" in out.getvalue()
    assert len(session.done) == 1
    assert _steps(read_story_file(path).stories[0]) == ["greet", "utter_greet"]


@pytest.fixture(scope="module")
def retrieval_agent(tmp_path_factory):
    from tests.runtime.conftest import RESPONSE_SELECTOR_CONFIG, train_bot_model

    pytest.importorskip("torch", reason="the ResponseSelector needs the torch extra")
    return load(train_bot_model("rasa-example-responseselectorbot",
                                tmp_path_factory.mktemp("retrieval"), RESPONSE_SELECTOR_CONFIG))


@needs_shared_data
def test_a_confirmed_retrieval_intent_should_keep_its_selected_response(retrieval_agent,
                                                                        tmp_path):
    # utter_chitchat sends what the ResponseSelector chose: the confirmed parse must keep it
    _, out = _run(retrieval_agent, "what is your name?\ny\ny\ny\n/stop\n5\n",
                  tmp_path / "x.yml")
    assert "Parsed: intent 'chitchat'" in out
    assert "needs the ResponseSelector's output" not in out
    assert "bot: " in out.split("utter_chitchat", 1)[1]


def test_a_restart_should_cut_the_conversation_into_two_stories(agent, tmp_path):
    # action_restart forgets the talk before it; the export must not (Rasa cuts there too)
    path = tmp_path / "interactive.yml"
    script = "hello\ny\ny\nn\naction_restart\ny\nthanks\ny\ny\ny\n/stop\n4\n"
    _, out = _run(agent, script, path)
    assert "Added 2 stories" in out
    assert [_steps(s) for s in read_story_file(path).stories] == [
        ["greet", "utter_greet", "action_restart"], ["thank", "utter_you_are_welcome"]]


def _rows(db):
    import json
    import sqlite3

    with sqlite3.connect(db) as connection:
        return [(sender, json.loads(data)) for sender, data in connection.execute(
            "select sender_id, data from events order by id")]


def _endpoints(tmp_path):
    path = tmp_path / "endpoints.yml"
    path.write_text(f"tracker_store:\n  type: SQL\n  db: {tmp_path / 'conversations.db'}\n"
                    f"event_broker:\n  type: SQL\n  db: {tmp_path / 'events.db'}\n")
    return path


def test_the_conversations_should_be_stored_and_published_as_endpoints_say(agent, tmp_path):
    """As `rasa interactive --endpoints`: endpoints.yml's tracker store keeps the talk and
    its event broker gets every event — the undo too, as Rasa records it (a rewind)."""
    from parley.runtime.endpoints import read_endpoints
    from parley.runtime.stores.factory import create_lock_store, create_tracker_store

    endpoints = read_endpoints(_endpoints(tmp_path))
    script = ("hello\ny\ny\ny\n"
              "bye\ny\ny\ny\n/stop\n2\n"         # undo the goodbye
              "/stop\n3\n"                       # a second conversation
              "thanks\ny\ny\ny\n/stop\n5\n")     # quit without exporting
    _run(agent, script, tmp_path / "x.yml",
         tracker_store=create_tracker_store(endpoints.tracker_store),
         lock_store=create_lock_store(endpoints.lock_store),
         event_broker=endpoints.event_broker)
    stored = _rows(tmp_path / "conversations.db")
    published = _rows(tmp_path / "events.db")
    assert published == [(sender, {"sender_id": sender, **event}) for sender, event in stored]
    senders = list(dict.fromkeys(sender for sender, _ in published))
    assert len(senders) == 2
    first = [event for sender, event in published if sender == senders[0]]
    assert [e["text"] for e in first if e["event"] == "user"] == ["hello", "bye"]
    kinds = [e["event"] for e in first]
    assert kinds[-2:] == ["rewind", "action"] and first[-1]["name"] == "action_listen"
    second = [event for sender, event in published if sender == senders[1]]
    assert [e["text"] for e in second if e["event"] == "user"] == ["thanks"]
    assert second[0]["name"] == "action_session_start"


def test_parley_interactive_should_use_the_endpoints_store_and_broker(trained, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\ny\ny\ny\n/stop\n4\n"))
    path = tmp_path / "out.yml"
    assert main(["interactive", "-m", str(trained), "--export", str(path), "--endpoints",
                 str(_endpoints(tmp_path))]) == 0
    assert "Added 1 stories and 1 NLU examples" in capsys.readouterr().out
    stored = _rows(tmp_path / "conversations.db")
    assert [e["text"] for _, e in stored if e["event"] == "user"] == ["hello"]
    assert _rows(tmp_path / "events.db") == [(s, {"sender_id": s, **e}) for s, e in stored]

