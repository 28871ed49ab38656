"""JSON reading that remembers line numbers, for training data written as JSON.

``json.loads`` forgets where each value stood, so a mistake found after parsing (an entity
outside its text, a value of the wrong type) could name only the file. This small parser
builds the same :class:`LineDict` / :class:`LineList` as the YAML reader, so the schema
checks of :mod:`parley.data.formats.schema` and their messages work unchanged on JSON.

It reads exactly JSON (RFC 8259) and, like :mod:`parley.data.strict_json`, refuses what
``json.loads`` lets through: ``NaN``/``Infinity``, numbers too large for a float, ``\\ud800``
escapes that leave a lone surrogate. A key given twice in one object is an error naming both
lines, where ``json.loads`` would keep the last value and drop the first without a word.
"""

from __future__ import annotations

import bisect
import json.decoder
import math
import re
from pathlib import Path
from typing import Any

from parley.data.formats.yaml_io import (
    MAX_FILE_BYTES, MAX_INT_DIGITS, LineDict, LineList, read_file_bytes, shorten, utf8_text,
)
from parley.data.formats.yaml_limits import MAX_DEPTH
from parley.errors import DataError

__all__ = ["parse_json", "read_json_file"]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<fraction>\.[0-9]+)?(?P<exponent>[eE][-+]?[0-9]+)?")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LITERALS = (("true", True), ("false", False), ("null", None))
# json.decoder.scanstring's messages, in Parley's words.
_STRING_PROBLEMS = {
    "Unterminated string starting at": (
        "a string that is never closed", "Add the closing double quote."),
    "Invalid control character at": (
        "a raw control character (a tab or a line break) inside a string",
        "Write it as \\t or \\n, or remove it."),
    "Invalid \\escape": (
        "an invalid escape in a string", "A backslash is written \\\\ in JSON."),
    "Invalid \\uXXXX escape": (
        "an invalid \\u escape in a string", "Write \\u and four hex digits."),
}
_HINT = "Check the JSON at that place (a missing comma, quote or bracket is the usual cause)."


class _Parser:
    def __init__(self, text: str, file: str | Path | None) -> None:
        self.text = text
        self.file = file
        self._newlines = [match.start() for match in re.finditer("\n", text)]

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def fail(self, problem: str, pos: int, hint: str | None = _HINT) -> DataError:
        line = self.line(pos)
        column = pos - (self._newlines[line - 2] if line > 1 else -1)
        return DataError(f"invalid JSON: {problem} (column {column}).", self.file, line,
                         hint=hint)

    def skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        return match.end() if match else pos

    def document(self) -> Any:
        pos = self.skip(0)
        value, pos = self.value(pos, 0)
        pos = self.skip(pos)
        if pos != len(self.text):
            raise self.fail("more text after the end of the JSON value", pos)
        return value

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        text = self.text
        if pos >= len(text):
            raise self.fail("the file ends where a value is expected", pos)
        char = text[pos]
        if char == "{":
            return self.mapping(pos, depth + 1)
        if char == "[":
            return self.sequence(pos, depth + 1)
        if char == '"':
            return self.string(pos)
        if char in "-0123456789":
            return self.number(pos)
        for word, literal in _LITERALS:
            if text.startswith(word, pos):
                return literal, pos + len(word)
        found = shorten(re.split(r"[\s,\]}]", text[pos:pos + 20], maxsplit=1)[0] or char, 20)
        if found in ("NaN", "Infinity", "-Infinity"):
            raise self.fail(f"{found} is not a JSON number", pos,
                            hint="Write a finite number, or null.")
        raise self.fail(f"'{found}' is not a JSON value (a string in double quotes, a number, "
                        "true, false, null, an object or a list)", pos)

    def _nest(self, pos: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(f"the data nests deeper than {MAX_DEPTH} levels of objects and "
                            "lists; Parley refuses it rather than run out of stack", pos,
                            hint="NLU data nests four levels deep; write the values out.")

    def mapping(self, pos: int, depth: int) -> tuple[LineDict, int]:
        self._nest(pos, depth)
        result = LineDict()
        result.line = self.line(pos)
        pos = self.skip(pos + 1)
        if self.text.startswith("}", pos):
            return result, pos + 1
        while True:
            if not self.text.startswith('"', pos):
                problem = ("a comma before '}'" if self.text.startswith("}", pos)
                           else "expected a key in double quotes")
                raise self.fail(problem, pos)
            key_pos = pos
            key, pos = self.string(pos)
            if key in result:
                raise DataError(
                    f"the key '{shorten(key)}' appears twice in the same object (first at line "
                    f"{result.key_lines[key]}, again at line {self.line(key_pos)}).",
                    self.file, self.line(key_pos), hint="Merge the two entries or remove one.")
            pos = self.skip(pos)
            if not self.text.startswith(":", pos):
                raise self.fail(f"expected ':' after the key '{shorten(key)}'", pos)
            value, pos = self.value(self.skip(pos + 1), depth)
            result[key] = value
            result.key_lines[key] = self.line(key_pos)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos = self.skip(pos + 1)
            elif self.text.startswith("}", pos):
                return result, pos + 1
            else:
                raise self.fail("expected ',' or '}' after a value in an object", pos)

    def sequence(self, pos: int, depth: int) -> tuple[LineList, int]:
        self._nest(pos, depth)
        result = LineList()
        result.line = self.line(pos)
        pos = self.skip(pos + 1)
        if self.text.startswith("]", pos):
            return result, pos + 1
        while True:
            if self.text.startswith("]", pos):
                raise self.fail("a comma before ']'", pos)
            result.item_lines.append(self.line(pos))
            value, pos = self.value(pos, depth)
            result.append(value)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos = self.skip(pos + 1)
            elif self.text.startswith("]", pos):
                return result, pos + 1
            else:
                raise self.fail("expected ',' or ']' after a value in a list", pos)

    def string(self, pos: int) -> tuple[str, int]:
        try:
            value, end = json.decoder.scanstring(self.text, pos + 1, True)
        except json.JSONDecodeError as exc:
            problem, hint = _STRING_PROBLEMS.get(exc.msg, (exc.msg, _HINT))
            raise self.fail(problem, exc.pos, hint) from None
        # Decoded UTF-8 holds no surrogates; only a \u escape can leave one behind.
        if self.text.find("\\u", pos, end) != -1:
            found = _LONE_SURROGATE.search(value)
            if found:
                raise self.fail(f"the string holds the lone surrogate \\u{ord(found.group()):04x}, "
                                "which is not a character", pos,
                                hint="A \\ud800-\\udbff escape must be followed by a "
                                "\\udc00-\\udfff one.")
        return value, end

    def number(self, pos: int) -> tuple[int | float, int]:
        match = _NUMBER.match(self.text, pos)
        if match is None:
            raise self.fail("a '-' that starts no number", pos)
        raw = match.group()
        if match.group("fraction") is None and match.group("exponent") is None:
            if len(raw) > MAX_INT_DIGITS:
                raise self.fail(f"the number has {len(raw):,} digits; Parley reads numbers of "
                                f"at most {MAX_INT_DIGITS:,}", pos, hint=None)
            return int(raw), match.end()
        number = float(raw)
        if not math.isfinite(number):
            raise self.fail(f"the number {shorten(raw, 20)} is too large for a JSON number "
                            "(a 64-bit float)", pos, hint=None)
        return number, match.end()


def parse_json(text: str, file: str | Path | None = None) -> Any:
    """Parse JSON text into LineDict/LineList/str/int/float/bool/None; mistakes raise
    :class:`DataError` naming the file, line and column. Blank text is None (an empty
    file), as for YAML."""
    if not text.strip():
        return None
    return _Parser(text, file).document()


def read_json_file(path: str | Path) -> Any:
    """Read and parse one JSON file (UTF-8, BOM tolerated); the same refusals as
    :func:`parley.data.formats.yaml_io.read_yaml_file` for what is not a readable file."""
    path = Path(path)
    return parse_json(utf8_text(read_file_bytes(path, MAX_FILE_BYTES), path), path)
