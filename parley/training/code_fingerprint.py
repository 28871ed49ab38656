"""The fingerprint of a component's implementation: what its code is, not what it claims.

Rasa hashes the component class's source. A class's source alone misses most of what decides
a trained result — DIET's model, layers and training loop live in other modules, a
featurizer's helpers sit beside the class at module level — so Parley hashes more: the
module of the class and of each of its base classes, and every Parley module those import,
transitively (imports inside functions included, since components import torch code
lazily). A change anywhere in that code retrains the component; a change elsewhere does not.

Each module is hashed by its bytes and its imports are found by a pattern over the text:
every training fingerprints every component, and parsing ~40 modules into syntax trees
(to ignore comments and docstrings) cost ~0.9 s a training — three times an unchanged
retrain — to spare Parley's own developers a retrain after a comment edit. An import named
only inside a docstring adds a module to hash: stricter, never wrong. Modules outside the
``parley`` package (numpy, torch, …) are covered by their package versions instead. The
per-file results are cached by (path, size, mtime), so the hash follows edits made while a
process runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
from pathlib import Path

PACKAGE = "parley"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]

_lock = threading.Lock()
# (path, size, mtime_ns) → (digest of the module's code, names of the modules it imports)
_parsed: dict[tuple[str, int, int], tuple[str, tuple[str, ...]]] = {}


def implementation_fingerprint(cls: type) -> str:
    """A digest of the code that decides what ``cls`` learns (see the module docstring)."""
    roots = {klass.__module__ for klass in cls.__mro__
             if klass.__module__ == cls.__module__ or _ours(klass.__module__)}
    digests: dict[str, str] = {}
    pending = sorted(roots)
    while pending:
        name = pending.pop()
        if name in digests:
            continue
        path = _module_file(name)
        if path is None:
            continue  # a name imported from a module, not a module
        digest, imports = _parse(path, name)
        digests[name] = digest
        pending.extend(i for i in imports if _ours(i) and i not in digests)
    text = "\n".join(f"{name} {digests[name]}" for name in sorted(digests))
    return hashlib.sha256(text.encode()).hexdigest()


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _module_file(name: str) -> Path | None:
    """The source file of module ``name``, found without importing anything (importing a
    lazily imported module would pull torch into a dry run); ``None`` if there is none,
    e.g. for ``parley.x.SomeClass`` from ``from parley.x import SomeClass``."""
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is not None:
        return Path(origin) if origin.endswith(".py") else None
    if not _ours(name):
        return None
    base = _PACKAGE_DIR.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parse(path: Path, module: str) -> tuple[str, tuple[str, ...]]:
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _parsed:
            return _parsed[key]
    source = path.read_bytes()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    text = source.decode("utf-8", errors="replace")
    result = (hashlib.sha256(source).hexdigest(), tuple(sorted(_imports(text, package))))
    with _lock:
        _parsed[key] = result
    return result


# ``from .a.b import (x, y)`` (names may run over lines inside the parentheses) and
# ``import a.b, c as d``, at any indentation (imports inside functions count).
_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n#;]*)", re.M)


def _imports(text: str, package: str) -> set[str]:
    """Every module named by an import in ``text`` (``from a import b`` gives ``a`` and
    ``a.b``: b may be a sub-module; names that are not are skipped later)."""
    found: set[str] = set()
    for match in _IMPORT.finditer(text):
        found.update(_names(match.group(1)))
    for match in _FROM.finditer(text):
        dots, base = match.group(1), match.group(2)
        if dots:
            parts = package.split(".")
            parent = ".".join(parts[:len(parts) - len(dots) + 1])
            base = f"{parent}.{base}" if base else parent
        found.add(base)
        found.update(f"{base}.{name}" for name in _names(match.group(3)))
    return found


def _names(clause: str) -> list[str]:
    """``a.b as c, d`` or ``(x,\n y)`` → the imported names (``a.b``, ``d``; ``x``, ``y``)."""
    clause = re.sub(r"#[^\n]*", "", clause)  # comments inside parentheses
    parts = clause.strip().strip("()").replace("\\\n", " ").split(",")
    return [part.split()[0] for part in parts if part.split()]
