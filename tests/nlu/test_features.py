from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix, issparse

from parley.data.message import Message
from parley.nlu.features import (
    Features, attach_features, features_of, split_rows, stack_sentence_features, to_dense,
    to_sparse,
)


def _message(text: str, *blocks: tuple[str, list[float]]) -> Message:
    message = Message(text)
    message.data["features"] = [
        Features(csr_matrix((0, len(row))), csr_matrix(np.array([row])), origin)
        for origin, row in blocks
    ]
    return message


def test_stack_should_put_featurizers_side_by_side() -> None:
    messages = [_message("a", ("A", [1, 0]), ("B", [0, 0, 3])),
                _message("b", ("A", [0, 2]), ("B", [4, 0, 0]))]
    stacked = stack_sentence_features(messages)
    assert stacked.shape == (2, 5)
    assert stacked.toarray().tolist() == [[1, 0, 0, 0, 3], [0, 2, 4, 0, 0]]


def test_stack_should_keep_only_the_named_featurizers() -> None:
    messages = [_message("a", ("A", [1, 0]), ("B", [0, 5]))]
    assert stack_sentence_features(messages, ["B"]).toarray().tolist() == [[0, 5]]


def test_stack_should_reject_messages_from_different_pipelines() -> None:
    messages = [_message("a", ("A", [1, 0])), _message("b", ("B", [1, 0]))]
    with pytest.raises(ValueError, match="same featurizers"):
        stack_sentence_features(messages)


def test_stack_without_features_should_say_a_featurizer_is_missing() -> None:
    with pytest.raises(ValueError, match="featurizer"):
        stack_sentence_features([Message("a")])


def test_split_rows_should_cut_blocks_by_offsets() -> None:
    matrix = csr_matrix(np.arange(12).reshape(4, 3))
    blocks = split_rows(matrix, np.array([0, 1, 1, 4]))
    assert [b.shape for b in blocks] == [(1, 3), (0, 3), (3, 3)]
    assert blocks[2].toarray().tolist() == matrix.toarray()[1:].tolist()


def test_attach_should_give_each_message_its_rows() -> None:
    messages = [Message("a b"), Message("c")]
    sequence = csr_matrix(np.array([[1, 0], [0, 1], [1, 1]]))
    sentence = csr_matrix(np.array([[1, 1], [1, 1]]))
    attach_features(messages, sequence, sentence, np.array([0, 2, 3]), "X")
    first, second = (features_of(m)[0] for m in messages)
    assert first.sequence.toarray().tolist() == [[1, 0], [0, 1]]
    assert second.sequence.toarray().tolist() == [[1, 1]]
    assert first.origin == "X" and first.dim == 2


def _dense_message(text: str, *blocks: tuple[str, list[float]]) -> Message:
    message = Message(text)
    message.data["features"] = [
        Features(np.zeros((0, len(row)), dtype=np.float32), np.array([row], dtype=np.float32),
                 origin)
        for origin, row in blocks
    ]
    return message


def test_dense_records_should_say_so_and_keep_their_dim() -> None:
    dense = _dense_message("a", ("LM", [0.5, -1.0, 2.0])).data["features"][0]
    sparse = _message("a", ("A", [1, 0])).data["features"][0]
    assert not dense.is_sparse and dense.dim == 3
    assert sparse.is_sparse and sparse.dim == 2


def test_stack_should_take_dense_features() -> None:
    messages = [_dense_message("a", ("LM", [0.5, -1.0])), _dense_message("b", ("LM", [0.0, 2.0]))]
    stacked = stack_sentence_features(messages)
    assert issparse(stacked) and stacked.format == "csr" and stacked.dtype == np.float64
    assert stacked.toarray().tolist() == [[0.5, -1.0], [0.0, 2.0]]


def test_stack_should_put_dense_and_sparse_features_side_by_side() -> None:
    messages = [_message("a", ("A", [1, 0])), _message("b", ("A", [0, 2]))]
    for message, row in zip(messages, ([0.25, 0.5], [-1.0, 0.0]), strict=True):
        message.data["features"].append(
            Features(np.zeros((0, 2), dtype=np.float32), np.array([row], dtype=np.float32), "LM"))
    assert stack_sentence_features(messages).toarray().tolist() == [[1, 0, 0.25, 0.5],
                                                                     [0, 2, -1.0, 0.0]]
    assert stack_sentence_features(messages, ["LM"]).toarray().tolist() == [[0.25, 0.5],
                                                                           [-1.0, 0.0]]


def test_to_dense_and_to_sparse_should_convert_either_kind() -> None:
    array = np.array([[0.0, 1.5]], dtype=np.float32)
    assert to_dense(array) is array
    assert to_dense(csr_matrix(array)).tolist() == [[0.0, 1.5]]
    assert issparse(to_sparse(array)) and to_sparse(array).toarray().tolist() == [[0.0, 1.5]]


def test_sentence_blocks_side_by_side_should_be_scipys_hstack() -> None:
    """Stacking builds the CSR arrays itself: the very matrix scipy's hstack gives (the
    classifiers' sums then run in the same order), empty rows included."""
    from scipy.sparse import hstack
    from scipy.sparse import random as sparse_random

    from parley.nlu.features import _side_by_side

    blocks = [sparse_random(40, width, density=0.1, format="csr", random_state=seed)
              for seed, width in enumerate([30, 7, 100])]
    expected = hstack(blocks, format="csr")
    found = _side_by_side(blocks)
    assert found.shape == expected.shape
    for name in ("indptr", "indices", "data"):
        assert getattr(found, name).tolist() == getattr(expected, name).tolist()


def test_a_record_from_csr_arrays_should_read_as_the_matrices_it_stands_for() -> None:
    sequence = (np.array([1.0, 2.0, 1.0]), np.array([0, 3, 1], dtype=np.int32),
                np.array([0, 2, 3]))
    sentence = (np.array([1.0, 1.0, 2.0]), np.array([0, 1, 3], dtype=np.int32),
                np.array([0, 3]))
    lazy = Features.from_csr_arrays(sequence, sentence, 5, "X")
    eager = Features(csr_matrix(sequence, shape=(2, 5)), csr_matrix(sentence, shape=(1, 5)), "X")
    for record in (lazy, eager):
        assert record.origin == "X" and record.dim == 5 and record.is_sparse
        values, columns = record.sentence_entries()
        assert values.tolist() == [1.0, 1.0, 2.0] and columns.tolist() == [0, 1, 3]
        assert record.sequence.toarray().tolist() == [[1, 0, 0, 2, 0], [0, 1, 0, 0, 0]]
        assert record.sentence.toarray().tolist() == [[1, 1, 0, 2, 0]]
    assert lazy.sequence is lazy.sequence  # made once
    message = Message("a b")
    message.data["features"] = [lazy]
    assert stack_sentence_features([message]).toarray().tolist() == [[1, 1, 0, 2, 0]]
    with pytest.raises(AttributeError):
        lazy.origin = "Y"  # type: ignore[misc]


def test_sequence_rows_given_as_a_function_should_be_made_once_when_first_read() -> None:
    calls: list[str] = []
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)

    def dense() -> np.ndarray:
        calls.append("dense")
        return rows

    arrays = (np.array([1.0, 2.0]), np.array([0, 3], dtype=np.int32),
              np.array([0, 1, 2], dtype=np.int64))

    def sparse() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        calls.append("sparse")
        return arrays

    later = Features(dense, rows.sum(axis=0, keepdims=True), "Dense")
    assert not later.is_sparse and later.dim == 2 and calls == []
    assert later.sequence is rows and later.sequence is rows and calls == ["dense"]
    record = Features.from_csr_arrays(sparse, (np.ones(1), np.array([3], dtype=np.int32),
                                               np.array([0, 1])), 4, "Sparse")
    assert record.is_sparse and record.dim == 4 and record.sentence_entries()[1].tolist() == [3]
    assert calls == ["dense"]
    assert record.csr_arrays(0) is arrays
    assert record.sequence.toarray().tolist() == [[1, 0, 0, 0], [0, 0, 0, 2]]
    assert calls == ["dense", "sparse"]
