"""The ``version`` key of Rasa YAML files, handled as Rasa handles it.

Missing → read as the newest format Parley knows. Newer than that → a warning and the
file is skipped (its content would be misread otherwise). Unparseable → a schema error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.data.formats.yaml_io import line_of
from parley.errors import SchemaError, warn

LATEST_FORMAT_VERSION = "3.1"


def parse_version(value: Any, file: str | Path | None = None, line: int | None = None) -> tuple[int, int]:
    """'3.1' (or 3.1, or '3') → (3, 1)."""
    text = str(value).strip()
    parts = text.split(".")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if not numbers or len(numbers) > 3:
        raise SchemaError(
            f"the version '{text}' is not a format version.",
            file,
            line,
            hint=f'Write it as a quoted string, e.g. version: "{LATEST_FORMAT_VERSION}".',
        )
    return numbers[0], numbers[1] if len(numbers) > 1 else 0


def file_version(content: Any, file: str | Path | None) -> tuple[int, int]:
    """The file's declared version, or the latest when it declares none."""
    if isinstance(content, dict) and "version" in content:
        return parse_version(content["version"], file, line_of(content, "version"))
    return parse_version(LATEST_FORMAT_VERSION)


def is_readable_version(content: Any, file: str | Path | None) -> bool:
    """False (with a warning) when the file is newer than Parley reads; caller skips it."""
    version = file_version(content, file)
    if version > parse_version(LATEST_FORMAT_VERSION):
        warn(
            f"the file declares format version {version[0]}.{version[1]}, newer than "
            f"{LATEST_FORMAT_VERSION} which this Parley reads; the file is skipped. "
            "Upgrade Parley, or set the version to "
            f'"{LATEST_FORMAT_VERSION}" if the file uses only 3.1 features.',
            file,
            line_of(content, "version") if isinstance(content, dict) else None,
        )
        return False
    return True
