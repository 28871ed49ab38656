"""Rasa's HTTP API for evaluating models: ``POST /model/test/stories`` and
``POST /model/test/intents``.

``parley run --enable-api`` adds these routes to the server's (they live here, above
:mod:`parley.serving`, because they run :mod:`parley.evaluation`). The answer is what Rasa's
``rasa.core.test.test`` returns: the story report (``story_report.json``'s content), its
weighted precision and F1, the accuracy, every action with what was predicted, by which
policy and how confidently, and the share of actions a memorising policy predicted
(``in_training_data_fraction``: a test story the model has seen is replayed, not
generalised). As in Rasa only the stories of the body are tested, not its rules. A model
without an NLU part takes the intents written in the stories, so ``e2e`` cannot make its
evaluation end-to-end: ``is_end_to_end_evaluation`` is then false, and ``notes`` (Parley's
addition, present only when there is something to note) says so, as it says that rules
were left out.

``/model/test/intents`` takes NLU test data (Rasa's YAML, or Rasa's NLU JSON) and answers
Rasa's ``NLUEvaluationResult``: for the intents, each entity extractor and the response
selection, the report (``*_report.json``'s content), accuracy, weighted F1 and precision,
the predictions and the errors. ``model`` names another archive on the server to evaluate
(the served one stays); ``cross_validation_folds`` cross-validates the pipeline given in the
YAML body instead (the posted data is then training data, as in Rasa); ``callback_url``
answers 204 at once and POSTs the result (or the error) there when it is ready.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import urllib.request
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from parley.errors import DataError
from parley.evaluation.core import RULES_NOT_TESTED, CoreReport, evaluate_core, rules_note
from parley.nlu.evaluation import accuracy
from parley.serving.http.auth import Auth
from parley.serving.http.body import bool_param
from parley.serving.http.errors import HTTPError, bad_request
from parley.serving.http.state import ServerState

__all__ = ["MEMORISING_POLICIES", "nlu_result", "routes", "stories_result"]

logger = logging.getLogger(__name__)

# Config keys a YAML body may carry for cross-validation (Rasa's one-file layout).
CONFIG_KEYS = ("recipe", "language", "assistant_id", "pipeline", "policies")

# The policies that replay the training stories; Rasa counts their predictions as "in the
# training data".
MEMORISING_POLICIES = ("RulePolicy", "MemoizationPolicy", "AugmentedMemoizationPolicy")


def routes(state: ServerState, auth: Auth) -> list[BaseRoute]:
    async def test_stories(request: Request) -> JSONResponse:
        auth.check(request)
        e2e = bool_param(request, "e2e", False)
        state.require_processor(core=True)
        agent = state.require_agent()
        stories, rules = _stories_from_body(await request.body())
        report = await state.pool(lambda: evaluate_core(agent, stories, e2e=e2e))
        notes = [*report.notes, *([rules_note(rules)] if rules else [])]
        for note in notes:
            logger.info("/model/test/stories: %s", note)
        return JSONResponse(stories_result(report, notes))

    async def test_intents(request: Request) -> Response:
        auth.check(request)
        folds = _folds_param(request)
        model = request.query_params.get("model")
        callback = request.query_params.get("callback_url")
        if callback is not None:
            _check_callback(callback)
        body = await request.body()
        json_body = "json" in request.headers.get("content-type", "")
        data, config = _nlu_from_body(body, json_body, needs_config=folds is not None)
        if folds is None and model is None:
            state.require_agent()

        async def evaluate() -> dict[str, Any]:
            if folds is not None:
                return await asyncio.to_thread(_cross_validated, config, data, folds)
            if model is not None:
                return await asyncio.to_thread(_with_model, model, data)
            agent = state.require_agent()
            return await state.pool(lambda: nlu_result(_evaluated(agent, data)))

        if callback is None:
            return JSONResponse(await evaluate())
        task = asyncio.ensure_future(_post_when_done(evaluate(), callback))
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)
        return Response(status_code=204)

    return [Route("/model/test/stories", test_stories, methods=["POST"]),
            Route("/model/test/intents", test_intents, methods=["POST"])]


_PENDING: set[asyncio.Future[Any]] = set()  # callback evaluations still running


def _folds_param(request: Request) -> int | None:
    raw = request.query_params.get("cross_validation_folds")
    if raw is None or raw == "":
        return None
    try:
        folds = int(raw)
    except ValueError:
        folds = 0
    if folds < 2:
        raise bad_request(f"cross_validation_folds must be a whole number of at least 2, "
                          f"found '{raw[:40]}'.", "cross_validation_folds", "query")
    return folds


def _check_callback(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request(f"callback_url '{url[:80]}' is not an http(s) URL.", "callback_url",
                          "query")


def _nlu_from_body(raw: bytes, as_json: bool, needs_config: bool
                   ) -> tuple[Any, dict[str, Any] | None]:
    """The posted NLU data, and (for cross-validation) the posted config."""
    from parley.data.formats.json_io import parse_json
    from parley.data.formats.nlu_json import is_rasa_nlu_json, nlu_from_json_content
    from parley.data.formats.nlu_yaml import nlu_from_content
    from parley.data.formats.yaml_io import parse_yaml, plain

    if not raw.strip():
        raise bad_request("send NLU test data in the request body: Rasa's YAML (an 'nlu:' "
                          "section) or Rasa's NLU JSON.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8 text.") from None
    where = "the request body"
    config: dict[str, Any] | None = None
    try:
        if as_json:
            if needs_config:
                raise bad_request("cross-validation needs the pipeline, which only a YAML "
                                  "body carries (as in Rasa).")
            content = parse_json(text, where)
            if not is_rasa_nlu_json(content):
                raise bad_request("the JSON body is not Rasa's NLU JSON (a 'rasa_nlu_data' "
                                  "object).")
            data = nlu_from_json_content(content, where)
        else:
            content = parse_yaml(text, where)
            if not isinstance(content, dict):
                raise bad_request("the YAML body must be a mapping with an 'nlu:' section.")
            config = {key: plain(content[key]) for key in CONFIG_KEYS if key in content}
            data_part = {key: value for key, value in content.items()
                         if key not in CONFIG_KEYS}
            data = nlu_from_content(data_part, where)
    except DataError as error:
        raise bad_request(f"the NLU data is invalid: {error.report()}") from None
    if not data.intent_examples:
        raise bad_request("the request body holds no NLU examples with an intent.")
    if needs_config and not (config or {}).get("pipeline"):
        raise bad_request("cross-validation needs the pipeline: add the config's "
                          "'pipeline:' (and 'language:') to the YAML body.")
    return data, config


def _evaluated(agent: Any, data: Any) -> Any:
    from parley.evaluation.entities import entity_extractors
    from parley.nlu.evaluation import evaluate_nlu

    try:
        return evaluate_nlu(agent, data, extractors=entity_extractors(agent.nlu_components))
    except DataError as error:  # the posted data cannot be scored (overlapping entities)
        raise bad_request(f"the NLU data cannot be evaluated: {error.report()}") from None


def _with_model(path: str, data: Any) -> dict[str, Any]:
    from parley.errors import ParleyError
    from parley.model_archive import resolve_model
    from parley.serving.agent import load

    try:
        agent = load(resolve_model(path))
    except (ParleyError, OSError) as error:
        raise bad_request(f"the model '{path[:200]}' could not be loaded: {error}", "model",
                          "query") from None
    try:
        return nlu_result(_evaluated(agent, data))
    finally:
        agent.close()


def _cross_validated(config: dict[str, Any] | None, data: Any, folds: int) -> dict[str, Any]:
    import tempfile

    from parley.data.formats.yaml_io import write_yaml_file
    from parley.errors import ParleyError
    from parley.evaluation.cross_validation import cross_validate

    with tempfile.TemporaryDirectory(prefix="parley-cv-api-") as work:
        path = Path(work) / "config.yml"
        write_yaml_file(config or {}, path)
        try:
            return nlu_result(cross_validate(path, data, folds).report)
        except ParleyError as error:
            raise bad_request(f"cross-validation failed: {error}") from None


async def _post_when_done(work: Any, url: str) -> None:
    """Rasa's callback: the result, or the error, POSTed to ``url``."""
    try:
        body: Any = await work
    except HTTPError as error:
        body = {"status": "failure", "message": error.message, "code": error.status}
    except Exception as error:  # noqa: BLE001 - the client is told instead of a crash
        logger.exception("the evaluation for %s failed", url)
        body = {"status": "failure", "message": str(error), "code": 500}
    data = json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        await asyncio.to_thread(lambda: opener.open(request, timeout=60).close())
    except (OSError, ValueError) as error:
        logger.error("the evaluation result could not be sent to the callback URL (%s).",
                     error)


def _label_evaluation(report: Any, key: str) -> dict[str, Any]:
    gold_key, predicted_key = (("intent", "predicted") if key == "intent"
                               else (f"{key}_target", f"{key}_prediction"))
    return {
        "report": report.as_dict(), "accuracy": report.accuracy,
        "f1_score": report.weighted_f1, "precision": report.weighted_precision,
        "predictions": [{"text": t, gold_key: g, predicted_key: p, "confidence": c}
                        for t, g, p, c in zip(report.texts, report.gold, report.predicted,
                                              report.confidences, strict=True)],
        "errors": report.errors_as_dicts(key),
    }


def nlu_result(report: Any) -> dict[str, Any]:
    """Rasa's ``NLUEvaluationResult`` for an :class:`~parley.nlu.evaluation.NLUReport`."""
    return {
        "intent_evaluation": None if report.intents is None
        else _label_evaluation(report.intents, "intent"),
        "response_selection_evaluation": None if report.responses is None
        else _label_evaluation(report.responses, "intent_response_key"),
        "entity_evaluation": {
            name: {"report": entities.as_dict(), "accuracy": entities.accuracy,
                   "f1_score": entities.weighted_f1, "precision": entities.weighted_precision,
                   "errors": entities.errors_as_dicts()}
            for name, entities in report.extractors.items()},
    }


def _stories_from_body(raw: bytes) -> tuple[list[Any], list[Any]]:
    from parley.data.formats.story_yaml import read_stories

    if not raw.strip():
        raise bad_request("send the test stories as YAML in the request body (a 'stories:' "
                          "section, as in tests/test_stories.yml) to evaluate the model.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8 text; send the test stories as "
                          "YAML.") from None
    try:
        found = read_stories(text, "the request body")
    except DataError as error:
        raise bad_request(f"the test stories are invalid: {error.report()}") from None
    # Only the stories are tested, as by Rasa's endpoint and by `parley test core`.
    if not found.stories:
        raise bad_request("the request body holds no stories to test; send a 'stories:' "
                          f"section. Rules are not tested, {RULES_NOT_TESTED}")
    return found.stories, found.rules


def stories_result(report: CoreReport, notes: Sequence[str] = ()) -> dict[str, Any]:
    """Rasa's ``EvaluationStoriesResult`` for a finished core evaluation; ``notes`` (Parley's
    addition, only when there are some) say what a reader of the figures must know: that a
    model without an NLU part could not be tested end-to-end, that rules were left out."""
    story_report = report.story_report()
    weighted = story_report.get("weighted avg", {})
    checks = report.action_checks
    actions = [{"action": check.expected, "predicted": str(check.predicted),
                "policy": check.policy, "confidence": float(check.confidence)}
               for check in checks]
    memorised = sum(_memorised(check.policy, check.confidence) for check in checks)
    result = {
        "report": story_report,
        "precision": float(weighted.get("precision", 0.0)),
        "f1": float(weighted.get("f1-score", 0.0)),
        "accuracy": accuracy(*report.labels()) if checks else 0.0,
        "actions": actions,
        "in_training_data_fraction": memorised / len(checks) if checks else 0.0,
        "is_end_to_end_evaluation": report.end_to_end,
    }
    if notes:
        result["notes"] = list(notes)
    return result


def _memorised(policy: str | None, confidence: float) -> bool:
    # A memorising policy that answered with no confidence did not recognise the story.
    return (policy is not None and confidence > 0.0
            and policy.rsplit("_", 1)[-1] in MEMORISING_POLICIES)
