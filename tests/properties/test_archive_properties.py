"""Property-based tests over the model-archive loader (issue 18).

Whatever an archive holds — bytes flipped anywhere in a real trained archive, bytes flipped
inside one of its members (repacked, so the gzip checksum still holds), random JSON in
place of its metadata, random member names — loading it either works or raises
:class:`ModelArchiveError`; nothing else may come out, nothing is written outside the
extraction folder, and nothing hangs (each example has a deadline).

Bounded for CI: each run tries ``CASES_PER_RUN`` examples in all (the sum of the
``max_examples`` below: 40 + 30 + 50 + 80 = 200), in well under 30 s.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.engine.archive import extract_archive, pack_archive
from parley.errors import ModelArchiveError
from parley.serving.agent import load

FLIPS, MEMBER_FLIPS, METADATA, NAMES = 40, 30, 50, 80
CASES_PER_RUN = FLIPS + MEMBER_FLIPS + METADATA + NAMES

PROPERTY = settings(max_examples=FLIPS, deadline=timedelta(seconds=5), derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])



@pytest.fixture(scope="module")
def members(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    model = extract_archive(trained, tmp_path_factory.mktemp("members") / "model")
    return {p.relative_to(model).as_posix(): p.read_bytes()
            for p in sorted(model.rglob("*")) if p.is_file()}


def only_archive_errors(archive: Path) -> None:
    """Load ``archive``: it works, or ModelArchiveError says why; and if it works, it
    answers a message."""
    try:
        agent = load(archive)
    except ModelArchiveError as error:
        assert str(archive) in str(error)
        return
    agent.parse("hello")


def pack(files: dict[str, bytes], folder: Path) -> Path:
    model = folder / "model"
    for name, data in files.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    return pack_archive(model, folder / "m.tar.gz")


@PROPERTY
@given(data=st.data())
def test_flipped_bytes_anywhere_should_give_only_archive_errors(trained: Path,
                                                                data: st.DataObject) -> None:
    raw = bytearray(trained.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= data.draw(st.integers(1, 255))
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "m.tar.gz"
        archive.write_bytes(bytes(raw))
        only_archive_errors(archive)


@settings(PROPERTY, max_examples=MEMBER_FLIPS)
@given(data=st.data())
def test_flipped_bytes_inside_a_member_should_give_only_archive_errors(
        members: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(members)))
    content = bytearray(members[name])
    mode = data.draw(st.sampled_from(["flip", "truncate", "empty"]))
    if mode == "flip" and content:
        for _ in range(data.draw(st.integers(1, 3))):
            content[data.draw(st.integers(0, len(content) - 1))] ^= data.draw(
                st.integers(1, 255))
    elif mode == "truncate":
        content = content[: data.draw(st.integers(0, len(content)))]
    else:
        content = bytearray()
    with tempfile.TemporaryDirectory() as folder:
        only_archive_errors(pack({**members, name: bytes(content)}, Path(folder)))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
KEYS = ["model_format", "training_type", "predict_graph", "train_graph", "domain", "labels",
        "fingerprints", "component_digests", "model_id"]


@settings(PROPERTY, max_examples=METADATA)
@given(data=st.data())
def test_random_metadata_should_give_only_archive_errors(members: dict[str, bytes],
                                                         data: st.DataObject) -> None:
    meta: Any = json.loads(members["metadata.json"])
    how = data.draw(st.sampled_from(["replace key", "replace node", "whole", "node name"]))
    if how == "replace key":
        meta[data.draw(st.sampled_from(KEYS))] = data.draw(JSON)
    elif how == "replace node":
        part = meta["predict_graph"][data.draw(st.sampled_from(["nlu", "policies"]))]
        part[data.draw(st.integers(0, len(part) - 1))] = data.draw(JSON)
    elif how == "node name":
        node = meta["predict_graph"]["nlu"][data.draw(st.integers(0, 8))]
        node["name"] = data.draw(st.sampled_from(["..", "/etc", "../x", "a/b", ""])
                                 | st.text(max_size=12))
    else:
        meta = data.draw(JSON)
    with tempfile.TemporaryDirectory() as folder:
        raw = json.dumps(meta).encode()
        only_archive_errors(pack({**members, "metadata.json": raw}, Path(folder)))


NAME_PARTS = st.sampled_from(["..", ".", "", "a", "components", "metadata.json", "/", "\\",
                              "C:", "\x00", "x" * 100, "é"])


@settings(PROPERTY, max_examples=NAMES)
@given(names=st.lists(st.lists(NAME_PARTS, min_size=1, max_size=5).map("/".join)
                      | st.text(max_size=20), min_size=1, max_size=6),
       kinds=st.lists(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                       tarfile.LNKTYPE]), min_size=6, max_size=6))
def test_random_member_names_should_extract_inside_or_be_refused(names: list[str],
                                                                 kinds: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        archive = base / "m.tar.gz"
        with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for name, kind in zip(names, kinds, strict=False):
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = "../../outside" if kind in (tarfile.SYMTYPE,
                                                            tarfile.LNKTYPE) else ""
                payload = b"data" if kind == tarfile.REGTYPE else b""
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload) if payload else None)
        target = base / "deep" / "target"
        try:
            extract_archive(archive, target)
        except ModelArchiveError as error:
            assert str(archive) in str(error)
            assert not target.exists()
        else:
            for path in target.rglob("*"):
                assert not path.is_symlink()
                assert os.path.realpath(path).startswith(str(target.resolve()))
        outside = {p.name for p in base.iterdir()}
        assert outside <= {"m.tar.gz", "deep"}
        assert {p.name for p in (base / "deep").iterdir()} <= {"target"} if (
            base / "deep").exists() else True
