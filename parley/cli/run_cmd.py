"""``parley run``: serve a model over HTTP — the channels, and Rasa's HTTP API with
``--enable-api`` — with Rasa's flags (docs/server.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

DEFAULT_ENDPOINTS = "endpoints.yml"  # as Rasa: read when present
DEFAULT_CREDENTIALS = "credentials.yml"
DEFAULT_PORT = 5005


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "run", help="Serve the assistant over HTTP (REST, socket.io, Rasa's HTTP API).",
        description="Load a model (default: the newest in models/) and serve it: the "
                    "channels of credentials.yml (REST alone when there is none) and, with "
                    "--enable-api, Rasa's HTTP API. Stores and the action server come from "
                    "endpoints.yml. Logs a line starting 'Parley server is ready' once it "
                    "listens.",
    )
    parser.add_argument("-m", "--model", default="models",
                        help="Model archive, or a folder to take the newest from.")
    parser.add_argument("--endpoints", default=None,
                        help="endpoints.yml with the action server, tracker store and lock "
                             "store (default: endpoints.yml when there is one).")
    parser.add_argument("--credentials", default=None,
                        help="credentials.yml naming the channels (rest:, socketio:, telegram:, "
                             "slack:, facebook:, twilio:, callback:); "
                             "default: credentials.yml when there is one, else REST alone.")
    parser.add_argument("-i", "--interface", default="0.0.0.0",
                        help="Network interface to listen on (default: all).")
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_PORT,
                        help=f"Port to listen on (default: {DEFAULT_PORT}).")
    parser.add_argument("--enable-api", action="store_true",
                        help="Serve Rasa's HTTP API (/model/parse, /conversations/…, …).")
    parser.add_argument("--auth-token", default=None,
                        help="The API wants ?token=<this> (the channels do not).")
    parser.add_argument("--jwt-secret", default=None,
                        help="The API accepts JWTs (Authorization: Bearer …) signed with "
                             "this secret (the public key for RS/ES methods).")
    parser.add_argument("--jwt-method", default="HS256",
                        help="The JWT signing method (default: HS256).")
    parser.add_argument("--cors", nargs="*", default=None,
                        help="Origins allowed to call the server from a browser ('*': any).")
    parser.add_argument("--response-timeout", type=float, default=3600.0,
                        help="Seconds a request may take before a 503 (default: 3600).")
    parser.add_argument("--max-body-size", type=int, default=None,
                        help="Largest request body in bytes (default: 10 MB).")
    parser.add_argument("--max-message-length", type=int, default=None,
                        help="Longest message text parsed, in characters; longer ones get "
                             "a 413 (default: 20,000).")
    parser.add_argument("--prediction-workers", type=int, default=1,
                        help="Threads that run the model (each with one PyTorch thread; "
                             "default: 1).")
    parser.add_argument("--seed", type=int, default=None,
                        help="Fix which variation of a response is chosen.")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="How much the server logs (default: info).")
    parser.set_defaults(handler=run)
    from parley.cli import run_actions_cmd

    run_actions_cmd.register(parser.add_subparsers(dest="run_target", metavar="actions"))


def _existing(given: str | None, default: str) -> str | None:
    return given or (default if Path(default).is_file() else None)


def run(args: argparse.Namespace) -> int:
    from parley.errors import ConfigError
    from parley.model_archive import resolve_model
    from parley.runtime.endpoints import read_endpoints
    from parley.serving.agent import load
    from parley.serving.http.channels.credentials import read_credentials
    from parley.serving.http.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_MESSAGE_CHARS
    from parley.serving.http.run import configure_logging, logger, serve
    from parley.serving.http.state import ServerSettings

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, found {args.port}.")
    if args.response_timeout <= 0 or args.prediction_workers < 1:
        raise ConfigError("--response-timeout must be positive and --prediction-workers "
                          "at least 1.")
    if args.max_body_size is not None and args.max_body_size <= 0:
        raise ConfigError("--max-body-size must be a positive number of bytes, found "
                          f"{args.max_body_size} (default: {DEFAULT_MAX_BODY_BYTES}).")
    if args.max_message_length is not None and args.max_message_length <= 0:
        raise ConfigError("--max-message-length must be a positive number of characters, "
                          f"found {args.max_message_length} (default: "
                          f"{DEFAULT_MAX_MESSAGE_CHARS}).")
    configure_logging(args.log_level)
    endpoints = read_endpoints(_existing(args.endpoints, DEFAULT_ENDPOINTS))
    channels = read_credentials(_existing(args.credentials, DEFAULT_CREDENTIALS))
    settings = ServerSettings(
        enable_api=args.enable_api, auth_token=args.auth_token, jwt_secret=args.jwt_secret,
        jwt_method=args.jwt_method, cors=args.cors, response_timeout=args.response_timeout,
        max_body_bytes=args.max_body_size or DEFAULT_MAX_BODY_BYTES,
        max_message_chars=args.max_message_length or DEFAULT_MAX_MESSAGE_CHARS, channels=channels,
        prediction_workers=args.prediction_workers, seed=args.seed)
    if args.jwt_secret:
        _check_jwt_method(args.jwt_method)

    archive: Path | None = None
    agent = None
    if endpoints.models is not None:
        # The model server's model is pulled when the app starts (see model_server).
        logger.info("the model comes from the model server at %s", endpoints.models.url)
    else:
        archive = resolve_model(args.model)
    # PARLEY_TORCH_THREADS is left as the user set it: the served models predict in numpy
    # (no PyTorch is imported to serve), so PyTorch's threads are POST /model/train's,
    # which trains on every core as `parley train` does (on one: snips-small 14.9 s
    # instead of ~10).
    if archive is not None:
        started = time.perf_counter()
        agent = load(archive)
        logger.info("loaded the model %s in %.2f s", archive, time.perf_counter() - started)

    from parley.evaluation import http_api
    from parley.serving.http.app import create_app
    from parley.serving.http.compute import limit_torch_threads

    limit_torch_threads()
    app = create_app(agent, model_file=archive, endpoints=endpoints, settings=settings,
                     api_routes=[http_api.routes])
    names = ", ".join(channels) or "none"
    serve(app, args.interface, args.port,
          f"model {archive.name if archive else 'from the model server'}, channels: {names}, API: "
          f"{'on' if args.enable_api else 'off'}", args.log_level,
          startup=app.state.parley.start)
    return 0


def _check_jwt_method(method: str) -> None:
    import jwt

    from parley.errors import ConfigError

    # 'none' is PyJWT's unsigned method: no secret can check such a token.
    signed = sorted(name for name in jwt.algorithms.get_default_algorithms() if name != "none")
    if method.lower() == "none":
        raise ConfigError("--jwt-method none would take unsigned tokens, which no "
                          f"--jwt-secret can check; use one of: {', '.join(signed)}.")
    if method not in signed:
        raise ConfigError(f"--jwt-method {method} is not available (RS/ES methods need the "
                          f"'cryptography' package); available: {', '.join(signed)}.")
