"""What to tell a user about a file in the training data that Parley does not read.

Rasa 3 skips, without a word, every file of a data folder it cannot read: a Rasa 1.x/2.x
Markdown file (``nlu.md``, ``stories.md``, dropped in 3.0) and any ``.json`` that is not
one of the NLU formats it knows. A project moved from Rasa 2 then trains with none of
those examples and nothing says why. Parley names each such file, and says how to convert
it; the importer makes it a warning for a file found in a folder (Rasa goes on too) and
an error for a file the user named outright, or for JSON that Rasa 3 would train on and
Parley cannot (LUIS, Wit.ai, Dialogflow exports): there the two would learn different things.
In the folders of projects imported whole (MultiProjectImporter), a README or a settings
JSON is not worth a word; training data there still is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.data.formats.yaml_io import MAX_FILE_BYTES, read_file_bytes
from parley.errors import DataError

__all__ = ["UnreadFile", "markdown_notice", "json_notice"]

# Enough of a file to tell Rasa's Markdown training data from a README.
_PEEK_BYTES = 64 * 1024
_MARKDOWN_NLU = re.compile(r"^\s*##\s*(intent|synonym|regex|lookup)\s*:", re.M | re.I)
# A story step line "* greet" followed by an action line "  - utter_greet".
_MARKDOWN_STORY = re.compile(r"^\s*\*\s*\S.*\n\s*-\s*\w", re.M)
_CONVERT = ("Convert it with Rasa 2.x (Rasa 3 has no Markdown converter): "
            "`rasa data convert {part} -f yaml --data {path} --out <folder>`, then remove the "
            ".md file.")


@dataclass(frozen=True)
class UnreadFile:
    """Why a file is not read. ``training_data``: it holds training data (Rasa Markdown,
    another tool's NLU export), not a README or a settings file; ``rasa_reads_it``: Rasa 3
    would train on it."""

    message: str
    hint: str
    training_data: bool = True
    rasa_reads_it: bool = False


def markdown_notice(path: Path) -> UnreadFile:
    """What a ``.md`` file is, by a look at its start: Rasa NLU data, Rasa stories, or
    some other Markdown (a README)."""
    try:
        text = read_file_bytes(path, MAX_FILE_BYTES)[:_PEEK_BYTES].decode("utf-8", "replace")
    except DataError:  # unreadable or huge: say what can be said without its text
        text = ""
    if _MARKDOWN_NLU.search(text):
        return UnreadFile("this is Rasa 1.x/2.x Markdown NLU data, which Rasa 3 no longer "
                          "reads and Parley does not either: its examples are not trained on.",
                          _CONVERT.format(part="nlu", path=path))
    if _MARKDOWN_STORY.search(text):
        return UnreadFile("this is Rasa 1.x/2.x Markdown story data, which Rasa 3 no longer "
                          "reads and Parley does not either: its stories are not trained on.",
                          _CONVERT.format(part="core", path=path))
    return UnreadFile("a Markdown file is not training data and is not read.",
                      "Parley reads training data from .yml/.yaml files and Rasa NLU .json "
                      "files; move other files out of the data folder to silence this.",
                      training_data=False)


def json_notice(content: Any, path: Path) -> UnreadFile:
    """Why parsed JSON that is not Rasa NLU data is not read, naming the format Rasa
    would read it as, if any (by the same tell-tale keys Rasa looks at)."""
    other = _foreign_format(content, path.name)
    if other is not None:
        return UnreadFile(
            f"this looks like {other} NLU data, which Rasa 3 reads but Parley does not.",
            f"Convert it to Rasa's YAML with `rasa data convert nlu -f yaml --data {path} "
            "--out <folder>` (Rasa 3), and remove the .json file.", rasa_reads_it=True)
    return UnreadFile("this JSON is not Rasa NLU data (it has no top-level 'rasa_nlu_data' "
                      "key), so it is not read.",
                      "Rasa NLU JSON is {\"rasa_nlu_data\": {\"common_examples\": [...]}}; "
                      "move other JSON files out of the data folder to silence this.",
                      training_data=False)


def _foreign_format(content: Any, name: str) -> str | None:
    if "_usersays_" in name or "_entries_" in name:
        return "Dialogflow"
    if not isinstance(content, dict):
        return None
    if "luis_schema_version" in content:
        return "LUIS"
    if "utterances" in content:
        return "Wit.ai"
    if "supportedLanguages" in content or "isEnum" in content:
        return "Dialogflow"
    return None
