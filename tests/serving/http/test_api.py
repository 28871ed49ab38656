"""Rasa's HTTP API on the moodbot: answers in the shapes Rasa gives."""

from __future__ import annotations

import yaml

from tests.conftest import needs_shared_data

pytestmark = needs_shared_data

TRACKER_KEYS = {"sender_id", "slots", "latest_message", "latest_event_time",
                "followup_action", "paused", "events", "latest_input_channel",
                "active_loop", "latest_action", "latest_action_name"}


def say(client, sender, text):
    return client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})


def test_version_and_status_should_describe_the_server_and_model(client, moodbot_model):
    version = client.get("/version").json()
    assert set(version) >= {"version", "minimum_compatible_version"}
    status = client.get("/status").json()
    assert status == {"model_file": moodbot_model.name,
                      "model_id": client.app.state.parley.agent.model_id,
                      "num_active_training_jobs": 0}


def test_a_model_without_an_id_should_have_none_as_rasas(moodbot_model, tmp_path):
    # An archive whose metadata has no model_id: Rasa's agent gives None, so /status shows
    # null and no event names a model (not the text "None").
    import json

    from starlette.testclient import TestClient

    from parley.engine.archive import extract_archive, pack_archive
    from parley.serving.agent import load
    from parley.serving.http import ServerSettings, create_app

    root = extract_archive(moodbot_model, tmp_path / "model")
    meta = json.loads((root / "metadata.json").read_text())
    del meta["model_id"]
    (root / "metadata.json").write_text(json.dumps(meta))
    archive = pack_archive(root, tmp_path / "no-id.tar.gz")
    agent = load(archive)
    assert agent.model_id is None
    app = create_app(agent, model_file=archive, settings=ServerSettings(enable_api=True))
    with TestClient(app) as client:
        assert client.get("/status").json()["model_id"] is None
        say(client, "anon", "hello")
        events = client.get("/conversations/anon/tracker").json()["events"]
        assert events and all("model_id" not in event["metadata"] for event in events)
        assert all(event["metadata"].get("assistant_id") == agent.assistant_id
                   for event in events)
    agent.close()


def test_parse_should_give_rasas_parse_result(client):
    parsed = client.post("/model/parse", json={"text": "I am so sad", "message_id": "m1"})
    assert parsed.status_code == 200
    body = parsed.json()
    assert body["text"] == "I am so sad"
    # Rasa parses the text alone: the body's message_id is not in its ParseResult.
    assert "message_id" not in body
    assert body["intent"]["name"] == "mood_unhappy"
    assert {"entities", "intent_ranking"} <= set(body)
    assert client.post("/model/parse", json={"text": 3}).status_code == 400
    assert client.post("/model/parse?emulation_mode=LUIS", json={"text": "hi"}).status_code \
        == 400


def test_parse_should_read_the_text_without_surrounding_whitespace(client):
    # As Rasa's /model/parse, which makes a UserMessage of the text (that strips it).
    body = client.post("/model/parse", json={"text": "  I am so sad \n"}).json()
    assert body["text"] == "I am so sad"
    assert body == client.post("/model/parse", json={"text": "I am so sad"}).json()


def test_the_tracker_should_come_as_rasa_serialises_it(client):
    say(client, "t", "hello")
    say(client, "t", "I am sad")
    tracker = client.get("/conversations/t/tracker").json()
    assert set(tracker) == TRACKER_KEYS
    assert isinstance(tracker["slots"], dict)  # Rasa's real output; the spec says a list
    assert tracker["latest_message"]["intent"]["name"] == "mood_unhappy"
    assert tracker["latest_action_name"] == "action_listen"
    kinds = [e["event"] for e in tracker["events"]]
    assert kinds[:3] == ["action", "session_started", "action"] and kinds.count("user") == 2
    assert client.get("/conversations/t/tracker?include_events=NONE").json()["events"] is None
    assert client.get("/conversations/t/tracker?include_events=bogus").status_code == 400
    # until: the conversation as it stood at a time (here: before the second message).
    second = [e for e in tracker["events"] if e["event"] == "user"][1]["timestamp"]
    earlier = client.get(f"/conversations/t/tracker?until={second - 1e-6}").json()
    assert [e["event"] for e in earlier["events"]].count("user") == 1
    assert client.get("/conversations/t/tracker?until=soon").status_code == 400
    assert client.get("/conversations/t/tracker?until=1&until=2").status_code == 400


def test_the_tracker_after_a_restart_should_leave_the_restart_event_out(client):
    # Rasa's AFTER_RESTART (the default) is ``events_after_latest_restart``: the events
    # after the restart, not the restart itself.
    say(client, "r", "hello")
    say(client, "r", "/restart")
    say(client, "r", "hello")
    kinds = [e["event"] for e in client.get("/conversations/r/tracker").json()["events"]]
    assert "restart" not in kinds and kinds.count("user") == 1
    every = client.get("/conversations/r/tracker?include_events=ALL").json()["events"]
    assert [e["event"] for e in every].count("restart") == 1


def test_a_new_conversations_tracker_should_start_a_session(client):
    events = client.get("/conversations/fresh/tracker").json()["events"]
    assert [e.get("name") for e in events if e["event"] == "action"] == [
        "action_session_start", "action_listen"]


def test_events_should_append_and_replace(client):
    slot = client.post("/conversations/e/tracker/events",
                       json={"event": "slot", "name": "session_started_metadata",
                             "value": {"a": 1}})
    assert slot.status_code == 200
    assert slot.json()["slots"]["session_started_metadata"] == {"a": 1}
    many = client.post("/conversations/e/tracker/events", json=[
        {"event": "user", "text": "hey", "parse_data": {
            "text": "hey", "intent": {"name": "greet", "confidence": 1.0}, "entities": []}},
        {"event": "bot", "text": "hello"}]).json()
    assert [e["event"] for e in many["events"]][-2:] == ["user", "bot"]
    replaced = client.put("/conversations/e/tracker/events", json=[
        {"event": "action", "name": "action_listen"}]).json()
    assert [e["event"] for e in replaced["events"]] == ["action"]
    for bad in ({"event": "nonsense"}, [], {"event": "slot", "name": 3}, {"event": "export"},
                {"event": "reminder", "intent": "greet"},
                {"event": "followup", "name": "utter_greet", "metadata": None},
                {"event": "action", "name": "action_listen", "hide_rule_turn": None}):
        response = client.post("/conversations/e/tracker/events", json=bad)
        assert response.status_code == 400, bad
    assert client.put("/conversations/e/tracker/events", json={"event": "restart"}) \
        .status_code == 400


def test_an_entities_event_should_add_to_the_latest_message_as_rasas(client):
    client.post("/webhooks/rest/webhook", json={"sender": "ent", "message": "/greet"})
    entity = {"entity": "mood", "value": "great", "extractor": "a human"}
    added = client.post("/conversations/ent/tracker/events",
                        json={"event": "entities", "entities": [entity]})
    assert added.status_code == 200, added.text
    tracker = added.json()
    assert tracker["latest_message"]["intent"]["name"] == "greet"
    assert tracker["latest_message"]["entities"] == [entity]
    last = tracker["events"][-1]
    assert last["event"] == "entities" and last["entities"] == [entity]
    again = client.get("/conversations/ent/tracker").json()  # read back from the store
    assert again["latest_message"]["entities"] == [entity]
    missing = client.post("/conversations/ent/tracker/events", json={"event": "entities"})
    assert missing.status_code == 400
    assert "'entities' is missing" in missing.json()["message"]


def test_messages_should_log_a_message_and_predict_should_not_run_anything(client):
    logged = client.post("/conversations/m/messages", json={"text": "hello", "sender": "user"})
    assert logged.status_code == 200
    assert logged.json()["latest_message"]["intent"]["name"] == "greet"
    predicted = client.post("/conversations/m/predict").json()
    assert predicted["scores"][0] == {"action": "utter_greet", "score": 1.0}
    assert predicted["policy"] and predicted["confidence"] == 1.0
    scores = [s["score"] for s in predicted["scores"]]
    assert scores == sorted(scores, reverse=True)
    assert "utter_greet" not in [e.get("name") for e in predicted["tracker"]["events"]]
    assert client.post("/conversations/nobody/predict").status_code == 404
    assert client.post("/conversations/m/messages", json={"text": "x", "sender": "bot"}) \
        .status_code == 400
    given = client.post("/conversations/m2/messages", json={
        "text": "whatever", "sender": "user",
        "parse_data": {"text": "whatever", "intent": {"name": "deny", "confidence": 1.0},
                       "entities": []}}).json()
    assert given["latest_message"]["intent"]["name"] == "deny"
    assert client.post("/conversations/m2/messages", json={
        "text": "x", "sender": "user", "parse_data": {"text": "x", "entities": "no"}}) \
        .status_code == 400
    # Without its text, parse_data is still taken, as Rasa's server takes it.
    assert client.post("/conversations/m2/messages", json={
        "text": "x", "sender": "user", "parse_data": {"entities": []}}).status_code == 200


def test_execute_and_trigger_intent_should_run_and_return_the_messages(client):
    say(client, "x", "hello")
    executed = client.post("/conversations/x/execute", json={"name": "utter_happy"})
    assert executed.status_code == 200
    assert executed.json()["messages"] == [{"recipient_id": "x", "text": "Great, carry on!"}]
    assert executed.json()["tracker"]["latest_action_name"] == "utter_happy"
    assert client.post("/conversations/x/execute", json={}).status_code == 400
    assert client.post("/conversations/x/execute", json={"name": "utter_nothing"}) \
        .status_code == 404
    assert client.post("/conversations/none/execute", json={"name": "utter_happy"}) \
        .status_code == 404

    triggered = client.post("/conversations/y/trigger_intent", json={"name": "greet"})
    assert triggered.status_code == 200
    assert [m["text"] for m in triggered.json()["messages"]] == ["Hey! How are you?"]
    latest = triggered.json()["tracker"]["latest_message"]
    assert latest["text"] == "EXTERNAL: greet"
    assert client.post("/conversations/x/trigger_intent", json={"name": "nope"}).status_code \
        == 404
    assert client.post("/conversations/x/trigger_intent",
                       json={"name": "greet", "entities": 5}).status_code == 400


def test_an_external_intent_should_have_no_confidence_and_work_on_as_rasas(client):
    # Rasa's UserUttered.create_external stores {"name": …} alone: no NLU scored it.
    triggered = client.post("/conversations/ext/trigger_intent", json={"name": "greet"})
    assert triggered.status_code == 200, triggered.text
    assert [m["text"] for m in triggered.json()["messages"]] == ["Hey! How are you?"]
    assert triggered.json()["tracker"]["latest_message"]["intent"] == {"name": "greet"}
    events = client.get("/conversations/ext/tracker").json()["events"]
    user = next(e for e in events if e["event"] == "user")
    assert user["parse_data"]["intent"] == {"name": "greet"}
    # Everything downstream takes it: the conversation goes on, predicts, becomes a story,
    # and its events go back in as they came out.
    assert say(client, "ext", "I am sad").json()[0]["text"] == "Here is something to cheer you up:"
    assert client.post("/conversations/ext/predict").status_code == 200
    story = client.get("/conversations/ext/story")
    assert story.status_code == 200
    steps = yaml.safe_load(story.text)["stories"][0]["steps"]
    assert [step.get("intent") for step in steps if "intent" in step] == [
        "greet", "mood_unhappy"]
    every = client.get("/conversations/ext/tracker?include_events=ALL").json()["events"]
    replaced = client.put("/conversations/ext2/tracker/events", json=every)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["events"] == every


def test_story_should_write_the_conversation_as_a_test_story(client):
    say(client, "s", "hello")
    say(client, "s", "I am sad")
    story = client.get("/conversations/s/story")
    assert story.status_code == 200
    steps = yaml.safe_load(story.text)["stories"][0]["steps"]
    assert steps[:3] == [{"intent": "greet", "user": "hello"}, {"action": "utter_greet"},
                         {"intent": "mood_unhappy", "user": "I am sad"}]
    assert client.get("/conversations/unknown/story").status_code == 404


def test_the_domain_should_come_as_json_or_yaml(client):
    as_json = client.get("/domain", headers={"Accept": "application/json"})
    assert "utter_greet" in as_json.json()["responses"]
    as_yaml = client.get("/domain", headers={"Accept": "application/x-yaml"})
    assert "utter_greet" in yaml.safe_load(as_yaml.text)["responses"]
    assert client.get("/domain", headers={"Accept": "text/html"}).status_code == 406


def test_the_model_should_be_replaced_unloaded_and_trained(client, moodbot_model, tmp_path):
    assert client.put("/model", json={"model_file": str(moodbot_model)}).status_code == 204
    bad = client.put("/model", json={"model_file": str(tmp_path / "none.tar.gz")})
    assert bad.status_code == 400 and "could not be loaded" in bad.json()["message"]
    assert client.put("/model", json={"model_server": {"url": "x"}}).status_code == 400
    assert client.delete("/model").status_code == 204
    gone = client.get("/status")
    assert gone.status_code == 409 and gone.json()["reason"] == "Conflict"
    assert client.post("/webhooks/rest/webhook", json={"message": "hi"}).status_code == 409
    assert client.put("/model", json={"model_file": str(moodbot_model)}).status_code == 204
    assert client.get("/status").status_code == 200


TRAINING = """
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: LogisticRegressionClassifier
policies:
  - name: RulePolicy
intents: [greet, goodbye]
responses:
  utter_greet: [{text: "Hey!"}]
  utter_goodbye: [{text: "Bye"}]
nlu:
- intent: greet
  examples: |
    - hey
    - hello
- intent: goodbye
  examples: |
    - bye
    - goodbye
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
"""


def test_train_should_answer_with_the_archive_that_then_loads(client, tmp_path):
    response = client.post("/model/train?save_to_default_model_directory=false",
                           content=TRAINING, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 200, response.text
    name = response.headers["filename"]
    assert name.endswith(".tar.gz")
    archive = tmp_path / name
    archive.write_bytes(response.content)
    assert client.put("/model", json={"model_file": str(archive)}).status_code == 204
    assert say(client, "tr", "hello").json() == [{"recipient_id": "tr", "text": "Hey!"}]
    bad = client.post("/model/train", content="intents: [a]\nbogus: 1\n")
    assert bad.status_code == 400 and "bogus" in bad.json()["message"]
    assert client.post("/model/train", content="").status_code == 400
