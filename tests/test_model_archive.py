"""parley.model_archive: one newest-model rule, strict metadata reading, the format check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from parley.engine.archive import pack_archive
from parley.errors import ModelArchiveError
from parley.model_archive import (
    MODEL_FORMAT, check_format, component_dir, model_archives, newest_model,
    read_extracted_metadata, read_metadata, resolve_model,
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
    check_format(minimal_metadata(), tmp_path)
    with pytest.raises(ModelArchiveError, match="Train the model again"):
        check_format({"model_format": MODEL_FORMAT - 1}, tmp_path)


def minimal_metadata(**changes: object) -> dict[str, object]:
    meta: dict[str, object] = {"model_format": MODEL_FORMAT, "training_type": "nlu",
                               "predict_graph": {"nlu": [], "policies": []}}
    meta.update(changes)
    return meta


def node(name: object) -> dict[str, object]:
    return {"name": name, "kind": "nlu", "component": "WhitespaceTokenizer"}


@pytest.mark.parametrize("name", ["/etc", "../../outside", "a/b", "a\\b", "..", ".", "",
                                  "x\x00y", 7, None])
def test_node_names_that_could_leave_the_model_should_be_refused(tmp_path: Path,
                                                                 name: object) -> None:
    for graph in ("predict_graph", "train_graph"):
        nodes = [dict(node(name), params={})]
        meta = minimal_metadata(**{graph: {"nlu": nodes, "policies": []}})
        with pytest.raises(ModelArchiveError, match=f"{graph}.nlu.0.*name|{graph}.nlu.0"):
            check_format(meta, tmp_path / "m.tar.gz")
    with pytest.raises(ModelArchiveError, match="m.tar.gz"):
        component_dir(tmp_path, name, tmp_path / "m.tar.gz")


def test_component_dir_should_not_follow_a_link_out(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "x").symlink_to(tmp_path.parent)
    with pytest.raises(ModelArchiveError, match="leads outside the model"):
        component_dir(tmp_path, "x", "m.tar.gz")
    assert component_dir(tmp_path, "y", "m.tar.gz") == (tmp_path / "components" / "y").resolve()


@pytest.mark.parametrize("changes, message", [
    ({"predict_graph": None}, "'predict_graph' is a NoneType"),
    ({"predict_graph": {"nlu": {}}}, "'predict_graph.nlu' is not a list"),
    ({"predict_graph": {"nlu": [{"name": "a"}]}}, r"predict_graph.nlu\[0\]' is not a node"),
    ({"predict_graph": {"nlu": [{"name": "a", "kind": 1, "component": "x"}]}}, "wrong type"),
    ({"training_type": ["nlu"]}, "'training_type' is a list"),
    ({"fingerprints": {"a": 1}}, "'fingerprints' holds a value that is not a string"),
    ({"labels": {"intents": "greet"}}, "'labels.intents' is not a list of strings"),
    ({"domain": []}, "'domain' is a list"),
    ({"train_graph": {"nlu": [{"name": "a", "component": "x", "params": []}]}}, "wrong type"),
])
def test_metadata_of_the_wrong_shape_should_be_one_clear_error(
        tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ModelArchiveError, match=message) as caught:
        check_format(minimal_metadata(**changes), tmp_path / "m.tar.gz")
    assert "m.tar.gz: metadata.json is damaged" in str(caught.value)


@pytest.mark.parametrize("raw, message", [
    (b"[1, 2]", "is not an object"),
    (b"\xff\xfe{}", "is not UTF-8"),
    (b"{'a': 1}", "is not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|is not JSON"),
])
def test_unreadable_metadata_should_name_archive_and_member(tmp_path: Path, raw: bytes,
                                                            message: str) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "metadata.json").write_bytes(raw)
    archive = pack_archive(model, tmp_path / "m.tar.gz")
    with pytest.raises(ModelArchiveError, match=message) as caught:
        read_metadata(archive)
    assert f"{archive}: metadata.json" in str(caught.value)


def test_metadata_over_the_cap_should_be_refused_unread(tmp_path: Path) -> None:
    import parley.model_archive as model_archive

    model = tmp_path / "model"
    model.mkdir()
    (model / "metadata.json").write_bytes(b" " * 5000 + b"{}")
    archive = pack_archive(model, tmp_path / "m.tar.gz")
    original = model_archive.MAX_METADATA_BYTES
    model_archive.MAX_METADATA_BYTES = 4000
    try:
        with pytest.raises(ModelArchiveError, match="larger than 4000 bytes"):
            read_metadata(archive)
        with pytest.raises(ModelArchiveError, match="larger than 4000 bytes"):
            model_archive.read_extracted_metadata(model)
    finally:
        model_archive.MAX_METADATA_BYTES = original
