"""The RabbitMQ the pika broker tests use: 127.0.0.1:5672 with guest/guest on the project's
machines and CI (``PARLEY_TEST_RABBITMQ`` = ``host:port`` points elsewhere); missing on a
fresh clone — then those tests skip, saying so. Each test declares its own queues and
exchange and deletes them."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from tests.runtime.stores.services import _reachable

HOST, _, _port = os.environ.get("PARLEY_TEST_RABBITMQ", "127.0.0.1:5672").partition(":")
PORT = int(_port or 5672)


def need_rabbitmq() -> None:
    """Skip the test, with the reason, unless RabbitMQ takes guest/guest."""
    aio_pika = pytest.importorskip("aio_pika", reason="aio-pika is not installed "
                                                      "(parley[brokers])")
    if not _reachable(HOST, PORT):
        pytest.skip(f"RabbitMQ is not reachable for the tests (nothing at {HOST}:{PORT})")

    async def login() -> None:
        connection = await aio_pika.connect(host=HOST, port=PORT, timeout=5)
        await connection.close()

    try:
        asyncio.run(login())
    except Exception as error:  # noqa: BLE001 - any refusal: say why and skip
        pytest.skip(f"RabbitMQ at {HOST}:{PORT} refused guest/guest ({error})")


async def take(queue: str, count: int, timeout: float = 10.0) -> list[tuple[dict[str, Any],
                                                                           Any]]:
    """The next ``count`` messages of ``queue`` (body as JSON, and the message), acked;
    fails when they do not come within ``timeout`` seconds."""
    import aio_pika

    connection = await aio_pika.connect(host=HOST, port=PORT)
    try:
        channel = await connection.channel()
        source = await channel.declare_queue(queue, durable=True, passive=True)
        taken: list[tuple[dict[str, Any], Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(taken) < count:
            message = await source.get(fail=False)
            if message is None:
                assert asyncio.get_running_loop().time() < deadline, (
                    f"only {len(taken)} of {count} messages came to '{queue}'")
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            taken.append((json.loads(message.body), message))
        return taken
    finally:
        await connection.close()


async def remaining(queue: str) -> int:
    """How many messages wait in ``queue``."""
    import aio_pika

    connection = await aio_pika.connect(host=HOST, port=PORT)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def delete(queues: list[str], exchange: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(host=HOST, port=PORT)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()
