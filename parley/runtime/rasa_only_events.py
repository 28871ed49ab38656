"""Rasa's event names Parley does not implement: exports, agents and the events of Rasa 2's
forms. An action server or an HTTP client sending one is told so, rather than that the
name is unknown."""

from __future__ import annotations

__all__ = ["RASA_ONLY_EVENTS"]

RASA_ONLY_EVENTS = ("export", "agent", "form", "form_validation")
