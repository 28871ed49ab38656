"""Finding a project's data files in the folders a user names, without losing any silently.

``Path.rglob`` skips a folder it cannot list and an entry it cannot stat, so ``chmod 000
data`` (or a folder without its x bit) validated as "passed" with 0 examples. Here a folder
that cannot be listed is an error naming it, and every ``.yml``/``.yaml`` entry that is not a
folder is returned — a broken or looping link, a pipe, a device — so that reading it fails
by name (:func:`parley.data.formats.yaml_io.read_yaml_file` refuses what is not a regular
file). Hidden entries (``.git``, ``.parley``) are skipped; links to folders are not
followed, as ``rglob`` does not, so a link to a parent cannot loop.

Training data folders also yield ``.json`` files (Rasa's JSON NLU format) and ``.md`` files
(Rasa 1.x/2.x Markdown, no longer read), so that the importer can read the one and name the
other (:mod:`parley.data.formats.unread_files`); a domain folder yields YAML only, as in Rasa.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from parley.errors import DataError, SchemaError

YAML_SUFFIXES = (".yml", ".yaml")
JSON_SUFFIX = ".json"
MARKDOWN_SUFFIX = ".md"
TRAINING_SUFFIXES = (*YAML_SUFFIXES, JSON_SUFFIX, MARKDOWN_SUFFIX)


def _unlistable(folder: Path, exc: OSError) -> DataError:
    return DataError(
        f"the folder cannot be read ({exc.strerror or type(exc).__name__}).", folder,
        hint="Make it readable (e.g. chmod a+rx), or leave it out of the project; Parley "
        "does not train on part of a project.",
    )


def _is_real_folder(entry: os.DirEntry[str]) -> bool:
    """A folder that is not a link; an entry that cannot even be looked at counts as a
    file, so reading it names the problem."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def yaml_files_below(folder: Path, suffixes: tuple[str, ...] = YAML_SUFFIXES) -> list[Path]:
    """Every entry below ``folder`` with one of ``suffixes`` (``.yml``/``.yaml`` unless
    told) that is not a folder, sorted by path."""
    found: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                listed = list(entries)
        except OSError as exc:
            raise _unlistable(current, exc) from None
        for entry in listed:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if _is_real_folder(entry):
                pending.append(path)
            elif path.suffix in suffixes and not _is_folder_link(path):
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _is_folder_link(path: Path) -> bool:
    try:
        return path.is_symlink() and path.is_dir()
    except OSError:  # a link loop: not a folder; reading it says what is wrong
        return False


def yaml_files(paths: Iterable[str | Path],
               suffixes: tuple[str, ...] = YAML_SUFFIXES) -> list[Path]:
    """The files under the given files/folders, each once, in the order given: in folders,
    those with one of ``suffixes``; files given by name, whatever their suffix."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(yaml_files_below(path, suffixes))
        elif path.exists() or path.is_symlink():  # a file, pipe or broken link: read it by name
            found.append(path)
        else:
            raise SchemaError(f"the training data path '{path}' does not exist.", hint=(
                "Pass existing files or folders (e.g. --data data)."))
    unique: dict[str, Path] = {}  # a file named twice (e.g. data/ and data/nlu.yml) reads once
    for p in found:
        unique.setdefault(_identity(p), p)
    return list(unique.values())


def training_files(paths: Iterable[str | Path]) -> list[Path]:
    """:func:`yaml_files` with the ``.json`` and ``.md`` files of the folders too."""
    return yaml_files(paths, TRAINING_SUFFIXES)


def _identity(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a link loop: its own path names it
        return str(path.absolute())
