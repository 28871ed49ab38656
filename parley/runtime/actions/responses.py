"""Actions that answer with messages: domain responses, retrieval responses, end-to-end
texts, and custom actions run by the action server."""

from __future__ import annotations

import logging
from typing import Any

from parley.data.events import ActionExecuted, BotUttered, Event
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import ActionError
from parley.runtime.actions.base import UTTER_PREFIX, Action, ActionContext, bot_uttered

__all__ = ["CustomAction", "EndToEndResponse", "RetrievalResponse", "UtterResponse",
           "render_custom_responses"]

logger = logging.getLogger(__name__)

RESPONSE_SELECTOR = "response_selector"
DEFAULT_SELECTOR = "default"


class UtterResponse(Action):
    """Sends one variation of the domain response ``name``. ``response`` may differ from the
    name (``action_restart`` sends ``utter_restart``); ``silent`` actions send nothing, and
    log nothing, when the domain lacks the response."""

    def __init__(self, name: str, response: str | None = None, silent: bool = False) -> None:
        self.name = name
        self.response = response or name
        self.silent = silent

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return await utter(self.response, tracker, context, silent=self.silent)


async def utter(response: str, tracker: DialogueStateTracker, context: ActionContext,
                silent: bool = False) -> list[Event]:
    """The bot message of one domain response, or nothing if it has no variation now."""
    message = await context.nlg.render(response, tracker, context.channel,
                                       draw=draw_key(tracker))
    if message is None:
        if not silent:
            logger.error("the response '%s' has no variation for channel %r and the current "
                         "slots; nothing is sent.", response, context.channel)
        return []
    message["utter_action"] = response
    return [bot_uttered(message)]


class RetrievalResponse(Action):
    """``utter_faq``: sends the response the ResponseSelector picked for the latest message
    (``utter_faq/ask_name``), from the selector of that retrieval intent or the default one."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        selectors = tracker.latest_message.parse_data_extra.get(RESPONSE_SELECTOR) or {}
        intent = self.name[len(UTTER_PREFIX):]
        selected = selectors.get(intent) or selectors.get(DEFAULT_SELECTOR)
        if not selected:
            logger.error("'%s' needs the ResponseSelector's output on the latest message, and "
                         "it has none; nothing is sent.", self.name)
            return []
        response = selected.get("response", {}).get("utter_action")
        if not response:
            return []
        return await utter(response, tracker, context)


class EndToEndResponse(Action):
    """A bot text learned end to end (a story's ``bot:`` step): sends the text itself."""

    def __init__(self, text: str) -> None:
        self.name = text

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return [bot_uttered({"text": self.name})]

    def executed_event(self, prediction: PolicyPrediction) -> ActionExecuted:
        return ActionExecuted(action_text=self.name, policy=prediction.policy_name or None,
                              confidence=prediction.max_confidence,
                              hide_rule_turn=prediction.hide_rule_turn)


class CustomAction(Action):
    """An action of the user's action server, run through the context's executor."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        if context.executor is None:
            raise ActionError(
                f"the custom action '{self.name}' needs an action server, and none is "
                "configured; set `action_endpoint: url: http://localhost:5055/webhook` in "
                "endpoints.yml and start your actions with `rasa run actions`.")
        result = await context.executor.run_custom_action(self.name, tracker, context.domain)
        messages = await render_custom_responses(result.responses, tracker, context)
        return [*messages, *result.events]


async def render_custom_responses(responses: list[dict[str, Any]],
                                  tracker: DialogueStateTracker,
                                  context: ActionContext) -> list[BotUttered]:
    """Bot messages from a custom action's ``responses`` (rasa-sdk's dispatcher output).

    A message naming a domain response (``response``, or ``template`` from older SDKs) is
    rendered with the message's other keys as extra placeholder values; its own non-empty
    keys then override the rendered ones and its buttons are added, as Rasa does.
    """
    messages: list[BotUttered] = []
    for raw in responses:
        if not isinstance(raw, dict):
            raise ActionError(f"a custom action answered the message {raw!r}, which is not "
                              "a JSON object.")
        response = dict(raw)
        name = response.pop("response", None) or response.pop("template", None)
        draft: dict[str, Any] = {}
        if name:
            values = {k: v for k, v in response.items() if isinstance(k, str)}
            rendered = await context.nlg.render(name, tracker, context.channel, values,
                                                draw=f"{draw_key(tracker)}:{len(messages)}")
            if rendered is None:
                logger.error("the custom action asked for the response '%s', which has no "
                             "variation now; it is skipped.", name)
                continue
            draft = rendered
            draft["utter_action"] = name
        buttons = response.pop("buttons", None) or []
        if buttons:
            draft.setdefault("buttons", [])
            draft["buttons"] = list(draft["buttons"] or []) + list(buttons)
        draft.update({key: value for key, value in response.items() if value})
        messages.append(bot_uttered(draft))
    return messages


def draw_key(tracker: DialogueStateTracker) -> str:
    """Where a response is drawn: this conversation, this far into it."""
    return f"{tracker.sender_id}:{len(tracker.events)}"

