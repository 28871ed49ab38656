"""parley.model_archive: one newest-model rule, strict metadata reading, the format check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from parley.engine.archive import pack_archive
from parley.errors import ModelArchiveError
from parley.model_archive import (
    MODEL_FORMAT, check_format, model_archives, newest_model, read_extracted_metadata,
    read_metadata, resolve_model,
)


def _touch(path: Path, mtime: int) -> None:
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))


def test_newest_model_should_pick_by_mtime_then_name(tmp_path: Path) -> None:
    for name, mtime in [("a.tar.gz", 100), ("b.tar.gz", 300), ("c.tar.gz", 300),
                        ("d.tar.gz", 200)]:
        _touch(tmp_path / name, mtime)
    _touch(tmp_path / "z.zip", 900)
    _touch(tmp_path / ".z.tar.gz.1234.tmp", 900)  # an archive being written
    (tmp_path / "dir.tar.gz").mkdir()
    assert newest_model(tmp_path) == tmp_path / "c.tar.gz"
    assert model_archives(tmp_path) == [tmp_path / n for n in
                                        ("c.tar.gz", "b.tar.gz", "d.tar.gz", "a.tar.gz")]


def test_newest_model_should_not_search_sub_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "old.tar.gz", 100)
    (tmp_path / "sub").mkdir()
    _touch(tmp_path / "sub" / "new.tar.gz", 900)
    assert newest_model(tmp_path) == tmp_path / "old.tar.gz"


def test_newest_model_should_be_none_without_archives(tmp_path: Path) -> None:
    assert newest_model(tmp_path) is None
    assert newest_model(tmp_path / "missing") is None


def test_resolve_model_should_name_a_missing_model_or_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelArchiveError, match="does not exist"):
        resolve_model(tmp_path / "nope")
    with pytest.raises(ModelArchiveError, match=r"there is no model \(\*\.tar\.gz\) in"):
        resolve_model(tmp_path)
    _touch(tmp_path / "m.tar.gz", 100)
    assert resolve_model(tmp_path) == tmp_path / "m.tar.gz"
    assert resolve_model(tmp_path / "m.tar.gz") == tmp_path / "m.tar.gz"


def _archive(tmp_path: Path, metadata: bytes) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    (source / "metadata.json").write_bytes(metadata)
    return pack_archive(source, tmp_path / "m.tar.gz")


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is not JSON"), (b"[1, 2]", "is not an object")])
def test_read_metadata_should_refuse_damaged_metadata(tmp_path: Path, content: bytes,
                                                      message: str) -> None:
    archive = _archive(tmp_path, content)
    with pytest.raises(ModelArchiveError, match=message):
        read_metadata(archive)
    with pytest.raises(ModelArchiveError, match=message):
        read_extracted_metadata(tmp_path / "src")


def test_read_metadata_should_return_the_metadata(tmp_path: Path) -> None:
    archive = _archive(tmp_path, json.dumps({"model_format": MODEL_FORMAT}).encode())
    assert read_metadata(archive) == {"model_format": MODEL_FORMAT}
    with pytest.raises(ModelArchiveError, match="has no readable metadata.json"):
        read_extracted_metadata(tmp_path)


def test_check_format_should_refuse_other_formats(tmp_path: Path) -> None:
    check_format({"model_format": MODEL_FORMAT}, tmp_path)
    with pytest.raises(ModelArchiveError, match="Train the model again"):
        check_format({"model_format": MODEL_FORMAT - 1}, tmp_path)
