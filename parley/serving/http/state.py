"""What the server holds while it runs: the model, the stores, and the processor over them.

The stores and the action-server client are made once from endpoints.yml and outlive model
changes (``PUT /model`` swaps the model, as Rasa's server does, and keeps the conversations
and locks); so do the reminders (:mod:`parley.runtime.reminders`), which fire with the
model served when their time comes and send the bot's answer through the channel that set
them. The event broker connects in :meth:`ServerState.start` (the app's lifespan,
or ``parley run`` before it listens), on the loop that serves. Each model call runs in the
:class:`PredictionPool`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from parley.runtime.brokers.base import EventBroker
from parley.runtime.endpoints import EndpointConfig, Endpoints
from parley.runtime.executor import ActionExecutor
from parley.runtime.nlg_server import NLGServerClient
from parley.runtime.processor import MessageProcessor
from parley.runtime.reminders import ReminderJob, ReminderScheduler
from parley.runtime.stores.base import LockStore, TrackerStore
from parley.serving.agent import Agent
from parley.serving.http.compute import PredictionPool
from parley.serving.http.errors import HTTPError
from parley.serving.http.model_server import ModelServer
from parley.serving.http.send_order import SendOrder
from parley.serving.http.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_MESSAGE_CHARS

__all__ = ["DEFAULT_RESPONSE_TIMEOUT", "Push", "ServerSettings", "ServerState"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RESPONSE_TIMEOUT = 3600.0  # Rasa's default --response-timeout, in seconds

# Sends whole bot messages (``processor.answer``'s) to a recipient outside a turn of the
# channel's own: what Rasa's input channels with an output channel do for /execute and
# /trigger_intent with ``output_channel``.
Push = Callable[[str, list[dict[str, Any]]], Awaitable[None]]


@dataclass
class ServerSettings:
    """How ``parley run`` was asked to serve (Rasa's flags; see docs/server.md)."""

    enable_api: bool = False
    auth_token: str | None = None
    jwt_secret: str | None = None
    jwt_method: str = "HS256"
    cors: list[str] | None = None
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    # Channel name → its credentials.yml options; the REST channel when nothing is given.
    channels: dict[str, dict[str, Any]] = field(default_factory=lambda: {"rest": {}})
    prediction_workers: int = 1
    models_dir: str = "models"  # where /model/train saves, as Rasa's default
    seed: int | None = None


class ServerState:
    """The running server's model, stores and processor."""

    def __init__(self, agent: Agent | None, model_file: str | Path | None,
                 settings: ServerSettings, tracker_store: TrackerStore,
                 lock_store: LockStore, executor: ActionExecutor | None,
                 nlg_server: NLGServerClient | None = None,
                 model_server: ModelServer | None = None,
                 event_broker: EventBroker | EndpointConfig | None = None) -> None:
        self.settings = settings
        # A section to connect in start(), or a broker ready to use (tests pass one).
        self.event_broker_config = event_broker if isinstance(event_broker,
                                                              EndpointConfig) else None
        self.event_broker = event_broker if isinstance(event_broker, EventBroker) else None
        self.nlg_server = nlg_server
        self.model_server = model_server
        self.model_etag: str | None = None  # the ETag of the model pulled from model_server
        self.tracker_store = tracker_store
        self.lock_store = lock_store
        self.executor = executor
        self.pool = PredictionPool(settings.prediction_workers)
        self.training_jobs = 0
        # Channel name → how it sends the bot's messages on its own (callback, socket.io …);
        # the channels register themselves as the app is made.
        self.push_channels: dict[str, Push] = {}
        self.reminders = ReminderScheduler(self.fire_reminder)
        # A reminder's answer is sent after those of the turns before it.
        self.send_order = SendOrder()
        self.agent: Agent | None = None
        self.model_file: str | None = None
        self.processor: MessageProcessor | None = None
        self.set_model(agent, model_file)

    @classmethod
    def from_endpoints(cls, agent: Agent | None, model_file: str | Path | None,
                       settings: ServerSettings, endpoints: Endpoints) -> ServerState:
        from parley.runtime.action_server import ActionServerClient
        from parley.runtime.nlg_server import nlg_server
        from parley.runtime.stores.factory import create_lock_store, create_tracker_store

        executor = (ActionServerClient.from_endpoint(endpoints.action_endpoint)
                    if endpoints.action_endpoint is not None else None)
        return cls(agent, model_file, settings, create_tracker_store(endpoints.tracker_store),
                   create_lock_store(endpoints.lock_store), executor,
                   nlg_server(endpoints.nlg),
                   None if endpoints.models is None
                   else ModelServer.from_endpoint(endpoints.models, settings.models_dir),
                   endpoints.event_broker)

    async def start(self) -> None:
        """Connect the event broker (a :class:`~parley.errors.BrokerError` naming
        endpoints.yml's line when it cannot be reached); nothing to do a second time."""
        if self.event_broker_config is None or self.event_broker is not None:
            return
        from parley.runtime.brokers.factory import create_event_broker

        self.event_broker = await create_event_broker(self.event_broker_config,
                                                      self.tracker_store)
        if self.processor is not None:
            self.processor.event_broker = self.event_broker

    def set_model(self, agent: Agent | None, model_file: str | Path | None) -> None:
        """Serve ``agent`` from now on (None: no model, as after ``DELETE /model``).
        Messages already being handled finish with the model they started with."""
        self.agent = agent
        self.model_file = str(model_file) if model_file is not None else None
        self.processor = None if agent is None else MessageProcessor(
            agent, tracker_store=self.tracker_store, lock_store=self.lock_store,
            executor=self.executor, seed=self.settings.seed, compute=self.pool,
            nlg_server=self.nlg_server, event_broker=self.event_broker,
            reminders=self.reminders)

    async def fire_reminder(self, job: ReminderJob) -> None:
        """Run a reminder whose time came, and send the bot's answer through the channel
        of the message that set it when that channel sends on its own (callback,
        socket.io …); otherwise the answer is in the conversation only, as Rasa's
        collecting channel (REST) keeps it to itself. It is sent after the answers of the
        conversation's turns that began before it (:mod:`~parley.serving.http.send_order`)."""
        processor = self.processor
        if processor is None:
            logger.warning("conversation '%s': no model is loaded; the reminder '%s' is "
                           "dropped.", job.sender_id, job.event.name)
            return
        async with self.send_order.turn(job.sender_id) as after_earlier:
            messages = await processor.handle_reminder(job.event, job.sender_id,
                                                       job.output_channel)
            push = self.push_channels.get(job.output_channel or "")
            if messages and push is not None:
                await after_earlier()
                await push(job.sender_id, messages)

    def require_processor(self, core: bool = False) -> MessageProcessor:
        """The processor, or Rasa's 409 when no model (with dialogue, if ``core``) is loaded."""
        if self.event_broker_config is not None and self.event_broker is None:
            # Answering would lose the conversation's events; the lifespan connects it.
            raise HTTPError(503, "the event broker of endpoints.yml is not connected: the "
                                 "app's lifespan (startup) did not run.")
        if self.processor is None or self.agent is None:
            raise HTTPError(409, "No model is loaded. Load one with PUT /model "
                                 '{"model_file": "models/…tar.gz"} or restart with -m.',
                            reason="Conflict")
        if core and not self.agent.has_core:
            raise HTTPError(409, "The loaded model has no dialogue part (no stories or "
                                 "rules were trained); this endpoint needs one.",
                            reason="Conflict")
        return self.processor

    def require_agent(self) -> Agent:
        self.require_processor()
        assert self.agent is not None
        return self.agent

    async def within_timeout(self, work: Awaitable[T]) -> T:
        """``work``'s result, or a 503 after ``--response-timeout`` seconds. The work is not
        cancelled then: the message is still handled and its conversation saved, so that a
        slow turn never leaves a conversation half-updated."""
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.wait_for(asyncio.shield(task),
                                          self.settings.response_timeout)
        except asyncio.TimeoutError:
            task.add_done_callback(_log_failure)
            raise HTTPError(503, f"the assistant did not answer within "
                                 f"{self.settings.response_timeout:g} s (--response-timeout);"
                                 " the message is still being handled.") from None

    async def close(self) -> None:
        await self.reminders.close()  # before the pool and stores its running jobs use
        self.pool.close()
        for client in (self.nlg_server, self.model_server):
            if client is not None:
                await client.close()
        for store in (self.tracker_store, self.lock_store, self.event_broker):
            if store is None:
                continue
            try:
                await store.close()
            except Exception:  # noqa: BLE001 - closing must not hide the shutdown
                logger.exception("closing %s failed", type(store).__name__)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a message that timed out failed afterwards: %s", task.exception())
