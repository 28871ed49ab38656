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
from parley.data.training_data import TrainingData
from parley.errors import ComponentError, ConfigError, NotFittedError, ParleyError, location
from parley.recipe import Node


@contextmanager
def blamed_on(node: Node, doing: str, training_data: TrainingData | None = None
              ) -> Iterator[None]:
    """Run the body for ``node`` (``doing``: e.g. "training"), locating what it raises;
    ``training_data``, what the node trains on, points out its longest example if memory
    runs out."""
    where = location(node.file, node.line) or "config.yml"
    custom = registry.is_module_path(node.component)
    try:
        yield
    except MemoryError as error:
        # Not a bug: this config on this data needs more memory than the machine has.
        raise ConfigError(_out_of_memory(node, doing, error, training_data),
                          node.file or "config.yml", node.line) from error
    except ConfigError as error:
        if error.file is not None:
            raise
        raise ConfigError(f"{node.component}: {error.message}", node.file or "config.yml",
                          node.line, error.hint) from error
    except NotFittedError as error:
        if str(error).startswith(where):
            raise
        raise NotFittedError(f"{where}: {node.component}: {error}") from error
    except ParleyError:
        raise
    except Exception as error:  # noqa: BLE001 - re-raised, as the user's fault or unchanged
        if not custom:
            raise
        raise ComponentError(
            f"{where}: your component '{node.component}' raised {type(error).__name__} while "
            f"{doing}: {error}. The fault is in that component's code; `parley --debug` shows "
            "where.") from error


def _out_of_memory(node: Node, doing: str, error: MemoryError,
                   training_data: TrainingData | None) -> str:
    said = f" ({error})" if str(error) else ""
    text = (f"{node.component} ran out of memory while {doing}{said}. Its memory "
            "grows with batch_size, and with the square of the longest example where it "
            "has transformer layers")
    examples = training_data.examples if training_data is not None else []
    if not examples:
        return text + ": lower batch_size, or train on a machine with more memory."
    longest = max(examples, key=lambda m: len(m.text))
    return (text + f"; the longest example has {len(longest.text.split())} words "
            f"({location(longest.file, longest.line) or repr(longest.text[:40])}): shorten "
            "or split very long examples, or lower batch_size.")
