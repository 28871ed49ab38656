"""From an action's name to the action that runs, as Rasa resolves it.

In order: a default action (unless the domain declares an action of that name, which
overrides it); ``utter_<retrieval intent>`` (the ResponseSelector's pick); an end-to-end
bot text; any other ``utter_`` name (a domain response); a form (unless a custom action
overrides it); anything else is a custom action on the action server.
"""

from __future__ import annotations

from collections.abc import Callable

from parley.data.domain import Domain
from parley.errors import ActionError
from parley.runtime.actions.base import UTTER_PREFIX, Action
from parley.runtime.actions.defaults import (
    AskAffirmation, AskRephrase, BackAction, DeactivateLoop, DefaultFallback, ListenAction,
    RestartAction, RevertFallbackEvents, SessionStartAction, UnlikelyIntent,
)
from parley.runtime.actions.extract_slots import ExtractSlots
from parley.runtime.actions.forms import FormAction
from parley.runtime.actions.responses import (
    CustomAction, EndToEndResponse, RetrievalResponse, UtterResponse,
)
from parley.runtime.actions.two_stage_fallback import TwoStageFallback

__all__ = ["DEFAULT_ACTIONS", "action_for_name"]

def _register() -> dict[str, Callable[[], Action]]:
    table: dict[str, Callable[[], Action]] = {}
    for factory in (ListenAction, RestartAction, SessionStartAction, DefaultFallback,
                    DeactivateLoop, RevertFallbackEvents, AskAffirmation, AskRephrase,
                    TwoStageFallback, UnlikelyIntent, BackAction, ExtractSlots):
        table[factory().name] = factory
    return table


# Default action names → their classes (each class knows its name).
DEFAULT_ACTIONS: dict[str, Callable[[], Action]] = _register()


def action_for_name(name: str, domain: Domain) -> Action:
    """The action called ``name``; a name the domain does not know is an ActionError."""
    if name not in domain.action_names and name not in DEFAULT_ACTIONS:
        raise ActionError(f"the action '{name}' is not in the domain; declare it under "
                          "`actions:` (or as a response or form) in domain.yml.")
    if name in DEFAULT_ACTIONS and name not in domain.actions and name not in domain.forms:
        return DEFAULT_ACTIONS[name]()
    if name.startswith(UTTER_PREFIX) and _is_retrieval(name, domain):
        return RetrievalResponse(name)
    if name in domain.e2e_actions:
        return EndToEndResponse(name)
    if name.startswith(UTTER_PREFIX):
        return UtterResponse(name)
    if name in domain.forms and name not in domain.actions:
        return FormAction(name)
    return CustomAction(name)


def _is_retrieval(name: str, domain: Domain) -> bool:
    """``utter_faq`` when ``faq`` is a retrieval intent (or responses ``utter_faq/…`` exist)."""
    return (name[len(UTTER_PREFIX):] in domain.retrieval_intents
            or any(response.startswith(f"{name}/") for response in domain.responses))
