"""Rasa's ticket lock in Redis: one message at a time per conversation, across processes.

Each message to a conversation draws the next ticket number (``INCR``); it proceeds when
its ticket is the lowest one still alive, so messages are handled one at a time and in the
order they arrived, whichever process received them. Every step is one Lua script, so no
two processes ever see a half-updated lock. A ticket lives ``lock_lifetime`` seconds and
its holder (or waiter) renews it while alive, so a process that dies frees the
conversation after at most ``lock_lifetime``, while a slow but living holder is never
overtaken; a waiter that gets no turn within ``lock_lifetime`` gets :class:`LockError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from parley.errors import LockError, StoreError
from parley.runtime.stores.base import DEFAULT_LOCK_LIFETIME, LockStore
from parley.runtime.stores.redis import RedisConnection, check_key_prefix, redis_errors

__all__ = ["RedisLockStore"]

log = logging.getLogger(__name__)

# KEYS: counter, queue (ticket → ticket, a sorted set), deadlines (ticket → ms, a hash).
# Every script first drops tickets whose deadline passed (their holder died) and keeps the
# keys alive for two lifetimes past the last use, so an abandoned lock vanishes on its own.
_PRELUDE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local life = tonumber(ARGV[1])
local deadlines = redis.call('HGETALL', KEYS[3])
for i = 1, #deadlines, 2 do
  if tonumber(deadlines[i + 1]) < ms then
    redis.call('HDEL', KEYS[3], deadlines[i])
    redis.call('ZREM', KEYS[2], deadlines[i])
  end
end
"""
_KEEP = """
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], 2 * life) end
"""
# ARGV: lifetime ms → the new ticket number, negated when it must wait (so that a
# conversation nobody holds costs one round trip, not two).
_ISSUE = _PRELUDE + """
local ticket = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], ticket, ticket)
redis.call('HSET', KEYS[3], ticket, ms + life)
""" + _KEEP + """
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if tonumber(head[1]) == ticket then return ticket end
return -ticket
"""
# ARGV: lifetime ms, ticket → 1 its turn, 0 wait, -1 the ticket expired (renews it if alive).
_TURN = _PRELUDE + """
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then return -1 end
redis.call('HSET', KEYS[3], ARGV[2], ms + life)
""" + _KEEP + """
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if head[1] == ARGV[2] then return 1 end
return 0
"""
# ARGV: lifetime ms, ticket → 1 removed, 0 was no longer there.
_RELEASE = _PRELUDE + """
local had = redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
else
""" + _KEEP + """
end
return had
"""

_FIRST_POLL = 0.002
_MAX_POLL = 0.05


class RedisLockStore(LockStore):
    """Rasa's ``RedisLockStore`` keys: ``url`` (host), ``port``, ``db`` (1), ``username``,
    ``password``, ``use_ssl``, ``key_prefix``, ``socket_timeout`` (10 s)."""

    def __init__(self, *, host: str = "localhost", port: int = 6379, db: int = 1,
                 username: str | None = None, password: str | None = None,
                 use_ssl: bool = False, key_prefix: str | None = None,
                 socket_timeout: float = 10.0, ssl_options: dict[str, Any] | None = None,
                 origin: str = "the Redis lock store") -> None:
        self.prefix = check_key_prefix(key_prefix, "lock:")
        self._redis = RedisConnection(host, port, db, username, password, use_ssl,
                                       socket_timeout, ssl_options or {}, origin)
        self._scripts: dict[str, Any] = {}

    def _keys(self, conversation_id: str) -> list[str]:
        base = self.prefix + conversation_id
        return [f"{base}:counter", f"{base}:queue", f"{base}:deadlines"]

    def _run(self, name: str, conversation_id: str, *args: Any) -> int:
        script = self._scripts.get(name)
        if script is None:
            source = {"issue": _ISSUE, "turn": _TURN, "release": _RELEASE}[name]
            script = self._scripts[name] = self._redis.client.register_script(source)
        try:
            return int(script(keys=self._keys(conversation_id), args=list(args)))
        except redis_errors() as error:
            raise self._redis.failure(error, f"locking conversation '{conversation_id}'"
                                      ) from error

    async def _call(self, name: str, conversation_id: str, *args: Any) -> int:
        return await asyncio.to_thread(self._run, name, conversation_id, *args)

    def lock(self, conversation_id: str,
             lock_lifetime: float = DEFAULT_LOCK_LIFETIME) -> Any:
        return self._hold(conversation_id, lock_lifetime)

    @asynccontextmanager
    async def _hold(self, conversation_id: str, lock_lifetime: float) -> AsyncIterator[None]:
        life_ms = max(1, int(lock_lifetime * 1000))
        issued = await self._call("issue", conversation_id, life_ms)
        ticket = abs(issued)
        try:
            if issued < 0:
                await self._wait_for_turn(conversation_id, ticket, lock_lifetime, life_ms)
            renewer = asyncio.create_task(self._renew(conversation_id, ticket, lock_lifetime,
                                                      life_ms))
            try:
                yield
            finally:
                renewer.cancel()
                await asyncio.gather(renewer, return_exceptions=True)
        finally:
            await asyncio.shield(self._release(conversation_id, ticket, lock_lifetime, life_ms))

    async def _release(self, conversation_id: str, ticket: int, lock_lifetime: float,
                       life_ms: int) -> None:
        """Give the ticket back. Failing to is logged, not raised: the message was handled,
        and an unreturned ticket expires on its own after ``lock_lifetime``."""
        try:
            released = await self._call("release", conversation_id, life_ms, ticket)
        except StoreError as error:
            log.warning("%s; the conversation is free again in %g s at the latest", error,
                        lock_lifetime)
            return
        if not released:
            log.warning("the lock on conversation '%s' expired while held (the holder "
                        "was stalled for more than %g s)", conversation_id, lock_lifetime)

    async def _wait_for_turn(self, conversation_id: str, ticket: int, lock_lifetime: float,
                             life_ms: int) -> None:
        give_up = time.monotonic() + lock_lifetime
        pause = _FIRST_POLL
        while True:
            await asyncio.sleep(min(pause, max(0.0, give_up - time.monotonic())))
            pause = min(pause * 2, _MAX_POLL)
            turn = await self._call("turn", conversation_id, life_ms, ticket)
            if turn == 1:
                return
            if turn == -1 or time.monotonic() >= give_up:
                raise LockError(
                    f"conversation '{conversation_id}' is still busy with an earlier message "
                    f"after {lock_lifetime:g} s; try again.")

    async def _renew(self, conversation_id: str, ticket: int, lock_lifetime: float,
                     life_ms: int) -> None:
        """Keep the held ticket alive: only a holder that died lets its lock expire."""
        while True:
            await asyncio.sleep(lock_lifetime / 3)
            try:
                alive = await self._call("turn", conversation_id, life_ms, ticket) != -1
            except StoreError as error:
                log.warning("%s; the lock is not renewed", error)
                return
            if not alive:
                log.warning("the lock on conversation '%s' expired while held",
                            conversation_id)
                return

    async def close(self) -> None:
        self._redis.close()
