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
:mod:`parley.engine.archive`. Here the metadata is read with a cap and checked key by key
(:func:`check_format`): everything it names must be of the type Parley wrote, and every
node name must be one folder directly under ``components/`` — a name that is absolute,
holds ``..`` or a separator would let an archive point a component at any directory on
disk. Each defect is a :class:`ModelArchiveError` naming the archive and the member.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parley.engine.archive import ARCHIVE_SUFFIX, read_archive_member
from parley.engine.digest import tree_digest
from parley.errors import ModelArchiveError

METADATA_FILE = "metadata.json"
COMPONENTS_DIR = "components"
# Bump when the archive layout or the metadata's meaning changes; readers check it.
# 2: ``predict_graph`` lists the nodes to load and run (name, kind, component).
MODEL_FORMAT = 2
# metadata.json holds the domain; a big one is a few MB. Read no more than this of it.
MAX_METADATA_BYTES = 32 * 2**20


def read_metadata(archive: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of ``archive``, read without extracting it; any defect is an error."""
    path = Path(archive)
    return _parse(read_archive_member(path, METADATA_FILE, MAX_METADATA_BYTES), path)


def read_extracted_metadata(root: str | os.PathLike[str], archive: Path | None = None
                            ) -> dict[str, Any]:
    """The metadata of a model extracted into ``root`` (``archive`` names it in errors)."""
    folder = Path(root)
    name = archive or folder
    try:
        with (folder / METADATA_FILE).open("rb") as handle:
            raw = handle.read(MAX_METADATA_BYTES + 1)
    except OSError as exc:
        raise ModelArchiveError(f"not a Parley model: {name} has no readable {METADATA_FILE} "
                                f"({exc.strerror or exc}).") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise ModelArchiveError(f"not a Parley model: {name}: {METADATA_FILE} is larger than "
                                f"{MAX_METADATA_BYTES} bytes.")
    return _parse(raw, name)


def _parse(raw: bytes, archive: Path) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelArchiveError(f"not a Parley model: {archive}: {METADATA_FILE} is not UTF-8 "
                                f"({exc}).") from None
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise ModelArchiveError(f"not a Parley model: {archive}: {METADATA_FILE} is not JSON "
                                f"({exc}).") from None
    except RecursionError:
        raise ModelArchiveError(f"not a Parley model: {archive}: {METADATA_FILE} is nested "
                                "too deeply to be Parley's metadata.") from None
    if not isinstance(meta, dict):
        raise ModelArchiveError(f"not a Parley model: {archive}: {METADATA_FILE} is not an "
                                "object.")
    return meta


def check_format(meta: dict[str, Any], archive: Path) -> None:
    """Refuse a model written in another layout than this Parley reads, or whose metadata
    is not what this Parley writes (a wrong type anywhere, an unsafe node name)."""
    if meta.get("model_format") != MODEL_FORMAT:
        raise ModelArchiveError(
            f"{archive} is in model format {meta.get('model_format')!r:.40}; this Parley reads "
            f"format {MODEL_FORMAT} only. Train the model again with this version.")
    problem = _metadata_problem(meta)
    if problem is not None:
        raise ModelArchiveError(f"{archive}: {METADATA_FILE} is damaged: {problem}; train the "
                                "model again.")


def node_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a folder directly under ``components/``, or ``None``."""
    if not isinstance(name, str) or not name:
        return "is not a non-empty string"
    if name in (".", "..") or any(c in name for c in "/\\\x00"):
        return "is not a plain folder name (no '/', '\\', '..')"
    return None


def component_dir(root: Path, name: Any, archive: Path | str) -> Path:
    """``root/components/<name>``, after making sure it stays inside ``root``."""
    problem = node_name_problem(name)
    if problem is not None:
        raise ModelArchiveError(f"{archive}: {METADATA_FILE} names a component {name!r:.80} "
                                f"that {problem}; train the model again.")
    base = (root / COMPONENTS_DIR).resolve()
    directory = (base / name).resolve()
    if directory.parent != base:  # a link planted on disk would show up here
        raise ModelArchiveError(f"{archive}: {COMPONENTS_DIR}/{name} leads outside the model.")
    return directory


def component_digest(directory: Path) -> str:
    """A SHA-256 over a component folder's files (:func:`~parley.engine.digest.tree_digest`).

    Recorded in the metadata when a model is written, so a later training that reuses a
    component from it can tell that its files are still those (see ``training.run``).
    """
    return tree_digest(directory)


def _metadata_problem(meta: dict[str, Any]) -> str | None:
    """The first place where ``meta`` is not what :func:`check_format` accepts."""
    checks: list[tuple[str, Any, type | tuple[type, ...]]] = [
        ("training_type", meta.get("training_type"), str),
        ("fingerprints", meta.get("fingerprints", {}), dict),
        ("labels", meta.get("labels", {}), dict),
        ("domain", meta.get("domain"), (dict, type(None))),
        ("inputs", meta.get("inputs", {}), dict),
        ("component_digests", meta.get("component_digests", {}), dict),
        ("train_graph", meta.get("train_graph", {"nlu": [], "policies": []}), dict),
        ("predict_graph", meta.get("predict_graph"), dict),
    ]
    for key, value, kind in checks:
        if value is None and key not in meta and key in ("training_type", "predict_graph"):
            return f"it has no '{key}'"
        if not isinstance(value, kind):
            return f"'{key}' is a {type(value).__name__}"
    for key in ("fingerprints", "component_digests"):
        if not all(isinstance(v, str) for v in meta.get(key, {}).values()):
            return f"'{key}' holds a value that is not a string"
    for kind, names in meta.get("labels", {}).items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return f"'labels.{kind}' is not a list of strings"
    graph_keys = {"train_graph": ("name", "component", "params"),
                  "predict_graph": ("name", "kind", "component")}
    for graph, keys in graph_keys.items():
        for part in ("nlu", "policies"):
            nodes = meta.get(graph, {}).get(part, [])
            if not isinstance(nodes, list):
                return f"'{graph}.{part}' is not a list"
            for index, node in enumerate(nodes):
                where = f"'{graph}.{part}[{index}]'"
                if not isinstance(node, dict) or not set(keys) <= set(node):
                    return f"{where} is not a node with {', '.join(keys)}"
                if any(not isinstance(node[k], dict if k == "params" else str) for k in keys):
                    return f"{where} has a value of the wrong type"
                problem = node_name_problem(node["name"])
                if problem is not None:
                    return f"{where} has a name {node['name']!r:.80} that {problem}"
    return None


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
