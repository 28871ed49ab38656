"""``POST /model/test/stories``: Rasa's story evaluation of the served model over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import SHARED_DATA

TEST_STORIES = (SHARED_DATA / "bots" / "rasa-init-moodbot" / "tests" / "test_stories.yml")

WRONG_STORY = """stories:
- story: a greeting answered with a goodbye
  steps:
  - user: |
      hello there!
    intent: greet
  - action: utter_goodbye
"""


@pytest.fixture
def client(moodbot: Any, moodbot_model: Any) -> Iterator[TestClient]:
    from parley.evaluation import http_api
    from parley.serving.http import ServerSettings, create_app

    app = create_app(moodbot, model_file=moodbot_model, api_routes=[http_api.routes],
                     settings=ServerSettings(enable_api=True, seed=0, auth_token="t"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _post(client: TestClient, body: bytes | str, **params: str) -> Any:
    return client.post("/model/test/stories", content=body,
                       params={"token": "t", **params}, headers={"Content-Type": "text/yml"})


def test_test_stories_should_answer_rasas_evaluation_of_the_served_model(client):
    answer = _post(client, TEST_STORIES.read_bytes())
    assert answer.status_code == 200, answer.text
    result = answer.json()
    passed = result["report"]["conversation_accuracy"]
    assert passed["total"] == 7 and passed["correct"] >= 6  # the moodbots' data differ
    actions = result["actions"]
    right = sum(a["action"] == a["predicted"] for a in actions)
    assert result["accuracy"] == pytest.approx(right / len(actions))
    assert result["f1"] == pytest.approx(result["report"]["weighted avg"]["f1-score"])
    assert result["precision"] == pytest.approx(result["report"]["weighted avg"]["precision"])
    assert result["is_end_to_end_evaluation"] is False
    first = result["actions"][0]
    assert set(first) == {"action", "predicted", "policy", "confidence"}
    assert first["action"] == first["predicted"]
    assert 0.0 < first["confidence"] <= 1.0
    # The moodbot's stories are its test stories' paths: memoization replays them.
    assert result["in_training_data_fraction"] > 0.5
    assert "utter_greet" in result["report"]


def test_test_stories_should_score_a_wrong_prediction_and_e2e(client):
    answer = _post(client, WRONG_STORY, e2e="true")
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["report"]["conversation_accuracy"]["correct"] == 0
    assert result["actions"][0] == {**result["actions"][0], "action": "utter_goodbye",
                                    "predicted": "utter_greet"}
    assert result["accuracy"] < 1.0
    assert result["is_end_to_end_evaluation"] is True
    assert "greet" in result["report"]  # e2e scores the parsed intents beside the actions


@pytest.mark.parametrize("body, message", [
    (b"", "send the test stories as YAML"),
    (b"stories: [", "the test stories are invalid"),
    (b"\xff\xfe", "not UTF-8"),
    (b"rules: []\n", "holds no stories"),
    (b"stories:\n- story: x\n  steps:\n  - intent: greet\n  - acton: utter_greet\n",
     "the test stories are invalid"),
])
def test_test_stories_should_refuse_a_bad_body_with_rasas_400(client, body, message):
    answer = _post(client, body)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_test_stories_should_need_the_token_and_a_model(client):
    assert client.post("/model/test/stories", content=WRONG_STORY).status_code == 401
    assert client.delete("/model", params={"token": "t"}).status_code == 204
    assert _post(client, WRONG_STORY).status_code == 409
