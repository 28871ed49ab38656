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
    (b"rules: []\n", "holds no stories to test"),
    (b"stories:\n- story: x\n  steps:\n  - intent: greet\n  - acton: utter_greet\n",
     "the test stories are invalid"),
])
def test_test_stories_should_refuse_a_bad_body_with_rasas_400(client, body, message):
    answer = _post(client, body)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_test_stories_should_leave_the_rules_of_the_body_out_as_rasa_does(client):
    # Rasa's endpoint (rasa.core.test) replays the stories of a test file, not its rules.
    body = ("rules:\n- rule: bye\n  steps:\n  - intent: goodbye\n  - action: utter_goodbye\n"
            + WRONG_STORY)
    answer = _post(client, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["report"]["conversation_accuracy"]["total"] == 1
    assert [a["action"] for a in result["actions"]] == ["utter_goodbye", "action_listen"]
    assert result["notes"] == [
        "1 rule of the test files is not tested, as in Rasa, whose `rasa test core` replays "
        "the stories of test files only: a rule is a fragment that may start "
        "mid-conversation, not a conversation. To test what a rule does, write a story "
        "that goes through it."]
    only_rules = _post(client, "rules:\n- rule: bye\n  steps:\n  - intent: goodbye\n"
                               "  - action: utter_goodbye\n")
    assert only_rules.status_code == 400
    assert "holds no stories to test" in only_rules.json()["message"]
    assert "notes" not in _post(client, WRONG_STORY).json()


def test_e2e_on_a_model_without_nlu_should_say_it_is_not_end_to_end(moodbot, moodbot_model):
    import copy

    from parley.evaluation import http_api
    from parley.serving.http import ServerSettings, create_app

    core_only = copy.copy(moodbot)
    core_only.nlu_components = []
    app = create_app(core_only, model_file=moodbot_model, api_routes=[http_api.routes],
                     settings=ServerSettings(enable_api=True, seed=0, auth_token="t"))
    with TestClient(app, raise_server_exceptions=False) as core_client:
        result = _post(core_client, WRONG_STORY, e2e="true").json()
    assert result["is_end_to_end_evaluation"] is False
    assert result["notes"] == [
        "the model has no NLU part; the intents written in the stories are used, so the "
        "evaluation is not end-to-end (no text is parsed and no entity checked)."]
    assert "greet" not in result["report"]  # no parsed intent is scored


def test_test_stories_should_need_the_token_and_a_model(client):
    assert client.post("/model/test/stories", content=WRONG_STORY).status_code == 401
    assert client.delete("/model", params={"token": "t"}).status_code == 204
    assert _post(client, WRONG_STORY).status_code == 409


NLU_TEST = """nlu:
- intent: greet
  examples: |
    - hello there
    - hi
- intent: goodbye
  examples: |
    - bye bye
    - see you later
"""

NLU_JSON = """{"rasa_nlu_data": {"common_examples": [
  {"text": "hello there", "intent": "greet", "entities": []},
  {"text": "see you later", "intent": "goodbye", "entities": []}]}}"""


def _intents(client: TestClient, body: str, content_type: str = "application/x-yaml",
             **params: str) -> Any:
    return client.post("/model/test/intents", content=body,
                       params={"token": "t", **params}, headers={"Content-Type": content_type})


def test_test_intents_should_answer_rasas_nlu_evaluation(client):
    answer = _intents(client, NLU_TEST)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert set(result) == {"intent_evaluation", "response_selection_evaluation",
                           "entity_evaluation"}
    intents = result["intent_evaluation"]
    assert set(intents) == {"report", "accuracy", "f1_score", "precision", "predictions",
                            "errors"}
    assert len(intents["predictions"]) == 4
    right = sum(p["intent"] == p["predicted"] for p in intents["predictions"])
    assert intents["accuracy"] == pytest.approx(right / 4)
    assert len(intents["errors"]) == 4 - right
    assert intents["report"]["weighted avg"]["f1-score"] == pytest.approx(intents["f1_score"])
    assert result["response_selection_evaluation"] is None
    # Rasa's NLU JSON is read too
    answer = _intents(client, NLU_JSON, "application/json")
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["intent_evaluation"]["predictions"]) == 2


def test_test_intents_should_evaluate_another_model_and_cross_validate(client, moodbot_model):
    answer = _intents(client, NLU_TEST, model=str(moodbot_model))
    assert answer.status_code == 200, answer.text
    body = NLU_TEST.replace("    - hi\n", "    - hi\n    - hey\n    - good morning\n") + \
        "    - goodbye\n    - ciao\npipeline:\n- name: WhitespaceTokenizer\n" \
        "- name: CountVectorsFeaturizer\n- name: LogisticRegressionClassifier\n"
    answer = _intents(client, body, cross_validation_folds="2")
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["intent_evaluation"]["predictions"]) == 8


@pytest.mark.parametrize("body, content_type, params, message", [
    ("", "application/x-yaml", {}, "send NLU test data"),
    ("nlu: [", "application/x-yaml", {}, "the NLU data is invalid"),
    ("rules: []", "application/x-yaml", {}, "no NLU examples with an intent"),
    ('{"x": 1}', "application/json", {}, "not Rasa's NLU JSON"),
    (NLU_TEST, "application/x-yaml", {"cross_validation_folds": "1"}, "at least 2"),
    (NLU_TEST, "application/x-yaml", {"cross_validation_folds": "3"}, "needs the pipeline"),
    (NLU_JSON, "application/json", {"cross_validation_folds": "2"}, "only a YAML body"),
    (NLU_TEST, "application/x-yaml", {"model": "no/such.tar.gz"}, "could not be loaded"),
    (NLU_TEST, "application/x-yaml", {"callback_url": "ftp://x"}, "not an http(s) URL"),
    ('nlu:\n- intent: greet\n  examples: |\n    - hi [Bob][{"entity": "name"}, '
     '{"entity": "person"}]\n', "application/x-yaml", {},
     "the request body:4: error: the test example 'hi Bob' has overlapping entities"),
])
def test_test_intents_should_refuse_bad_requests(client, body, content_type, params, message):
    answer = _intents(client, body, content_type, **params)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["message"]


def test_test_intents_should_post_the_result_to_the_callback_url(client):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[Any] = []
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            done.set()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/done"
        answer = _intents(client, NLU_TEST, callback_url=url)
        assert answer.status_code == 204
        assert done.wait(60)
        assert len(received[0]["intent_evaluation"]["predictions"]) == 4
    finally:
        httpd.shutdown()
        httpd.server_close()
