"""Rasa's OpenAPI spec (../shared/spec/rasa-http-api.yml) run against the live app with
schemathesis: for every endpoint Parley implements, generated requests (valid and not) get
answers whose status, content type and body the spec allows — 0 failures.

Where Rasa's real answers differ from its own spec, Parley answers as Rasa does and the
spec is corrected first (:mod:`tests.serving.http.spec_corrections`, listed in
docs/server.md). Each operation runs on a fresh app (in-memory stores), so that unloading
the model in one does not change what another sees.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import needs_shared_data
from tests.serving.http.spec_corrections import SPEC, implemented_spec

pytestmark = [needs_shared_data,
              pytest.mark.skipif(not SPEC.is_file(), reason=f"{SPEC} is not there")]
schemathesis = pytest.importorskip("schemathesis", reason="the spec test needs schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402


TOKEN = "spec-token"
# Generated requests per operation and mode; PARLEY_SPEC_EXAMPLES=500 for a deeper search.
EXAMPLES = int(os.environ.get("PARLEY_SPEC_EXAMPLES", "25"))
OPERATIONS = [(route, method) for route, methods in implemented_spec()["paths"].items()
              for method in methods] if SPEC.is_file() else []


@pytest.fixture
def api_schema(moodbot: Any, moodbot_model: Any, tmp_path: Any) -> Any:
    from parley.evaluation import http_api
    from parley.serving.http import ServerSettings, create_app

    app = create_app(moodbot, model_file=moodbot_model, api_routes=[http_api.routes],
                     settings=ServerSettings(enable_api=True, seed=0, auth_token=TOKEN,
                                             models_dir=str(tmp_path / "models")))
    schema = schemathesis.openapi.from_dict(implemented_spec())
    schema.app = app
    return schema


def _has_input(route: str, method: str) -> bool:
    """Whether a request to the operation can be malformed at all (parameters or a body
    beyond the path and the auth token)."""
    operation = implemented_spec()["paths"][route][method]
    return bool(operation.get("requestBody") or operation.get("parameters"))


CASES = [(route, method, mode) for route, method in OPERATIONS
         for mode in ("positive", "negative") if mode == "positive" or _has_input(route, method)]


@pytest.mark.parametrize(("route", "method", "mode"), CASES,
                         ids=[f"{method.upper()} {route} {mode}" for route, method, mode in CASES])
def test_the_api_should_answer_as_rasas_spec_says(api_schema: Any, route: str, method: str,
                                                  mode: str) -> None:
    from schemathesis import GenerationMode

    operation = api_schema[route][method.upper()]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    from schemathesis.specs.openapi.checks import positive_data_acceptance

    # Bodies the spec cannot describe fully: training data (any list under nlu/stories
    # passes its schema; only well-formed Rasa data trains), test stories (any string) and a
    # model path (any string passes; only an archive on the server loads). Rasa answers 400
    # to the rest, as Parley.
    unknowable = (route, method) in {("/model/train", "post"), ("/model", "put"),
                                     ("/model/test/stories", "post")}
    excluded = [positive_data_acceptance] if unknowable else []

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    def check(case: Any) -> None:
        case.call_and_validate(params={"token": TOKEN}, excluded_checks=excluded)

    check()
