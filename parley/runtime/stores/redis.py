"""Conversations and conversation locks in Redis (redis-py), shared by every process that
uses the same Redis.

Tracker store: each conversation is a Redis list of its events as Rasa's JSON dicts, under
``tracker:<sender_id>`` (``<key_prefix>:tracker:<sender_id>`` with Rasa's ``key_prefix``),
and the position of its latest ``session_started`` under ``session_start:<sender_id>``, so
``retrieve`` loads the latest session only. A save appends the events Redis does not have
yet inside a WATCH/MULTI transaction that first checks that the tracker continues what is
stored; a concurrent writer makes it fail with :class:`StoreError` rather than interleave
events.

Lock store: Rasa's ticket lock. Each message to a conversation draws the next ticket number
(``INCR``); it proceeds when its ticket is the lowest one still alive, so messages are
handled one at a time and in the order they arrived, across processes. Every step is one
Lua script, so no two processes ever see a half-updated lock. A ticket lives
``lock_lifetime`` seconds and its holder (or waiter) renews it while alive, so a process
that dies frees the conversation after at most ``lock_lifetime``, while a slow but living
holder is never overtaken; a waiter that gets no turn within ``lock_lifetime`` gets
:class:`LockError`.

redis-py's blocking client is driven from worker threads: it works from any event loop
(``asyncio.run`` per message in the shell, the server's loop) without binding
connections to one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from parley.data.domain import Domain
from parley.data.events import Event, SessionStarted, event_from_dict
from parley.data.tracker import DialogueStateTracker
from parley.errors import DataError, LockError, StoreError
from parley.runtime.stores.appending import events_to_append
from parley.runtime.stores.base import DEFAULT_LOCK_LIFETIME, LockStore, TrackerStore

__all__ = ["RedisLockStore", "RedisTrackerStore", "check_key_prefix"]

log = logging.getLogger(__name__)

_PREFIX_CHARS = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_key_prefix(prefix: str | None, default: str) -> str:
    """Rasa's layout: ``<prefix>:<default>`` or just ``<default>``."""
    if prefix is None or prefix == "":
        return default
    if not _PREFIX_CHARS.match(prefix):
        raise StoreError(f"the Redis key_prefix '{prefix}' may hold only letters, digits, "
                         "'_', '.' and '-'.")
    return f"{prefix}:{default}"


class _RedisConnection:
    """A redis-py client made on first use; connection errors become :class:`StoreError`."""

    def __init__(self, host: str, port: int, db: int, username: str | None,
                 password: str | None, use_ssl: bool, socket_timeout: float,
                 ssl_options: dict[str, Any], origin: str) -> None:
        self.host, self.port, self.db = host, port, db
        self.origin = origin
        self._options = dict(username=username, password=password, ssl=use_ssl,
                             socket_timeout=socket_timeout,
                             socket_connect_timeout=socket_timeout, **ssl_options)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import redis
            except ImportError as error:
                raise StoreError("Redis stores need redis-py: pip install 'parley[stores]'."
                                 ) from error
            if "://" in self.host:  # a whole URL (redis://user:pw@host:port/db)
                self._client = redis.Redis.from_url(self.host, **{
                    k: v for k, v in self._options.items() if v not in (None, False)})
            else:
                self._client = redis.Redis(host=self.host, port=self.port, db=self.db,
                                           **self._options)
        return self._client

    def failure(self, error: Exception, doing: str) -> StoreError:
        where = self.host if "://" in self.host else f"{self.host}:{self.port} db {self.db}"
        return StoreError(f"{self.origin}: {doing} failed at Redis {where}: {error}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _redis_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.RedisError,)


class RedisTrackerStore(TrackerStore):
    """Rasa's ``RedisTrackerStore`` keys: ``url`` (host), ``port``, ``db`` (0), ``username``,
    ``password``, ``use_ssl``, ``key_prefix``, ``record_exp`` (seconds a conversation is
    kept after its last save; none = forever)."""

    def __init__(self, domain: Domain | None = None, *, host: str = "localhost",
                 port: int = 6379, db: int = 0, username: str | None = None,
                 password: str | None = None, use_ssl: bool = False,
                 key_prefix: str | None = None, record_exp: float | None = None,
                 socket_timeout: float = 10.0, ssl_options: dict[str, Any] | None = None,
                 origin: str = "the Redis tracker store") -> None:
        super().__init__(domain)
        self.prefix = check_key_prefix(key_prefix, "tracker:")
        self.session_prefix = check_key_prefix(key_prefix, "session_start:")
        self.record_exp = record_exp
        # Each retrieved tracker's position in its list, so that saving it knows where it
        # starts (a tracker holds the latest session only).
        self._starts: weakref.WeakKeyDictionary[DialogueStateTracker, int] = \
            weakref.WeakKeyDictionary()
        self._read_session: Any = None
        self._redis = _RedisConnection(host, port, db, username, password, use_ssl,
                                       socket_timeout, ssl_options or {}, origin)

    @property
    def origin(self) -> str:
        return self._redis.origin

    def key(self, sender_id: str) -> str:
        return self.prefix + sender_id

    def session_key(self, sender_id: str) -> str:
        """Where the position of the conversation's latest ``session_started`` is kept."""
        return self.session_prefix + sender_id

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation from its latest ``session_started`` on (all of it if it has
        none): older sessions no longer shape the dialogue, and are not loaded."""
        return await asyncio.to_thread(self._retrieve, sender_id, True)

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        return await asyncio.to_thread(self._retrieve, sender_id, False)

    async def save(self, tracker: DialogueStateTracker) -> None:
        await asyncio.to_thread(self._save, tracker)

    async def keys(self) -> list[str]:
        return await asyncio.to_thread(self._keys)

    async def delete(self, sender_id: str) -> None:
        await asyncio.to_thread(self._delete, sender_id)

    def _delete(self, sender_id: str) -> None:
        try:
            self._redis.client.delete(self.key(sender_id), self.session_key(sender_id))
        except _redis_errors() as error:
            raise self._redis.failure(error, f"deleting conversation '{sender_id}'") from error

    async def close(self) -> None:
        self._redis.close()

    def _retrieve(self, sender_id: str, latest_session: bool) -> DialogueStateTracker | None:
        key = self.key(sender_id)
        try:
            if latest_session:
                if self._read_session is None:
                    self._read_session = self._redis.client.register_script(_READ_SESSION)
                start, items = self._read_session(keys=[key, self.session_key(sender_id)])
                start = int(start)
            else:
                start, items = 0, self._redis.client.lrange(key, 0, -1)
        except _redis_errors() as error:
            raise self._failure(error, key, f"reading conversation '{sender_id}'") from error
        if not items:
            return None
        events = [self._event(sender_id, start + i, item) for i, item in enumerate(items)]
        tracker = self.init_tracker(sender_id, events)
        self._starts[tracker] = start
        return tracker

    def _failure(self, error: Exception, key: str, doing: str) -> StoreError:
        if "WRONGTYPE" in str(error):
            return StoreError(f"{self.origin}: the Redis key '{key}' does not hold a list of "
                              f"events (it was written by another program, or by Rasa, whose "
                              f"Redis layout differs); give Parley its own key_prefix or db.")
        return self._redis.failure(error, doing)

    def _event(self, sender_id: str, index: int, item: bytes) -> Event:
        where = f"key '{self.key(sender_id)}', item {index}"
        try:
            return event_from_dict(json.loads(item), where)
        except (TypeError, ValueError, DataError) as error:
            text = str(error)
            raise StoreError(
                f"{self.origin}: the stored conversation '{sender_id}' is damaged ({where}: "
                f"{text[:200]}); the item is not a JSON event Parley wrote.") from error

    def _save(self, tracker: DialogueStateTracker) -> None:
        import redis

        sender = tracker.sender_id
        key, session_key = self.key(sender), self.session_key(sender)
        start = self._starts.get(tracker, 0)  # where in the list the tracker's events begin
        try:
            for _ in range(5):  # WATCH fails when someone else touched the keys: look again
                with self._redis.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key, session_key)
                        stored = pipe.llen(key)
                        last = pipe.lindex(key, stored - 1) if stored > start else None
                        new = events_to_append(tracker, stored - start, last, self.origin)
                        if not new and self.record_exp is None:
                            return
                        sessions = [stored + i for i, event in enumerate(new)
                                    if isinstance(event, SessionStarted)]
                        pipe.multi()
                        if new:
                            pipe.rpush(key, *[_dumps(sender, event) for event in new])
                        if sessions:
                            pipe.set(session_key, sessions[-1])
                        if self.record_exp is not None:
                            seconds = max(1, int(round(self.record_exp)))
                            pipe.expire(key, seconds)
                            pipe.expire(session_key, seconds)
                        pipe.execute()
                        return
                    except redis.WatchError:
                        continue
        except _redis_errors() as error:
            raise self._failure(error, key, f"saving conversation '{sender}'") from error
        raise StoreError(f"{self.origin}: conversation '{sender}' kept changing while it was "
                         "saved; nothing was saved.")

    def _keys(self) -> list[str]:
        pattern = _glob_escape(self.prefix) + "*"
        try:
            found = self._redis.client.scan_iter(match=pattern, count=500)
            return sorted(k.decode() [len(self.prefix):] for k in found)
        except _redis_errors() as error:
            raise self._redis.failure(error, "listing conversations") from error


# KEYS: the conversation's list, its latest-session position → {position, events from it}.
_READ_SESSION = """
local start = tonumber(redis.call('GET', KEYS[2]) or '0')
return {start, redis.call('LRANGE', KEYS[1], start, -1)}
"""


def _dumps(sender_id: str, event: Event) -> str:
    try:
        return json.dumps(event.to_dict(), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise StoreError(f"conversation '{sender_id}': a '{event.type_name}' event holds a "
                         f"value that is not JSON ({error}); it cannot be stored.") from error


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# ---- the ticket lock -------------------------------------------------------------------

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
        self._redis = _RedisConnection(host, port, db, username, password, use_ssl,
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
        except _redis_errors() as error:
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
