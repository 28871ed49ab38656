"""Conversations in Redis (redis-py), shared by every process that uses the same Redis.

Tracker store: each conversation is a Redis list of its events as Rasa's JSON dicts, under
``tracker:<sender_id>`` (``<key_prefix>:tracker:<sender_id>`` with Rasa's ``key_prefix``),
and the position of its latest ``session_started`` under ``session_start:<sender_id>``, so
``retrieve`` loads the latest session only. A save appends the events Redis does not have
yet inside a WATCH/MULTI transaction that first checks that the tracker continues what is
stored; a concurrent writer makes it fail with :class:`StoreError` rather than interleave
events.

The lock store that goes with it is in :mod:`parley.runtime.stores.redis_lock`.

redis-py's blocking client is driven from worker threads: it works from any event loop
(``asyncio.run`` per message in the shell, the server's loop) without binding
connections to one.
"""

from __future__ import annotations

import json
import re
import weakref
from typing import Any

from parley.data.domain import Domain
from parley.data.events import Event, SessionStarted, event_from_dict
from parley.data.tracker import DialogueStateTracker
from parley.errors import DataError, StoreError
from parley.runtime.stores.appending import events_to_append
from parley.runtime.stores.base import ThreadedTrackerStore

__all__ = ["RedisConnection", "RedisTrackerStore", "check_key_prefix", "redis_errors"]

_PREFIX_CHARS = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_key_prefix(prefix: str | None, default: str) -> str:
    """Rasa's layout: ``<prefix>:<default>`` or just ``<default>``."""
    if prefix is None or prefix == "":
        return default
    if not _PREFIX_CHARS.match(prefix):
        raise StoreError(f"the Redis key_prefix '{prefix}' may hold only letters, digits, "
                         "'_', '.' and '-'.")
    return f"{prefix}:{default}"


class RedisConnection:
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


def redis_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.RedisError,)


class RedisTrackerStore(ThreadedTrackerStore):
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
        self._redis = RedisConnection(host, port, db, username, password, use_ssl,
                                       socket_timeout, ssl_options or {}, origin)

    @property
    def origin(self) -> str:
        return self._redis.origin

    def key(self, sender_id: str) -> str:
        return self.prefix + sender_id

    def session_key(self, sender_id: str) -> str:
        """Where the position of the conversation's latest ``session_started`` is kept."""
        return self.session_prefix + sender_id

    def _delete(self, sender_id: str) -> None:
        try:
            self._redis.client.delete(self.key(sender_id), self.session_key(sender_id))
        except redis_errors() as error:
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
        except redis_errors() as error:
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
        except redis_errors() as error:
            raise self._failure(error, key, f"saving conversation '{sender}'") from error
        raise StoreError(f"{self.origin}: conversation '{sender}' kept changing while it was "
                         "saved; nothing was saved.")

    def _keys(self) -> list[str]:
        pattern = _glob_escape(self.prefix) + "*"
        try:
            found = self._redis.client.scan_iter(match=pattern, count=500)
            return sorted(k.decode() [len(self.prefix):] for k in found)
        except redis_errors() as error:
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
