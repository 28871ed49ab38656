"""The pika broker against a real RabbitMQ: Rasa's exchange, queues and message properties,
each event once and in order — also across a connection that drops and comes back — and a
RabbitMQ that is not there at start as an error naming endpoints.yml's line."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from parley.errors import BrokerError
from parley.runtime.brokers.factory import create_event_broker
from parley.runtime.endpoints import read_endpoints
from tests.runtime.brokers.proxy import Proxy
from tests.runtime.brokers.rabbitmq import HOST, PORT, delete, need_rabbitmq, remaining, take
from tests.runtime.stores.services import unique


@pytest.fixture
def names() -> Any:
    """Queues and an exchange of this test's own, deleted after it."""
    need_rabbitmq()
    queues, exchange = [unique("parley_q_"), unique("parley_q_")], unique("parley_ex_")
    yield queues, exchange
    asyncio.run(delete(queues, exchange))


def section(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "endpoints.yml"
    path.write_text(text)
    return read_endpoints(path).event_broker


def events(sender: str, count: int) -> list[dict[str, Any]]:
    return [{"sender_id": sender, "event": "bot", "timestamp": float(n), "text": f"é {n}",
             "data": {}, "metadata": {}} for n in range(count)]


def test_events_should_reach_every_queue_as_rasa_publishes_them(
        tmp_path: Path, names: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    queues, exchange = names
    monkeypatch.setenv("RASA_ENVIRONMENT", "production")
    config = section(tmp_path, f"""\
event_broker:
  type: pika
  url: {HOST}
  port: {PORT}
  username: guest
  password: guest
  queues: [{queues[0]}, {queues[1]}]
  exchange_name: {exchange}
""")

    async def scenario() -> list[Any]:
        broker = await create_event_broker(config)
        assert broker is not None and broker.is_ready()
        await broker.publish_events(events("ada", 3))
        await broker.publish_events(events("bob", 2))
        await broker.close()
        assert not broker.is_ready()
        return [await take(queue, 5) for queue in queues]

    for taken in asyncio.run(scenario()):
        bodies = [body for body, _ in taken]
        assert bodies == events("ada", 3) + events("bob", 2)
        message = taken[0][1]
        assert message.delivery_mode == 2  # persistent, as Rasa sends them
        assert message.app_id == "production"  # Rasa's RASA_ENVIRONMENT
        assert message.exchange == exchange
    assert asyncio.run(remaining(queues[0])) == 0


def test_a_single_queue_name_and_an_amqp_url_should_do(tmp_path: Path, names: Any) -> None:
    queues, exchange = names
    config = section(tmp_path, f"""\
event_broker:
  url: amqp://{HOST}:{PORT}/
  queues: {queues[0]}
  exchange_name: {exchange}
""")  # no type: pika, as in Rasa; guest/guest are the defaults

    async def scenario() -> list[Any]:
        broker = await create_event_broker(config)
        assert broker is not None
        await broker.publish_events(events("ada", 2))
        await broker.close()
        return await take(queues[0], 2)

    assert [body for body, _ in asyncio.run(scenario())] == events("ada", 2)


def test_rasa_style_publish_should_send_in_the_background(tmp_path: Path, names: Any) -> None:
    queues, exchange = names
    config = section(tmp_path, f"event_broker:\n  type: pika\n  url: {HOST}\n  port: {PORT}\n"
                               f"  queues: [{queues[0]}]\n  exchange_name: {exchange}\n")

    async def scenario() -> list[Any]:
        broker = await create_event_broker(config)
        assert broker is not None
        for event in events("ada", 3):
            broker.publish(event)  # Rasa's call: returns at once
        await broker.close()  # waits for what is under way
        return await take(queues[0], 3)

    assert [body for body, _ in asyncio.run(scenario())] == events("ada", 3)


def test_rabbitmq_down_at_start_should_name_the_endpoints_line(tmp_path: Path) -> None:
    pytest.importorskip("aio_pika", reason="aio-pika is not installed (parley[brokers])")
    config = section(tmp_path, """\
tracker_store:
  type: sql
event_broker:
  type: pika
  url: 127.0.0.1
  port: 1
  queues: [q]
  connection_attempts: 2
  retry_delay_in_seconds: 0.01
""")
    with pytest.raises(BrokerError, match=r"event broker \(.*endpoints.yml:3\): RabbitMQ at "
                                          r"127.0.0.1:1 cannot be reached .* after 2 attempt"):
        asyncio.run(create_event_broker(config))


@pytest.mark.parametrize(("url", "message"), [
    (f"amqp://guest:guest@{HOST}:{PORT}/parley_no_such_vhost",
     rf"RabbitMQ at {HOST}:{PORT} refused the virtual host 'parley_no_such_vhost': it does "
     "not exist there, or user 'guest' may not use it"),
    (f"amqp://guest:not-the-password@{HOST}:{PORT}/",
     rf"RabbitMQ at {HOST}:{PORT} refused the login of user 'guest' \(wrong username or "
     "password"),
])
def test_a_vhost_or_login_rabbitmq_refuses_should_be_said_in_words_at_once(
        tmp_path: Path, url: str, message: str) -> None:
    """Not aio-pika's "Expected one of ['Connection.OpenOk'], got <Connection.Close …>",
    and not after connection_attempts × retry_delay_in_seconds: RabbitMQ answered."""
    need_rabbitmq()
    config = section(tmp_path, f"""\
tracker_store:
  type: sql
event_broker:
  type: pika
  url: {url}
  queues: [q]
  retry_delay_in_seconds: 60
""")
    with pytest.raises(BrokerError, match=r"event broker \(.*endpoints.yml:3\): " + message):
        asyncio.run(asyncio.wait_for(create_event_broker(config), 30))


async def _broker_behind_a_proxy(tmp_path: Path, queue: str, exchange: str) -> tuple[Proxy, Any]:
    """A pika broker connected to RabbitMQ through a proxy the test can cut, reconnecting
    every 0.2 s."""
    proxy = Proxy(HOST, PORT)
    await proxy.start()
    config = section(tmp_path, f"""\
event_broker:
  type: pika
  url: amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=0.2
  queues: [{queue}]
  exchange_name: {exchange}
""")
    broker = await create_event_broker(config)
    assert broker is not None
    return proxy, broker


def test_a_dropped_connection_should_lose_and_repeat_nothing(
        tmp_path: Path, names: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Events published while RabbitMQ is away wait, and go out first when it is back."""
    queues, exchange = names

    async def scenario() -> list[Any]:
        proxy, broker = await _broker_behind_a_proxy(tmp_path, queues[0], exchange)
        sent = events("ada", 6)
        await broker.publish_events(sent[:2])
        await broker.flush()
        proxy.cut()
        await asyncio.sleep(0.1)
        await broker.publish_events(sent[2:4])  # queued: the conversation does not wait
        with pytest.raises(BrokerError, match="publishing to RabbitMQ at 127.0.0.1:.* failed"):
            await broker.flush()
        assert len(broker.backlog) == 2
        proxy.restore()
        for _ in range(100):  # aio-pika reconnects by itself; the backlog goes out then
            if proxy.connections == 2 and broker.is_ready() and not len(broker.backlog):
                break
            await asyncio.sleep(0.1)
        assert proxy.connections == 2 and not len(broker.backlog)  # sent on reconnecting
        await broker.publish_events(sent[4:])
        await broker.close()
        await proxy.close()
        return await take(queues[0], 6)

    with caplog.at_level(logging.ERROR):
        taken = asyncio.run(scenario())
    assert [body for body, _ in taken] == events("ada", 6)
    assert asyncio.run(remaining(queues[0])) == 0


def test_a_batch_cut_by_a_reconnection_should_send_again_only_what_was_not_confirmed(
        tmp_path: Path, names: Any, caplog: pytest.LogCaptureFixture) -> None:
    """One batch's publishes can straddle a reconnection: the first confirmed, the next
    lost with the connection, the last confirmed on the new one (aio-pika lets a publish
    wait for its reconnection). Only the lost ones are sent again: the confirmed ones,
    sent again too, came back to the consumer after events it already had."""
    queues, exchange = names

    async def scenario() -> tuple[list[Any], list[dict[str, Any]]]:
        proxy, broker = await _broker_behind_a_proxy(tmp_path, queues[0], exchange)
        target = broker._exchange  # type: ignore[attr-defined]
        publish, issued = target.publish, [0]
        first_confirmed, cut = asyncio.Event(), asyncio.Event()
        confirmed: list[int] = []

        async def straddling(message: Any, *args: Any, **kwargs: Any) -> Any:
            index = issued[0]
            issued[0] += 1
            if index < 10:  # confirmed before the cut
                result = await publish(message, *args, **kwargs)
                confirmed.append(index)
                if len(confirmed) == 10:
                    first_confirmed.set()
                return result
            if index == 10:  # the connection drops under the batch
                await first_confirmed.wait()
                proxy.cut()
                await asyncio.sleep(0.2)
                cut.set()
            elif index < 30:
                await cut.wait()
            if index < 20:
                # Lost with the connection. (A real publish here on the dropped channel
                # fails, or waits for the reconnection when aio-pika has noticed the drop
                # already: a race this test must not depend on.)
                raise ConnectionResetError("the connection to RabbitMQ was lost")
            if 20 <= index < 30:  # these wait for the reconnection
                proxy.restore()
                for _ in range(200):
                    if broker.is_ready() and not target.channel.is_closed:
                        break
                    await asyncio.sleep(0.05)
            return await publish(message, *args, **kwargs)

        target.publish = straddling
        sent = events("ada", 35)
        await broker.publish_events(sent[:30])  # one batch
        try:
            await broker.flush()
        except BrokerError as error:  # the batch's delivery, reported
            assert re.search("publishing to RabbitMQ .* failed", str(error))
            assert len(broker.backlog) == 10  # type: ignore[attr-defined]
        # (or aio-pika's reconnection came first, and its retry, which flush waits for,
        # already sent the 10 lost events: on a slow host either order happens)
        assert "10 event(s) wait and go out first" in caplog.text
        await broker.publish_events(sent[30:])
        await broker.flush()
        await broker.close()
        await proxy.close()
        return await take(queues[0], 35), sent

    with caplog.at_level(logging.ERROR):
        taken, sent = asyncio.run(scenario())
    assert [body for body, _ in taken] == sent[:10] + sent[20:30] + sent[10:20] + sent[30:]
    assert asyncio.run(remaining(queues[0])) == 0


@pytest.mark.slow  # builds a 129 MiB event: about half a GB of memory for a few seconds
def test_an_event_rabbitmq_refuses_as_too_large_should_be_dropped_alone(
        tmp_path: Path, names: Any, caplog: pytest.LogCaptureFixture) -> None:
    """RabbitMQ closes the channel on a message above its max_message_size (128 MiB by
    default). Sent again and again, that one event held up every later one for ever (and
    made the connection flap): it is dropped, logged, and the others go out in order —
    without waiting for another message, as soon as the channel is open again."""
    queues, exchange = names
    config = section(tmp_path, f"event_broker:\n  type: pika\n  url: {HOST}\n  port: {PORT}\n"
                               f"  queues: [{queues[0]}]\n  exchange_name: {exchange}\n")
    huge = {"sender_id": "huge", "event": "bot", "text": "x" * (129 << 20)}

    async def scenario() -> list[Any]:
        broker = await create_event_broker(config)
        assert broker is not None
        await broker.publish_events(events("ada", 1))
        await broker.publish_events([huge])
        await broker.publish_events(events("bob", 2))
        # no further message comes to trigger a retry; the channel reopens after aio-pika's
        # 5 s reconnect delay, and 129 MiB cross a loaded machine slowly: up to a minute
        for _ in range(600):
            if not len(broker.backlog):  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.1)
        assert not len(broker.backlog)  # type: ignore[attr-defined]
        await broker.close()
        return await take(queues[0], 3)

    with caplog.at_level(logging.ERROR):
        taken = asyncio.run(scenario())
    assert [body for body, _ in taken] == events("ada", 1) + events("bob", 2)
    # (Parley's records only: an aio-pika record whose arguments do not fit its format
    # raised in getMessage under a loaded run)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("parley")]
    dropped = [message for message in ours if "was dropped" in message]
    assert len(dropped) == 1 and "conversation 'huge'" in dropped[0]
    assert "larger than configured max size" in dropped[0]


def test_a_closed_channel_should_be_reported_in_words_not_a_repr() -> None:
    """aio-pika says "<…RobustChannel object at 0x7f…> closed"; a log or a 503 says what
    happened instead."""
    aiormq = pytest.importorskip("aiormq", reason="aio-pika is not installed (parley[brokers])")
    from parley.runtime.brokers.pika import _reason

    channel = "<aio_pika.robust_channel.RobustChannel object at 0x7feed21b9310>"
    reason = _reason(aiormq.exceptions.ChannelInvalidStateError(f"{channel} closed"))
    assert reason == "the channel to RabbitMQ is closed (reconnecting)"
    connection = '<Connection: "amqp://guest:******@127.0.0.1:15672//" at 0x7fa70c0b6350>'
    assert _reason(RuntimeError(f"{connection} closed")) == \
        "the connection to RabbitMQ is closed (reconnecting)"
    assert _reason(TimeoutError()) == "TimeoutError"
