"""Reminders: Rasa's ``reminder`` and ``cancel_reminder`` events, kept on the event loop.

A custom action (or ``POST …/tracker/events?execute_side_effects=true``) that returns a
``reminder`` event schedules a job in its conversation; at the event's ``date_time`` the
job triggers the event's intent with its entities, as if the user had expressed it (the
external-event path, :meth:`~parley.runtime.processor.MessageProcessor.trigger_intent`),
and the bot's answer goes to the channel of the message that set the reminder, as in
Rasa. The job does nothing when, by then, the conversation was restarted or started a
new session (the reminder is no longer among its events), or when the reminder has
``kill_on_user_message`` and the user wrote after it was set. A ``cancel_reminder`` event
cancels the conversation's jobs it matches (:meth:`ReminderCancelled.cancels`).

Rasa keeps one job per reminder name; Parley one per name *and conversation*, so that two
users' reminders of the same name do not replace each other. A reminder whose time has
passed fires at once.

Jobs live in the memory of the serving process, as Rasa's in-memory APScheduler keeps
them: a restarted server has lost them. Timers are the event loop's own
(``loop.call_later``): no thread, no dependency.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from parley.data.events import (
    ReminderCancelled, ReminderScheduled, UserUttered,
)
from parley.data.tracker import DialogueStateTracker

__all__ = ["ReminderJob", "ReminderScheduler", "reminder_void_reason"]

logger = logging.getLogger(__name__)


@dataclass
class ReminderJob:
    """A reminder waiting to fire: its conversation, its event, and the channel that is to
    send the bot's answer (None: the answer stays in the conversation)."""

    sender_id: str
    event: ReminderScheduled
    output_channel: str | None
    handle: asyncio.TimerHandle | None = field(default=None, repr=False, compare=False)


# What firing a job does; the server's runs the reminder and sends the answer.
Fire = Callable[[ReminderJob], Awaitable[None]]


class ReminderScheduler:
    """Reminder jobs on the running event loop: ``schedule`` and ``cancel`` are called
    under the conversation's lock (by the processor, as actions return the events);
    ``fire`` runs each job when its time comes."""

    def __init__(self, fire: Fire, clock: Callable[[], float] = time.time) -> None:
        self.fire = fire
        self.clock = clock
        self._jobs: dict[tuple[str, str], ReminderJob] = {}
        self._running: set[asyncio.Task[None]] = set()

    def schedule(self, sender_id: str, event: ReminderScheduled,
                 output_channel: str | None = None) -> ReminderJob:
        """Set ``event``'s job; a job of the same name in the conversation is replaced."""
        key = (sender_id, event.name)
        self._drop(key)
        job = ReminderJob(sender_id, event, output_channel)
        delay = max(0.0, event.trigger_time - self.clock())
        if math.isfinite(delay):  # a time past the calendar's end never comes
            job.handle = asyncio.get_running_loop().call_later(delay, self._start, key, job)
        self._jobs[key] = job
        return job

    def cancel(self, sender_id: str, event: ReminderCancelled) -> list[ReminderJob]:
        """Cancel the conversation's jobs ``event`` matches; the jobs cancelled."""
        matching = [key for key, job in self._jobs.items()
                    if key[0] == sender_id and event.cancels(job.event)]
        return [job for job in map(self._drop, matching) if job is not None]

    def pending(self, sender_id: str | None = None) -> list[ReminderJob]:
        """The jobs waiting (of one conversation, or all), soonest first."""
        jobs = [job for (sender, _), job in self._jobs.items()
                if sender_id is None or sender == sender_id]
        return sorted(jobs, key=lambda job: job.event.trigger_time)

    async def close(self) -> None:
        """Drop the waiting jobs and let those already firing finish (they hold the
        conversation's lock and save it), as a stopping server finishes its turns."""
        for key in list(self._jobs):
            self._drop(key)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _drop(self, key: tuple[str, str]) -> ReminderJob | None:
        job = self._jobs.pop(key, None)
        if job is not None and job.handle is not None:
            job.handle.cancel()
        return job

    def _start(self, key: tuple[str, str], job: ReminderJob) -> None:
        if self._jobs.get(key) is not job:  # replaced or cancelled meanwhile
            return
        del self._jobs[key]
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, job: ReminderJob) -> None:
        try:
            await self.fire(job)
        except Exception:  # noqa: BLE001 - a failing reminder must not stop the others
            logger.exception("conversation '%s': the reminder '%s' failed.", job.sender_id,
                             job.event.name)


def reminder_void_reason(tracker: DialogueStateTracker, event: ReminderScheduled) -> str | None:
    """Why the reminder must not fire in this conversation now, or None when it must
    (Rasa's ``_is_reminder_still_valid`` and ``_has_message_after_reminder``)."""
    if not any(isinstance(e, ReminderScheduled) and e.name == event.name
               for e in tracker.applied_events()):
        return "the conversation was restarted or started a new session since it was set"
    if not event.kill_on_user_message:
        return None
    for logged in reversed(tracker.events):
        if isinstance(logged, ReminderScheduled) and logged.name == event.name:
            return None
        if isinstance(logged, UserUttered) and logged.text:
            return "the user wrote since it was set (kill_on_user_message)"
    return "the conversation was restarted since it was set"
