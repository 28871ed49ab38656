"""Does a value suit its slot's type? Rasa keeps any value a slot is set to and only
featurizes what it can; a value the type cannot use is kept too, and reported here so that
the log says why the policies see the slot as they do."""

from __future__ import annotations

from typing import Any

from parley.data.slots import Slot

__all__ = ["slot_value_problem"]

TRUE_WORDS = ("true", "1", "yes", "y", "on", "1.0")
FALSE_WORDS = ("false", "0", "no", "n", "off", "0.0")


def slot_value_problem(slot: Slot, value: Any) -> str | None:
    """Why ``value`` does not suit ``slot`` (None when it does; unsetting always does)."""
    if value is None or slot.type in ("text", "any"):
        return None
    if slot.type == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return None
        if isinstance(value, str) and value.strip().lower() in (*TRUE_WORDS, *FALSE_WORDS):
            return None
        return (f"bool slot '{slot.name}' was set to {value!r}, which is neither true nor "
                "false; it counts as set and false.")
    if slot.type == "float":
        if isinstance(value, bool):
            return f"float slot '{slot.name}' was set to the boolean {value!r}."
        try:
            number = float(value)
        except (TypeError, ValueError):
            return (f"float slot '{slot.name}' was set to {value!r}, which is not a number; "
                    "the policies see it as unset.")
        # Outside min_value..max_value is fine: the policies see it clipped, by design.
        return None if number == number else f"float slot '{slot.name}' was set to NaN."
    if slot.type == "categorical":
        if str(value).lower() in (str(v).lower() for v in slot.values):
            return None
        return (f"categorical slot '{slot.name}' was set to {value!r}, which is not one of "
                f"its values ({', '.join(map(str, slot.values))}); the policies see it as "
                "'__other__'.")
    if slot.type == "list" and not isinstance(value, (list, tuple)):
        return (f"list slot '{slot.name}' was set to {value!r}, which is not a list; "
                "a list action should set it to a list.")
    return None
