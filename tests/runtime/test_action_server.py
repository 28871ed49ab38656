"""The action-server client against a real HTTP server on loopback that this test runs:
what it sends, what it reads back, and every way a server can fail."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, ActiveLoop, BotUttered, ConversationPaused, EntitiesAdded,
    FollowupAction,
    ReminderCancelled, ReminderScheduled, SlotSet, UserUttered)
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError, ActionRejected, SchemaError
from parley.runtime.action_server import RASA_PROTOCOL_VERSION, ActionServerClient
from parley.runtime.endpoints import read_endpoints

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, inform]
entities: [name]
slots:
  name:
    type: text
    mappings: [{type: from_entity, entity: name}]
forms:
  name_form:
    required_slots: [name]
responses:
  utter_greet: [{text: "hi {name}"}]
actions: [action_hello, validate_name_form]
""")

Reply = tuple[int, Any]  # status, JSON body (bytes are sent as they are)


@dataclass
class Server:
    """A loopback HTTP server: ``reply`` decides each answer, ``requests`` records them."""

    reply: Callable[[dict[str, Any]], Reply] = lambda body: (200, {"events": [], "responses": []})
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = json.loads(raw)
            state.requests.append({"path": self.path, "headers": dict(self.headers),
                                   "body": body})
            status, answer = state.reply(body)
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def conversation() -> DialogueStateTracker:
    tracker = DialogueStateTracker.from_domain("ada", DOMAIN)
    for event in (ActionExecuted(action_name="action_listen", timestamp=1.0),
                  UserUttered(text="I am Ada", intent={"name": "inform", "confidence": 0.9},
                              entities=[{"entity": "name", "value": "Ada", "start": 5,
                                         "end": 8}], input_channel="rest", timestamp=2.0),
                  ActiveLoop(name="name_form", timestamp=3.0),
                  SlotSet(key="name", value="Ada", timestamp=4.0)):
        tracker.update(event)
    return tracker


def run(client: ActionServerClient, name: str = "action_hello") -> Any:
    return asyncio.run(client.run_custom_action(name, conversation(), DOMAIN))


def client_for(server: Server, **options: Any) -> ActionServerClient:
    return ActionServerClient(f"http://127.0.0.1:{server.port}/webhook", **options)


def test_a_call_should_send_what_rasa_sends_and_read_events_and_responses(
        server: Server) -> None:
    server.reply = lambda body: (200, {
        "events": [{"event": "slot", "name": "name", "value": "Grace", "timestamp": None},
                   {"event": "followup", "name": "utter_greet"}],
        "responses": [{"text": "Hello!", "buttons": [{"title": "ok", "payload": "/greet"}]},
                      {"response": "utter_greet", "name": "Grace"}],
    })
    client = client_for(server, token="s3cret", headers={"X-Tenant": "a"},
                        basic_auth=("u", "p"))
    result = run(client)
    assert result.events == [SlotSet(key="name", value="Grace"),
                             FollowupAction(name="utter_greet")]
    assert result.responses[1] == {"response": "utter_greet", "name": "Grace"}

    (request,) = server.requests
    assert request["path"] == "/webhook?token=s3cret"
    assert request["headers"]["X-Tenant"] == "a"
    assert request["headers"]["Authorization"] == "Basic dTpw"
    body = request["body"]
    assert body["next_action"] == "action_hello" and body["sender_id"] == "ada"
    assert body["version"] == RASA_PROTOCOL_VERSION
    assert body["domain"]["forms"]["name_form"]["required_slots"] == ["name"]
    assert "utter_greet" in body["domain"]["responses"]
    tracker = body["tracker"]
    assert tracker["sender_id"] == "ada" and tracker["slots"]["name"] == "Ada"
    assert tracker["latest_message"]["intent"] == {"name": "inform", "confidence": 0.9}
    assert tracker["latest_message"]["entities"][0]["value"] == "Ada"
    assert tracker["latest_input_channel"] == "rest"
    assert tracker["latest_event_time"] == 4.0
    assert tracker["active_loop"]["name"] == "name_form"
    assert tracker["active_loop"]["trigger_message"]["text"] == "I am Ada"
    assert tracker["latest_action_name"] == "action_listen"
    assert [e["event"] for e in tracker["events"]] == ["action", "user", "active_loop", "slot"]
    assert tracker["followup_action"] is None and tracker["paused"] is False


def test_selective_domain_should_send_the_domain_only_where_rasa_does(server: Server) -> None:
    client = client_for(server, enable_selective_domain=True)
    run(client, "action_hello")
    run(client, "validate_name_form")
    assert "domain" not in server.requests[0]["body"]
    assert "domain" in server.requests[1]["body"]

    # rasa-sdk answers 449 when it has no domain cached: the call is repeated with it.
    server.requests.clear()
    server.reply = lambda body: (200, {"events": []}) if "domain" in body else (
        449, {"error": "domain missing", "action_name": body["next_action"]})
    assert run(client).events == []
    assert ["domain" in r["body"] for r in server.requests] == [False, True]


def test_rejection_should_be_action_rejected(server: Server) -> None:
    server.reply = lambda body: (400, {"error": "cannot use this message",
                                       "action_name": body["next_action"]})
    with pytest.raises(ActionRejected, match="'action_hello'.*cannot use this message"):
        run(client_for(server))


@pytest.mark.parametrize(("reply", "message"), [
    ((404, {"error": "No registered action found for name 'action_hello'."}),
     "has no action of that name"),
    ((500, {"error": "KeyError: 'x'", "request_body": {}}), r"HTTP 500\): KeyError: 'x'"),
    ((502, b"<html>bad gateway</html>"), r"HTTP 502\): <html>bad gateway"),
    ((200, b"this is not json"), "not rasa-sdk's protocol: the reply is not JSON"),
    ((200, [1, 2]), "the reply is list, not an object"),
    ((200, {"events": {"event": "slot"}}), "'events' is not a list"),
    ((200, {"events": [{"event": "teleport"}]}), "event 1: unknown event 'teleport'"),
    # Rasa's events Parley does not keep (an export, Rasa 2's forms): not a typo.
    ((200, {"events": [{"event": "slot", "name": "x", "value": 1},
                       {"event": "export", "path": "stories.yml"}]}),
     r"returned Rasa's 'export' event \(event 2\), which Parley does not implement"),
    ((200, {"events": [{"event": "form", "name": "booking_form"}]}), "Rasa's 'form' event"),
    ((200, {"events": [{"event": "reminder", "intent": "greet", "date_time": "soon"}]}),
     "event 1: the 'reminder' event's 'date_time' must be a date and time in ISO 8601"),
    ((200, {"events": [], "responses": ["hi"]}), "'responses' is not a list of objects"),
    # Python's json writes float('nan') as NaN (a slot set to the mean of nothing): stored,
    # it would make the conversation unservable, so it is refused with the reply.
    ((200, b'{"events": [{"event": "slot", "name": "x", "value": NaN}]}'), "NaN is not a JSON"),
    ((200, b'{"events": [{"event": "bot", "text": "x", "timestamp": 1e999}]}'), "too large"),
    ((200, b'{"events": [], "responses": [{"text": "a\\udc00"}]}'), "lone surrogate"),
])
def test_a_bad_answer_should_be_a_clear_action_error(server: Server, reply: Reply,
                                                     message: str) -> None:
    server.reply = lambda body: reply
    with pytest.raises(ActionError, match=message) as caught:
        run(client_for(server))
    assert not isinstance(caught.value, ActionRejected)
    assert "custom action 'action_hello'" in str(caught.value)


def test_null_answer_should_mean_nothing_to_do(server: Server) -> None:
    server.reply = lambda body: (200, None)
    result = run(client_for(server))
    assert result.events == [] and result.responses == []


def test_rasa_sdks_reminder_and_pause_events_should_be_read(server: Server) -> None:
    # What rasa-sdk's ReminderScheduled(...), ReminderCancelled() and ConversationPaused()
    # return, null keys included.
    server.reply = lambda body: (200, {"events": [
        {"event": "reminder", "timestamp": None, "intent": "EXTERNAL_reminder",
         "entities": None, "date_time": "2030-01-01T09:00:00", "name": None,
         "kill_on_user_msg": True},
        {"event": "cancel_reminder", "timestamp": None, "intent": None, "entities": None,
         "name": "r1"},
        {"event": "pause", "timestamp": None}]})
    reminder, cancel, pause = run(client_for(server)).events
    assert isinstance(reminder, ReminderScheduled) and reminder.intent == "EXTERNAL_reminder"
    assert reminder.name  # rasa-sdk sends none: a new one, as Rasa gives
    assert cancel == ReminderCancelled(name="r1") and pause == ConversationPaused()


def test_an_entities_event_should_be_read(server: Server) -> None:
    # rasa-sdk has no class for it: an action returns Rasa's JSON as a dict.
    entity = {"entity": "name", "value": "Grace", "extractor": "action_hello"}
    server.reply = lambda body: (200, {"events": [
        {"event": "entities", "timestamp": None, "entities": [entity]}]})
    [added] = run(client_for(server)).events
    assert isinstance(added, EntitiesAdded) and added.entities == [entity]
    # A malformed one is the action server's mistake, not a Rasa event Parley lacks.
    server.reply = lambda body: (200, {"events": [{"event": "entities", "entities": [
        {"value": "Grace"}]}]})
    with pytest.raises(ActionError, match="each entity must be an object with an 'entity' "
                                          "name") as caught:
        run(client_for(server))
    assert "does not implement" not in str(caught.value)


def test_a_slow_server_should_time_out_with_a_clear_message(server: Server) -> None:
    def slow(body: dict[str, Any]) -> Reply:
        time.sleep(1.5)
        return 200, {"events": []}

    server.reply = slow
    began = time.monotonic()
    with pytest.raises(ActionError, match=r"did not answer within 0.3 s"):
        run(client_for(server, timeout=0.3))
    assert time.monotonic() - began < 1.4


def test_a_server_that_is_down_should_be_named() -> None:
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ActionServerClient(f"http://127.0.0.1:{port}/webhook")
    with pytest.raises(ActionError, match=rf"127.0.0.1:{port}/webhook cannot be reached "
                                          r"\(Connection refused\)\. Is it running\?"):
        run(client)


def test_the_conversation_should_be_left_as_it_was(server: Server) -> None:
    server.reply = lambda body: (500, {"error": "boom"})
    tracker = conversation()
    before = list(tracker.events)
    with pytest.raises(ActionError):
        asyncio.run(client_for(server).run_custom_action("action_hello", tracker, DOMAIN))
    assert tracker.events == before


def test_action_endpoint_should_come_from_endpoints_yml(tmp_path: Path, server: Server,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTION_TOKEN", "t0k")
    path = tmp_path / "endpoints.yml"
    path.write_text(f"action_endpoint:\n  url: http://127.0.0.1:{server.port}/webhook\n"
                    "  token: ${ACTION_TOKEN}\n  token_name: key\n  timeout: 5\n")
    config = read_endpoints(path).action_endpoint
    assert config is not None
    client = ActionServerClient.from_endpoint(config)
    assert client.timeout == 5.0
    run(client)
    assert server.requests[0]["path"] == "/webhook?key=t0k"


@pytest.mark.parametrize(("text", "message", "line"), [
    ("action_endpoint:\n  token: x\n", "'url' is missing", 1),
    ("action_endpoint:\n  url: localhost:5055\n", "not an http\\(s\\) URL", 2),
    ("action_endpoint:\n  url: http://x\n  timeout: -1\n", "'timeout' must be a positive", 3),
    ("action_endpoint:\n  url: http://x\n  headers: [a]\n", "'headers' must be a mapping", 3),
    ("action_endpoint:\n  url: http://x\n  basic_auth: {username: u}\n",
     "needs 'username' and 'password'", 3),
    ("action_endpoint:\n  url: http://x\n  timeout: .nan\n", "'timeout' must be a positive", 3),
    ("action_endpoint:\n  url: https://x\n  cafile: /nonexistent/ca.pem\n",
     "cafile '/nonexistent/ca.pem' is not a file", 3),
])
def test_bad_action_endpoint_should_name_the_line(tmp_path: Path, text: str, message: str,
                                                  line: int) -> None:
    path = tmp_path / "endpoints.yml"
    path.write_text(text)
    config = read_endpoints(path).action_endpoint
    assert config is not None
    with pytest.raises(SchemaError, match=message) as caught:
        ActionServerClient.from_endpoint(config)
    assert caught.value.line == line and caught.value.file == str(path)


def test_the_bot_utterance_event_should_round_trip_through_the_protocol(server: Server) -> None:
    bot = BotUttered(text="Hi", data={"buttons": [{"title": "a", "payload": "/a"}]},
                     timestamp=9.0)
    server.reply = lambda body: (200, {"events": [bot.to_dict()]})
    assert run(client_for(server)).events == [bot]


def test_https_should_trust_the_configured_cafile(tmp_path: Path) -> None:
    # A loopback HTTPS server with a certificate made for the test: trusted through
    # `cafile`, refused without it.
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed, so no test certificate can be made")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            data = json.dumps({"events": [{"event": "slot", "name": "name",
                                           "value": "tls"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{httpd.server_address[1]}/webhook"
    try:
        assert run(ActionServerClient(url, cafile=str(cert))).events == [
            SlotSet(key="name", value="tls")]
        with pytest.raises(ActionError, match=r"TLS connection .* failed \(CERTIFICATE_VERIFY"
                                              r"_FAILED\)\. .*cafile"):
            run(ActionServerClient(url))
    finally:
        httpd.shutdown()
        httpd.server_close()
