"""Model archives: deterministic, atomically written ``.tar.gz`` files, and safe extraction.

A model archive may come from a stranger, so extraction trusts nothing in it: only regular
files and directories below the target are written (no absolute names, no ``..``, no links,
no devices), and the gzip checksum is verified to the end. Anything else is a
:class:`ModelArchiveError` that names the file and the reason.

Bounds against decompression bombs (the defaults; a real model is far below them: a
full-size DIET model is ~40 MB in a few dozen files, and language-model weights are not
stored in the archive):

* at most ``DEFAULT_MAX_FILES`` (10,000) members,
* at most ``DEFAULT_MAX_MEMBER_BYTES`` (512 MiB) in one member,
* at most ``DEFAULT_MAX_TOTAL_BYTES`` (1 GiB) decompressed in all, counted on the
  decompressed stream itself (headers, padding and trailing junk included), so sizes the
  archive declares cannot lie their way past it,
* no single read from the stream above ``MAX_READ_BYTES`` (32 MiB), which bounds the
  memory a tar header (a PAX or GNU long-name record) can make :mod:`tarfile` hold,
* ``metadata.json`` is read with a cap (see :func:`read_archive_member`), never whole.

Extraction checks the whole archive before writing anything (a first pass reads only the
headers, refusing declared sizes over the caps without decompressing their data), so a
5 GB member or 100,001 files are refused in well under a second with nothing written; peak
disk is the total cap, peak memory a few read buffers.

Packing normalises everything that is not content (order, times, owners, modes, the gzip
header), so the same files give the same bytes (with the same zlib) and archives can be
compared by hash.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import secrets
import shutil
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from parley.engine.leftovers import archive_temp_name, sweep_archive_temps
from parley.errors import ModelArchiveError

ARCHIVE_SUFFIX = ".tar.gz"
ARCHIVE_LEVEL = 1  # gzip's compression level for model archives
DEFAULT_MAX_TOTAL_BYTES = 2**30
DEFAULT_MAX_FILES = 10_000
DEFAULT_MAX_MEMBER_BYTES = 512 * 2**20
MAX_READ_BYTES = 32 * 2**20
# Errors that mean "the bytes are not a sound tar.gz" (as opposed to our disk failing).
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
_CHUNK = 1 << 20
# What a tar stream may hold per member besides file data (a PAX record, a header, the
# padding of both), and once (the end blocks, a record's padding).
_SLACK_PER_FILE = 4096
_SLACK = 2**20
_DRIVE_RE = re.compile(r"[A-Za-z]:")


def pack_archive(
    source_dir: str | os.PathLike[str],
    target_path: str | os.PathLike[str],
    first: Sequence[str] = ("metadata.json",),
) -> Path:
    """Pack ``source_dir`` into ``target_path`` (``.tar.gz`` appended when missing).

    The archive is written to a temporary file beside the target and renamed over it, so
    a killed process leaves the old archive or none, never half of one; the temporary
    files of killed writers are removed here (see :mod:`parley.engine.leftovers`). Names in ``first``
    are stored before the rest so :func:`read_archive_member` finds them without
    decompressing the whole archive. Links and special files are refused: the archive must
    be extractable by :func:`extract_archive`, which accepts neither.
    """
    source = Path(source_dir)
    target = Path(target_path)
    if not target.name.endswith(ARCHIVE_SUFFIX):
        target = target.with_name(target.name + ARCHIVE_SUFFIX)
    if not source.is_dir():
        raise ModelArchiveError(f"cannot pack {source} into {target}: it is not a directory")
    rank = {name: index for index, name in enumerate(first)}
    entries = sorted(_walk(source), key=lambda e: (rank.get(e[0], len(rank)), e[0]))

    temp = target.parent / archive_temp_name(target.name, secrets.token_hex(6))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_archive_temps(target.parent)  # what killed writers left, not a live one's
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags, 0o666)  # the umask decides, as for any new file
        with os.fdopen(fd, "wb") as raw:
            # filename="" and mtime=0 keep the temp name and the clock out of the gzip header.
            # Level 1: a model is mostly float weights, which level 6 packs only 2% smaller
            # at 1.3x the time (moodbot's 5.9 MB: 3.93 MB in 0.19 s, 3.85 MB in 0.24 s).
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                               compresslevel=ARCHIVE_LEVEL) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for arcname, path, is_dir in entries:
                        _add(tar, arcname, path, is_dir)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, target)
    except OSError as exc:
        raise ModelArchiveError(f"could not write model archive {target}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):  # a failing cleanup must not hide the real error
            temp.unlink(missing_ok=True)
    return target


def extract_archive(
    archive_path: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
) -> Path:
    """Safely unpack ``archive_path`` into ``target_dir``, which must be absent or empty.

    The whole archive is checked before anything is written (see the module's bounds);
    then it is unpacked with the same checks, since the file may change in between. All
    or nothing: when any member is refused or the archive turns out corrupt, what was
    already written is removed again and :class:`ModelArchiveError` is raised.
    """
    archive = Path(archive_path)
    target = Path(target_dir)
    limits = _Limits(max_total_bytes, max_files, max_member_bytes)
    _scan(archive, limits)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelArchiveError(
            f"cannot extract {archive} into {target}: it exists and is not an empty directory"
        )
    # The outermost directory this call creates, so a failure can remove all of it.
    created: Path | None = None
    if not target.exists():
        created = target
        while not created.parent.exists():
            created = created.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelArchiveError(f"cannot extract {archive} into {target}: {exc}") from exc
    try:
        _extract_into(archive, target.resolve(), limits)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for child in list(target.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return target


def verify_archive(
    archive_path: str | os.PathLike[str],
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
) -> None:
    """Read ``archive_path`` to its end without writing anything: every member would
    extract, the bounds hold and the checksum matches; else :class:`ModelArchiveError`."""
    _scan(Path(archive_path), _Limits(max_total_bytes, max_files, max_member_bytes))


def read_archive_member(
    archive_path: str | os.PathLike[str], name: str, max_bytes: int = DEFAULT_MAX_MEMBER_BYTES
) -> bytes:
    """The bytes of one regular file in the archive (e.g. ``metadata.json``), nothing
    extracted; a member over ``max_bytes`` is refused from its header, before its data is
    read, and the data is read in chunks so a lying stream cannot pass the cap either."""
    archive = Path(archive_path)
    wanted = "/".join(p for p in name.split("/") if p not in ("", "."))
    limits = _Limits(DEFAULT_MAX_TOTAL_BYTES, DEFAULT_MAX_FILES, DEFAULT_MAX_MEMBER_BYTES)
    with _open(archive, limits.stream_bytes, to_end=False) as tar:
        for count, member in enumerate(_members(archive, tar), start=1):
            if count > limits.files:
                raise _unsafe(archive, member.name, f"is past the limit of {limits.files} files")
            if "/".join(p for p in member.name.split("/") if p not in ("", ".")) != wanted:
                continue
            if not member.isreg():
                raise _unsafe(archive, member.name, "is not a regular file")
            if member.size > max_bytes:
                raise _unsafe(archive, member.name, f"is larger than {max_bytes} bytes")
            handle = _data(archive, tar, member)
            chunks = []
            while chunk := _read(archive, handle, _CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
    raise ModelArchiveError(f"not a Parley model archive: {archive}: it has no {wanted!r}")


# -- packing ------------------------------------------------------------------------------


def _walk(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """(archive name, path, is_dir) for everything below ``root``, refusing links."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as scan:
            for item in scan:
                path = Path(item.path)
                arcname = path.relative_to(root).as_posix()
                if "\\" in item.name:
                    raise ModelArchiveError(
                        f"cannot pack {path}: a backslash in a name does not survive extraction"
                    )
                if item.is_symlink():
                    raise ModelArchiveError(
                        f"cannot pack {path}: it is a symbolic link; a model archive holds "
                        "only regular files and directories"
                    )
                if item.is_dir(follow_symlinks=False):
                    stack.append(path)
                    yield arcname, path, True
                elif item.is_file(follow_symlinks=False):
                    yield arcname, path, False
                else:
                    raise ModelArchiveError(f"cannot pack {path}: it is not a regular file")


def _add(tar: tarfile.TarFile, arcname: str, path: Path, is_dir: bool) -> None:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return
    info.mode = 0o644
    with open(path, "rb") as handle:
        info.size = os.fstat(handle.fileno()).st_size
        tar.addfile(info, handle)


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    total_bytes: int
    files: int
    member_bytes: int

    @property
    def stream_bytes(self) -> int:
        """The most decompressed bytes an archive within the limits can be."""
        return self.total_bytes + self.files * _SLACK_PER_FILE + _SLACK


class _BoundedStream:
    """The decompressed bytes of a ``.tar.gz`` for :mod:`tarfile`: forward only, refusing
    to go past ``limit`` bytes in all or to hand out more than ``MAX_READ_BYTES`` at once
    (tarfile reads a PAX or long-name header whole, in one read)."""

    def __init__(self, archive: Path, raw: IO[bytes], limit: int) -> None:
        self._archive = archive
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._limit = limit
        self._position = 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ_BYTES:
            raise ModelArchiveError(
                f"refusing to extract {self._archive}: a tar header asks to read "
                f"{'all of it' if size is None or size < 0 else f'{size} bytes'} at once "
                f"(more than {MAX_READ_BYTES}); a Parley model archive has no such header")
        try:
            data = self._gzip.read(size)
        except _READ_ERRORS as exc:
            raise _not_archive(self._archive, exc) from exc
        self._position += len(data)
        if self._position > self._limit:
            raise ModelArchiveError(
                f"refusing to extract {self._archive}: it unpacks to more than "
                f"{self._limit} bytes (a decompression bomb, or not a model archive)")
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._position:
            raise ModelArchiveError(f"not a Parley model archive: {self._archive}: its "
                                    "members are not in one forward sequence")
        while self._position < target:  # skipping is reading: every byte is counted
            if not self.read(min(_CHUNK, target - self._position)):
                break
        return self._position


@contextmanager
def _open(archive: Path, limit: int, to_end: bool = True) -> Iterator[tarfile.TarFile]:
    if not archive.is_file():
        raise ModelArchiveError(f"model archive {archive} does not exist or is not a file")
    try:
        raw = archive.open("rb")
    except OSError as exc:
        raise ModelArchiveError(f"cannot read model archive {archive}: {exc}") from exc
    with raw:
        stream = _BoundedStream(archive, raw, limit)
        try:
            tar = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]
        except _READ_ERRORS as exc:
            raise _not_archive(archive, exc) from exc
        with tar:
            yield tar
            if not to_end:
                return
            # Read to the end so the gzip checksum is checked: a flipped bit inside file
            # data is otherwise invisible (bounded like everything else).
            while stream.read(_CHUNK):
                pass


def _members(archive: Path, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members one by one, so nothing past a refused member is ever decompressed."""
    while True:
        try:
            member = tar.next()
        except (*_READ_ERRORS, UnicodeError) as exc:
            raise _not_archive(archive, exc) from exc
        if member is None:
            return
        yield member


def _checked(archive: Path, tar: tarfile.TarFile, root: Path | None, limits: _Limits
             ) -> Iterator[tuple[tarfile.TarInfo, list[str]]]:
    """Each member with its path parts, after every check that needs no disk: its kind
    and name, the file count, its declared size and the running total (and, given the
    ``root`` it will be written to, tarfile's own data filter)."""
    total = 0
    seen: set[tuple[str, ...]] = set()
    for count, member in enumerate(_members(archive, tar), start=1):
        if count > limits.files:
            raise _unsafe(archive, member.name, f"is past the limit of {limits.files} files")
        parts = _safe_parts(archive, member)
        if root is not None and hasattr(tarfile, "data_filter"):  # Python ≥ 3.10.12: a second opinion
            try:
                tarfile.data_filter(member, str(root))
            except tarfile.FilterError as exc:
                raise _unsafe(archive, member.name, f"is refused ({exc})") from exc
        if member.isreg():
            if member.size > limits.member_bytes:
                raise _unsafe(archive, member.name,
                              f"declares {member.size} bytes, over the limit of "
                              f"{limits.member_bytes} for one file")
            total += member.size
            if total > limits.total_bytes:
                raise _unsafe(archive, member.name,
                              f"takes the archive past {limits.total_bytes} unpacked bytes")
            if tuple(parts) in seen:
                raise _unsafe(archive, member.name, "clashes with another member")
            seen.add(tuple(parts))
        yield member, parts


def _scan(archive: Path, limits: _Limits) -> None:
    """The first pass: headers only, nothing written."""
    # A header-only pass still has to decompress the data it skips; the stream's cap
    # bounds that. tarfile's data filter (half the time per member) waits for pass two.
    with _open(archive, limits.stream_bytes) as tar:
        for _member in _checked(archive, tar, None, limits):
            pass


def _extract_into(archive: Path, root: Path, limits: _Limits) -> None:
    with _open(archive, limits.stream_bytes) as tar:
        for member, parts in _checked(archive, tar, root, limits):
            if not parts:
                continue  # the archive's own root, "./"
            dest = root.joinpath(*parts)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if os.path.commonpath([str(root), os.path.realpath(dest.parent)]) != str(root):
                    raise _unsafe(archive, member.name, f"would land outside {root}")
                if member.isdir():
                    dest.mkdir(exist_ok=True)
                    continue
                _write_member(archive, tar, member, dest)
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise _unsafe(archive, member.name, "clashes with another member") from exc
            except OSError as exc:
                raise ModelArchiveError(f"cannot extract {archive} into {root}: {exc}") from exc


def _safe_parts(archive: Path, member: tarfile.TarInfo) -> list[str]:
    """The member's path components, after refusing every shape that could escape."""
    name = member.name
    if not (member.isreg() or member.isdir()):
        kind = (
            "a symbolic link" if member.issym()
            else "a hard link" if member.islnk()
            else "a device file or fifo"
        )  # fmt: skip
        raise _unsafe(archive, name, f"is {kind}")
    if not name or "\x00" in name or "\\" in name:
        raise _unsafe(archive, name, "has an unusable name")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise _unsafe(archive, name, "has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive, name, "climbs out with '..'")
    if not parts and not member.isdir():
        raise _unsafe(archive, name, "has an unusable name")
    return parts


def _write_member(archive: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    source = _data(archive, tar, member)
    # O_EXCL: a name that appears twice is refused rather than silently overwritten;
    # O_NOFOLLOW: never write through a link, whoever put it there.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(dest, flags | getattr(os, "O_BINARY", 0), 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := _read(archive, source, _CHUNK):
            out.write(chunk)


def _read(archive: Path, handle: IO[bytes], size: int) -> bytes:
    try:
        return handle.read(size)
    except _READ_ERRORS as exc:
        raise _not_archive(archive, exc) from exc


def _data(archive: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    try:
        handle = tar.extractfile(member)
    except _READ_ERRORS as exc:
        raise _not_archive(archive, exc) from exc
    if handle is None:  # only links and special files have no data, and they are refused
        raise _unsafe(archive, member.name, "has no data")
    return handle


def _not_archive(archive: Path, exc: BaseException) -> ModelArchiveError:
    text = str(exc)
    if "CRC check failed" in text or "Incorrect length" in text:
        what = "its checksum does not match, so its content is damaged"
    elif isinstance(exc, gzip.BadGzipFile) or "gzip" in text.lower():
        what = "it is not a gzip-compressed file"
    elif isinstance(exc, EOFError) or "unexpected end" in text:
        what = f"it is truncated ({text})"
    elif "empty file" in text:
        what = "it is empty"
    elif isinstance(exc, zlib.error) or "zlib" in text:
        what = f"its compressed data is damaged ({text})"
    else:
        what = f"it is not a tar archive or is damaged ({text})"
    return ModelArchiveError(f"not a Parley model archive: {archive}: {what}")


def _unsafe(archive: Path, name: str, reason: str) -> ModelArchiveError:
    return ModelArchiveError(
        f"refusing to extract {archive}: member {name!r} {reason}; a Parley model archive "
        "holds only regular files and directories below its root"
    )
