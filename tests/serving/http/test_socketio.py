"""The socket.io channel Rasa's web chat widgets use, with python-socketio's own client
against ``parley run`` on loopback."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.conftest import needs_shared_data
from tests.serving.http.server_process import get, parley_run, post_json

pytestmark = needs_shared_data
socketio = pytest.importorskip("socketio", reason="the socket.io test needs python-socketio")
pytest.importorskip("websocket", reason="python-socketio's client needs websocket-client")

CREDENTIALS = """
rest:
socketio:
  user_message_evt: user_uttered
  bot_message_evt: bot_uttered
  session_persistence: {persistence}
  socketio_path: /chat.io
"""


class Widget:
    """A chat widget: connects, asks for a session, sends messages, collects answers."""

    def __init__(self, url: str, transports: list[str]) -> None:
        self.client = socketio.Client(reconnection=False)
        self.answers: list[Any] = []
        self.sessions: list[str] = []
        self.arrived = threading.Event()
        self.client.on("bot_uttered", self._answer)
        self.client.on("session_confirm", self._session)
        self.client.connect(url, socketio_path="/chat.io", transports=transports,
                            wait_timeout=20)

    def _answer(self, data: Any) -> None:
        self.answers.append(data)
        self.arrived.set()

    def _session(self, session_id: str) -> None:
        self.sessions.append(session_id)
        self.arrived.set()

    def wait_for(self, count: int, what: str = "answers", timeout: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout
        items = getattr(self, what)
        while len(items) < count:
            assert time.monotonic() < deadline, f"only {items} arrived"
            self.arrived.wait(0.1)
            self.arrived.clear()
        return items

    def say(self, text: str, session_id: str | None = None) -> None:
        self.client.emit("user_uttered", {"message": text, "session_id": session_id})


# The moodbot's answer to mood_unhappy, as the widget receives it (after the greeting).
CHEER_UP = [
    {"text": "Here is something to cheer you up:"},
    {"attachment": {"type": "image", "payload": {"src": "https://i.imgur.com/iPa8HCj.jpeg"}}},
    {"text": "Did that help you?"}]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_widget_should_hold_a_conversation_over_socketio(moodbot_model, tmp_path,
                                                           transport):
    (tmp_path / "credentials.yml").write_text(CREDENTIALS.format(persistence="true"))
    with parley_run(["-m", str(moodbot_model), "--enable-api", "--seed", "0"], tmp_path,
                    tmp_path / "server.log") as url:
        widget = Widget(url, [transport])
        try:
            widget.client.emit("session_request", {"session_id": "my-session"})
            assert widget.wait_for(1, "sessions") == ["my-session"]
            widget.say("hello", "my-session")
            greeting = widget.wait_for(1)[0]
            assert greeting == {"text": "Hey! How are you?", "quick_replies": [
                {"content_type": "text", "title": "great", "payload": "/mood_great"},
                {"content_type": "text", "title": "super sad", "payload": "/mood_unhappy"}]}
            widget.say("/mood_unhappy", "my-session")
            assert widget.wait_for(4)[1:] == CHEER_UP
        finally:
            widget.client.disconnect()
        # The session's conversation is the one the API shows; REST still answers.
        status, body = get(f"{url}/conversations/my-session/tracker")
        tracker = json.loads(body)
        assert status == 200 and tracker["latest_input_channel"] == "socketio"
        assert [e["text"] for e in tracker["events"] if e["event"] == "user"] == [
            "hello", "/mood_unhappy"]
        assert post_json(f"{url}/webhooks/rest/webhook", {"message": "hi"})[0] == 200


def test_an_external_event_should_reach_the_widget_as_in_rasa(moodbot_model, tmp_path):
    # A reminder or external event (trigger_intent with output_channel=latest) is said to
    # the user through the socket.io session they chat in, as Rasa's SocketIOOutput does.
    (tmp_path / "credentials.yml").write_text(CREDENTIALS.format(persistence="true"))
    with parley_run(["-m", str(moodbot_model), "--enable-api", "--seed", "0"], tmp_path,
                    tmp_path / "server.log") as url:
        widget = Widget(url, ["websocket"])
        try:
            widget.client.emit("session_request", {"session_id": "ext"})
            widget.wait_for(1, "sessions")
            widget.say("hello", "ext")
            widget.wait_for(1)
            status, answer = post_json(
                f"{url}/conversations/ext/trigger_intent?output_channel=latest",
                {"name": "mood_unhappy"})
            assert status == 200 and "messages" not in answer
            assert widget.wait_for(4)[1:] == CHEER_UP
        finally:
            widget.client.disconnect()


def test_without_session_persistence_each_socket_should_be_its_own_conversation(
        moodbot_model, tmp_path):
    (tmp_path / "credentials.yml").write_text(CREDENTIALS.format(persistence="false"))
    with parley_run(["-m", str(moodbot_model)], tmp_path, tmp_path / "server.log") as url:
        widget = Widget(url, ["websocket"])
        try:
            widget.client.emit("session_request", None)
            session = widget.wait_for(1, "sessions")[0]
            assert len(session) == 32  # a new id when the widget brings none
            widget.say("hello")  # no session id needed: the socket is the conversation
            assert widget.wait_for(1)[0]["text"] == "Hey! How are you?"
        finally:
            widget.client.disconnect()


def test_a_jwt_key_should_keep_out_sockets_without_a_valid_token(moodbot_model, tmp_path):
    jwt = pytest.importorskip("jwt")
    key = "a-socket-secret-that-is-long-enough-for-hs256"
    (tmp_path / "credentials.yml").write_text(
        CREDENTIALS.format(persistence="false") + f"  jwt_key: {key}\n")
    with parley_run(["-m", str(moodbot_model)], tmp_path, tmp_path / "server.log") as url:
        with pytest.raises(socketio.exceptions.ConnectionError):
            Widget(url, ["websocket"])
        client = socketio.Client(reconnection=False)
        client.connect(url, socketio_path="/chat.io", transports=["websocket"],
                       auth={"token": jwt.encode({"user": "x"}, key, algorithm="HS256")},
                       wait_timeout=20)
        assert client.connected
        client.disconnect()


def test_credentials_should_name_the_channels_and_refuse_others(tmp_path):
    from parley.errors import SchemaError
    from parley.serving.http.channels.credentials import read_credentials

    assert read_credentials(None) == {"rest": {}}
    given = tmp_path / "credentials.yml"
    given.write_text("rest:\nsocketio:\n  bot_message_evt: answer\n  session_persistence: "
                     "true\nrasa:\n  url: http://x\n")
    with pytest.warns(UserWarning, match="'rasa' section"):
        assert read_credentials(given) == {"rest": {}, "socketio": {
            "bot_message_evt": "answer", "session_persistence": True}}
    given.write_text("rest:\nmattermost:\n  url: x\n")
    with pytest.raises(SchemaError, match="'mattermost' channel is not implemented"):
        read_credentials(given)
    given.write_text("rests:\n")
    with pytest.raises(SchemaError, match="credentials.yml:1: unknown channel 'rests'. Did you mean 'rest'"):
        read_credentials(given)


def test_a_message_json_cannot_carry_should_be_dropped_not_stored(moodbot_model, tmp_path):
    # python-socketio decodes packets with Python's json, which takes NaN and lone
    # surrogates; stored, they made every later read of the conversation a 500.
    (tmp_path / "credentials.yml").write_text(CREDENTIALS.format(persistence="true"))
    with parley_run(["-m", str(moodbot_model), "--enable-api"], tmp_path,
                    tmp_path / "server.log") as url:
        widget = Widget(url, ["websocket"])
        try:
            widget.client.emit("session_request", {"session_id": "odd"})
            widget.wait_for(1, "sessions")
            widget.client.emit("user_uttered", {"message": "hi", "session_id": "odd",
                                                "metadata": {"n": float("nan")}})
            widget.say("hi \ud800", "odd")
            widget.say("hello", "odd")
            assert widget.wait_for(1)[0]["text"] == "Hey! How are you?"
        finally:
            widget.client.disconnect()
        status, body = get(f"{url}/conversations/odd/tracker")
        assert status == 200, body
        assert [e["text"] for e in json.loads(body)["events"] if e["event"] == "user"] == [
            "hello"]
    log = (tmp_path / "server.log").read_text()
    assert "NaN is not a JSON number" in log and "lone surrogate" in log


def test_a_message_over_the_length_limit_should_be_dropped_not_parsed(moodbot_model, tmp_path):
    (tmp_path / "credentials.yml").write_text(CREDENTIALS.format(persistence="true"))
    with parley_run(["-m", str(moodbot_model), "--enable-api", "--max-message-length", "20"],
                    tmp_path, tmp_path / "server.log") as url:
        widget = Widget(url, ["websocket"])
        try:
            widget.client.emit("session_request", {"session_id": "long"})
            widget.wait_for(1, "sessions")
            widget.say("hello " * 10, "long")  # 60 characters
            widget.say("hello", "long")
            assert widget.wait_for(1)[0]["text"] == "Hey! How are you?"
        finally:
            widget.client.disconnect()
        status, body = get(f"{url}/conversations/long/tracker")
        assert status == 200, body
        assert [e["text"] for e in json.loads(body)["events"] if e["event"] == "user"] == [
            "hello"]
        status, body = post_json(f"{url}/model/parse", {"text": "hello " * 10})
        assert status == 413, body
    assert "60 characters, over the limit of 20" in (tmp_path / "server.log").read_text()
