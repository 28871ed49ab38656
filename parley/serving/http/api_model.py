"""Rasa's HTTP API about the model: parse, train, replace, predict on given events, domain.

=========================  ===============================================================
``POST /model/parse``      ``{"text"}`` → the parse result (text, intent, entities,
                           intent_ranking, response_selector); a ``message_id`` is
                           read past, as Rasa does
``POST /model/train``      the project as one YAML body (config, domain and data keys) →
                           the model archive; ``save_to_default_model_directory``,
                           ``force_training`` as Rasa's
``PUT /model``             ``{"model_file": "models/….tar.gz"}`` → 204, the model is served
``DELETE /model``          unload the model → 204
``POST /model/predict``    events → the next action's scores on that temporary tracker
``GET /domain``            the domain, JSON (or YAML with ``Accept: application/yaml``)
=========================  ===============================================================
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from parley.errors import DataError, ModelArchiveError, ParleyError
from parley.serving.http.auth import Auth
from parley.serving.http.body import (
    bool_param, json_object, optional_string, optional_text, query_value,
)
from parley.serving.http.errors import HTTPError, bad_request
from parley.serving.http.limits import check_message_length
from parley.serving.http.events_io import (
    events_from_body, include_events_param, prediction_result,
)
from parley.serving.http.state import ServerState

__all__ = ["routes"]

logger = logging.getLogger(__name__)

CONFIG_KEYS = ("recipe", "language", "assistant_id", "pipeline", "policies", "importers",
               "core_target", "nlu_target")
DOMAIN_KEYS = ("intents", "entities", "slots", "responses", "actions", "forms",
               "session_config", "config", "e2e_actions")
DATA_KEYS = ("nlu", "stories", "rules")
DEPRECATED_BODY_KEYS = ("force", "save_to_default_model_directory")
EMULATION_MODES = ("WIT", "LUIS", "DIALOGFLOW")


def routes(state: ServerState, auth: Auth) -> list[BaseRoute]:
    async def parse(request: Request) -> JSONResponse:
        auth.check(request)
        mode = query_value(request, "emulation_mode")
        if mode is not None:
            raise bad_request(
                f"emulation_mode '{mode[:40]}' is not supported by Parley: it answers in "
                f"Rasa's format only (Rasa also has {', '.join(EMULATION_MODES)}).",
                "emulation_mode", "query")
        agent = state.require_agent()
        data = await json_object(request, '{"text": "…"}')
        text = data.get("text")
        if not isinstance(text, str):
            raise bad_request("'text' must be the message to parse, a string.", "text")
        check_message_length(text, state.settings.max_message_chars)
        # The spec types message_id as a string, so another type is refused; a string is
        # not echoed: Rasa parses the text alone and its ParseResult has no message_id.
        optional_string(data, "message_id")
        # Rasa parses a UserMessage of the text, which loses surrounding whitespace.
        text = text.strip()
        try:
            result = await state.pool(lambda: agent.parse(text))
        except ModelArchiveError as error:
            raise HTTPError(409, str(error), reason="Conflict") from None
        return JSONResponse(result)

    async def train(request: Request) -> Response:
        auth.check(request)
        raw = await request.body()
        if not raw.strip():
            raise bad_request("send the project (config, domain and data keys) as YAML in "
                              "the request body to train a model.")
        to_default = bool_param(request, "save_to_default_model_directory", True)
        force = bool_param(request, "force_training", False)
        folder = Path(tempfile.mkdtemp(prefix="parley-train-"))
        try:
            _write_project(raw, folder)
            output = state.settings.models_dir if to_default else str(folder / "models")
            state.training_jobs += 1
            try:
                model = await asyncio.to_thread(_train, folder, output, force)
            finally:
                state.training_jobs -= 1
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(model, media_type="application/octet-stream",
                            filename=model.name, headers={"filename": model.name},
                            background=BackgroundTask(shutil.rmtree, folder, True))

    async def replace_model(request: Request) -> Response:
        auth.check(request)
        data = await json_object(request, '{"model_file": "models/….tar.gz"}')
        for key in ("model_server", "remote_storage"):
            if data.get(key) is not None:
                raise bad_request(f"'{key}' is not supported by Parley; give the archive's "
                                  "path on the server as 'model_file'.", key)
        path = optional_text(data, "model_file")
        if not path:
            raise bad_request("'model_file' must name a model archive (or a folder to take "
                              "the newest from) on the server.", "model_file")
        from parley.model_archive import resolve_model
        from parley.serving.agent import load

        try:
            archive = resolve_model(path)
            agent = await asyncio.to_thread(load, archive)
        except (ParleyError, OSError) as error:
            raise bad_request(f"the model '{path}' could not be loaded: {error}",
                              "model_file") from None
        state.set_model(agent, archive)
        logger.info("now serving the model %s", archive)
        return Response(status_code=204)

    async def unload_model(request: Request) -> Response:
        auth.check(request)
        state.set_model(None, None)
        return Response(status_code=204)

    async def predict(request: Request) -> JSONResponse:
        auth.check(request)
        processor = state.require_processor(core=True)
        verbosity = include_events_param(request)
        data = await _json_list(request)
        if not isinstance(data, list):
            raise bad_request("the body must be a list of events.", "", "body")
        events = events_from_body(data, allow_empty=True)
        tracker = processor.tracker_store.init_tracker("default", events)
        prediction = await processor.predict(tracker)
        return JSONResponse(prediction_result(processor, tracker, prediction, verbosity))

    async def domain(request: Request) -> Response:
        auth.check(request)
        agent = state.require_agent()
        accept = request.headers.get("accept", "application/json").split(";")[0].strip()
        as_dict = agent.domain.as_dict() if agent.domain is not None else {}
        if accept.endswith(("yml", "yaml")):
            from parley.data.formats.yaml_io import dump_yaml

            return PlainTextResponse(dump_yaml(as_dict), media_type="application/x-yaml")
        if accept.endswith("json") or accept in ("", "*/*", "application/*"):
            return JSONResponse(as_dict)
        raise HTTPError(406, "Invalid Accept header: the domain comes as JSON (Accept: "
                             "application/json) or YAML (Accept: application/x-yaml).",
                        reason="NotAcceptable")

    return [Route("/model/parse", parse, methods=["POST"]),
            Route("/model/train", train, methods=["POST"]),
            Route("/model", replace_model, methods=["PUT"]),
            Route("/model", unload_model, methods=["DELETE"]),
            Route("/model/predict", predict, methods=["POST"]),
            Route("/domain", domain, methods=["GET"])]


async def _json_list(request: Request) -> Any:
    from parley.serving.http.body import json_body

    return await json_body(request, "a list of events")


def _write_project(raw: bytes, folder: Path) -> None:
    """Split the posted YAML into config.yml, domain.yml and data.yml, as Rasa reads one
    file as all three."""
    from parley.data.formats.yaml_io import parse_yaml, plain, write_yaml_file

    try:
        content = plain(parse_yaml(raw.decode("utf-8"), "the request body"))
    except (DataError, UnicodeDecodeError) as error:
        raise bad_request(f"the request body is not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise bad_request("the request body must be a YAML mapping with config, domain and "
                          "data keys (pipeline, policies, intents, responses, nlu, stories …).")
    known = (*CONFIG_KEYS, *DOMAIN_KEYS, *DATA_KEYS, *DEPRECATED_BODY_KEYS, "version")
    unknown = [str(key) for key in content if key not in known]
    if unknown:
        raise bad_request(f"unknown key(s) in the training request: {', '.join(unknown)}. "
                          f"Known: {', '.join(known)}.")
    version = {"version": content["version"]} if "version" in content else {}
    for name, keys in (("config.yml", CONFIG_KEYS), ("domain.yml", DOMAIN_KEYS),
                       ("data.yml", DATA_KEYS)):
        part = {key: content[key] for key in keys if key in content}
        write_yaml_file({**(version if name != "config.yml" else {}), **part},
                        folder / name)


def _train(folder: Path, output: str, force: bool) -> Path:
    from parley.model_training import train

    try:
        result = train(str(folder / "domain.yml"), str(folder / "config.yml"),
                       [str(folder / "data.yml")], output, force_training=force)
    except DataError as error:
        raise bad_request(f"the training data is invalid: {error.report()}") from None
    except ParleyError as error:
        raise bad_request(f"training failed: {error}") from None
    if not result.model:
        raise HTTPError(500, "training finished without a model.", reason="TrainingError")
    return Path(result.model)
