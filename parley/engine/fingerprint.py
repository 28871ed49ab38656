"""Fingerprints: stable SHA-256 digests that decide whether a training step can be skipped.

A fingerprint must be equal for equal content on any machine and in any process (so no
``hash()``, no ``repr()`` of arbitrary objects, no pickle), and must change whenever the
content changes. Values are first turned into a canonical JSON tree in which every container
carries a type tag, so ``[1]``, ``(1,)``-as-list, ``{"1": 1}`` and ``{1: 1}`` can never collide
by accident, then the tree is hashed.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import PurePath
from typing import Any

NOT_INSTALLED = "not installed"

_CHUNK = 1 << 20


def fingerprint(obj: Any) -> str:
    """SHA-256 hex digest of ``obj``'s canonical form.

    ``obj`` is plain data: ``None``, bool, int, float, str, bytes, lists/tuples (in order),
    dicts (any key order), sets, paths (by their text, not their content), enums,
    dataclasses, numpy arrays and scalars, and any object with a ``fingerprint() -> str``
    method (how training data and domains take part). Anything else is a ``TypeError``,
    because falling back to ``repr`` would silently hash memory addresses.
    """
    return _digest(_canonical(obj))


def fingerprint_unordered(items: Iterable[Any]) -> str:
    """Fingerprint of a multiset: the same items in any order give the same digest.

    For inputs whose order carries no meaning, e.g. the NLU files of a project.
    Duplicates still count.
    """
    return _digest(["unordered", sorted(fingerprint(item) for item in items)])


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of one file's bytes, read in chunks so big files stay cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Fingerprint of the contents of ``paths``, ignoring their names and order.

    Renaming or reordering data files must not retrain anything; editing one must.
    A directory stands for every file beneath it.
    """
    return fingerprint_unordered(file_fingerprint(p) for p in _expand_files(paths))


def node_fingerprint(
    component_name: str,
    implementation: str,
    params: Mapping[str, Any],
    input_fingerprints: Mapping[str, str],
    package_versions: Mapping[str, str],
    runtime: Mapping[str, Any] | None = None,
) -> str:
    """Fingerprint of one training step: same value ⇒ its cached output can be reused.

    ``implementation`` stands for the component's code (a digest of it); ``runtime`` holds
    what the machine decides and changes the result, such as the numeric precision.
    Inputs are keyed by name, so their order does not matter but their roles do.
    """
    return fingerprint(
        {
            "component": component_name,
            "implementation": implementation,
            "params": dict(params),
            "inputs": dict(input_fingerprints),
            "packages": dict(package_versions),
            "runtime": dict(runtime or {}),
        }
    )


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution, or ``"not installed"``.

    Part of a node's fingerprint, so upgrading e.g. torch retrains what depends on it.
    """
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED
    return versions


def _digest(tree: Any) -> str:
    text = json.dumps(tree, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # surrogatepass: a lone surrogate (possible in text read with errors="surrogateescape")
    # must still hash, not crash.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _canonical(obj: Any) -> Any:
    """Turn ``obj`` into JSON where every non-scalar is ``[tag, payload]``."""
    # bool before int: ``True`` is an int, yet must not equal ``1``. Enums before str and
    # int, so a StrEnum member differs from its bare value.
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, enum.Enum):
        return ["enum", _qualname(obj), _canonical(obj.value)]
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        # JSON writes floats with repr (shortest round-trip form), which is stable;
        # only the non-finite ones need a spelling of their own.
        return float(obj) if math.isfinite(obj) else ["float", repr(float(obj))]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return ["bytes", hashlib.sha256(bytes(obj)).hexdigest()]
    if isinstance(obj, Mapping):
        pairs = [[_canonical(k), _canonical(v)] for k, v in obj.items()]
        pairs.sort(key=lambda pair: _sort_key(pair[0]))
        return ["dict", pairs]
    # Tuples and lists mean the same in configuration: YAML gives lists, code gives tuples.
    if isinstance(obj, (list, tuple)):
        return ["list", [_canonical(item) for item in obj]]
    if isinstance(obj, (set, frozenset)):
        return ["set", sorted((_canonical(item) for item in obj), key=_sort_key)]
    if isinstance(obj, PurePath):
        return ["path", obj.as_posix()]
    own = getattr(obj, "fingerprint", None)
    if callable(own) and not isinstance(obj, type):
        value = own()
        if not isinstance(value, str):
            kind = type(value).__name__
            raise TypeError(f"{_qualname(obj)}.fingerprint() returned {kind}, not str")
        return ["object", _qualname(obj), value]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return ["dataclass", _qualname(obj), _canonical(fields)]
    array = _numpy_canonical(obj)
    if array is not None:
        return array
    raise TypeError(
        f"cannot fingerprint a {_qualname(obj)}: use plain data (dict, list, str, numbers, "
        "bytes, numpy arrays) or give the class a fingerprint() -> str method"
    )


def _numpy_canonical(obj: Any) -> Any:
    """numpy arrays by dtype, shape and bytes; numpy scalars as the Python value they hold.

    numpy is optional, so it is only looked at when the object comes from it.
    """
    if not type(obj).__module__.startswith("numpy"):
        return None
    import numpy as np

    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return ["ndarray", "object", list(obj.shape), _canonical(obj.tolist())]
        data = np.ascontiguousarray(obj).tobytes()
        return ["ndarray", obj.dtype.str, list(obj.shape), hashlib.sha256(data).hexdigest()]
    if isinstance(obj, np.generic):
        return _canonical(obj.item())
    return None


def _sort_key(tree: Any) -> str:
    return json.dumps(tree, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _expand_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(os.path.join(root, name) for name in sorted(names))
        else:
            files.append(os.fspath(path))
    return files
