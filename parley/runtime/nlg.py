"""Responses: from ``utter_`` names in the domain to the messages the bot sends.

As Rasa's templated generator does it:

- Of a response's variations, those whose ``condition`` (slot = value, strings compared
  without case) holds come first, then those without a condition; in each group the ones
  for the output channel (``channel: slack``) beat the ones for any channel. One of the
  winning group is drawn at random. With a seed, each draw depends only on the seed and
  where it happens (the conversation and its length), so a conversation replays the same
  way however many others run beside it.
- ``{slot}`` in text, image, buttons, quick replies, attachments and custom payloads is
  filled with the slot's value (or a value the caller passes, as custom actions do with
  ``"response": "utter_x", "name": "Ada"``); a text with a placeholder nothing fills is
  sent as written (with a warning in the log), as Rasa does.
"""

from __future__ import annotations

import copy
import logging
import random
import re
from collections.abc import Mapping
from typing import Any

from parley.data.domain import Domain
from parley.data.tracker import DialogueStateTracker

__all__ = ["ResponseGenerator", "fill_placeholders", "variations_for"]

logger = logging.getLogger(__name__)

# Keys whose strings take {slot} placeholders (Rasa's list).
FILLED_KEYS = ("text", "image", "custom", "buttons", "attachment", "quick_replies")
_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")


def _condition_holds(variation: Mapping[str, Any], slots: Mapping[str, Any]) -> bool:
    for condition in variation.get("condition") or []:
        expected = condition.get("value")
        actual = slots.get(condition.get("name"))
        if isinstance(actual, str) and isinstance(expected, str):
            if actual.casefold() != expected.casefold():
                return False
        elif actual != expected:
            return False
    return True


def variations_for(variations: list[dict[str, Any]], channel: str | None,
                   slots: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The variations eligible now, best group first as described in the module doc."""
    groups: dict[tuple[bool, bool], list[dict[str, Any]]] = {
        (True, True): [], (True, False): [], (False, True): [], (False, False): []}
    for variation in variations:
        conditional = bool(variation.get("condition"))
        if conditional and not _condition_holds(variation, slots):
            continue
        own_channel = variation.get("channel")
        if own_channel and own_channel != channel:
            continue
        groups[(conditional, bool(own_channel))].append(variation)
    for key in ((True, True), (True, False), (False, True), (False, False)):
        if groups[key]:
            return groups[key]
    return []


def _fill_text(text: str, values: Mapping[str, Any]) -> str:
    # {{ and }} escape braces, as in str.format (Rasa interpolates with str.format).
    parts = re.split(r"({{|}})", text)
    missing = [name for part in parts for name in _PLACEHOLDER.findall(part)
               if part not in ("{{", "}}") and name not in values]
    if missing:
        # Rasa's behaviour: a placeholder it cannot fill leaves the whole text as written.
        logger.warning("the response text %r has a placeholder {%s} with no slot or value "
                       "of that name; it is sent as written.", text, missing[0])
        return text
    return "".join(
        part[0] if part in ("{{", "}}")
        else _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), part)
        for part in parts)


def fill_placeholders(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with every ``{name}`` in its strings (nested too) filled from ``values``."""
    if isinstance(value, str):
        return _fill_text(value, values)
    if isinstance(value, dict):
        return {key: fill_placeholders(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(item, values) for item in value]
    return value


class ResponseGenerator:
    """Renders the domain's responses; ``seed`` fixes which variation is drawn."""

    def __init__(self, domain: Domain, seed: int | None = None) -> None:
        self.domain = domain
        self.seed = seed
        self._random = random.Random(seed)

    def has_response(self, name: str) -> bool:
        return name in self.domain.responses

    async def render(self, name: str, tracker: DialogueStateTracker, channel: str | None,
                     values: Mapping[str, Any] | None = None,
                     draw: str | None = None) -> dict[str, Any] | None:
        """The message an action sends for the response ``name`` (what actions call: an
        NLG server's generator answers it over HTTP, see :mod:`parley.runtime.nlg_server`)."""
        return self.generate(name, tracker.slots, channel, values, draw)

    def generate(self, name: str, slots: Mapping[str, Any], channel: str | None = None,
                 values: Mapping[str, Any] | None = None,
                 draw: str | None = None) -> dict[str, Any] | None:
        """One rendered message for the response ``name``, or None if it has no variation
        for this channel and these slots (or does not exist). ``values`` fill placeholders
        before slots do; ``draw`` names where the draw happens (with a seed, the same
        ``draw`` picks the same variation)."""
        variations = variations_for(self.domain.responses.get(name, []), channel, slots)
        if not variations:
            return None
        chooser = self._random
        if self.seed is not None and draw is not None:
            # A str seed is hashed with SHA-512: stable across processes, unlike hash().
            chooser = random.Random(f"{self.seed}:{draw}:{name}")
        chosen = copy.deepcopy(variations[chooser.randrange(len(variations))])
        fill = {**slots, **(values or {})}
        for key in FILLED_KEYS:
            if key in chosen:
                chosen[key] = fill_placeholders(chosen[key], fill)
        return chosen
