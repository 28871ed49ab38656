"""``parley shell``: a conversation in the terminal, and ``parley shell nlu``."""

from __future__ import annotations

import io
import json

from parley.cli.main import main
from parley.serving.shell import format_message, run_nlu_shell, run_shell
from tests.conftest import needs_shared_data
from tests.runtime.conftest import moodbot, moodbot_model  # noqa: F401 - fixtures

pytestmark = needs_shared_data


def test_the_shell_should_hold_a_conversation_and_number_buttons(moodbot):  # noqa: F811
    out = io.StringIO()
    count = run_shell(moodbot, io.StringIO("hello\n2\nyes\n/stop\nnever read\n"), out,
                      sender_id="me", seed=0)
    assert count == 3
    text = out.getvalue()
    assert text.startswith("Bot loaded. Type a message and press enter (use '/stop' to exit):")
    assert "Hey! How are you?\n  1: great (/mood_great)\n  2: super sad (/mood_unhappy)\n" in text
    # "2" pressed the second button: the bot cheers up.
    assert "Here is something to cheer you up:\nImage: https://i.imgur.com/iPa8HCj.jpeg\n" \
        "Did that help you?\n" in text
    assert "Great, carry on!" in text


def test_the_shell_should_end_at_end_of_input(moodbot):  # noqa: F811
    out = io.StringIO()
    assert run_shell(moodbot, io.StringIO("hi\n\n"), out, seed=0) == 1
    assert out.getvalue().endswith("Your input -> \n")


def test_the_nlu_shell_should_print_parses(moodbot):  # noqa: F811
    out = io.StringIO()
    assert run_nlu_shell(moodbot, io.StringIO("I am sad\n"), out) == 1
    body = out.getvalue().split("Next message: ", 1)[1].rsplit("Next message: ", 1)[0]
    assert json.loads(body)["intent"]["name"] == "mood_unhappy"


def test_messages_should_show_as_rasas_console_shows_them():
    assert format_message({"text": "hi", "image": "u.png", "attachment": {"url": "f"},
                           "custom": {"a": 1}}) == [
        "hi", "Image: u.png", 'Attachment: {"url": "f"}', "Custom json:", '{\n  "a": 1\n}']


def test_parley_shell_should_run_from_the_command_line(moodbot_model, monkeypatch,  # noqa: F811
                                                       capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/stop\n"))
    assert main(["shell", "-m", str(moodbot_model), "--seed", "0"]) == 0
    assert "Hey! How are you?" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    assert main(["shell", "nlu", "-m", str(moodbot_model)]) == 0
    assert '"name": "greet"' in capsys.readouterr().out


def test_parley_shell_should_keep_the_conversation_in_the_endpoints_store(
        moodbot_model, monkeypatch, capsys, tmp_path):  # noqa: F811
    """--endpoints: a SQLite tracker store outlives the shell; a second shell on the same
    conversation id continues it."""
    import sqlite3

    database = tmp_path / "conversations.db"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {database}\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/stop\n"))
    argv = ["shell", "-m", str(moodbot_model), "--seed", "0", "--endpoints", str(endpoints),
            "--conversation-id", "kept"]
    assert main(argv) == 0
    with sqlite3.connect(database) as connection:
        first = connection.execute("select count(*) from events where sender_id = 'kept'"
                                   ).fetchone()[0]
    assert first > 0
    monkeypatch.setattr("sys.stdin", io.StringIO("bye\n/stop\n"))
    assert main(argv) == 0
    with sqlite3.connect(database) as connection:
        second = connection.execute("select count(*) from events where sender_id = 'kept'"
                                    ).fetchone()[0]
    assert second > first
    capsys.readouterr()


def test_parley_shell_should_publish_the_conversation_to_the_event_broker(
        moodbot_model, monkeypatch, capsys, tmp_path):  # noqa: F811
    import sqlite3

    conversations, events = tmp_path / "conversations.db", tmp_path / "events.db"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  db: {conversations}\n"
                         f"event_broker:\n  type: SQL\n  db: {events}\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\nI am sad\n/stop\n"))
    assert main(["shell", "-m", str(moodbot_model), "--seed", "0", "--endpoints",
                 str(endpoints), "--conversation-id", "ada"]) == 0
    with sqlite3.connect(conversations) as connection:
        stored = [json.loads(data) for (data,) in connection.execute(
            "select data from events where sender_id = 'ada' order by id")]
    with sqlite3.connect(events) as connection:
        published = [json.loads(data) for (data,) in connection.execute(
            "select data from events order by id")]
    assert stored and published == [{"sender_id": "ada", **event} for event in stored]
    capsys.readouterr()


def test_a_bad_endpoints_file_should_be_a_clear_error(moodbot_model, capsys, tmp_path):  # noqa: F811
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text("tracker_store:\n  type: cassandra\n")
    assert main(["shell", "-m", str(moodbot_model), "--endpoints", str(endpoints)]) != 0
    err = capsys.readouterr().err
    assert "endpoints.yml" in err and "Traceback" not in err


def test_bytes_that_are_not_utf8_should_become_replacement_characters(
        moodbot_model, monkeypatch, capsys, tmp_path):  # noqa: F811
    """Python reads a C.UTF-8 terminal with surrogateescape: bytes that are not UTF-8 (a
    Latin-1 'é', a paste of binary) arrive as lone surrogates, which no store can encode.
    They are typed text, so they become U+FFFD, and the conversation is stored."""
    import sqlite3

    database = tmp_path / "conversations.db"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {database}\n")
    typed = b"caf\xe9 \xff\n".decode("utf-8", "surrogateescape")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"hello\n{typed}/stop\n"))
    assert main(["shell", "-m", str(moodbot_model), "--seed", "0", "--endpoints",
                 str(endpoints), "--conversation-id", "bytes"]) == 0
    assert "bug in Parley" not in capsys.readouterr().err
    with sqlite3.connect(database) as connection:
        texts = [row[0] for row in connection.execute(
            "select data from events where sender_id = 'bytes' and type_name = 'user'")]
    assert len(texts) == 2 and "caf\ufffd \ufffd" in texts[1]
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    assert main(["shell", "nlu", "-m", str(moodbot_model)]) == 0
    assert '"text": "caf\ufffd \ufffd"' in capsys.readouterr().out


def test_the_shell_should_take_bytes_that_are_not_utf8_on_a_strict_stdin(trained, tmp_path):
    # An en_US.UTF-8 locale reads stdin strictly: a pasted Latin-1 byte ended the shell
    # with "this is a bug in Parley".
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "PARLEY_QUIET": "1"}
    done = subprocess.run([sys.executable, "-m", "parley", "shell", "-m", str(trained)],
                          input=b"caf\xe9\n/stop\n", capture_output=True, env=env,
                          cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"bug in Parley" not in done.stderr
