"""endpoints.yml's ``nlg``: responses made by an NLG server, as Rasa's callback NLG."""

from __future__ import annotations

import asyncio
import logging

import pytest

from parley.data.domain import Domain
from parley.errors import ActionError, SchemaError
from parley.runtime.endpoints import endpoints_from_data, read_endpoints
from parley.runtime.nlg_server import CallbackResponseGenerator, NLGServerClient, nlg_server
from parley.runtime.processor import MessageProcessor, UserMessage
from parley.serving.agent import load
from tests.runtime.test_action_server import Server, conversation, server  # noqa: F401

DOMAIN = Domain.from_yaml("""
intents: [greet]
slots:
  lang:
    type: text
    mappings: [{type: custom}]
responses:
  utter_greet:
  - text: Bonjour
    id: greet_fr
    condition: [{type: slot, name: lang, value: fr}]
  - text: Hello
    id: greet_en
""")


def _generator(server: Server, **options):  # noqa: F811
    return CallbackResponseGenerator(
        DOMAIN, NLGServerClient(f"http://127.0.0.1:{server.port}/nlg", **options))


def test_render_should_post_what_rasa_posts_and_send_the_answer(server):  # noqa: F811
    server.reply = lambda body: (200, {"text": f"Hi from {body['response']}", "buttons": [
        {"title": "ok", "payload": "/ok"}]})
    tracker = conversation()
    message = asyncio.run(_generator(server, token="s3").render(
        "utter_greet", tracker, "rest", {"name": "Ada"}))
    assert message == {"text": "Hi from utter_greet", "buttons": [{"title": "ok",
                                                                   "payload": "/ok"}]}
    request = server.requests[0]
    assert request["path"] == "/nlg?token=s3"
    body = request["body"]
    assert set(body) == {"response", "id", "arguments", "tracker", "channel"}
    assert body["response"] == "utter_greet" and body["arguments"] == {"name": "Ada"}
    assert body["channel"] == {"name": "rest"} and body["tracker"]["sender_id"] == "ada"
    assert body["id"] == "greet_en"  # the variation that fits the slots
    assert [e["event"] for e in body["tracker"]["events"]] == [
        "action", "user", "active_loop", "slot"]


def test_render_should_send_nothing_for_an_empty_answer(server):  # noqa: F811
    server.reply = lambda body: (200, None)
    assert asyncio.run(_generator(server).render("utter_greet", conversation(), None)) is None


@pytest.mark.parametrize(("status", "answer", "message"), [
    (500, b"boom", r"failed \(HTTP 500\): boom"),
    (200, b"not json", "the answer is not JSON"),
    (200, [1, 2], "the answer is list, not an object"),
    (200, {"text": 3}, "'text' is int"),
    (200, {"buttons": ["x"]}, "'buttons' holds something that is not an object"),
    (200, {"custom": None}, "'custom' is NoneType"),
])
def test_render_should_refuse_what_is_not_rasas_format(server, status, answer,  # noqa: F811
                                                       message):
    server.reply = lambda body: (status, answer)
    with pytest.raises(ActionError, match=message):
        asyncio.run(_generator(server).render("utter_greet", conversation(), None))


def test_render_should_say_when_the_server_is_down():
    generator = CallbackResponseGenerator(DOMAIN, NLGServerClient("http://127.0.0.1:9/nlg"))
    with pytest.raises(ActionError, match="response 'utter_greet': the NLG server at "
                                          "http://127.0.0.1:9/nlg cannot be reached"):
        asyncio.run(generator.render("utter_greet", conversation(), None))


def test_the_bot_should_answer_with_the_servers_text(server, trained, caplog):  # noqa: F811
    server.reply = lambda body: (200, {"text": f"[{body['response']}] from the server"})
    agent = load(trained)
    processor = MessageProcessor(agent, seed=0, nlg_server=NLGServerClient(
        f"http://127.0.0.1:{server.port}/nlg"))
    replies = asyncio.run(processor.handle_message(UserMessage("hello", "u1")))
    assert [r["text"] for r in replies] == ["[utter_greet] from the server"]
    # a server that breaks fails that response alone: the conversation goes on
    server.reply = lambda body: (500, b"down for maintenance")
    with caplog.at_level(logging.ERROR, logger="parley.runtime.processor"):
        replies = asyncio.run(processor.handle_message(UserMessage("bye", "u1")))
    assert replies == []
    assert "NLG server" in caplog.text and "HTTP 500" in caplog.text
    tracker = asyncio.run(processor.get_tracker("u1"))
    assert tracker.latest_action_name == "action_listen"


def test_endpoints_should_read_the_nlg_section(tmp_path):
    path = tmp_path / "endpoints.yml"
    path.write_text("nlg:\n  url: http://localhost:5056/nlg\n  token: t\n  timeout: 5\n")
    client = nlg_server(read_endpoints(path).nlg)
    assert isinstance(client, NLGServerClient) and client.timeout == 5.0
    assert nlg_server(None) is None
    assert nlg_server(endpoints_from_data({"nlg": {"type": "template"}}).nlg) is None
    path.write_text("nlg:\n  url: http://localhost:5056/nlg\n  type: my.module.NLG\n")
    with pytest.raises(SchemaError, match="NLG type 'my.module.NLG' is not one Parley has") \
            as error:
        nlg_server(read_endpoints(path).nlg)
    assert error.value.line == 3
    path.write_text("nlg:\n  url: ftp://x/nlg\n")
    with pytest.raises(SchemaError, match="is not an http"):
        nlg_server(read_endpoints(path).nlg)
