"""The server's tests: the moodbot (Parley's default pipeline, no torch, Memoization and
Rule policies — trained in about a second) served by an in-process app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the server needs the server extra (parley[server])")
pytest.importorskip("httpx2", reason="the in-process test client needs httpx2")

from starlette.testclient import TestClient  # noqa: E402

from tests.conftest import needs_shared_data  # noqa: E402
from tests.runtime.conftest import moodbot, moodbot_model  # noqa: E402,F401 - fixtures

pytestmark = needs_shared_data


@pytest.fixture
def make_client(moodbot: Any, moodbot_model: Any) -> Iterator[Callable[..., TestClient]]:  # noqa: F811
    """``make_client(**settings)``: a test client on a fresh app (in-memory stores) serving
    the moodbot with those ServerSettings (the API on unless said otherwise);
    ``platforms=[…]`` opens those messaging-platform channels."""
    from parley.serving.http import ServerSettings, create_app

    opened: list[TestClient] = []

    def make(platforms: Any = None, **settings: Any) -> TestClient:
        settings.setdefault("enable_api", True)
        settings.setdefault("seed", 0)
        app = create_app(moodbot, model_file=moodbot_model, settings=ServerSettings(**settings),
                         platforms=platforms)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()  # runs the lifespan
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
