from __future__ import annotations

import dataclasses
import enum
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from parley.engine.fingerprint import (
    NOT_INSTALLED, file_fingerprint, fingerprint, fingerprint_files, fingerprint_unordered,
    node_fingerprint, package_versions,
)

REPO = Path(__file__).resolve().parents[2]


def test_fingerprint_should_be_a_sha256_hex_digest() -> None:
    value = fingerprint({"a": 1})
    assert len(value) == 64
    int(value, 16)


def test_fingerprint_should_be_stable_across_processes_and_hash_seeds() -> None:
    obj = {"b": [1, 2.5, "x", None, True], "a": {"z": (1, 2), "y": {3, 1, 2}}, "c": b"\x00"}
    code = (
        "from parley.engine.fingerprint import fingerprint;"
        "print(fingerprint({'b': [1, 2.5, 'x', None, True], 'a': {'z': (1, 2), "
        "'y': {3, 1, 2}}, 'c': b'\\x00'}))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout.strip())
    assert outputs == {fingerprint(obj)}


def test_fingerprint_format_should_not_change_silently() -> None:
    # Changing the canonical form invalidates every user's cache; do it on purpose only.
    assert fingerprint({"name": "DIETClassifier", "epochs": 100, "lr": 0.001}) == (
        "de1454709c003143457aa470894bf9d7710cbea57c3ccef98733a0231ca80543"
    )


def test_dict_key_order_should_not_matter() -> None:
    assert fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == fingerprint(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )


def test_list_order_should_matter() -> None:
    assert fingerprint([1, 2]) != fingerprint([2, 1])


def test_tuples_and_lists_should_mean_the_same() -> None:
    assert fingerprint((1, "a")) == fingerprint([1, "a"])


def test_set_order_should_not_matter() -> None:
    assert fingerprint({"x", "y", "z"}) == fingerprint(frozenset(["z", "y", "x"]))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (1, True),
        (0, False),
        (1, "1"),
        (None, "null"),
        ([], {}),
        ({1: "a"}, {"1": "a"}),
        ([["dict", []]], {}),
        (0.0, -0.0),
        (b"abc", "abc"),
        ("a", ["a"]),
        ({"a": [1, 2]}, {"a": [1, 3]}),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}),
        (0.1 + 0.2, 0.3),
    ],
)
def test_different_values_should_give_different_fingerprints(left: object, right: object) -> None:
    assert fingerprint(left) != fingerprint(right)


def test_non_finite_floats_should_be_fingerprintable() -> None:
    assert fingerprint(float("nan")) == fingerprint(float("nan"))
    assert fingerprint(float("inf")) != fingerprint(float("-inf"))


def test_paths_should_be_fingerprinted_by_their_text_not_content(tmp_path: Path) -> None:
    file = tmp_path / "a.txt"
    file.write_text("one")
    before = fingerprint(file)
    file.write_text("two")
    assert fingerprint(file) == before
    assert fingerprint(PurePosixPath("x/y")) == fingerprint(Path("x/y"))
    assert fingerprint(Path("x/y")) != fingerprint("x/y")


def test_numpy_arrays_should_be_fingerprinted_by_dtype_shape_and_bytes() -> None:
    np = pytest.importorskip("numpy")
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert fingerprint(base) == fingerprint(base.copy())
    assert fingerprint(base) != fingerprint(base.astype(np.float64))
    assert fingerprint(base) != fingerprint(base.reshape(3, 2))
    changed = base.copy()
    changed[1, 2] = 99
    assert fingerprint(base) != fingerprint(changed)
    # A transposed view and its contiguous copy hold the same values.
    assert fingerprint(base.T) == fingerprint(np.ascontiguousarray(base.T))
    assert fingerprint(np.int64(3)) == fingerprint(3)
    assert fingerprint(np.bool_(True)) == fingerprint(True)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Data:
    def __init__(self, content: str) -> None:
        self.content = content

    def fingerprint(self) -> str:
        return fingerprint(self.content)


def test_enums_dataclasses_and_fingerprintable_objects_should_be_supported() -> None:
    assert fingerprint(Color.RED) != fingerprint("red")
    assert fingerprint(Point(1, 2)) == fingerprint(Point(1, 2))
    assert fingerprint(Point(1, 2)) != fingerprint(Point(2, 1))
    assert fingerprint(Data("a")) == fingerprint(Data("a"))
    assert fingerprint(Data("a")) != fingerprint(Data("b"))


def test_unsupported_objects_should_raise_instead_of_hashing_repr() -> None:
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint(object())


def test_unordered_fingerprint_should_ignore_order_but_count_duplicates() -> None:
    assert fingerprint_unordered(["a", {"b": 1}, 3]) == fingerprint_unordered([3, "a", {"b": 1}])
    assert fingerprint_unordered(["a", "a"]) != fingerprint_unordered(["a"])
    assert fingerprint_unordered(["a", "b"]) != fingerprint(["a", "b"])
    assert fingerprint_unordered([]) == fingerprint_unordered(iter([]))


def test_file_fingerprints_should_follow_content_not_names_or_order(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("intent: greet")
    (tmp_path / "b.yml").write_text("intent: bye")
    (tmp_path / "renamed.yml").write_text("intent: greet")
    first = fingerprint_files([tmp_path / "a.yml", tmp_path / "b.yml"])
    assert fingerprint_files([tmp_path / "b.yml", tmp_path / "a.yml"]) == first
    assert fingerprint_files([tmp_path / "renamed.yml", tmp_path / "b.yml"]) == first
    (tmp_path / "b.yml").write_text("intent: goodbye")
    assert fingerprint_files([tmp_path / "a.yml", tmp_path / "b.yml"]) != first


def test_file_fingerprints_should_expand_directories(tmp_path: Path) -> None:
    (tmp_path / "data" / "nlu").mkdir(parents=True)
    (tmp_path / "data" / "nlu" / "x.yml").write_text("x")
    (tmp_path / "data" / "y.yml").write_text("y")
    assert fingerprint_files([tmp_path / "data"]) == fingerprint_files(
        [tmp_path / "data" / "y.yml", tmp_path / "data" / "nlu" / "x.yml"]
    )
    assert file_fingerprint(tmp_path / "data" / "y.yml") == (
        "a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa"
    )


def _node(**changes: object) -> str:
    args: dict = {
        "component_name": "CountVectorsFeaturizer",
        "implementation": "c0de",
        "params": {"analyzer": "word", "min_ngram": 1},
        "input_fingerprints": {"training_data": "aa", "tokenizer": "bb"},
        "package_versions": {"numpy": "2.0"},
    }
    args.update(changes)
    return node_fingerprint(**args)


def test_node_fingerprint_should_change_with_each_ingredient() -> None:
    base = _node()
    assert _node() == base
    assert _node(component_name="LexicalSyntacticFeaturizer") != base
    assert _node(implementation="c0df") != base
    assert _node(runtime={"matmul_dtype": "torch.bfloat16"}) != base
    assert _node(params={"analyzer": "char", "min_ngram": 1}) != base
    assert _node(input_fingerprints={"training_data": "ab", "tokenizer": "bb"}) != base
    assert _node(input_fingerprints={"training_data": "bb", "tokenizer": "aa"}) != base
    assert _node(package_versions={"numpy": "2.1"}) != base


def test_node_fingerprint_should_ignore_the_order_inputs_are_given_in() -> None:
    assert _node(input_fingerprints={"tokenizer": "bb", "training_data": "aa"}) == _node()
    assert _node(params={"min_ngram": 1, "analyzer": "word"}) == _node()


def test_package_versions_should_report_missing_packages() -> None:
    versions = package_versions(["pytest", "surely-not-a-real-package-xyz"])
    assert versions["pytest"] == pytest.__version__
    assert versions["surely-not-a-real-package-xyz"] == NOT_INSTALLED
