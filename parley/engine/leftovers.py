"""What killed processes leave behind, and removing it in later runs.

A training killed while it writes leaves a half archive beside the target
(``.<name>.tar.gz.<pid>-<hex>.tmp``) and its working folders in the system's temporary
directory (``parley-train-<pid>-…``, ``parley-previous-<pid>-…``, ``parley-model-<pid>-…``).
Each carries its writer's process id, so a later run removes exactly those whose writer
is gone and never a concurrent training's. Names from before the id was added (no id) are
removed only when old: an archive being written is touched continuously, so a temp
archive untouched for ``STALE_ARCHIVE_SECONDS`` is dead; a folder's own time does not
change while files are written inside it, so old-style folders wait a day.

Process ids are those of this machine: folders shared between machines or containers
with separate process ids are not told apart (as for the cache's own temp folders).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

TEMP_DIR_PREFIXES = ("parley-train-", "parley-previous-", "parley-model-")
STALE_ARCHIVE_SECONDS = 10 * 60
STALE_DIR_SECONDS = 24 * 3600
# ".<name>.tar.gz.<pid>-<hex>.tmp" (now) or ".<name>.tar.gz.<hex>.tmp" (before).
_ARCHIVE_TEMP_RE = re.compile(r"\..+\.tar\.gz\.(?:(\d+)-)?[0-9a-f]+\.tmp")


def temp_prefix(prefix: str) -> str:
    """``prefix`` with this process's id, for ``tempfile`` names a later run can judge."""
    return f"{prefix}{os.getpid()}-"


def archive_temp_name(target_name: str, token: str) -> str:
    """The name a half-written archive for ``target_name`` has while it is written."""
    return f".{target_name}.{os.getpid()}-{token}.tmp"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (``True`` when it cannot be told)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C there; keep everything
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive but someone else's, or cannot be asked
        return True
    return True


def _stale(path: Path, pid_text: str | None, max_age: float) -> bool:
    if pid_text:
        return not pid_alive(int(pid_text))
    try:
        return time.time() - path.stat().st_mtime > max_age
    except OSError:
        return False


def sweep_archive_temps(folder: Path) -> list[Path]:
    """Remove the half-written archives in ``folder`` whose writer is gone."""
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as scan:
        for item in scan:
            match = _ARCHIVE_TEMP_RE.fullmatch(item.name)
            if match is None or not item.is_file(follow_symlinks=False):
                continue
            path = Path(item.path)
            if _stale(path, match.group(1), STALE_ARCHIVE_SECONDS):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def sweep_temp_dirs(prefixes: Iterable[str] = TEMP_DIR_PREFIXES,
                    folder: Path | None = None) -> list[Path]:
    """Remove Parley's working folders in ``folder`` (the system's temporary directory)
    whose writer is gone."""
    root = Path(folder if folder is not None else tempfile.gettempdir())
    removed = []
    with contextlib.suppress(OSError), os.scandir(root) as scan:
        for item in scan:
            prefix = next((p for p in prefixes if item.name.startswith(p)), None)
            if prefix is None or not item.is_dir(follow_symlinks=False):
                continue
            pid_text, dash, _rest = item.name[len(prefix):].partition("-")
            pid = pid_text if dash and pid_text.isdigit() else None
            path = Path(item.path)
            if _stale(path, pid, STALE_DIR_SECONDS):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed
