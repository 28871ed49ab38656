"""endpoints.yml's ``models``: the served model pulled from a model server, as Rasa pulls it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the server needs the server extra (parley[server])")
pytest.importorskip("httpx2", reason="the in-process test client needs httpx2")

from starlette.testclient import TestClient  # noqa: E402

from parley.errors import SchemaError  # noqa: E402
from parley.runtime.endpoints import endpoints_from_data, read_endpoints  # noqa: E402
from parley.serving.http.model_server import ModelServer  # noqa: E402


@dataclass
class Models:
    """A loopback model server: ``archive`` and ``etag`` are what it serves now (status
    404 with no archive), ``seen`` the If-None-Match of each request."""

    archive: bytes | None = None
    etag: str | None = None
    seen: list[str | None] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def models() -> Iterator[Models]:
    state = Models()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked = self.headers.get("If-None-Match")
            state.seen.append(asked)
            if state.archive is None:
                self.send_response(404)
                self.end_headers()
                return
            if asked is not None and asked == state.etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", str(state.etag))
            self.send_header("Content-Length", str(len(state.archive)))
            self.end_headers()
            self.wfile.write(state.archive)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter bot with another greeting."""
    from parley.model_training import train
    from parley.starter import create_starter_project

    root = tmp_path_factory.mktemp("other")
    create_starter_project(root)
    domain = root / "domain.yml"
    text = domain.read_text()
    start = text.index("utter_greet:")
    old = text[start:].split("text:", 1)[1].split("\n", 1)[0]
    domain.write_text(text.replace(old, ' "Greetings from the second model!"', 1))
    return Path(train(str(domain), str(root / "config.yml"), [str(root / "data")],
                      str(root / "models")).model)


def _client(models: Models, folder: Path, wait: float | None) -> TestClient:
    from parley.serving.http import ServerSettings, create_app

    endpoints = endpoints_from_data({"models": {
        "url": f"http://127.0.0.1:{models.port}/models/default",
        "wait_time_between_pulls": wait}})
    app = create_app(None, endpoints=endpoints, settings=ServerSettings(
        enable_api=True, seed=0, models_dir=str(folder)))
    return TestClient(app, raise_server_exceptions=False)


def _say(client: TestClient, text: str = "hello") -> str:
    answer = client.post("/webhooks/rest/webhook", json={"sender": "u", "message": text})
    return " ".join(m.get("text", "") for m in answer.json())


def _wait_for(condition: Any, seconds: float = 15.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_server_should_start_with_the_model_servers_model(models, trained, tmp_path):
    models.archive, models.etag = trained.read_bytes(), '"v1"'
    with _client(models, tmp_path / "pulled", None) as client:
        status = client.get("/status").json()
        assert status["model_file"].startswith("pulled-")
        assert "Hello" in _say(client)
    assert models.seen == [None]  # wait null: one pull, at the start
    assert len(list((tmp_path / "pulled").glob("pulled-*.tar.gz"))) == 1


def test_the_server_should_pull_a_new_model_and_keep_an_unchanged_one(
        models, trained, other_model, tmp_path):
    models.archive, models.etag = trained.read_bytes(), '"v1"'
    with _client(models, tmp_path / "pulled", 0.1) as client:
        first = client.get("/status").json()["model_file"]
        assert _wait_for(lambda: '"v1"' in models.seen)  # asked again, with its ETag: 304
        assert client.get("/status").json()["model_file"] == first
        models.archive, models.etag = other_model.read_bytes(), '"v2"'
        assert _wait_for(lambda: client.get("/status").json()["model_file"] != first)
        assert "Greetings from the second model!" in _say(client)
    pulled = list((tmp_path / "pulled").glob("pulled-*.tar.gz"))
    assert [p.name for p in pulled] != [first] and len(pulled) == 1  # the old pull removed


def test_a_missing_or_broken_model_should_leave_the_server_as_it_was(
        models, trained, tmp_path, caplog):
    with _client(models, tmp_path / "pulled", 0.1) as client:  # 404: no model yet
        assert client.post("/model/parse", json={"text": "hi"}).status_code == 409
        models.archive, models.etag = b"this is not a model archive", '"bad"'
        assert _wait_for(lambda: "was not loaded" in caplog.text)
        assert client.post("/model/parse", json={"text": "hi"}).status_code == 409
        models.archive, models.etag = trained.read_bytes(), '"v1"'
        assert _wait_for(lambda: client.post("/model/parse",
                                             json={"text": "hi"}).status_code == 200)


def test_the_models_section_should_be_checked_at_its_lines(tmp_path):
    path = tmp_path / "endpoints.yml"
    path.write_text("models:\n  url: http://x/m\n  wait_time_between_pulls: -1\n")
    with pytest.raises(SchemaError, match="'wait_time_between_pulls' must be a positive") \
            as error:
        ModelServer.from_endpoint(read_endpoints(path).models, tmp_path)
    assert error.value.line == 3
    path.write_text("models:\n  url: http://x/m\n")
    server = ModelServer.from_endpoint(read_endpoints(path).models, tmp_path)
    assert server.wait == 100.0  # Rasa's default
