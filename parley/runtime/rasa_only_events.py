"""Rasa's event names Parley does not implement: reminders, pausing, agents, exports and
the events of Rasa 2's forms. An action server or an HTTP client sending one is told so,
rather than that the name is unknown."""

from __future__ import annotations

__all__ = ["RASA_ONLY_EVENTS"]

RASA_ONLY_EVENTS = ("reminder", "cancel_reminder", "pause", "resume", "export", "agent",
                    "entities", "form", "form_validation")
