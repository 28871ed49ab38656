"""Model archives: deterministic, atomically written ``.tar.gz`` files, and safe extraction.

A model archive may come from a stranger, so extraction trusts nothing in it: only regular
files and directories below the target are written (no absolute names, no ``..``, no links,
no devices), the unpacked size and file count are capped against decompression bombs, and
the gzip checksum is verified to the end. Anything else is a :class:`ModelArchiveError`
that names the file and the reason.

Packing normalises everything that is not content (order, times, owners, modes, the gzip
header), so the same files give the same bytes (with the same zlib) and archives can be
compared by hash.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import secrets
import shutil
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from parley.errors import ModelArchiveError

ARCHIVE_SUFFIX = ".tar.gz"
DEFAULT_MAX_TOTAL_BYTES = 16 * 2**30
DEFAULT_MAX_FILES = 100_000
DEFAULT_MAX_MEMBER_BYTES = 256 * 2**20
# Errors that mean "the bytes are not a sound tar.gz" (as opposed to our disk failing).
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
_CHUNK = 1 << 20
_DRIVE_RE = re.compile(r"[A-Za-z]:")


def pack_archive(
    source_dir: str | os.PathLike[str],
    target_path: str | os.PathLike[str],
    first: Sequence[str] = ("metadata.json",),
) -> Path:
    """Pack ``source_dir`` into ``target_path`` (``.tar.gz`` appended when missing).

    The archive is written to a temporary file beside the target and renamed over it, so
    a killed process leaves the old archive or none, never half of one. Names in ``first``
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

    temp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags, 0o666)  # the umask decides, as for any new file
        with os.fdopen(fd, "wb") as raw:
            # filename="" and mtime=0 keep the temp name and the clock out of the gzip header.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
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
) -> Path:
    """Safely unpack ``archive_path`` into ``target_dir``, which must be absent or empty.

    All or nothing: when any member is refused or the archive turns out corrupt, what was
    already written is removed again and :class:`ModelArchiveError` is raised.
    """
    archive = Path(archive_path)
    target = Path(target_dir)
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
        _extract_into(archive, target.resolve(), max_total_bytes, max_files)
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


def read_archive_member(
    archive_path: str | os.PathLike[str], name: str, max_bytes: int = DEFAULT_MAX_MEMBER_BYTES
) -> bytes:
    """The bytes of one regular file in the archive (e.g. ``metadata.json``), nothing extracted."""
    archive = Path(archive_path)
    wanted = "/".join(p for p in name.split("/") if p not in ("", "."))
    with _open(archive) as tar:
        for member in _members(archive, tar):
            if "/".join(p for p in member.name.split("/") if p not in ("", ".")) != wanted:
                continue
            if not member.isreg():
                raise _unsafe(archive, member.name, "is not a regular file")
            if member.size > max_bytes:
                raise _unsafe(archive, member.name, f"is larger than {max_bytes} bytes")
            handle = _data(archive, tar, member)
            try:
                return handle.read()
            except _READ_ERRORS as exc:
                raise _not_archive(archive, exc) from exc
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


@contextmanager
def _open(archive: Path) -> Iterator[tarfile.TarFile]:
    if not archive.is_file():
        raise ModelArchiveError(f"model archive {archive} does not exist or is not a file")
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except _READ_ERRORS as exc:
        raise _not_archive(archive, exc) from exc
    with tar:
        yield tar


def _members(archive: Path, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members one by one, so nothing past a refused member is ever decompressed."""
    while True:
        try:
            member = tar.next()
        except _READ_ERRORS as exc:
            raise _not_archive(archive, exc) from exc
        if member is None:
            return
        yield member


def _extract_into(archive: Path, root: Path, max_total_bytes: int, max_files: int) -> None:
    total = 0
    count = 0
    with _open(archive) as tar:
        for member in _members(archive, tar):
            count += 1
            if count > max_files:
                raise _unsafe(archive, member.name, f"is past the limit of {max_files} files")
            parts = _safe_parts(archive, member)
            if not parts:
                continue  # the archive's own root, "./"
            if hasattr(tarfile, "data_filter"):  # Python ≥ 3.10.12: a second opinion
                try:
                    tarfile.data_filter(member, str(root))
                except tarfile.FilterError as exc:
                    raise _unsafe(archive, member.name, f"is refused ({exc})") from exc
            dest = root.joinpath(*parts)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if os.path.commonpath([str(root), os.path.realpath(dest.parent)]) != str(root):
                    raise _unsafe(archive, member.name, f"would land outside {root}")
                if member.isdir():
                    dest.mkdir(exist_ok=True)
                    continue
                total += member.size
                if total > max_total_bytes:
                    raise _unsafe(
                        archive, member.name,
                        f"takes the archive past {max_total_bytes} unpacked bytes",
                    )  # fmt: skip
                _write_member(archive, tar, member, dest)
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise _unsafe(archive, member.name, "clashes with another member") from exc
            except OSError as exc:
                raise ModelArchiveError(f"cannot extract {archive} into {root}: {exc}") from exc
        try:
            # Read to the end so the gzip checksum is checked: a flipped bit inside file
            # data is otherwise invisible.
            while tar.fileobj is not None and tar.fileobj.read(_CHUNK):
                pass
        except _READ_ERRORS as exc:
            raise _not_archive(archive, exc) from exc


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
        while True:
            try:
                chunk = source.read(_CHUNK)
            except _READ_ERRORS as exc:
                raise _not_archive(archive, exc) from exc
            if not chunk:
                return
            out.write(chunk)


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
