"""The training cache: fingerprint → the directory of files a component saved.

Why it is shaped like this:

* An entry is built in ``tmp/`` and moved into ``entries/<fingerprint>`` with one
  ``os.rename``, so an entry is either complete or absent; a process killed half-way leaves
  only a temp directory, which ``get`` never looks at and the next open removes.
* Removal is the same move in reverse (``entries/`` → ``trash/``, then delete), so a crash
  while evicting cannot leave a half-deleted entry that looks valid.
* ``get`` hands out only an intact entry: ``entry.json`` records a digest of the files
  (:mod:`parley.engine.digest`), and an entry whose files no longer match it is a miss and
  is removed — damaged or edited files are trained again, never packed into a model.
* There is no global index to get out of step: each entry carries ``entry.json`` (size, meta)
  and ``last_used`` (nanoseconds, rewritten atomically on every hit). LRU eviction scans the
  entries, which are few (one per trained component).

Layout::

    <root>/entries/<fingerprint>/files/...      what the component saved
    <root>/entries/<fingerprint>/entry.json     fingerprint, size_bytes, created_ns, digest,
                                                meta
    <root>/entries/<fingerprint>/last_used      recency for LRU
    <root>/tmp/<pid>-<token>/                   entries being written
    <root>/trash/<name>/                        entries being deleted
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.engine.digest import tree_digest
from parley.errors import CacheError

CACHE_DIR_ENV = "PARLEY_CACHE_DIR"
CACHE_MAX_SIZE_ENV = "PARLEY_CACHE_MAX_SIZE"
DEFAULT_CACHE_SUBDIR = Path(".parley") / "cache"
DEFAULT_MAX_SIZE_BYTES = 1_000_000_000
# A temp dir whose writer may still be alive is only taken for stale after this long.
STALE_TEMP_SECONDS = 24 * 3600

_ENTRY_FILE = "entry.json"
_LAST_USED_FILE = "last_used"
_FILES_DIR = "files"
_FINGERPRINT_RE = re.compile(r"[0-9A-Za-z_-]{1,128}")
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")
_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6,
    "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_clock_lock = threading.Lock()
_last_ns = 0


@dataclass(frozen=True)
class CacheEntry:
    """One cached output, as listed by :meth:`TrainingCache.entries`."""

    fingerprint: str
    path: Path
    size_bytes: int
    created_ns: int
    last_used_ns: int
    meta: dict[str, Any]


class TrainingCache:
    """Maps fingerprints to directories of saved component files, with LRU eviction.

    ``max_size_bytes`` ``None`` means unlimited; ``0`` disables the cache entirely (nothing
    is written, every lookup misses), which is how users turn caching off.
    """

    def __init__(self, directory: str | os.PathLike[str], max_size_bytes: int | None = None):
        if max_size_bytes is not None and max_size_bytes < 0:
            raise CacheError(f"cache size limit must be 0 or more bytes, got {max_size_bytes}")
        self.directory = Path(directory)
        self.max_size_bytes = max_size_bytes
        if self.enabled:
            self._open()

    @property
    def enabled(self) -> bool:
        return self.max_size_bytes != 0

    # -- lookups -----------------------------------------------------------------------

    def get(self, fingerprint: str) -> Path | None:
        """Directory of the files cached under ``fingerprint``, or ``None``; a hit counts as use."""
        if not self.enabled:
            return None
        entry_dir = self._entry_dir(fingerprint)
        record = _read_entry(entry_dir, fingerprint)
        if record is None:
            return None
        recorded = record.get("digest")  # (entries written before digests have none)
        if isinstance(recorded, str) and tree_digest(entry_dir / _FILES_DIR) != recorded:
            # Damaged or edited since it was written: a miss, and gone, so that what
            # trains again takes its place instead of being packed into a broken model.
            with contextlib.suppress(OSError):
                self._remove(entry_dir)
            return None
        self._touch(entry_dir)
        return entry_dir / _FILES_DIR

    def contains(self, fingerprint: str) -> bool:
        """Whether ``fingerprint`` is cached, without counting as use (for dry runs)."""
        if not self.enabled:
            return False
        return _read_entry(self._entry_dir(fingerprint), fingerprint) is not None

    def meta(self, fingerprint: str) -> dict[str, Any] | None:
        """The ``meta`` given to :meth:`put` for ``fingerprint``, or ``None`` when absent."""
        if not self.enabled:
            return None
        record = _read_entry(self._entry_dir(fingerprint), fingerprint)
        return None if record is None else dict(record["meta"])

    def entries(self) -> list[CacheEntry]:
        """Every complete entry, least recently used first."""
        if not self.enabled or not self._entries_root.is_dir():
            return []
        found = []
        for child in self._entries_root.iterdir():
            if (record := _read_entry(child, child.name)) is None:
                continue
            created = record["created_ns"]
            last_used = _read_last_used(child, created)
            found.append(CacheEntry(child.name, child / _FILES_DIR, record["size_bytes"],
                                    created, last_used, dict(record["meta"])))  # fmt: skip
        found.sort(key=lambda e: (e.last_used_ns, e.fingerprint))
        return found

    def size_bytes(self) -> int:
        """Total size of the cached files."""
        return sum(entry.size_bytes for entry in self.entries())

    # -- changes -----------------------------------------------------------------------

    def put(
        self, fingerprint: str, source_dir: str | os.PathLike[str], meta: Mapping[str, Any]
    ) -> Path:
        """Copy ``source_dir`` into the cache under ``fingerprint``; return where the files are.

        That is the cached copy, or ``source_dir`` itself when the cache is disabled or the
        output alone is larger than the limit, so callers can always use the returned path.
        An entry already cached under ``fingerprint`` is replaced: callers put only what they
        just trained, and a forced training must ship its own result, not whatever the cache
        held (it may be damaged or edited by hand). Readers see the old entry, no entry, or
        the new one, never a mix. ``meta`` must be JSON data.
        """
        source = Path(source_dir)
        if not self.enabled:
            return source
        entry_dir = self._entry_dir(fingerprint)
        if not source.is_dir():
            raise CacheError(f"cannot cache {source}: it is not a directory")
        try:
            meta_copy = json.loads(json.dumps(dict(meta)))
        except (TypeError, ValueError) as exc:
            raise CacheError(f"cache meta for {fingerprint} is not JSON data: {exc}") from exc
        size = _tree_size(source)
        if self.max_size_bytes is not None and size > self.max_size_bytes:
            return source

        temp = self.directory / "tmp" / f"{os.getpid()}-{secrets.token_hex(8)}"
        try:
            shutil.copytree(source, temp / _FILES_DIR)
            now = _now_ns()
            record = {"fingerprint": fingerprint, "size_bytes": size, "created_ns": now,
                      "digest": tree_digest(temp / _FILES_DIR), "meta": meta_copy}  # fmt: skip
            (temp / _ENTRY_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
            (temp / _LAST_USED_FILE).write_text(str(now), encoding="ascii")
            _fsync_tree(temp)
            self._publish(temp, entry_dir, fingerprint)
        except OSError as exc:
            raise CacheError(f"could not write cache entry {fingerprint} in {self.directory}: "
                             f"{exc}") from exc  # fmt: skip
        finally:
            shutil.rmtree(temp, ignore_errors=True)

        if self.max_size_bytes is not None:
            self.evict_to(self.max_size_bytes, keep=fingerprint)
        return entry_dir / _FILES_DIR

    def _publish(self, temp: Path, entry_dir: Path, fingerprint: str) -> None:
        """Move the finished ``temp`` to ``entry_dir``, replacing an entry already there.

        A directory cannot be renamed over a non-empty one, so the old entry goes to the
        trash first (one rename) and the new one takes its place (another): a kill between
        the two leaves no entry, which is a miss, never a damaged hit.
        """
        for _attempt in range(3):
            if entry_dir.exists():
                self._remove(entry_dir)
            try:
                os.rename(temp, entry_dir)
            except OSError:
                continue  # another process published in between; replace theirs too
            _fsync(self._entries_root)
            return
        # Others keep publishing this fingerprint; theirs is as good as ours.
        if _read_entry(entry_dir, fingerprint) is None:
            raise OSError(f"could not publish {entry_dir}")

    def evict_to(self, max_size: int, keep: str | None = None) -> list[str]:
        """Delete least recently used entries until the cache holds at most ``max_size`` bytes.

        ``keep`` is never evicted (the entry just written). Returns the evicted fingerprints.
        """
        entries = self.entries()
        total = sum(entry.size_bytes for entry in entries)
        evicted: list[str] = []
        for entry in entries:
            if total <= max_size:
                break
            if entry.fingerprint == keep:
                continue
            self._remove(self._entries_root / entry.fingerprint)
            total -= entry.size_bytes
            evicted.append(entry.fingerprint)
        return evicted

    def clear(self) -> None:
        """Delete every entry."""
        if not self.enabled or not self._entries_root.is_dir():
            return
        for child in list(self._entries_root.iterdir()):
            self._remove(child)

    # -- internals ---------------------------------------------------------------------

    @property
    def _entries_root(self) -> Path:
        return self.directory / "entries"

    def _entry_dir(self, fingerprint: str) -> Path:
        # The fingerprint becomes a directory name: anything but a plain token could
        # point elsewhere ("../x").
        if not isinstance(fingerprint, str) or not _FINGERPRINT_RE.fullmatch(fingerprint):
            raise CacheError(f"not a valid cache fingerprint: {fingerprint!r}")
        return self._entries_root / fingerprint

    def _open(self) -> None:
        """Create the layout and sweep what crashed processes left behind."""
        try:
            for name in ("entries", "tmp", "trash"):
                (self.directory / name).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache at {self.directory}: {exc}") from exc
        for temp in (self.directory / "tmp").iterdir():
            if _is_stale_temp(temp):
                _delete(temp)
        for trash in (self.directory / "trash").iterdir():
            _delete(trash)
        for child in self._entries_root.iterdir():
            if _read_entry(child, child.name) is None:
                self._remove(child)

    def _remove(self, path: Path) -> None:
        trash = self.directory / "trash" / f"{path.name}-{secrets.token_hex(4)}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return  # already removed, e.g. by another process
        _delete(trash)

    def _touch(self, entry_dir: Path) -> None:
        temp = entry_dir / f"{_LAST_USED_FILE}.{os.getpid()}-{secrets.token_hex(4)}"
        try:
            temp.write_text(str(_now_ns()), encoding="ascii")
            os.replace(temp, entry_dir / _LAST_USED_FILE)
        except OSError:
            # Recency is a hint; a read-only or racing cache still serves the hit.
            temp.unlink(missing_ok=True)


def cache_from_env(
    project_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> TrainingCache:
    """The cache callers use: ``<project>/.parley/cache`` unless the environment says otherwise.

    ``PARLEY_CACHE_DIR`` moves it (e.g. to share one cache between projects);
    ``PARLEY_CACHE_MAX_SIZE`` limits it ("500MB", "2GB", "unlimited"; "0" disables it).
    ``environ`` defaults to ``os.environ`` and exists so tests need not patch it.
    """
    env = os.environ if environ is None else environ
    directory_text = env.get(CACHE_DIR_ENV, "").strip()
    directory = (
        Path(directory_text).expanduser()
        if directory_text
        else Path(project_dir) / DEFAULT_CACHE_SUBDIR
    )
    size_text = env.get(CACHE_MAX_SIZE_ENV, "").strip()
    try:
        max_size = parse_size(size_text) if size_text else DEFAULT_MAX_SIZE_BYTES
    except ValueError as exc:
        raise CacheError(f"{CACHE_MAX_SIZE_ENV}={size_text!r}: {exc}") from exc
    return TrainingCache(directory, max_size)


def parse_size(text: str) -> int | None:
    """Bytes in a size like "500MB", "2GB", "1.5G", "512MiB", "0"; ``None`` for "unlimited".

    KB/MB/GB are decimal (as disks are sold); KiB/MiB/GiB are binary.
    """
    if text.strip().lower() in ("none", "unlimited"):
        return None
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(
            "not a size; write e.g. 500MB, 2GB, 512MiB, 0 (disables the cache) or unlimited"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def _read_entry(entry_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The entry's record if the entry is complete and consistent, else ``None``."""
    try:
        record = json.loads((entry_dir / _ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(record, dict)
        or record.get("fingerprint") != fingerprint
        or not isinstance(record.get("size_bytes"), int)
        or not isinstance(record.get("created_ns"), int)
        or not isinstance(record.get("meta"), dict)
        or not (entry_dir / _FILES_DIR).is_dir()
    ):
        return None
    return record


def _now_ns() -> int:
    """Wall-clock nanoseconds, strictly increasing within the process, so two uses in the
    same clock tick still have an order."""
    global _last_ns
    with _clock_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


def _read_last_used(entry_dir: Path, default: int) -> int:
    try:
        return int((entry_dir / _LAST_USED_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return default


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def _fsync_tree(root: Path) -> None:
    """Flush files and directories so the rename that follows publishes data on disk."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(dirpath, name))
        _fsync(dirpath)


def _fsync(path: str | Path) -> None:
    if os.name == "nt" and os.path.isdir(path):  # Windows cannot open directories
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _delete(path: Path) -> None:
    """Remove a file or directory tree, quietly: leftovers are retried on the next open."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _is_stale_temp(temp: Path) -> bool:
    """A temp dir is stale when its writer is dead, or it is older than any real write."""
    try:
        age = time.time() - temp.stat().st_mtime
    except OSError:
        return False
    if age > STALE_TEMP_SECONDS:
        return True
    pid_text = temp.name.split("-", 1)[0]
    if not pid_text.isdigit():
        return True
    if os.name == "nt":
        # os.kill(pid, 0) would send CTRL_C on Windows; the age rule has to do there.
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but someone else's
        return False
    return False
