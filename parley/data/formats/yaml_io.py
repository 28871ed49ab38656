"""YAML reading that remembers line numbers, with Rasa's YAML 1.2 scalar rules.

Rasa reads YAML 1.2 (ruamel), where ``yes``/``no``/``on``/``off`` are plain strings and
dates stay strings. PyYAML speaks 1.1, so the resolvers are trimmed to match; otherwise
``value: yes`` in a slot mapping would silently become ``True``.

Mappings load as :class:`LineDict` and sequences as :class:`LineList`; both carry the
1-based line of themselves and of each key / item, so every later error can name a line.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from parley.data.formats.yaml_errors import syntax_error
from parley.data.formats.yaml_limits import check_yaml_shape
from parley.errors import DataError, YamlSyntaxError

# The largest YAML file read. The biggest Rasa data files seen (benchmark NLU sets of
# ~100k examples) are a few MB; a bound keeps /dev/zero-like input from eating memory.
MAX_FILE_BYTES = 50 * 1024 * 1024
# Python refuses to print integers of more digits (sys.get_int_max_str_digits); a number
# that cannot be shown in a message or a fingerprint has no use in a Rasa file.
MAX_INT_DIGITS = 4300
_INT_LIMIT = 10**MAX_INT_DIGITS

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class LineDict(dict):  # type: ignore[type-arg]
    """A dict that knows its own line and the line of each key."""

    __slots__ = ("line", "key_lines")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: int | None = None
        self.key_lines: dict[Any, int] = {}


class LineList(list):  # type: ignore[type-arg]
    """A list that knows its own line and the line of each item."""

    __slots__ = ("line", "item_lines")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.line: int | None = None
        self.item_lines: list[int] = []


def plain(value: Any) -> Any:
    """The same data as builtin dicts and lists, without the loader's line bookkeeping."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def line_of(obj: Any, key: Any = None) -> int | None:
    """Line of ``obj`` itself, or of ``key`` (dict key or list index) inside it."""
    if key is None:
        return getattr(obj, "line", None)
    if isinstance(obj, LineDict):
        return obj.key_lines.get(key, obj.line)
    if isinstance(obj, LineList) and isinstance(key, int) and key < len(obj.item_lines):
        return obj.item_lines[key]
    return getattr(obj, "line", None)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's, with a value its tag cannot hold (``!!float x``, ``!!bool maybe``)
        reported at the value's line instead of as a bare Python error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            found = shorten(str(node.value)) if isinstance(node, yaml.ScalarNode) else _kind(node)
            raise _refuse(node, f"the value '{found}' cannot be read as '{tag}' "
                          f"({shorten(str(exc), 80)})") from None


# YAML 1.2 core schema: only true/false are booleans; no timestamps.
_Loader.yaml_implicit_resolvers = {  # type: ignore[attr-defined]
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()  # type: ignore[attr-defined]
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class DuplicateKeyError(yaml.MarkedYAMLError):
    pass


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message, marked where it was cut."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _refuse(node: yaml.Node, problem: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    return "a list" if isinstance(node, yaml.SequenceNode) else "a single value"


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> LineDict:
    if not isinstance(node, yaml.MappingNode):
        raise _refuse(node, f"the tag '!!map' needs a mapping, but {_kind(node)} follows it")
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in result:
            first = result.key_lines[key]
            raise DuplicateKeyError(
                None, None, f"the key '{key}' appears twice in the same mapping (first at "
                f"line {first}, again at line {key_node.start_mark.line + 1})",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: Any, node: yaml.SequenceNode) -> LineList:
    if not isinstance(node, yaml.SequenceNode):
        raise _refuse(node, f"the tag '!!seq' needs a list, but {_kind(node)} follows it")
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_int(loader: Any, node: yaml.Node) -> int:
    if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_INT_DIGITS:
        raise _refuse(node, f"the number has {len(node.value):,} digits; Parley reads "
                      f"numbers of at most {MAX_INT_DIGITS:,}")
    value: int = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    if abs(value) >= _INT_LIMIT:  # 0x… and 0o… numbers have fewer digits than their value
        raise _refuse(node, f"the number {shorten(str(node.value), 20)} is too large; "
                      f"Parley reads numbers of at most {MAX_INT_DIGITS:,} digits")
    return value


def _not_in_rasa_files(loader: Any, node: yaml.Node) -> Any:
    # Rasa's schemas have no place for dates, bytes, sets or ordered pairs; refusing them
    # here keeps every later step (checks, messages, fingerprints) to JSON-like data.
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise _refuse(node, f"the tag '{tag}' is not read: Rasa files hold strings, numbers, "
                  "true/false, null, lists and mappings only")


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _not_in_rasa_files)


def parse_yaml(text: str, file: str | Path | None = None) -> Any:
    """Parse YAML text; syntax errors become :class:`YamlSyntaxError` with file and line
    (where the problem starts, and where parsing stopped when that is elsewhere)."""
    try:
        check_yaml_shape(text, _Loader, file)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise YamlSyntaxError(exc.problem or "a key appears twice", file, line,
                              hint="Merge the two entries or remove one.") from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise YamlSyntaxError(exc.problem or "a value cannot be read", file, line,
                              hint="Write a plain value here (text, a number, true/false), or "
                              "remove the tag (!!…).") from None
    except yaml.MarkedYAMLError as exc:
        raise syntax_error(exc, text, file) from None
    except yaml.reader.ReaderError as exc:
        # The reader knows only a character offset; name the line and the character.
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise YamlSyntaxError(f"invalid YAML: the control character U+{ord(char):04X} is not "
                              "allowed in a YAML file", file, line,
                              hint="Remove it (a stray byte from a copy or an editor).") \
            from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", file) from None


def read_yaml_file(path: str | Path) -> Any:
    """Read and parse one YAML file (UTF-8, BOM tolerated).

    A file that cannot be read is an error naming it. Rasa skips an unreadable file in a
    domain or data folder with a warning; Parley refuses, because a model trained without
    part of the project looks fine until the missing intents are needed.
    """
    path = Path(path)
    return parse_yaml(utf8_text(read_file_bytes(path, MAX_FILE_BYTES), path,
                                YamlSyntaxError), path)


def utf8_text(data: bytes, path: Path, error: type[DataError] = DataError) -> str:
    """``data`` decoded as UTF-8 (a BOM dropped); else ``error`` at the line and column
    of the first byte that is not, as an editor counts them (columns in bytes)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = exc.object[:exc.start]  # (without the BOM, as exc.start counts)
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise error(
            f"the file is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} in column "
            f"{column} ({exc.reason})", path, line,
            hint="Rasa reads only UTF-8: save the file as UTF-8 (e.g. `iconv -f latin1 "
                 "-t utf-8`, or your editor's 'save with encoding').") from None


def read_file_bytes(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Opened without blocking and checked on the open descriptor, so a FIFO, a device
    (/dev/zero) or a folder is refused instead of hanging or filling memory, even if it
    replaced the file after a check by name.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DataError("this is a folder, but a file is expected here.", path,
                            hint="Give the path of a YAML file.")
        if not stat.S_ISREG(info.st_mode):
            raise DataError("this is not a regular file (a pipe, a device or a socket); "
                            "Parley reads only regular files.", path,
                            hint="Give the path of a YAML file.")
        if info.st_size > limit:
            raise _too_large(path, limit)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)
    if len(data) > limit:  # the file grew after fstat
        raise _too_large(path, limit)
    return data


def _too_large(path: Path, limit: int) -> DataError:
    return DataError(f"the file is larger than {limit // 2**20} MB, the most Parley reads.",
                     path, hint="Split the data into several files.")


def _unreadable(path: Path, exc: OSError) -> DataError:
    message = f"the file cannot be read ({exc.strerror or type(exc).__name__})."
    if exc.errno == errno.ENOENT and not path.is_symlink():
        return DataError(message, path, hint="Check the path.")
    if exc.errno == errno.ENOENT:  # a link whose target is gone: chmod would not help
        return DataError(
            f"the file is a symbolic link to '{os.readlink(path)}', which does not exist.",
            path, hint="Point the link at the file, or remove the link.")
    if exc.errno == errno.ELOOP:
        return DataError(message, path, hint="A symbolic link points back to itself; "
                         "replace it with the file.")
    return DataError(
        message, path,
        hint="Make it readable (e.g. chmod a+r), or move it out of the project folder; "
        "Parley does not train on part of a project.",
    )


def _represent_str(dumper: Any, value: str) -> Any:
    # Multi-line strings read best as block literals, as users write them by hand.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    pass


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(LineDict, _Dumper.represent_dict)
_Dumper.add_representer(LineList, _Dumper.represent_list)


def dump_yaml(data: Any) -> str:
    """Dump plain data as block-style YAML, keys in insertion order, unicode kept."""
    text: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
        default_flow_style=False, width=10_000,
    )
    return text


def write_yaml_file(data: Any, path: str | Path) -> None:
    Path(path).write_text(dump_yaml(data), encoding="utf-8")
