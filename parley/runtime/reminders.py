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
(``loop.call_later``): no thread, no dependency. Jobs are kept per conversation, so that
cancelling or listing one conversation's reminders costs nothing for the others'. Once
the scheduler closes (the server stops), it lets the jobs already firing finish and
schedules nothing more: a reminder set by such a job would only fire into closed stores.
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
        # conversation → reminder name → its job
        self._jobs: dict[str, dict[str, ReminderJob]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    def schedule(self, sender_id: str, event: ReminderScheduled,
                 output_channel: str | None = None) -> ReminderJob | None:
        """Set ``event``'s job; a job of the same name in the conversation is replaced.
        None once the scheduler is closed: the reminder is logged and not scheduled."""
        if self._closed:
            logger.warning("conversation '%s': the reminder '%s' is not scheduled: the "
                           "server is stopping, and reminders live in its memory.",
                           sender_id, event.name)
            return None
        self._drop(sender_id, event.name)
        job = ReminderJob(sender_id, event, output_channel)
        delay = max(0.0, event.trigger_time - self.clock())
        if math.isfinite(delay):  # a time past the calendar's end never comes
            job.handle = asyncio.get_running_loop().call_later(delay, self._start, job)
        self._jobs.setdefault(sender_id, {})[event.name] = job
        return job

    def cancel(self, sender_id: str, event: ReminderCancelled) -> list[ReminderJob]:
        """Cancel the conversation's jobs ``event`` matches; the jobs cancelled."""
        matching = [name for name, job in self._jobs.get(sender_id, {}).items()
                    if event.cancels(job.event)]
        return [job for job in (self._drop(sender_id, name) for name in matching)
                if job is not None]

    def pending(self, sender_id: str | None = None) -> list[ReminderJob]:
        """The jobs waiting (of one conversation, or all), soonest first."""
        if sender_id is None:
            jobs = [job for named in self._jobs.values() for job in named.values()]
        else:
            jobs = list(self._jobs.get(sender_id, {}).values())
        return sorted(jobs, key=lambda job: job.event.trigger_time)

    async def close(self) -> None:
        """Drop the waiting jobs and let those already firing finish (they hold the
        conversation's lock and save it), as a stopping server finishes its turns; from
        now on nothing is scheduled. Closing again does nothing more."""
        self._closed = True
        for sender_id, named in list(self._jobs.items()):
            for name in list(named):
                self._drop(sender_id, name)
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _drop(self, sender_id: str, name: str) -> ReminderJob | None:
        named = self._jobs.get(sender_id)
        job = named.pop(name, None) if named is not None else None
        if named is not None and not named:
            del self._jobs[sender_id]  # no empty entry per conversation ever seen
        if job is not None and job.handle is not None:
            job.handle.cancel()
        return job

    def _start(self, job: ReminderJob) -> None:
        if self._jobs.get(job.sender_id, {}).get(job.event.name) is not job:
            return  # replaced or cancelled meanwhile
        self._drop(job.sender_id, job.event.name)
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
