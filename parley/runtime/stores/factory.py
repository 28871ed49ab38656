"""The tracker store and lock store an endpoints.yml section asks for, with Rasa's rules.

=================  ==============================  ======================================
section            ``type``                        store
=================  ==============================  ======================================
(none)             —                               in memory
``tracker_store``  ``sql`` (any case)              :class:`SQLTrackerStore`
``tracker_store``  ``redis``                       :class:`RedisTrackerStore`
``tracker_store``  ``in_memory``, or no ``type``   in memory (as in Rasa 3)
``lock_store``     ``redis``                       :class:`RedisLockStore`
``lock_store``     ``in_memory``, or no ``type``   in memory
=================  ==============================  ======================================

A value of the wrong kind is a :class:`SchemaError` at its endpoints.yml line; a key the
store does not know is warned about (Rasa passes such keys on silently) and left unused
(:mod:`parley.runtime.endpoint_options`).
"""

from __future__ import annotations

from typing import Any

from parley.data.domain import Domain
from parley.errors import StoreError, warn
from parley.runtime.endpoint_options import SectionOptions, warn_unknown_keys
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.stores.base import LockStore, TrackerStore
from parley.runtime.stores.memory import InMemoryLockStore, InMemoryTrackerStore

__all__ = ["create_lock_store", "create_tracker_store"]

_UNSUPPORTED = {"mongod": "MongoDB", "mongo": "MongoDB", "dynamo": "DynamoDB"}
_SSL_KEYS = ("ssl_keyfile", "ssl_certfile", "ssl_ca_certs")
_REDIS_KEYS = ("port", "db", "username", "password", "use_ssl", "key_prefix",
               "socket_timeout", *_SSL_KEYS)


def create_tracker_store(config: EndpointConfig | None,
                         domain: Domain | None = None) -> TrackerStore:
    """The tracker store of endpoints.yml's ``tracker_store`` section (None: in memory)."""
    if config is None:
        return InMemoryTrackerStore(domain)
    _warn_typeless(config, "sql or redis")
    kind = (config.type or "in_memory").lower()
    origin = f"the tracker store ({config.where()})"
    if kind == "in_memory":
        warn_unknown_keys(config, ())
        return InMemoryTrackerStore(domain)
    if kind == "sql":
        from parley.runtime.stores.sql import SQLTrackerStore

        options = _Options(config, ("dialect", "port", "db", "username", "password",
                                    "login_db", "query", "table_name"))
        try:
            return SQLTrackerStore(
                domain, dialect=options.text("dialect", "sqlite"), host=config.url,
                port=options.number("port", int), db=options.text("db", "rasa.db"),
                username=options.text("username"), password=options.text("password"),
                login_db=options.text("login_db"), query=options.mapping("query"),
                table_name=options.text("table_name", "events"), origin=origin)
        except StoreError as error:
            raise config.error(str(error), "url") from None
    if kind == "redis":
        from parley.runtime.stores.redis import RedisTrackerStore

        options = _Options(config, (*_REDIS_KEYS, "record_exp"))
        return RedisTrackerStore(domain, record_exp=options.number("record_exp", float),
                                 **options.redis(default_db=0), origin=origin)
    raise config.error(_unknown_type(config.type, ("sql", "redis", "in_memory")), "type")


def create_lock_store(config: EndpointConfig | None) -> LockStore:
    """The lock store of endpoints.yml's ``lock_store`` section (None: in memory)."""
    if config is None:
        return InMemoryLockStore()
    _warn_typeless(config, "redis")
    kind = (config.type or "in_memory").lower()
    if kind == "in_memory":
        warn_unknown_keys(config, ())
        return InMemoryLockStore()
    if kind == "redis":
        from parley.runtime.stores.redis_lock import RedisLockStore

        options = _Options(config, _REDIS_KEYS)
        return RedisLockStore(**options.redis(default_db=1),
                              origin=f"the lock store ({config.where()})")
    raise config.error(_unknown_type(config.type, ("redis", "in_memory")), "type")


def _unknown_type(kind: str | None, known: tuple[str, ...]) -> str:
    name = str(kind)
    if name.lower() in _UNSUPPORTED:
        return (f"the {_UNSUPPORTED[name.lower()]} store ('type: {name}') is not implemented "
                f"in Parley; use one of: {', '.join(known)}.")
    return (f"unknown store type '{name}'. Parley has: {', '.join(known)} (a custom store "
            "class by module path is not supported).")


def _warn_typeless(config: EndpointConfig, types: str) -> None:
    """Settings without a ``type`` configure nothing (Rasa 3 keeps such a store in memory)."""
    if config.type is None and (config.url or config.kwargs):
        warn(f"{config.section} has settings but no 'type', so it stays in memory (as in "
             f"Rasa 3). Add 'type: {types.split()[0]}' (or {types}) to use them.",
             config.file, config.line)


class _Options(SectionOptions):
    """A store's keys, with the Redis connection keys both Redis stores read."""

    def redis(self, default_db: int) -> dict[str, Any]:
        from parley.runtime.stores.redis import check_key_prefix

        try:
            check_key_prefix(self.text("key_prefix"), "")
        except StoreError as error:
            raise self.config.error(str(error), "key_prefix") from None
        return dict(
            host=self.config.url or "localhost", port=self.number("port", int, 6379),
            db=self.number("db", int, default_db), username=self.text("username"),
            password=self.text("password"), use_ssl=self.flag("use_ssl"),
            key_prefix=self.text("key_prefix"),
            socket_timeout=self.number("socket_timeout", float, 10.0),
            ssl_options={key: self.text(key) for key in _SSL_KEYS if self.get(key)})
