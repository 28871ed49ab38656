"""Rasa's HTTP API for evaluating the served model: ``POST /model/test/stories``.

``parley run --enable-api`` adds these routes to the server's (they live here, above
:mod:`parley.serving`, because they run :mod:`parley.evaluation`). The answer is what Rasa's
``rasa.core.test.test`` returns: the story report (``story_report.json``'s content), its
weighted precision and F1, the accuracy, every action with what was predicted, by which
policy and how confidently, and the share of actions a memorising policy predicted
(``in_training_data_fraction``: a test story the model has seen is replayed, not
generalised).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from parley.errors import DataError
from parley.evaluation.core import CoreReport, evaluate_core
from parley.nlu.evaluation import accuracy
from parley.serving.http.auth import Auth
from parley.serving.http.body import bool_param
from parley.serving.http.errors import bad_request
from parley.serving.http.state import ServerState

__all__ = ["MEMORISING_POLICIES", "routes", "stories_result"]

# The policies that replay the training stories; Rasa counts their predictions as "in the
# training data".
MEMORISING_POLICIES = ("RulePolicy", "MemoizationPolicy", "AugmentedMemoizationPolicy")


def routes(state: ServerState, auth: Auth) -> list[BaseRoute]:
    async def test_stories(request: Request) -> JSONResponse:
        auth.check(request)
        e2e = bool_param(request, "e2e", False)
        state.require_processor(core=True)
        agent = state.require_agent()
        stories = _stories_from_body(await request.body())
        report = await state.pool(lambda: evaluate_core(agent, stories, e2e=e2e))
        return JSONResponse(stories_result(report))

    return [Route("/model/test/stories", test_stories, methods=["POST"])]


def _stories_from_body(raw: bytes) -> list[Any]:
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
    if not found.stories:
        raise bad_request("the request body holds no stories to test; send a 'stories:' "
                          "section.")
    return found.stories


def stories_result(report: CoreReport) -> dict[str, Any]:
    """Rasa's ``EvaluationStoriesResult`` for a finished core evaluation."""
    story_report = report.story_report()
    weighted = story_report.get("weighted avg", {})
    checks = report.action_checks
    actions = [{"action": check.expected, "predicted": str(check.predicted),
                "policy": check.policy, "confidence": float(check.confidence)}
               for check in checks]
    memorised = sum(_memorised(check.policy, check.confidence) for check in checks)
    return {
        "report": story_report,
        "precision": float(weighted.get("precision", 0.0)),
        "f1": float(weighted.get("f1-score", 0.0)),
        "accuracy": accuracy(*report.labels()) if checks else 0.0,
        "actions": actions,
        "in_training_data_fraction": memorised / len(checks) if checks else 0.0,
        "is_end_to_end_evaluation": report.e2e,
    }


def _memorised(policy: str | None, confidence: float) -> bool:
    # A memorising policy that answered with no confidence did not recognise the story.
    return (policy is not None and confidence > 0.0
            and policy.rsplit("_", 1)[-1] in MEMORISING_POLICIES)
