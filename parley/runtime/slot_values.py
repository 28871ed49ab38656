"""Does a value suit its slot's type? Rasa keeps any value a slot is set to and only
featurizes what it can; a value the type cannot use is kept too, and reported here so that
the log says why the policies see the slot as they do. The rule itself lives in
:func:`parley.data.slots.value_problem`, shared with the story checks."""

from __future__ import annotations

from typing import Any

from parley.data.slots import Slot, value_problem

__all__ = ["slot_value_problem"]


def slot_value_problem(slot: Slot, value: Any) -> str | None:
    """Why ``value`` does not suit ``slot`` (None when it does; unsetting always does)."""
    problem = value_problem(slot, value)
    if problem is None:
        return None
    return f"{slot.type} slot '{slot.name}' was set to {value!r}, {problem}."
