"""``parley run``: the HTTP server (Starlette on uvicorn) — channels and Rasa's HTTP API.

``create_app`` builds the ASGI app; ``ServerSettings`` holds Rasa's flags. See
docs/server.md for the endpoints, auth and channels.
"""

from __future__ import annotations

from parley.serving.http.app import create_app
from parley.serving.http.state import ServerSettings, ServerState

__all__ = ["ServerSettings", "ServerState", "create_app"]
