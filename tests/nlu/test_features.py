from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from parley.data.message import Message
from parley.nlu.features import (
    Features,
    attach_features,
    features_of,
    split_rows,
    stack_sentence_features,
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
