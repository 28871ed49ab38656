"""Rasa's pika event broker, on aio-pika: each event a message to RabbitMQ.

As Rasa sets it up: a fanout exchange ``exchange_name`` (default ``rasa-exchange``), each
of ``queues`` declared durable and bound to it (default ``rasa_core_events``, with a
warning, as Rasa), and every event published to the exchange as a persistent message whose
body is the event's JSON (UTF-8) and whose ``app_id`` is ``$RASA_ENVIRONMENT`` when set.
``url`` is a host name or an ``amqp://`` / ``amqps://`` URL (whose user, password and port,
when given, win over the keys); ``RABBITMQ_SSL_CLIENT_CERTIFICATE`` and
``RABBITMQ_SSL_CLIENT_KEY`` in the environment add a client certificate, as in Rasa.

Connecting is tried ``connection_attempts`` times, ``retry_delay_in_seconds`` apart (Rasa's
20 and 5 s), then fails. Once connected, the connection is robust: aio-pika reconnects by
itself, and events that could not be published meanwhile wait in the
:class:`~.base.Backlog` and go out first when it is back. An event leaves the backlog only
once RabbitMQ has confirmed it (publisher confirms).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

from parley.errors import BrokerError
from parley.runtime.brokers.base import Encoded, QueuedBroker

__all__ = ["DEFAULT_EXCHANGE", "DEFAULT_QUEUE", "PikaEventBroker"]

logger = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "rasa-exchange"  # Rasa's RABBITMQ_EXCHANGE
DEFAULT_QUEUE = "rasa_core_events"
CONNECT_TIMEOUT = 10.0  # seconds per attempt: a host that never answers is not waited on
PUBLISH_TIMEOUT = 10.0  # seconds for RabbitMQ to confirm an event
BATCH = 256  # events published before their confirmations are awaited


def _aio_pika() -> Any:
    try:
        import aio_pika
    except ImportError as error:
        raise BrokerError("the pika event broker needs aio-pika: pip install "
                          "'parley[brokers]'.") from error
    return aio_pika


class PikaEventBroker(QueuedBroker):
    """Rasa's ``PikaEventBroker`` (the keys of its endpoints.yml section, by name)."""

    def __init__(self, host: str, username: str = "guest", password: str = "guest",
                 port: int = 5672, queues: list[str] | tuple[str, ...] | str | None = None,
                 should_keep_unpublished_messages: bool = True,
                 raise_on_failure: bool = False, connection_attempts: int = 20,
                 retry_delay_in_seconds: float = 5, exchange_name: str = DEFAULT_EXCHANGE,
                 origin: str = "the pika event broker") -> None:
        super().__init__(origin, should_keep_unpublished_messages, raise_on_failure)
        self.host = host
        self.username = username
        self.password = password
        self.port = port
        self.queues = _queues(queues)
        self.connection_attempts = max(1, connection_attempts)
        self.retry_delay_in_seconds = retry_delay_in_seconds
        self.exchange_name = exchange_name
        self._arguments = self._connect_arguments()  # a bad URL fails here, not later
        self._connection: Any = None
        self._exchange: Any = None

    @classmethod
    async def from_endpoint_config(cls, broker_config: Any,
                                   event_loop: Any = None) -> PikaEventBroker:
        from parley.runtime.brokers.factory import pika_broker

        broker = pika_broker(broker_config)
        await broker.connect()
        return broker

    # ---- connection ----------------------------------------------------------------

    def _where(self) -> str:
        if "://" in self.host:  # never show the password a URL may hold
            parts = urlsplit(self.host)
            return f"{parts.hostname}:{parts.port or self.port}"
        return f"{self.host}:{self.port}"

    def _connect_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
        if self.host.startswith(("amqp://", "amqps://")):
            # The URL's own user, password, port and options (?heartbeat=…) win over the keys.
            import yarl

            problem = url_problem(self.host)
            if problem:
                raise BrokerError(f"{self.origin}: {problem}")
            url = yarl.URL(self.host)
            if url.user is None:
                url = url.with_user(self.username).with_password(self.password)
            if url.explicit_port is None:
                url = url.with_port(self.port)
            arguments["url"] = url
        else:
            arguments.update(host=self.host, port=self.port, login=self.username,
                             password=self.password)
        context = _client_certificate()
        if context is not None:
            arguments.update(ssl=True, ssl_context=context)
        return arguments

    async def connect(self) -> None:
        """Connect, declare the exchange and queues; a :class:`BrokerError` after the last
        failed attempt."""
        aio_pika = _aio_pika()
        arguments = self._arguments
        for attempt in range(1, self.connection_attempts + 1):
            try:
                self._connection = await aio_pika.connect_robust(**arguments)
                break
            except Exception as error:  # noqa: BLE001 - any failure: try again, then report
                refusal = self._refusal(error)
                if refusal:  # RabbitMQ answered: the settings are wrong, trying cannot help
                    raise BrokerError(f"{self.origin}: {refusal}") from error
                if attempt == self.connection_attempts:
                    raise BrokerError(
                        f"{self.origin}: RabbitMQ at {self._where()} cannot be reached "
                        f"({_reason(error)}) after {attempt} attempt(s).") from error
                logger.warning("%s: connecting to RabbitMQ at %s failed (%s); attempt %d of "
                               "%d, again in %g s.", self.origin, self._where(),
                               _reason(error), attempt, self.connection_attempts,
                               self.retry_delay_in_seconds)
                await asyncio.sleep(self.retry_delay_in_seconds)
        try:
            channel = await self._connection.channel()  # with publisher confirms
            exchange = await channel.declare_exchange(
                self.exchange_name, type=aio_pika.ExchangeType.FANOUT)
            for name in self.queues:
                queue = await channel.declare_queue(name, durable=True)
                await queue.bind(exchange, routing_key="")
        except Exception as error:  # noqa: BLE001 - RabbitMQ refused a declaration
            await self._disconnect()
            raise BrokerError(f"{self.origin}: RabbitMQ at {self._where()} refused the "
                              f"exchange '{self.exchange_name}' or the queues "
                              f"{', '.join(self.queues)} ({_reason(error)}).") from error
        self._exchange = exchange
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        reopened = getattr(channel, "reopen_callbacks", None)  # aio-pika's RobustChannel
        if reopened is not None:  # after RabbitMQ closed it (else the backlog's timer)
            reopened.add(self._on_reconnect)
        logger.info("%s: publishing to RabbitMQ at %s (exchange '%s', queues %s).",
                    self.origin, self._where(), self.exchange_name, ", ".join(self.queues))

    def _login(self) -> tuple[str, str]:
        """The user and the virtual host a connection asks for (a URL's own win)."""
        if "://" in self.host:
            parts = urlsplit(self.host)
            vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
            return unquote(parts.username) if parts.username else self.username, vhost
        return self.username, "/"

    def _refusal(self, error: BaseException) -> str | None:
        """What RabbitMQ refused, in words, when it refused the login or the virtual host
        (aio-pika shows the first as ACCESS_REFUSED and the second as an unexpected frame,
        "Expected one of ['Connection.OpenOk'], got <Connection.Close …>"); None for other
        failures (not reachable, a timeout), which are worth another attempt."""
        user, vhost = self._login()
        text = str(error)
        if type(error).__name__ == "ProbableAuthenticationError" or "ACCESS_REFUSED" in text:
            return (f"RabbitMQ at {self._where()} refused the login of user '{user}' (wrong "
                    "username or password: the keys 'username' and 'password', or the "
                    "user:password of an amqp:// URL).")
        if ("Connection.OpenOk" in text and "Connection.Close" in text) or \
                type(error).__name__ == "ConnectionNotAllowed":
            return (f"RabbitMQ at {self._where()} refused the virtual host '{vhost}': it does "
                    f"not exist there, or user '{user}' may not use it (the vhost is the "
                    "path of the amqp:// URL: amqp://user:password@host:5672/vhost; '/' "
                    "when there is none).")
        return None

    def _on_reconnect(self, *_: Any, **__: Any) -> None:
        self.backlog.retry()  # what waited goes out now, not with the next message

    def is_ready(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def _disconnect(self) -> None:
        if self._connection is not None:
            connection, self._connection, self._exchange = self._connection, None, None
            await connection.close()

    # ---- publishing ----------------------------------------------------------------

    async def _send(self, pending: deque[Encoded]) -> None:
        """Publish what waits, up to :data:`BATCH` at a time: sent one after the other on
        the channel (RabbitMQ keeps their order) and confirmed together, which costs one
        round trip and one disk flush of RabbitMQ's rather than one per event.

        Every event RabbitMQ confirmed leaves the queue, wherever it stands in the batch;
        the others stay at its front, in their order, and are sent again. Confirmations
        need not fail from some point on: a publish that waited for aio-pika's reconnection
        is confirmed after earlier ones were lost with the connection, and sending the
        batch again from its first failure would repeat it — a consumer would see events
        it already had come back before the newer ones."""
        aio_pika = _aio_pika()
        if self._exchange is None:
            raise BrokerError(f"{self.origin}: not connected to RabbitMQ.")
        app_id = os.environ.get("RASA_ENVIRONMENT")
        batch = list(itertools.islice(pending, BATCH))  # taken off once answered
        results = await asyncio.gather(*(
            self._exchange.publish(
                aio_pika.Message(event.body.encode("utf-8"), app_id=app_id,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="", timeout=PUBLISH_TIMEOUT)
            for event in batch), return_exceptions=True)
        unconfirmed: list[Encoded] = []
        failure: BaseException | None = None
        for event, result in zip(batch, results, strict=True):
            if not isinstance(result, BaseException):
                continue
            # The first failure is the cause (connection lost, nack, timeout, a refusal).
            # An event RabbitMQ refuses would be refused for ever and hold up the rest: it
            # is dropped. The channel RabbitMQ closes over it fails the later events with
            # the same words; they were not refused and stay.
            refused = failure is None and _refused(result)
            failure = failure or result
            if refused:
                logger.error("%s: RabbitMQ at %s refused an event of conversation '%s' "
                             "(%d bytes): %s. It was dropped; the events after it go on.",
                             self.origin, self._where(), event.sender_id,
                             len(event.body.encode("utf-8")), _reason(result))
            else:
                unconfirmed.append(event)
        for _ in batch:
            pending.popleft()
        pending.extendleft(reversed(unconfirmed))
        if failure is not None:
            raise BrokerError(f"{self.origin}: publishing to RabbitMQ at {self._where()} "
                              f"failed ({_reason(failure)}).") from failure


def url_problem(host: str) -> str | None:
    """What is wrong with ``url``: an ``amqp://`` or ``amqps://`` URL, or a host name
    (None: nothing, or no ``url``)."""
    import yarl

    if not host.startswith(("amqp://", "amqps://")):
        try:  # Rasa, too, hands the value to aio-pika as a host, where it fails later
            yarl.URL.build(scheme="amqp", host=host)
        except ValueError:
            return (f"'{host}' is neither a host name nor an AMQP URL; write the host alone "
                    "(its port under 'port:') or a URL: amqp://user:password@host:port/vhost "
                    "(amqps:// for TLS).")
        return None
    try:
        url = yarl.URL(host)
    except ValueError as error:
        return (f"'{host}' is not an AMQP URL ({error}); write "
                "amqp://user:password@host:port/vhost.")
    return None if url.host else f"the URL '{host}' names no host."


def _queues(queues: list[str] | tuple[str, ...] | str | None) -> list[str]:
    if isinstance(queues, str) and queues:
        return [queues]
    if queues:
        return [str(queue) for queue in queues]
    from parley.errors import warn

    warn(f"the pika event broker has no 'queues'; events go to the queue "
         f"'{DEFAULT_QUEUE}' (Rasa's default). Name the queues under 'queues:'.")
    return [DEFAULT_QUEUE]


def _client_certificate() -> ssl.SSLContext | None:
    """Rasa's RABBITMQ_SSL_CLIENT_CERTIFICATE and RABBITMQ_SSL_CLIENT_KEY."""
    certificate = os.environ.get("RABBITMQ_SSL_CLIENT_CERTIFICATE")
    key = os.environ.get("RABBITMQ_SSL_CLIENT_KEY")
    if not (certificate and key):
        return None
    context = ssl.create_default_context()
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as error:
        raise BrokerError(f"the pika event broker: the client certificate "
                          f"(RABBITMQ_SSL_CLIENT_CERTIFICATE={certificate}, "
                          f"RABBITMQ_SSL_CLIENT_KEY={key}) cannot be loaded: {error}") from error
    return context


def _refused(error: BaseException) -> bool:
    """Whether RabbitMQ refused the message itself: larger than its ``max_message_size``
    (128 MiB by default; it closes the channel with PRECONDITION_FAILED)."""
    return "PRECONDITION_FAILED" in str(error) and "message size" in str(error)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    reason = text[0] if text and text[0] else type(error).__name__
    closed = _CLOSED.fullmatch(reason)  # aio-pika names what is closed by its repr
    if closed:
        what = "channel" if "channel" in closed.group(1).split(":")[0].lower() else "connection"
        return f"the {what} to RabbitMQ is closed (reconnecting)"
    return reason


_CLOSED = re.compile(r"<(.*?)(?: object)? at 0x[0-9a-f]+> closed")
