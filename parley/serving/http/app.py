"""The ASGI app of ``parley run``: Starlette routes over a :class:`ServerState`.

::

    create_app(agent, model_file=…, endpoints=read_endpoints("endpoints.yml"),
               settings=ServerSettings(enable_api=True, auth_token="…"))

Always there: ``GET /`` (health) and the channels of ``settings.channels`` (REST, socket.io,
and the messaging platforms of :mod:`.channels.platforms`, whose start-up steps run in the
lifespan).
With ``enable_api``: Rasa's HTTP API (:mod:`.api_model`, :mod:`.api_conversations`). Every
request body is limited (:mod:`.limits`), every error is Rasa's JSON (:mod:`.errors`), and
the app's lifespan closes the stores. ``app.state.parley`` is the :class:`ServerState`.
Serve it with any ASGI server; :func:`parley.serving.http.run.serve` runs uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route

from parley import __version__
from parley.runtime.action_server import RASA_PROTOCOL_VERSION
from parley.runtime.endpoints import Endpoints
from parley.serving.agent import Agent
from parley.serving.http import api_conversations, api_model
from parley.serving.http.auth import Auth
from parley.serving.http.channels import rest
from parley.serving.http.channels.base import PlatformChannel
from parley.serving.http.channels.platforms import platform_channels
from parley.serving.http.errors import exception_handlers
from parley.serving.http.limits import BodySizeLimit
from parley.serving.http.model_server import keep_pulling, pull_into
from parley.serving.http.state import ServerSettings, ServerState

__all__ = ["RouteFactory", "create_app"]

# Routes a higher layer adds to the API (parley.evaluation.http_api's /model/test/…).
RouteFactory = Callable[[ServerState, Auth], list[BaseRoute]]

# The oldest Parley whose model archives this one loads (model_archive.check_format).
MINIMUM_COMPATIBLE_VERSION = "0.1.0"


def _info_routes(state: ServerState, auth: Auth) -> list[BaseRoute]:
    async def version(request: Request) -> JSONResponse:
        return JSONResponse({"version": __version__,
                             "minimum_compatible_version": MINIMUM_COMPATIBLE_VERSION,
                             "rasa_version": RASA_PROTOCOL_VERSION})

    async def status(request: Request) -> JSONResponse:
        auth.check(request)
        agent = state.require_agent()
        return JSONResponse({"model_file": Path(state.model_file or "").name,
                             "model_id": agent.model_id,
                             "num_active_training_jobs": state.training_jobs})

    return [Route("/version", version, methods=["GET"]),
            Route("/status", status, methods=["GET"])]


def create_app(agent: Agent | None, *, model_file: str | Path | None = None,
               endpoints: Endpoints | None = None, settings: ServerSettings | None = None,
               state: ServerState | None = None,
               api_routes: Sequence[RouteFactory] = (),
               platforms: Sequence[PlatformChannel] | None = None) -> Starlette:
    """The server's ASGI app for ``agent`` (None: start without a model, as Rasa can).

    ``endpoints`` gives the stores and the action server (default: in memory, none);
    a ready ``state`` may be passed instead (tests give their own stores that way).
    ``api_routes`` add routes to the API (with ``enable_api``): ``parley run`` gives
    :func:`parley.evaluation.http_api.routes`, which this layer cannot import.
    ``platforms`` are ready messaging-platform channels to open instead of those
    ``settings.channels`` names (tests point them at a fake platform this way).
    """
    settings = settings or ServerSettings()
    if state is None:
        state = ServerState.from_endpoints(agent, model_file, settings,
                                           endpoints or Endpoints())
    auth = Auth(settings.auth_token, settings.jwt_secret, settings.jwt_method)

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"Hello from Parley: {__version__}")

    routes: list[BaseRoute] = [Route("/", hello, methods=["GET"])]
    if settings.enable_api:
        routes += _info_routes(state, auth)
        routes += api_model.routes(state, auth)
        routes += api_conversations.routes(state, auth)
        for extra in api_routes:
            routes += extra(state, auth)
    if rest.NAME in settings.channels:
        routes += rest.routes(state, settings.channels[rest.NAME])
    opened = list(platforms) if platforms is not None else platform_channels(settings.channels)
    for platform in opened:
        routes += platform.routes(state)
        pusher = platform.pusher()
        if pusher is not None:
            state.push_channels[platform.name] = pusher

    middleware = [Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)]
    if settings.cors:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=settings.cors, allow_methods=["*"],
            allow_headers=["*"], allow_credentials="*" not in settings.cors,
            expose_headers=["filename"]))
    socket_app = _socketio_app(state, settings)
    if socket_app is not None:
        from parley.serving.http.channels.socketio import PathDispatch

        middleware.append(Middleware(PathDispatch, prefix=socket_app[0], other=socket_app[1]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        pulling = None
        if state.model_server is not None:
            # As Rasa: the model server's model before the first request, then pulls.
            await pull_into(state, state.model_server)
            pulling = asyncio.create_task(keep_pulling(state, state.model_server))
        try:
            for platform in opened:
                await platform.startup()
            yield
        finally:
            if pulling is not None:
                pulling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pulling
            # Reminders firing now still send through their channel: before it shuts down.
            await state.reminders.close()
            for platform in opened:
                await platform.shutdown()
            await state.close()

    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers=exception_handlers(), lifespan=lifespan)
    app.state.parley = state
    return app


def _socketio_app(state: ServerState, settings: ServerSettings) -> tuple[str, Any] | None:
    from parley.serving.http.channels import credentials

    options = settings.channels.get(credentials.SOCKETIO)
    if options is None:
        return None
    from parley.serving.http.channels.socketio import socketio_app

    return socketio_app(state, options, settings)
