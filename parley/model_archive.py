"""The model archive's layout, its metadata, and which archive "the newest model" is.

Every reader of a trained model (the Agent, the training plan, finetuning, the CLI) goes
through here, so the layout, the format check and the newest-model rule exist once:

* ``<name>.tar.gz`` holds ``metadata.json`` and ``components/<node>/`` (one folder per
  trained node); ``model_format`` in the metadata says which layout it is.
* The newest model in a folder is the ``*.tar.gz`` directly in that folder (sub-folders are
  not searched, hidden files such as half-written archives are skipped) with the latest
  modification time, ties broken by name — as Rasa's ``get_latest_model`` takes the newest
  archive of the models folder.

The packing and safe extraction of tar files is generic and lives in
:mod:`parley.engine.archive`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parley.engine.archive import ARCHIVE_SUFFIX, read_archive_member
from parley.errors import ModelArchiveError

METADATA_FILE = "metadata.json"
COMPONENTS_DIR = "components"
# Bump when the archive layout or the metadata's meaning changes; readers check it.
# 2: ``predict_graph`` lists the nodes to load and run (name, kind, component).
MODEL_FORMAT = 2


def read_metadata(archive: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of ``archive``, read without extracting it; any defect is an error."""
    path = Path(archive)
    return _parse(read_archive_member(path, METADATA_FILE), path)


def read_extracted_metadata(root: str | os.PathLike[str], archive: Path | None = None
                            ) -> dict[str, Any]:
    """The metadata of a model extracted into ``root`` (``archive`` names it in errors)."""
    folder = Path(root)
    name = archive or folder
    try:
        raw = (folder / METADATA_FILE).read_bytes()
    except OSError as exc:
        raise ModelArchiveError(f"not a Parley model: {name} has no readable {METADATA_FILE} "
                                f"({exc.strerror or exc}).") from None
    return _parse(raw, name)


def _parse(raw: bytes, archive: Path) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise ModelArchiveError(f"not a Parley model: {archive}: {METADATA_FILE} is not JSON "
                                f"({exc}).") from None
    if not isinstance(meta, dict):
        raise ModelArchiveError(f"not a Parley model: {archive}: {METADATA_FILE} is not an "
                                "object.")
    return meta


def check_format(meta: dict[str, Any], archive: Path) -> None:
    """Refuse a model written in another layout than this Parley reads."""
    if meta.get("model_format") != MODEL_FORMAT:
        raise ModelArchiveError(
            f"{archive} is in model format {meta.get('model_format')}; this Parley reads "
            f"format {MODEL_FORMAT} only. Train the model again with this version.")


def model_archives(folder: str | os.PathLike[str]) -> list[Path]:
    """The model archives directly in ``folder``, newest first (see the module's rule)."""
    keyed = sorted(_candidates(Path(folder)), reverse=True)
    return [path for _mtime, _name, path in keyed]


def newest_model(folder: str | os.PathLike[str]) -> Path | None:
    """The newest model archive in ``folder``, or ``None`` when there is none."""
    found = max(_candidates(Path(folder)), default=None)
    return None if found is None else found[2]


def _candidates(folder: Path) -> Iterator[tuple[int, str, Path]]:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if not path.name.endswith(ARCHIVE_SUFFIX) or path.name.startswith("."):
            continue
        try:
            if path.is_file():
                yield path.stat().st_mtime_ns, path.name, path
        except OSError:
            continue  # removed while we looked


def resolve_model(path: str | os.PathLike[str], what: str = "model") -> Path:
    """An archive as given, or a folder → its newest archive; nothing there → a clear error."""
    given = Path(path)
    if given.is_dir():
        found = newest_model(given)
        if found is None:
            raise ModelArchiveError(f"there is no {what} (*.tar.gz) in {given}/; train one "
                                    "first with 'parley train'.")
        return found
    if not given.is_file():
        raise ModelArchiveError(f"the {what} {given} does not exist; give a model archive or "
                                "a folder of them (e.g. models/).")
    return given
