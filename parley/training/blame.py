"""Errors from training one node, said where that node stands in config.yml.

A ConfigError raised while a component trains (a loss that diverged, a value only the data
shows to be wrong) gets the entry's ``config.yml:LINE``. An exception that is not Parley's,
raised by a component the user wrote (named by module path), becomes a ComponentError that
names it: the fault is in that code, and the CLI must not call it a bug in Parley. The same
exception from one of Parley's own components stays what it is — a bug, reported as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from parley import registry
from parley.errors import ComponentError, ConfigError, NotFittedError, ParleyError, location
from parley.recipe import Node


@contextmanager
def blamed_on(node: Node, doing: str) -> Iterator[None]:
    """Run the body for ``node`` (``doing``: e.g. "training"), locating what it raises."""
    where = location(node.file, node.line) or "config.yml"
    custom = registry.is_module_path(node.component)
    try:
        yield
    except (ConfigError, NotFittedError) as error:
        if str(error).startswith(where):
            raise
        raise type(error)(f"{where}: {node.component}: {error}") from error
    except ParleyError:
        raise
    except Exception as error:  # noqa: BLE001 - re-raised, as the user's fault or unchanged
        if not custom:
            raise
        raise ComponentError(
            f"{where}: your component '{node.component}' raised {type(error).__name__} while "
            f"{doing}: {error}. The fault is in that component's code; `parley --debug` shows "
            "where.") from error
