"""One SHA-256 over a folder's files: their relative names, sizes and contents.

What the cache records for each entry and a model archive for each component, so that
files damaged or edited since they were written are never taken for what was saved.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def tree_digest(directory: Path) -> str:
    """``sha256:<hex>`` over the files below ``directory`` (a link or other non-file is
    hashed as such, never followed)."""
    digest = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if not p.is_dir())
    for path in files:
        name = path.relative_to(directory).as_posix().encode("utf-8", "surrogateescape")
        digest.update(len(name).to_bytes(8, "big") + name)
        if path.is_symlink() or not path.is_file():  # never in a folder Parley wrote
            digest.update(b"\0not-a-file")
            continue
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()
