"""Messages that give their intent directly: ``/greet``, ``/inform{"cuisine": "thai"}``.

Buttons send such payloads, so a bot must understand them exactly, not through its model.
The format and every decision follow Rasa 3.6's ``RegexMessageHandler``:

``/`` + intent name + optional ``@confidence`` + optional JSON object of entities. The
confidence defaults to 1.0 (above 1 it becomes 1, unreadable it becomes 0, with a warning);
entity types the model does not know are dropped and a list value gives one entity per item,
each spanning the whole message. An intent the model does not know is not an intent message:
it warns and the message is parsed as text.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from parley.data.strict_json import loads_strict
from parley.errors import warn

PREFIX = "/"
_PATTERN = re.compile(r"^/(?P<intent>[^{@]+)(?P<confidence>@[0-9.]+)?(?P<entities>{.+})?"
                      r"(?P<rest>.*)")


def parse_intent_message(text: str, intents: Collection[str],
                         entities: Collection[str]) -> dict[str, Any] | None:
    """Rasa's parse result for an intent message, or ``None`` when ``text`` is not one
    (then the NLU pipeline parses it). ``intents``/``entities``: the names the model knows."""
    user_text = text.strip()
    if not user_text.startswith(PREFIX):
        return None
    match = _PATTERN.match(user_text)
    if match is None:
        warn(f"could not read an intent and entities from '{_shown(user_text)}'; parsing it as text.")
        return None
    intent = match.group("intent").strip()
    if intent not in intents:
        warn(f"'{_shown(user_text)}' names the intent '{_shown(intent)}', which the model does not know "
             f"(known: {', '.join(sorted(intents))}); parsing it as text.")
        return None
    if match.group("rest"):
        warn(f"'{_shown(user_text)}': ignoring '{_shown(match.group('rest'))}' after the intent "
             "and entities.")
    confidence = _confidence(match.group("confidence"), user_text)
    return {
        "text": user_text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": _entities(match, entities),
        "intent_ranking": [{"name": intent, "confidence": confidence}],
    }


def _confidence(given: str | None, text: str) -> float:
    if given is None:
        return 1.0
    try:
        value = float(given[1:])
    except ValueError:
        warn(f"'{_shown(text)}': the confidence '{given[1:]}' is not a number from 0 to 1; using 0.0.")
        return 0.0
    if value > 1.0:  # the pattern admits no sign, so it is never negative
        warn(f"'{_shown(text)}': the confidence {value} is above 1; using 1.0.")
        return 1.0
    return value


def _entities(match: re.Match[str], known: Collection[str]) -> list[dict[str, Any]]:
    given = match.group("entities")
    if given is None:
        return []
    try:
        # Strict: NaN, 1e999 or a lone surrogate stored in a conversation make it unservable.
        parsed = loads_strict(given)
    except (ValueError, RecursionError) as exc:  # nesting past the recursion limit too
        parsed, problem = {}, f"its entities are not JSON ({str(exc)[:120]})"
    else:
        problem = "" if isinstance(parsed, dict) else "its entities are not a JSON object"
    if problem:
        warn(f"'{_shown(match.string)}': {problem}; going on without entities.")
        return []
    unknown = sorted(set(parsed) - set(known))
    if unknown:
        warn(f"'{_shown(match.string)}': the model knows no entity {', '.join(unknown)}; "
             "going on without it.")
    found = []
    for entity, values in parsed.items():
        if entity in unknown:
            continue
        for value in values if isinstance(values, list) else [values]:
            found.append({"entity": entity, "value": value, "start": match.start(),
                          "end": match.end()})
    return found


def _shown(text: str, limit: int = 80) -> str:
    """``text`` as a warning quotes it: a 2 MB message must not make a 2 MB warning."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"
