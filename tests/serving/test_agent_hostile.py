"""Tampered and crafted model archives: one ModelArchiveError naming archive and member,
never a traceback, and nothing read from outside the archive (issue 18)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from parley.engine.archive import extract_archive, pack_archive
from parley.errors import ModelArchiveError
from parley.serving.agent import load

LR = "components/nlu_6_LogisticRegressionClassifier"



def tampered(trained: Path, tmp_path: Path, edit: Callable[[Path], None]) -> Path:
    """The trained archive, extracted, edited in place by ``edit`` and packed again."""
    model = extract_archive(trained, tmp_path / "model")
    edit(model)
    return pack_archive(model, tmp_path / "tampered.tar.gz")


def edit_metadata(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        meta = json.loads((model / "metadata.json").read_text())
        result = change(meta)
        (model / "metadata.json").write_text(json.dumps(meta if result is None else result))
    return edit


def refused(archive: Path, *fragments: str) -> str:
    with pytest.raises(ModelArchiveError) as caught:
        load(archive)
    text = str(caught.value)
    assert str(archive) in text
    for fragment in fragments:
        assert fragment in text, text
    return text


# -- security: components stay inside the archive ------------------------------------------


@pytest.mark.parametrize("escape", ["absolute", "dotdot"])
def test_a_node_name_pointing_outside_should_be_refused(trained: Path, tmp_path: Path,
                                                        escape: str) -> None:
    # A real component folder outside the archive, which the old code loaded.
    outside = tmp_path / "outside"
    extract_archive(trained, outside)
    lr = (outside / LR).resolve()
    name = str(lr) if escape == "absolute" else f"../../../../../../../..{lr}"

    def point_out(meta: dict) -> None:
        meta["predict_graph"]["nlu"][5]["name"] = name

    refused(tampered(trained, tmp_path / "t", edit_metadata(point_out)),
            "predict_graph.nlu[5]", "is not a plain folder name")


def test_a_train_graph_node_name_with_a_separator_should_be_refused(trained: Path,
                                                                   tmp_path: Path) -> None:
    def point_out(meta: dict) -> None:
        meta["train_graph"]["nlu"][0]["name"] = "sub/../../x"

    refused(tampered(trained, tmp_path, edit_metadata(point_out)), "train_graph.nlu[0]")


# -- tampered metadata ----------------------------------------------------------------------


@pytest.mark.parametrize("change, fragment", [
    (lambda meta: [meta], "is not an object"),
    (lambda meta: meta.pop("predict_graph") and None, "has no 'predict_graph'"),
    (lambda meta: meta.update(labels=[]) , "'labels' is a list"),
    (lambda meta: meta.update(domain={"intents": {"x": 1}, "slots": 7}), "damaged domain"),
    (lambda meta: meta["predict_graph"]["nlu"][0].update(component="NoSuchThing"),
     "components/nlu_0_WhitespaceTokenizer"),
])
def test_tampered_metadata_should_be_one_error(trained: Path, tmp_path: Path, change,
                                               fragment: str) -> None:
    refused(tampered(trained, tmp_path, edit_metadata(change)), fragment)


def test_metadata_not_utf8_or_nested_should_be_one_error(trained: Path, tmp_path: Path) -> None:
    def not_utf8(model: Path) -> None:
        (model / "metadata.json").write_bytes(b'{"a": "\xff"}')

    refused(tampered(trained, tmp_path / "a", not_utf8), "metadata.json is not UTF-8")

    def nested(model: Path) -> None:
        (model / "metadata.json").write_text("[" * 50_000 + "]" * 50_000)

    refused(tampered(trained, tmp_path / "b", nested), "metadata.json")


# -- tampered component files ---------------------------------------------------------------


def write(relative: str, data: bytes) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        (model / relative).write_bytes(data)
    return edit


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def pickled_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, coef=np.array([{"a": 1}, None], dtype=object))  # a pickle inside
    return buffer.getvalue()


def huge_header_npz() -> bytes:
    """An .npy that declares a (10**12,) float64 array and holds 8 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("coef.npy", header.getvalue() + b"\0" * 8)
    return buffer.getvalue()


@pytest.mark.parametrize("relative, data, fragment", [
    (f"{LR}/params.json", b'{"component": "\xff"}', "params.json is damaged"),
    (f"{LR}/params.json", b"[" * 100_000, "params.json is damaged"),
    (f"{LR}/params.json", b'{"component": "LogisticRegressionClassifier", "params": [1]}',
     "holds no 'params' mapping"),
    (f"{LR}/state.json", b"{" * 10, "state.json is damaged"),
    (f"{LR}/arrays.npz", b"PK\x03\x04 broken", "arrays.npz is damaged"),
    (f"{LR}/arrays.npz", pickled_npz(), "arrays.npz is damaged"),
    (f"{LR}/arrays.npz", huge_header_npz(), "declares 8000000000000 bytes"),
    # Plausible arrays of the wrong shape: they load, and crashed at the first parse.
    (f"{LR}/arrays.npz", npz(coef=np.zeros((3, 2)), intercept=np.zeros(2), idf=np.zeros(3)),
     "components/nlu_6_LogisticRegressionClassifier"),
    (f"{LR}/arrays.npz", npz(coef=np.zeros((990, 7), dtype="U3"), intercept=np.zeros(7),
                             idf=np.zeros(990)), "nlu_6_LogisticRegressionClassifier"),
])
def test_tampered_component_files_should_be_one_error(trained: Path, tmp_path: Path,
                                                      relative: str, data: bytes,
                                                      fragment: str) -> None:
    text = refused(tampered(trained, tmp_path, write(relative, data)))
    assert fragment in text or "fails on a first message" in text, text
    assert "/tmp/" not in text.replace(str(tmp_path), "") or LR in text


def test_wrong_shape_arrays_should_fail_at_load_not_at_the_first_user(
        trained: Path, tmp_path: Path) -> None:
    edit = write(f"{LR}/arrays.npz",
                 npz(coef=np.zeros((5, 7)), intercept=np.zeros(7), idf=np.zeros(5)))
    refused(tampered(trained, tmp_path, edit), "fails on a first message")


def test_a_missing_component_folder_should_name_it(trained: Path, tmp_path: Path) -> None:
    def remove(model: Path) -> None:
        shutil.rmtree(model / LR)

    refused(tampered(trained, tmp_path, remove), "missing the component", LR)


def test_an_untampered_model_should_still_load_and_answer(trained: Path) -> None:
    assert load(trained).parse("hello")["intent"]["name"] == "greet"
