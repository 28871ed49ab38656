"""A messaging platform's API on loopback: a threaded ``http.server`` that records every
request and answers each path with JSON the test chose (default ``{"ok": true}``)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


class FakePlatform:
    """``with FakePlatform() as api:`` — ``api.url`` to point a channel at, ``api.requests``
    what it was sent, ``api.answers[path] = (status, json)`` to answer a path otherwise,
    ``api.delay`` seconds to take over each answer (a slow platform)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.answers: dict[str, tuple[int, Any]] = {}
        self.delay = 0.0
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                platform.requests.append(Recorded(
                    self.command, parts.path, parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()}, body))
                status, answer = platform.answers.get(parts.path, (200, {"ok": True}))
                data = json.dumps(answer).encode()
                time.sleep(platform.delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def __enter__(self) -> FakePlatform:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
