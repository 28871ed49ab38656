"""Serve the app with uvicorn: what ``parley run`` does once its flags are read.

When the socket listens, one line goes to the log (stderr) that scripts and tests wait for::

    Parley server is ready: http://127.0.0.1:5005 (model 20260101-…tar.gz, channels: rest)

Ctrl-C or SIGTERM stop it gracefully: requests in flight finish, the stores are closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["READY", "serve"]

logger = logging.getLogger("parley.server")

READY = "Parley server is ready"


def serve(app: Any, host: str, port: int, description: str, log_level: str = "info",
          startup: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run ``app`` until stopped. ``startup`` runs first, on the loop that serves: what it
    raises (an event broker that is down) ends ``serve`` with that error, before the port
    is opened."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=30, server_header=False)
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        shown = f"[{host}]" if ":" in host else host
        logger.info("%s: http://%s:%d (%s)", READY, shown, port, description)

    async def main() -> None:
        if startup is not None:
            await startup()
        watcher = asyncio.ensure_future(announce())
        try:
            await server.serve()
        finally:
            watcher.cancel()

    asyncio.run(main())


def configure_logging(level: str = "info") -> None:
    """Parley's own log lines (the ready line, errors while serving) on stderr."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
