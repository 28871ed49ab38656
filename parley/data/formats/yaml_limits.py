"""Bounds a YAML file must keep before it is built into Python objects.

A few hundred bytes of YAML can describe a billion values ("billion laughs": anchors whose
aliases repeat each other) or nest deeper than Python's recursion limit. PyYAML builds
aliases as shared references, so loading such a file is quick, but the first thing that
walks the data (a version check, an error message, the fingerprint of a story) expands it
and hangs or crashes. Safe loaders refuse these by size before building anything; so does
Parley, in one pass over the parser's events (iterative, so the check itself cannot
overflow the stack):

- nesting deeper than :data:`MAX_DEPTH` mappings/lists;
- aliases that together add more than :data:`MAX_ALIAS_NODES` values to the data;
- an alias inside the node it names (a loop).

A real Rasa file nests a handful of levels and rarely uses an alias at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from parley.errors import YamlSyntaxError

MAX_DEPTH = 50  # the loader takes ~7 Python frames a level; 50 leaves room below 1000
MAX_ALIAS_NODES = 100_000

_HINT = ("Rasa files are plain lists and mappings; write the values out, or move what "
         "is repeated into one place.")


def check_yaml_shape(text: str, loader: Any, file: str | Path | None) -> None:
    """Raise :class:`YamlSyntaxError` at the line where ``text`` passes a bound.

    Syntax errors from the parser propagate as PyYAML raises them.
    """
    # Each open collection: [values it holds so far (itself included), its anchor].
    stack: list[list[Any]] = []
    sizes: dict[str, int] = {}  # anchor → how many values it stands for, expanded
    open_anchors: set[str] = set()
    added = 0  # values the aliases add to the data

    def count(size: int) -> None:
        if stack:
            stack[-1][0] += size

    for event in yaml.parse(text, Loader=loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise YamlSyntaxError(
                    f"the data nests deeper than {MAX_DEPTH} levels of lists and mappings; "
                    "Parley refuses it rather than run out of stack.", file, line, hint=_HINT)
            stack.append([1, event.anchor])
            if event.anchor is not None:
                open_anchors.add(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            size, anchor = stack.pop()
            if anchor is not None:
                sizes[anchor] = size
                open_anchors.discard(anchor)
            count(size)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            count(1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise YamlSyntaxError(
                    f"the alias '*{event.anchor}' stands inside the value it names, so the "
                    "data would contain itself forever.", file, line, hint=_HINT)
            size = sizes.get(event.anchor, 1)  # an undefined anchor: the composer says so
            added += size
            if added > MAX_ALIAS_NODES:
                raise YamlSyntaxError(
                    f"the aliases (*name) in this file expand to more than "
                    f"{MAX_ALIAS_NODES:,} values (an 'alias bomb'); Parley refuses it "
                    f"rather than build it.", file, line, hint=_HINT)
            count(size)
