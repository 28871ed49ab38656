"""Rasa's HTTP API about conversations, ``/conversations/{conversation_id}/…``.

==========================  ==============================================================
``GET  tracker``            the tracker JSON (``include_events``, ``until``); a new
                            conversation is started and saved, as in Rasa
``POST tracker/events``     append one event or a list (a new conversation gets a session);
                            ``execute_side_effects``: schedule and cancel their reminders,
                            send their bot messages to ``output_channel``
``PUT  tracker/events``     replace all events
``POST messages``           log a user message (parsed, slots extracted), run nothing
``POST predict``            the next action's scores, nothing run (404 if no conversation)
``POST execute``            run a named action (404 if no conversation)
``POST trigger_intent``     act as if the user expressed an intent (404 for one the domain
                            does not have)
``GET  story``              the conversation as a test story (``all_sessions``, ``until``)
==========================  ==============================================================

``output_channel`` picks channel-specific response variations. For ``execute`` and
``trigger_intent`` it also says where the bot's messages go, as in Rasa: a channel of the
server that sends on its own (callback, socket.io, Telegram, Slack, Facebook, Twilio), or
``latest``, the one the user last wrote from, gets them and the answer is the tracker
alone; otherwise they are returned in the answer (``messages``), as Rasa's collecting
channel does.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import BaseRoute, Route

from parley.data.events import BotUttered, event_from_dict
from parley.errors import DataError
from parley.data.tracker import DialogueStateTracker
from parley.runtime.output import bot_message, collect
from parley.runtime.processor import MessageProcessor, UserMessage
from parley.serving.http.auth import Auth
from parley.serving.http.body import (
    bool_param, json_body, json_object, optional_text, query_value,
)
from parley.serving.http.errors import HTTPError, bad_request
from parley.serving.http.limits import check_message_length
from parley.serving.http.events_io import (
    events_from_body, include_events_param, parse_data_problem, prediction_result,
    tracker_json, travel_back, until_param,
)
from parley.serving.http.state import ServerState
from parley.serving.http.story import conversation_stories_yaml, sessions

__all__ = ["routes"]



class ConversationId(Convertor[str]):
    """Any conversation id, slashes and control characters too (senders choose them)."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("conversation", ConversationId())
PREFIX = "/conversations/{conversation_id:conversation}"


def routes(state: ServerState, auth: Auth) -> list[BaseRoute]:
    def begin(request: Request, core: bool = False) -> tuple[str, MessageProcessor]:
        conversation_id = request.path_params["conversation_id"]
        auth.check(request, conversation_id)
        return conversation_id, state.require_processor(core)

    async def must_exist(processor: MessageProcessor, conversation_id: str) -> None:
        if await processor.tracker_store.retrieve(conversation_id) is None:
            raise HTTPError(404, f"Conversation ID '{conversation_id}' not found.",
                            reason="NotFound")

    async def get_tracker(request: Request) -> JSONResponse:
        conversation_id, processor = begin(request)
        verbosity = include_events_param(request)
        until = until_param(request)
        tracker = await state.within_timeout(processor.get_tracker(conversation_id))
        return JSONResponse(tracker_json(travel_back(tracker, until, processor), verbosity))

    async def append_events(request: Request) -> JSONResponse:
        conversation_id, processor = begin(request)
        verbosity = include_events_param(request)
        side_effects = bool_param(request, "execute_side_effects", False)
        events = events_from_body(await json_body(request, "an event or a list of events"))
        requested = query_value(request, "output_channel")
        async with state.send_order.turn(conversation_id):
            tracker = await processor.append_events(conversation_id, events, side_effects,
                                                    requested)
            if side_effects:
                # As Rasa: the events' bot messages go to the output channel when it sends
                # on its own; a collecting channel (none, REST) keeps them to itself.
                channel = MessageProcessor.output_channel(tracker, requested)
                push = state.push_channels.get(channel) if channel else None
                messages = [bot_message(event) for event in events
                            if isinstance(event, BotUttered)]
                if push is not None and messages:
                    await push(conversation_id, messages)
        return JSONResponse(tracker_json(tracker, verbosity))

    async def replace_events(request: Request) -> JSONResponse:
        conversation_id, processor = begin(request)
        verbosity = include_events_param(request)
        data = await json_body(request, "a list of events")
        if not isinstance(data, list):
            raise bad_request("the body must be a list of events.", "", "body")
        events = events_from_body(data, allow_empty=True)
        tracker = await processor.replace_events(conversation_id, events)
        return JSONResponse(tracker_json(tracker, verbosity))

    async def add_message(request: Request) -> JSONResponse:
        conversation_id, processor = begin(request)
        verbosity = include_events_param(request)
        data = await json_object(request, '{"text": "…", "sender": "user"}')
        sender = data.get("sender")
        if sender != "user":
            raise bad_request("Currently, only user messages can be passed to this endpoint. "
                              f"Messages of sender '{str(sender)[:40]}' cannot be handled.",
                              "sender")
        text = data.get("text")
        if not isinstance(text, str):
            raise bad_request("'text' must be the message, a string.", "text")
        check_message_length(text, state.settings.max_message_chars)
        parse_data = data.get("parse_data")
        if parse_data is not None:
            _check_parse_data(parse_data, text)
        # As Rasa: the message gets a new id (Rasa's Message body has no message_id).
        message = UserMessage(text, conversation_id, parse_data=parse_data)
        tracker = await state.within_timeout(processor.log_message(message))
        return JSONResponse(tracker_json(tracker, verbosity))

    async def predict(request: Request) -> JSONResponse:
        conversation_id, processor = begin(request, core=True)
        await must_exist(processor, conversation_id)
        tracker, prediction = await state.within_timeout(
            processor.predict_next(conversation_id))
        return JSONResponse(prediction_result(processor, tracker, prediction,
                                              "after_restart"))

    async def execute(request: Request) -> JSONResponse:
        conversation_id, processor = begin(request)
        verbosity = include_events_param(request)
        data = await json_object(request, '{"name": "<action>"}')
        name = data.get("name")
        if not name or not isinstance(name, str):
            raise bad_request("Name of the action not provided in request body.", "name")
        policy = optional_text(data, "policy")
        confidence = data.get("confidence")
        if confidence is None:
            confidence = 1.0
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise bad_request("'confidence' must be a number.", "confidence")
        if name not in processor.domain.action_names:
            raise HTTPError(404, f"The action '{name[:80]}' is not in the domain.",
                            reason="NotFound")
        await must_exist(processor, conversation_id)
        async with state.send_order.turn(conversation_id):
            tracker, messages = await state.within_timeout(processor.execute_action(
                conversation_id, name, query_value(request, "output_channel"), policy,
                float(confidence)))
            return JSONResponse(await deliver(request, tracker, messages, verbosity))

    async def trigger_intent(request: Request) -> JSONResponse:
        conversation_id, processor = begin(request, core=True)
        verbosity = include_events_param(request)
        data = await json_object(request, '{"name": "<intent>", "entities": {…}}')
        name = data.get("name")
        if not name or not isinstance(name, str):
            raise bad_request("Name of the intent not provided in request body.", "name")
        entities = data.get("entities")
        if entities is not None and not isinstance(entities, (dict, list)):
            raise bad_request("'entities' must be an object {entity: value} or a list of "
                              "entities.", "entities")
        if isinstance(entities, list) and not all(
                isinstance(e, dict) and isinstance(e.get("entity"), str) for e in entities):
            raise bad_request("each entity must be an object with an 'entity' name.",
                              "entities")
        if name not in processor.domain.intent_names:
            raise HTTPError(404, f"The intent {name[:80]} does not exist in the domain.",
                            reason="NotFound")
        async with state.send_order.turn(conversation_id):
            tracker, messages = await state.within_timeout(processor.trigger_intent(
                conversation_id, name, entities, query_value(request, "output_channel")))
            return JSONResponse(await deliver(request, tracker, messages, verbosity))

    async def deliver(request: Request, tracker: DialogueStateTracker,
                      messages: list[dict[str, Any]], verbosity: str) -> dict[str, Any]:
        """The answer to execute / trigger_intent, the bot's ``messages`` sent through the
        channel ``output_channel`` names (``latest``: the conversation's) when it sends
        on its own, else in the answer."""
        channel = MessageProcessor.output_channel(tracker,
                                                  query_value(request, "output_channel"))
        push = state.push_channels.get(channel) if channel else None
        answer: dict[str, Any] = {"tracker": tracker_json(tracker, verbosity)}
        if push is None:
            answer["messages"] = collect(tracker.sender_id, messages)
        else:
            await push(tracker.sender_id, messages)
        return answer

    async def story(request: Request) -> Response:
        conversation_id, processor = begin(request)
        until = until_param(request)
        all_sessions = bool_param(request, "all_sessions", False)
        await must_exist(processor, conversation_id)
        full = await processor.tracker_store.retrieve_full_tracker(conversation_id)
        assert full is not None
        parts = sessions(full) if all_sessions else sessions(full)[-1:]
        trackers = [travel_back(processor.tracker_store.init_tracker(conversation_id, part),
                                until, processor) for part in parts]
        trackers = [tracker for tracker in trackers if tracker.events]
        named = [(conversation_id if len(trackers) == 1 else f"{conversation_id}, story {i}",
                  tracker) for i, tracker in enumerate(trackers, start=1)]
        return PlainTextResponse(conversation_stories_yaml(named))

    return [Route(f"{PREFIX}/tracker", get_tracker, methods=["GET"]),
            Route(f"{PREFIX}/tracker/events", append_events, methods=["POST"]),
            Route(f"{PREFIX}/tracker/events", replace_events, methods=["PUT"]),
            Route(f"{PREFIX}/messages", add_message, methods=["POST"]),
            Route(f"{PREFIX}/predict", predict, methods=["POST"]),
            Route(f"{PREFIX}/execute", execute, methods=["POST"]),
            Route(f"{PREFIX}/trigger_intent", trigger_intent, methods=["POST"]),
            Route(f"{PREFIX}/story", story, methods=["GET"])]


def _check_parse_data(parse_data: Any, text: str | None) -> None:
    """``parse_data`` must read as a user event's would (intent, entities …)."""
    problem = parse_data_problem(parse_data)
    intent = parse_data.get("intent") if isinstance(parse_data, dict) else None
    if not problem and isinstance(intent, dict) and "confidence" in intent \
            and intent["confidence"] is None:
        # A stored event may carry a null confidence (no NLU read it); a parse result a
        # client hands in is Rasa's ParseResult, whose intent has a number.
        problem = "the intent's confidence must be a number, not null"
    if problem:
        raise bad_request(f"'parse_data' is not a parse result: {problem}.", "parse_data")
    try:
        event_from_dict({"event": "user", "text": text, "parse_data": parse_data})
    except DataError as error:
        raise bad_request(f"'parse_data' is not a parse result: {error}", "parse_data") \
            from None


