"""endpoints.yml: where the tracker store, the lock store, the event broker, the action
server, the NLG server and the model server are.

Rasa's file, read with Rasa's keys::

    action_endpoint:
      url: "http://localhost:5055/webhook"
    tracker_store:
      type: SQL
      dialect: postgresql
      url: ${DB_HOST}
      db: rasa
    lock_store:
      type: redis
      url: localhost
    event_broker:
      type: pika
      url: localhost
      queues: [rasa_events]
    nlg:
      url: "http://localhost:5056/nlg"
    models:
      url: "http://models.example.com/default"
      wait_time_between_pulls: 10

As in Rasa, ``${NAME}`` inside a value is replaced by the environment variable ``NAME``
(several may stand in one value, next to text); an unset variable is an error naming it.
Every section becomes an :class:`EndpointConfig` that remembers its file and lines, so a
store or client that rejects a value can name ``endpoints.yml:LINE``.

An unknown section is an error naming its line (with the closest known name), never
ignored: a user who configured something expects it to work.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.data.formats.schema import did_you_mean
from parley.data.formats.yaml_io import LineDict, line_of, plain, read_yaml_file, shorten
from parley.errors import DataError, SchemaError, location

__all__ = ["EndpointConfig", "Endpoints", "expand_env", "read_endpoints"]

SECTIONS = ("action_endpoint", "tracker_store", "lock_store", "event_broker", "nlg", "models")
# Rasa 2.x wrote `store_type`; Rasa 3 reads `type` and so does Parley.
_ENV = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class EndpointConfig:
    """One section of endpoints.yml: ``type``, ``url`` and ``token`` pulled out, every other
    key in ``kwargs`` under Rasa's name, with the lines they stand on."""

    section: str
    type: str | None = None
    url: str | None = None
    token: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def where(self, key: str | None = None) -> str:
        """``file:line`` of the section or of one of its keys, for messages."""
        line = self.key_lines.get(key, self.line) if key else self.line
        return location(self.file, line) or f"endpoints ({self.section})"

    def error(self, message: str, key: str | None = None, hint: str | None = None) -> DataError:
        """A :class:`SchemaError` about this section (or one key of it)."""
        line = self.key_lines.get(key, self.line) if key else self.line
        return SchemaError(f"{self.section}: {message}", self.file, line, hint=hint)


@dataclass(frozen=True)
class Endpoints:
    """What endpoints.yml configures; a missing section is None (Parley's default)."""

    action_endpoint: EndpointConfig | None = None
    tracker_store: EndpointConfig | None = None
    lock_store: EndpointConfig | None = None
    event_broker: EndpointConfig | None = None
    nlg: EndpointConfig | None = None
    models: EndpointConfig | None = None
    file: str | None = None


def read_endpoints(path: str | Path | None) -> Endpoints:
    """Read endpoints.yml. ``None`` means no file: every endpoint takes its default."""
    if path is None:
        return Endpoints()
    data = read_yaml_file(path)
    return endpoints_from_data(data, str(path))


def endpoints_from_data(data: Any, file: str | None = None) -> Endpoints:
    """The sections of an already parsed endpoints.yml (empty file = no endpoints)."""
    if data is None:
        return Endpoints(file=file)
    if not isinstance(data, dict):
        raise SchemaError("endpoints.yml must be a mapping of sections (tracker_store: …, "
                          "lock_store: …, action_endpoint: …).", file, line_of(data))
    sections: dict[str, EndpointConfig | None] = {}
    for name, value in data.items():
        line = line_of(data, name)
        if name not in SECTIONS:
            raise SchemaError(
                f"unknown section '{shorten(str(name))}' in endpoints.yml."
                f"{did_you_mean(str(name), SECTIONS)}", file, line,
                hint=f"Parley reads {', '.join(SECTIONS)}.")
        sections[str(name)] = _section(str(name), value, file, line)
    return Endpoints(file=file, **sections)


def _section(name: str, value: Any, file: str | None, line: int | None) -> EndpointConfig | None:
    if value is None:  # `tracker_store:` with nothing under it: the default, as in Rasa
        return None
    if not isinstance(value, dict):
        raise SchemaError(f"'{name}' must be a mapping of keys (url: …, type: …), "
                          f"found {type(value).__name__}.", file, line)
    key_lines = dict(value.key_lines) if isinstance(value, LineDict) else {}
    expanded: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise SchemaError(f"'{name}': keys must be names, found {key!r}.", file,
                              key_lines.get(key, line))
        expanded[key] = expand_env(plain(item), file, key_lines.get(key, line))
    if "store_type" in expanded and "type" not in expanded:
        raise SchemaError(f"'{name}': 'store_type' is Rasa 1.x's key.", file,
                          key_lines.get("store_type", line), hint="Write 'type' instead.")
    kind = expanded.pop("type", None)
    url = expanded.pop("url", None)
    token = expanded.pop("token", None)
    for key, item in (("type", kind), ("url", url), ("token", token)):
        if item is not None and not isinstance(item, (str, int, float)):
            raise SchemaError(f"'{name}': '{key}' must be a single value, found "
                              f"{type(item).__name__}.", file, key_lines.get(key, line))
    return EndpointConfig(
        section=name, type=None if kind is None else str(kind),
        url=None if url is None else str(url), token=None if token is None else str(token),
        kwargs=expanded, file=file, line=line, key_lines=key_lines)


def expand_env(value: Any, file: str | Path | None = None, line: int | None = None) -> Any:
    """``${NAME}`` in every string inside ``value`` replaced from the environment."""
    if isinstance(value, str):
        missing = [name for name in _ENV.findall(value) if name not in os.environ]
        if missing:
            names = ", ".join(f"'{name}'" for name in dict.fromkeys(missing))
            raise DataError(f"the value '{shorten(value)}' uses the environment variable(s) "
                            f"{names}, which are not set.", file, line,
                            hint="Set them before starting Parley, or write the value itself.")
        return _ENV.sub(lambda match: os.environ[match.group(1)], value)
    if isinstance(value, dict):
        return {key: expand_env(item, file, line) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, file, line) for item in value]
    return value
