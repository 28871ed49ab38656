"""What every action is, and what it is given to run.

An action reads the conversation and returns events; it never changes the tracker it is
given (the processor applies the events, so a rejected action leaves no trace). Bot
messages are events too (:class:`BotUttered`), sent by the channel once the action ran.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, BotUttered, Event
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.runtime.executor import ActionExecutor
from parley.runtime.nlg import ResponseGenerator

__all__ = ["Action", "ActionContext", "UTTER_PREFIX", "bot_uttered"]

UTTER_PREFIX = "utter_"


@dataclass
class ActionContext:
    """What actions need besides the conversation: the domain, the response generator, the
    executor for custom actions (None: no action server configured), the name of the
    output channel (it picks channel-specific response variations) and the channel the
    reminders the actions set answer through (None: they answer into the conversation)."""

    domain: Domain
    nlg: ResponseGenerator
    executor: ActionExecutor | None = None
    channel: str | None = None
    reply_channel: str | None = None


class Action(ABC):
    """One action; ``name`` is how the domain and the policies call it."""

    name: str = ""

    @abstractmethod
    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        """The events this action causes, given the conversation as it stands."""

    def executed_event(self, prediction: PolicyPrediction) -> ActionExecuted:
        """The event that records this action as run."""
        return ActionExecuted(action_name=self.name, policy=prediction.policy_name or None,
                              confidence=prediction.max_confidence,
                              hide_rule_turn=prediction.hide_rule_turn)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def bot_uttered(message: dict[str, Any]) -> BotUttered:
    """A bot message event from a rendered response, in Rasa's layout: text apart, the
    payload parts in ``data`` (an image doubles as the attachment when there is none, a
    legacy Rasa keeps), everything else (``utter_action``, ``id`` …) in ``metadata``."""
    rest = dict(message)
    text = rest.pop("text", None)
    data = {
        "elements": rest.pop("elements", None),
        "quick_replies": rest.pop("quick_replies", None),
        "buttons": rest.pop("buttons", None),
        "attachment": rest.pop("attachment", None) or rest.get("image"),
        "image": rest.pop("image", None),
        "custom": rest.pop("custom", None),
    }
    return BotUttered(text=text, data=data, metadata=rest)
