"""The fingerprint of a component's implementation: what its code is, not what it claims.

Rasa hashes the component class's source. A class's source alone misses most of what decides
a trained result — DIET's model, layers and training loop live in other modules, a
featurizer's helpers sit beside the class at module level — so Parley hashes more: the
module of the class and of each of its base classes, and every Parley module those import,
transitively (imports inside functions included, since components import torch code
lazily). A change anywhere in that code retrains the component; a change elsewhere does not.

Each module is hashed by its syntax tree without docstrings, so editing a comment, a
docstring or the layout retrains nothing, while any change to what runs does. Modules outside
the ``parley`` package (numpy, torch, …) are covered by their package versions instead.
The per-file results are cached by (path, size, mtime), so the hash follows edits made
while a process runs.
"""

from __future__ import annotations

import ast
import hashlib
import os
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
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError:
        # Not parseable by this Python (should not happen for an imported module): hash
        # the bytes, which is stricter but still correct.
        result = (hashlib.sha256(source).hexdigest(), ())
    else:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        imports = tuple(sorted(_imports(tree, package)))
        _strip_docstrings(tree)
        result = (hashlib.sha256(ast.dump(tree).encode()).hexdigest(), imports)
    with _lock:
        _parsed[key] = result
    return result


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Every module named by an import anywhere in ``tree`` (``from a import b`` gives
    ``a`` and ``a.b``: b may be a sub-module; names that are not are skipped later)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
