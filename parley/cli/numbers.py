"""Argument types for whole numbers with a lower bound, refused by argparse (exit 2)
before any work starts, with the flag and the value in the message."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: the text as an int of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a whole number >= {minimum}, not {text!r}")
        return value
    parse.__name__ = f"whole number >= {minimum}"  # (argparse names the type with it)
    return parse
