from __future__ import annotations

import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError
from parley.nlu.featurizers.lexical_syntactic import LexicalSyntacticFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
from tests.conftest import SHARED_DATA, needs_shared_data


def _fit(texts: list[str], **params: object) -> tuple[LexicalSyntacticFeaturizer, list[Message]]:
    data = TrainingData(examples=[Message(t) for t in texts])
    WhitespaceTokenizer().fit(data).process(data.examples)
    featurizer = LexicalSyntacticFeaturizer(**params).fit(data)  # type: ignore[arg-type]
    featurizer.process(data.examples)
    return featurizer, data.examples


def _active(
    featurizer: LexicalSyntacticFeaturizer, message: Message, token: int
) -> set[tuple[int, str, str]]:
    columns = sorted(featurizer.vocabulary_, key=featurizer.vocabulary_.__getitem__)
    row = message.data["features"][0].sequence[token]
    return {columns[i] for i in row.indices}


def test_default_window_should_describe_token_and_neighbours() -> None:
    featurizer, messages = _fit(["Hello big WORLD 42"])
    first = _active(featurizer, messages[0], 0)
    assert (0, "BOS", "True") in first and (0, "title", "True") in first
    assert (1, "low", "True") in first  # the next token, "big"
    assert not any(position == -1 for position, _, _ in first)  # nothing before the first
    last = _active(featurizer, messages[0], 3)
    assert {(0, "EOS", "True"), (0, "digit", "True"), (-1, "upper", "True")} <= last


def test_prefix_and_suffix_features_should_take_characters() -> None:
    featurizer, messages = _fit(["running fast"], features=[["suffix3", "prefix2"]])
    assert _active(featurizer, messages[0], 0) == {(0, "suffix3", "ing"), (0, "prefix2", "ru")}


def test_unseen_values_should_be_ignored() -> None:
    featurizer, _ = _fit(["running"], features=[["suffix3"]])
    message = Message("jumped")
    WhitespaceTokenizer().fit(TrainingData()).process([message])
    featurizer.process([message])
    assert message.data["features"][0].sequence.nnz == 0


def test_sentence_should_sum_the_token_rows() -> None:
    _, messages = _fit(["a b c"])
    record = messages[0].data["features"][0]
    assert (record.sentence.toarray()[0] == record.sequence.toarray().sum(axis=0)).all()


@pytest.mark.parametrize(("features", "match"), [
    ([["low"], ["nope"], ["low"]], "unknown feature 'nope'"),
    ([["pos"]], "SpacyTokenizer"),
    ([["low"], ["low"]], "odd number"),
])
def test_bad_features_should_raise_config_error(features: list[list[str]], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _fit(["hi"], features=features)


@needs_shared_data
def test_process_should_give_the_values_fit_learned_from_on_real_messages() -> None:
    """Prediction looks values up token by token; fit gathers them with array operations
    (``_columns``), and a batch's process by distinct texts: on hwu64-small's test
    messages, with a window that uses every feature, all must give the same active columns
    for every token."""
    from parley.data.formats.nlu_yaml import read_nlu_file
    from parley.nlu.featurizers._tokens import token_offsets, tokens_of
    from parley.nlu.featurizers.lexical_syntactic import TOKEN_TEXT_FEATURES

    texts = [m.text for m in read_nlu_file(
        SHARED_DATA / "hwu64-small" / "test" / "test_nlu.yml").examples[:400]]
    every = ["BOS", "EOS", *TOKEN_TEXT_FEATURES]
    featurizer, messages = _fit(texts, features=[every, every, every])
    expected: set[tuple[int, int]] = set()
    for position, feature, values in featurizer._columns(featurizer._window(),
                                                         tokens_of(messages, "test")):
        for row, value in enumerate(values.tolist()):
            if value and (position, feature, value) in featurizer.vocabulary_:
                expected.add((row, featurizer.vocabulary_[(position, feature, value)]))
    rows, cols = featurizer._entries(tokens_of(messages, "test"))
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == expected
    assert len(rows) == len(expected)
    # and a batch's entries, looked up by distinct text (process's path for many messages)
    all_tokens = tokens_of(messages, "test")
    rows, cols = featurizer._batch_entries(all_tokens, token_offsets(all_tokens))
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == expected
    assert len(rows) == len(expected)


@pytest.mark.parametrize("features", [None, [["low"], ["BOS", "EOS", "suffix2", "prefix2"],
                                             ["title", "digit"]]])
def test_one_message_should_get_the_arrays_a_batch_gives_it(features: object) -> None:
    import numpy as np

    featurizer, _ = _fit(["Hello World", "book 2 TICKETS to Berlin", "hi"], features=features)
    texts = ["Hello there Berlin", "BOOK 3 tickets", "", "x"]
    batch = [Message(t) for t in texts]
    WhitespaceTokenizer().fit(TrainingData()).process(batch)
    featurizer.process(batch)
    for text, together in zip(texts, batch, strict=True):
        alone = Message(text)
        WhitespaceTokenizer().fit(TrainingData()).process([alone])
        featurizer.process([alone])
        for a, b in ((alone.data["features"][-1].sequence, together.data["features"][-1].sequence),
                     (alone.data["features"][-1].sentence, together.data["features"][-1].sentence)):
            assert a.shape == b.shape
            for name in ("data", "indices", "indptr"):
                got, want = getattr(a, name), getattr(b, name)
                assert got.dtype == want.dtype and np.array_equal(got, want), (text, name)
