"""The app around the routes: health, errors as Rasa's JSON, the body limit, CORS, the
API behind --enable-api, and the model computing in the prediction pool."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import needs_shared_data

pytestmark = needs_shared_data


def test_the_root_should_say_hello_with_the_version(client):
    from parley import __version__

    response = client.get("/")
    assert response.status_code == 200
    assert response.text == f"Hello from Parley: {__version__}"


def test_an_unknown_path_or_method_should_get_rasas_error_json(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["reason"] == "NotFound" and "/nowhere" in missing.json()["message"]
    wrong = client.delete("/webhooks/rest/webhook")
    assert wrong.status_code == 405 and wrong.json()["code"] == 405


def test_a_body_over_the_limit_should_get_a_413_announced_or_streamed(make_client):
    client = make_client(max_body_bytes=100)
    big = b'{"message": "' + b"a" * 200 + b'"}'
    announced = client.post("/webhooks/rest/webhook", content=big)
    assert announced.status_code == 413
    assert "100 bytes" in announced.json()["message"]

    def chunks():
        for _ in range(10):
            yield b"x" * 30

    streamed = client.post("/webhooks/rest/webhook", content=chunks())
    assert streamed.status_code == 413
    assert client.post("/webhooks/rest/webhook", json={"message": "hi"}).status_code == 200


def test_a_message_over_the_length_limit_should_get_a_413_before_anything_is_stored(
        make_client):
    client = make_client(max_message_chars=50)
    long, fits = "great " * 10, "great " * 8 + "ok"  # 60 and 50 characters
    for path, body in (("/model/parse", {"text": long}),
                       ("/webhooks/rest/webhook", {"sender": "a", "message": long}),
                       ("/conversations/a/messages", {"text": long, "sender": "user"})):
        refused = client.post(path, json=body)
        assert refused.status_code == 413, path
        assert "60 characters" in refused.json()["message"]
        assert "--max-message-length" in refused.json()["message"]
    events = client.get("/conversations/a/tracker").json()["events"]
    assert not [e for e in events if e["event"] == "user"]
    assert client.post("/model/parse", json={"text": fits}).json()["intent"]["name"] == "mood_great"
    assert client.post("/webhooks/rest/webhook", json={"sender": "a", "message": fits}
                       ).status_code == 200


def test_a_huge_message_should_get_a_413_by_default(client):
    # 200,000 tokens made DIET's attention ask for 596 GiB and the server answer a 500
    from parley.serving.http.limits import DEFAULT_MAX_MESSAGE_CHARS

    huge = client.post("/model/parse", json={"text": "hello " * 200_000})
    assert huge.status_code == 413 and huge.json()["reason"] == "PayloadTooLarge"
    at_limit = "hello " * (DEFAULT_MAX_MESSAGE_CHARS // 6)
    # (the parse result's text is stripped, as Rasa's)
    assert client.post("/model/parse", json={"text": at_limit}).json()["text"] == \
        at_limit.strip()


def test_without_enable_api_only_the_root_and_channels_should_answer(make_client):
    client = make_client(enable_api=False)
    assert client.get("/").status_code == 200
    assert client.post("/webhooks/rest/webhook", json={"message": "hi"}).status_code == 200
    for path in ("/status", "/version", "/domain", "/conversations/a/tracker"):
        assert client.get(path).status_code == 404, path


def test_cors_should_allow_the_origins_given(make_client):
    client = make_client(cors=["https://chat.example"])
    allowed = client.options("/webhooks/rest/webhook", headers={
        "Origin": "https://chat.example", "Access-Control-Request-Method": "POST"})
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
    other = client.get("/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    closed = make_client().get("/", headers={"Origin": "https://chat.example"})
    assert "access-control-allow-origin" not in closed.headers


def test_the_model_should_run_in_the_prediction_pool_not_on_the_event_loop(client):
    state = client.app.state.parley
    seen: list[str] = []
    original = state.agent.parse

    def spy(text):
        seen.append(threading.current_thread().name)
        return original(text)

    state.agent.parse = spy
    try:
        client.post("/webhooks/rest/webhook", json={"message": "hello"})
    finally:
        del state.agent.parse
    assert seen and all(name.startswith("parley-predict") for name in seen)


def test_a_slow_answer_should_get_a_503_and_the_conversation_still_be_saved(make_client):
    import time

    client = make_client(response_timeout=0.05)
    state = client.app.state.parley
    original = state.agent.parse

    def slow(text):
        time.sleep(0.3)
        return original(text)

    state.agent.parse = slow
    try:
        response = client.post("/webhooks/rest/webhook", json={"sender": "s", "message": "hi"})
        assert response.status_code == 503 and "--response-timeout" in response.json()["message"]
        time.sleep(0.5)
    finally:
        del state.agent.parse
    events = client.get("/conversations/s/tracker").json()["events"]
    assert [e["text"] for e in events if e["event"] == "user"] == ["hi"]


def test_a_lock_store_that_is_down_should_get_a_503_that_names_the_lock_store(
        moodbot, tmp_path):
    from starlette.testclient import TestClient

    from parley.runtime.endpoints import read_endpoints
    from parley.serving.http import create_app

    pytest.importorskip("redis", reason="redis-py is not installed (parley[stores])")
    path = tmp_path / "endpoints.yml"
    path.write_text("lock_store:\n  type: redis\n  url: 127.0.0.1\n  port: 1\n")
    with TestClient(create_app(moodbot, endpoints=read_endpoints(path))) as client:
        answer = client.post("/webhooks/rest/webhook", json={"sender": "s", "message": "hi"})
    message = answer.json()["message"]
    assert answer.status_code == 503
    assert f"the lock store ({path}:1): locking conversation 's' failed" in message
    assert "the tracker store" not in message
