"""Typed reads of one endpoints.yml section's keys, for the stores and brokers it configures.

A value of the wrong kind is a :class:`~parley.errors.SchemaError` at its key's line; a key
the reader does not know is warned about (Rasa passes such keys on silently) and left
unused.
"""

from __future__ import annotations

import math
from typing import Any

from parley.errors import warn
from parley.runtime.endpoints import EndpointConfig

__all__ = ["SectionOptions", "warn_unknown_keys"]


def warn_unknown_keys(config: EndpointConfig, known: tuple[str, ...],
                      what: str = "store") -> None:
    for key in config.kwargs:
        if key not in known:
            warn(f"{config.section}: the key '{key}' is not used by this {what} "
                 f"(it reads: {', '.join(('url', 'type', *known))}).", config.file,
                 config.key_lines.get(key, config.line))


class SectionOptions:
    """The keys ``known`` of ``config``, each read as the kind it must be."""

    def __init__(self, config: EndpointConfig, known: tuple[str, ...],
                 what: str = "store", warn_unknown: bool = True) -> None:
        self.config = config
        if warn_unknown:
            warn_unknown_keys(config, known, what)

    def get(self, key: str) -> Any:
        return self.config.kwargs.get(key)

    def text(self, key: str, default: str | None = None) -> Any:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, (dict, list, bool)):
            raise self.config.error(f"'{key}' must be a single value, found "
                                    f"{type(value).__name__}.", key)
        return str(value)

    def texts(self, key: str) -> list[str] | None:
        """A list of single values; one value alone counts as a list of one."""
        value = self.get(key)
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None or isinstance(item, (dict, list, bool)):
                raise self.config.error(f"'{key}' must be a name or a list of names, found "
                                        f"{type(item).__name__}.", key)
        return [str(item) for item in items]

    def number(self, key: str, kind: type, default: Any = None) -> Any:
        value = self.get(key)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value)
            if not math.isfinite(number):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise self.config.error(f"'{key}' must be a number, found '{value}'.", key
                                    ) from None
        if number < 0:
            raise self.config.error(f"'{key}' must not be negative, found {value}.", key)
        return number

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise self.config.error(f"'{key}' must be true or false, found '{value}'.", key)

    def mapping(self, key: str) -> dict[str, Any] | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.config.error(f"'{key}' must be a mapping, found "
                                    f"{type(value).__name__}.", key)
        return value
