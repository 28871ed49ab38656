from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from parley.engine.archive import (
    extract_archive,
    verify_archive,
    pack_archive,
    read_archive_member,
)
from parley.errors import ModelArchiveError


def make_model_dir(root: Path) -> Path:
    model = root / "model"
    (model / "components" / "diet").mkdir(parents=True)
    (model / "components" / "empty").mkdir()
    (model / "metadata.json").write_text('{"version": "0.1.0"}')
    (model / "components" / "diet" / "weights.npz").write_bytes(bytes(range(256)) * 40)
    (model / "components" / "diet" / "config.json").write_text('{"epochs": 1}')
    return model


def tree(root: Path) -> dict[str, bytes | None]:
    """Relative path → content (None for directories)."""
    return {
        p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


# -- packing ------------------------------------------------------------------------------


def test_pack_then_extract_should_round_trip(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    archive = pack_archive(model, tmp_path / "out" / "model.tar.gz")
    assert archive == tmp_path / "out" / "model.tar.gz"
    target = extract_archive(archive, tmp_path / "extracted")
    assert tree(target) == tree(model)


def test_pack_should_append_the_suffix_when_missing(tmp_path: Path) -> None:
    archive = pack_archive(make_model_dir(tmp_path), tmp_path / "models" / "my-bot")
    assert archive.name == "my-bot.tar.gz" and archive.is_file()


def test_same_content_should_give_identical_bytes(tmp_path: Path) -> None:
    first = make_model_dir(tmp_path / "one")
    second = make_model_dir(tmp_path / "two")
    # Everything but content differs: times, permissions, creation order.
    os.utime(second / "metadata.json", (1_000_000, 1_000_000))
    os.chmod(second / "components" / "diet" / "config.json", 0o600)
    (second / "components" / "zzz").mkdir()
    (second / "components" / "zzz").rmdir()
    a = pack_archive(first, tmp_path / "a.tar.gz")
    time.sleep(0.01)
    b = pack_archive(second, tmp_path / "b.tar.gz")
    assert a.read_bytes() == b.read_bytes()


def test_different_content_should_give_different_bytes(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    a = pack_archive(model, tmp_path / "a.tar.gz").read_bytes()
    (model / "metadata.json").write_text('{"version": "0.1.1"}')
    assert pack_archive(model, tmp_path / "b.tar.gz").read_bytes() != a


def test_packed_members_should_be_normalised_and_metadata_first(tmp_path: Path) -> None:
    archive = pack_archive(make_model_dir(tmp_path), tmp_path / "m.tar.gz")
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert members[0].name == "metadata.json"
    assert [m.name for m in members[1:]] == sorted(m.name for m in members[1:])
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members if m.isdir()} == {0o755}
    assert {m.mode for m in members if m.isfile()} == {0o644}


def test_pack_should_replace_an_old_archive_and_leave_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "m.tar.gz"
    target.parent.mkdir()
    target.write_bytes(b"old")
    pack_archive(make_model_dir(tmp_path), target)
    assert target.read_bytes() != b"old"
    assert [p.name for p in target.parent.iterdir()] == ["m.tar.gz"]


def test_failed_pack_should_keep_the_old_archive(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    (model / "components" / "link").symlink_to("/etc/passwd")
    target = tmp_path / "out" / "m.tar.gz"
    target.parent.mkdir()
    target.write_bytes(b"old")
    with pytest.raises(ModelArchiveError, match="symbolic link"):
        pack_archive(model, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["m.tar.gz"]


def test_pack_should_refuse_names_extraction_would_refuse(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path)
    (model / "a\\b.json").write_text("{}")
    with pytest.raises(ModelArchiveError, match="backslash"):
        pack_archive(model, tmp_path / "m.tar.gz")


# -- hostile and broken archives ----------------------------------------------------------


def write_tar(path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"evil") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def add_fifo(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    tar.addfile(info)


def add_device(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def assert_refused(archive: Path, tmp_path: Path, message: str) -> None:
    target = tmp_path / "work" / "target"
    before = tree(tmp_path)
    with pytest.raises(ModelArchiveError, match=message) as caught:
        extract_archive(archive, target)
    assert str(archive) in str(caught.value)
    assert not target.exists()
    assert tree(tmp_path) == before


def inner_hardlink(tar: tarfile.TarFile) -> None:
    add_file(tar, "a")
    add_link(tar, "b", "a", tarfile.LNKTYPE)


def duplicate(tar: tarfile.TarFile) -> None:
    add_file(tar, "a")
    add_file(tar, "a")


def file_then_dir(tar: tarfile.TarFile) -> None:
    add_file(tar, "a")
    add_file(tar, "a/b")


HOSTILE: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "parent": (lambda tar: add_file(tar, "../evil"), "'..'"),
    "nested_parent": (lambda tar: add_file(tar, "components/../../evil"), "'..'"),
    "symlink": (
        lambda tar: add_link(tar, "metadata.json", "/etc/passwd", tarfile.SYMTYPE),
        "symbolic link",
    ),
    "relative_symlink": (
        lambda tar: add_link(tar, "x", "../../outside", tarfile.SYMTYPE),
        "symbolic link",
    ),
    "hardlink": (
        lambda tar: add_link(tar, "passwd", "/etc/passwd", tarfile.LNKTYPE),
        "hard link",
    ),
    "inner_hardlink": (inner_hardlink, "hard link"),
    "fifo": (lambda tar: add_fifo(tar, "pipe"), "device file or fifo"),
    "device": (lambda tar: add_device(tar, "null"), "device file or fifo"),
    "backslash": (lambda tar: add_file(tar, "..\\evil"), "unusable name"),
    "drive": (lambda tar: add_file(tar, "C:/evil"), "absolute path"),
    "duplicate": (duplicate, "clashes"),
    "file_then_dir": (file_then_dir, "clashes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_should_be_refused(tmp_path: Path, case: str) -> None:
    build, message = HOSTILE[case]

    def add(tar: tarfile.TarFile) -> None:
        add_file(tar, "metadata.json", b"{}")  # a harmless member first: must be undone
        build(tar)

    assert_refused(write_tar(tmp_path / f"{case}.tar.gz", add), tmp_path, message)


def test_absolute_member_should_be_refused_and_not_written(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "evil"
    archive = write_tar(tmp_path / "abs.tar.gz", lambda tar: add_file(tar, str(outside)))
    assert_refused(archive, tmp_path, "absolute path")
    assert not outside.exists()


def test_tmp_evil_absolute_member_should_be_refused(tmp_path: Path) -> None:
    name = f"/tmp/parley-evil-{os.getpid()}"
    archive = write_tar(tmp_path / "abs.tar.gz", lambda tar: add_file(tar, name))
    assert_refused(archive, tmp_path, "absolute path")
    assert not Path(name).exists()


def test_parent_escape_should_not_write_outside(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "p.tar.gz", lambda tar: add_file(tar, "../../escaped"))
    assert_refused(archive, tmp_path, "'..'")
    assert not (tmp_path / "escaped").exists()


def good_archive(tmp_path: Path) -> Path:
    return pack_archive(make_model_dir(tmp_path / "src"), tmp_path / "good.tar.gz")


def test_truncated_archive_should_be_reported(tmp_path: Path) -> None:
    data = good_archive(tmp_path).read_bytes()
    broken = tmp_path / "truncated.tar.gz"
    broken.write_bytes(data[: len(data) // 2])
    assert_refused(broken, tmp_path, "not a Parley model archive: .*truncated")


def test_archive_missing_only_its_gzip_trailer_should_be_reported(tmp_path: Path) -> None:
    data = good_archive(tmp_path).read_bytes()
    broken = tmp_path / "trailer.tar.gz"
    broken.write_bytes(data[:-4])
    assert_refused(broken, tmp_path, "not a Parley model archive")


def test_corrupted_byte_should_fail_the_checksum(tmp_path: Path) -> None:
    # compresslevel=0 stores the bytes as they are, so the flip lands in file data and only
    # the gzip checksum can notice it.
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        add_file(tar, "weights.bin", b"\x00" * 5000)
    data = bytearray(gzip.compress(payload.getvalue(), compresslevel=0))
    data[10 + 5 + 512 + 100] ^= 0xFF  # gzip header, stored-block header, tar header, data
    broken = tmp_path / "flipped.tar.gz"
    broken.write_bytes(bytes(data))
    assert_refused(broken, tmp_path, "not a Parley model archive: .*checksum does not match")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (os.urandom(4096), "not a gzip-compressed file"),
        (b"", "not a Parley model archive"),
        (gzip.compress(b"just some text, not a tar " * 40), "not a tar archive"),
    ],
    ids=["random_bytes", "empty", "gzip_of_text"],
)
def test_files_that_are_not_archives_should_be_reported(
    tmp_path: Path, content: bytes, message: str
) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(content)
    assert_refused(broken, tmp_path, message)


def test_uncompressed_tar_should_be_reported(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w") as tar:
        add_file(tar, "metadata.json", b"{}")
    assert_refused(plain, tmp_path, "not a gzip-compressed file")


def test_missing_archive_should_be_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelArchiveError, match="does not exist"):
        extract_archive(tmp_path / "nope.tar.gz", tmp_path / "target")


def test_decompression_bombs_should_hit_the_size_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        add_file(tar, "zeros.bin", b"\x00" * 2_000_000)
    assert bomb.stat().st_size < 20_000
    with pytest.raises(ModelArchiveError, match="unpacked bytes"):
        extract_archive(bomb, tmp_path / "target", max_total_bytes=1_000_000)
    assert not (tmp_path / "target").exists()


def test_too_many_files_should_hit_the_file_limit(tmp_path: Path) -> None:
    def add(tar: tarfile.TarFile) -> None:
        for index in range(20):
            add_file(tar, f"f{index}", b"")

    archive = write_tar(tmp_path / "many.tar.gz", add)
    with pytest.raises(ModelArchiveError, match="limit of 10 files"):
        extract_archive(archive, tmp_path / "target", max_files=10)


def test_extract_should_refuse_a_target_that_is_not_empty(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ModelArchiveError, match="not an empty directory"):
        extract_archive(good_archive(tmp_path), target)
    assert (target / "keep.txt").read_text() == "mine"


def test_failed_extract_into_an_existing_empty_dir_should_empty_it_again(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()

    def add(tar: tarfile.TarFile) -> None:
        add_file(tar, "components/x/a.bin", b"a")
        add_file(tar, "../evil")

    with pytest.raises(ModelArchiveError):
        extract_archive(write_tar(tmp_path / "e.tar.gz", add), target)
    assert target.is_dir() and list(target.iterdir()) == []


def test_archives_from_other_tools_with_dot_prefixes_should_extract(tmp_path: Path) -> None:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("./")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        add_file(tar, "./metadata.json", b"{}")

    target = extract_archive(write_tar(tmp_path / "dot.tar.gz", add), tmp_path / "target")
    assert (target / "metadata.json").read_bytes() == b"{}"


# -- reading one member -------------------------------------------------------------------


def test_read_archive_member_should_return_bytes_without_extracting(tmp_path: Path) -> None:
    archive = good_archive(tmp_path)
    assert read_archive_member(archive, "metadata.json") == b'{"version": "0.1.0"}'
    assert read_archive_member(archive, "./components/diet/config.json") == b'{"epochs": 1}'
    assert not (tmp_path / "metadata.json").exists()


def test_read_archive_member_should_report_missing_members(tmp_path: Path) -> None:
    with pytest.raises(ModelArchiveError, match="it has no 'nope.json'"):
        read_archive_member(good_archive(tmp_path), "nope.json")


def test_read_archive_member_should_refuse_links_and_big_members(tmp_path: Path) -> None:
    def add(tar: tarfile.TarFile) -> None:
        add_link(tar, "metadata.json", "/etc/passwd", tarfile.SYMTYPE)
        add_file(tar, "big.bin", b"x" * 100)

    archive = write_tar(tmp_path / "l.tar.gz", add)
    with pytest.raises(ModelArchiveError, match="not a regular file"):
        read_archive_member(archive, "metadata.json")
    with pytest.raises(ModelArchiveError, match="larger than 10 bytes"):
        read_archive_member(archive, "big.bin", max_bytes=10)


def test_read_archive_member_should_report_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "g.tar.gz"
    garbage.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ModelArchiveError, match=f"not a Parley model archive: {garbage}"):
        read_archive_member(garbage, "metadata.json")


# -- bounds: refused from the headers, before anything is written ------------------------


def raw_tar_gz(path: Path, headers_and_data: list[bytes], trailer: bytes = b"\0" * 1024) -> Path:
    """A .tar.gz from raw blocks, so a header can declare sizes its data does not have."""
    path.write_bytes(gzip.compress(b"".join(headers_and_data) + trailer, compresslevel=1))
    return path


def test_a_5_gb_zero_member_should_be_refused_at_once_from_its_header(tmp_path: Path) -> None:
    info = tarfile.TarInfo("components/x/zeros.bin")
    info.size = 5 * 10**9  # declared; only a few blocks follow: the file on disk stays tiny
    archive = raw_tar_gz(tmp_path / "bomb.tar.gz",
                         [info.tobuf(format=tarfile.PAX_FORMAT), b"\0" * 4096])
    assert archive.stat().st_size < 1000
    started = time.perf_counter()
    with pytest.raises(ModelArchiveError, match="declares 5000000000 bytes, over the limit"):
        extract_archive(archive, tmp_path / "target")
    assert time.perf_counter() - started < 0.5
    assert not (tmp_path / "target").exists()


def test_too_many_files_should_be_refused_before_any_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 100,001 members took 59 s to extract before they were refused (the report): the first
    # pass stops at the limit, so the members past it are never even read. Counted, not
    # timed: a loaded machine makes any time limit flaky.
    headers = []
    for index in range(12_000):
        info = tarfile.TarInfo(f"f{index}")
        headers.append(info.tobuf(format=tarfile.USTAR_FORMAT))
    archive = raw_tar_gz(tmp_path / "many.tar.gz", headers)
    read = 0
    original = tarfile.TarFile.next

    def counting(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        nonlocal read
        read += 1
        return original(self)

    monkeypatch.setattr(tarfile.TarFile, "next", counting)
    with pytest.raises(ModelArchiveError, match="past the limit of 10000 files"):
        extract_archive(archive, tmp_path / "target")
    assert read <= 10_002  # the limit's members and the one past it, not the 12,000
    assert not (tmp_path / "target").exists()


def test_a_bad_member_late_in_the_archive_should_leave_nothing_written(tmp_path: Path) -> None:
    def add(tar: tarfile.TarFile) -> None:
        add_file(tar, "metadata.json", b"{}")
        add_file(tar, "components/x/big.bin", b"\1" * 5000)

    archive = write_tar(tmp_path / "late.tar.gz", add)
    target = tmp_path / "target"
    with pytest.raises(ModelArchiveError, match="over the limit of 4000 for one file"):
        extract_archive(archive, target, max_member_bytes=4000)
    assert not target.exists()


def test_trailing_junk_past_the_cap_should_be_refused_without_reading_it_all(
    tmp_path: Path,
) -> None:
    # Declared sizes are small, but the decompressed stream goes on (zeros after the end
    # blocks): the stream itself is counted, so the gzip "bomb" stops at the cap.
    info = tarfile.TarInfo("metadata.json")
    info.size = 2
    archive = raw_tar_gz(tmp_path / "tail.tar.gz", [info.tobuf(), b"{}".ljust(512, b"\0")],
                         trailer=b"\0" * 20_000_000)
    assert archive.stat().st_size < 100_000
    with pytest.raises(ModelArchiveError, match="unpacks to more than 1090536 bytes"):
        extract_archive(archive, tmp_path / "target", max_total_bytes=1000, max_files=10)


def test_a_huge_pax_header_should_be_refused_not_read_into_memory(tmp_path: Path) -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 3 * 2**30
    archive = raw_tar_gz(tmp_path / "pax.tar.gz", [info.tobuf(format=tarfile.USTAR_FORMAT)])
    with pytest.raises(ModelArchiveError, match="at once"):
        extract_archive(archive, tmp_path / "target")


def test_read_archive_member_should_stop_at_its_member(tmp_path: Path) -> None:
    # metadata.json first, then a member whose data is damaged: reading the metadata
    # must not decompress (or judge) what follows.
    def add(tar: tarfile.TarFile) -> None:
        add_file(tar, "metadata.json", b'{"a": 1}')
        add_file(tar, "components/x/w.bin", os.urandom(200_000))

    archive = write_tar(tmp_path / "m.tar.gz", add)
    data = bytearray(archive.read_bytes())
    archive.write_bytes(bytes(data[: len(data) // 2]))  # truncated after the metadata
    assert read_archive_member(archive, "metadata.json") == b'{"a": 1}'
    with pytest.raises(ModelArchiveError, match="truncated|damaged"):
        verify_archive(archive)
