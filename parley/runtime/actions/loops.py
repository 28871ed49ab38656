"""Loops: actions that keep running turn after turn until they are done (forms, the
two-stage fallback). Each run activates the loop if needed, does its work unless it is
already done, and deactivates it once it is."""

from __future__ import annotations

from abc import abstractmethod

from parley.data.events import ActiveLoop, Event
from parley.data.tracker import DialogueStateTracker
from parley.runtime.actions.base import Action, ActionContext
from parley.runtime.tracker_queries import temporary_tracker

__all__ = ["LoopAction"]


class LoopAction(Action):
    """Subclasses implement ``do`` and ``is_done``; ``activate`` and ``deactivate`` may add
    events at either end."""

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        events: list[Event] = []
        if tracker.active_loop_name != self.name:
            events.append(ActiveLoop(name=self.name))
            # Activation sees the loop as active (slot mappings conditioned on it apply).
            events += await self.activate(temporary_tracker(tracker, events), context)
        if not await self.is_done(tracker, context, events):
            events += await self.do(tracker, context, events)
        if await self.is_done(tracker, context, events):
            events.append(ActiveLoop(name=None))
            events += await self.deactivate(tracker, context, events)
        return events

    async def activate(self, tracker: DialogueStateTracker,
                       context: ActionContext) -> list[Event]:
        return []

    @abstractmethod
    async def do(self, tracker: DialogueStateTracker, context: ActionContext,
                 events_so_far: list[Event]) -> list[Event]:
        """The loop's work this turn (ask, validate …)."""

    @abstractmethod
    async def is_done(self, tracker: DialogueStateTracker, context: ActionContext,
                      events_so_far: list[Event]) -> bool:
        """Whether the loop ends now, given what this run did so far."""

    async def deactivate(self, tracker: DialogueStateTracker, context: ActionContext,
                         events_so_far: list[Event]) -> list[Event]:
        return []
