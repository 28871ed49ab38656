from __future__ import annotations

import numpy as np
import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, ParleyWarning
from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer


def _fit(texts: list[str], **params: object) -> tuple[CountVectorsFeaturizer, TrainingData]:
    data = TrainingData(examples=[Message(t) for t in texts])
    WhitespaceTokenizer().fit(data).process(data.examples)
    return CountVectorsFeaturizer(**params).fit(data), data  # type: ignore[arg-type]


def _features(
    featurizer: CountVectorsFeaturizer, text: str
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(sentence counts, per-token counts) by term."""
    message = Message(text)
    WhitespaceTokenizer().fit(TrainingData()).process([message])
    featurizer.process([message])
    terms = sorted(featurizer.vocabulary_, key=featurizer.vocabulary_.__getitem__)
    record = message.data["features"][-1]

    def named(row: object) -> dict[str, float]:
        return {terms[i]: float(v) for i, v in zip(row.indices, row.data, strict=True)}  # type: ignore[attr-defined]

    return named(record.sentence), [named(record.sequence[i]) for i in range(record.sequence.shape[0])]


def test_word_vocabulary_should_be_sorted_lowercased_words() -> None:
    featurizer, _ = _fit(["Hello World", "hello there"])
    assert list(featurizer.vocabulary_) == ["hello", "there", "world"]


def test_digit_only_words_should_share_one_feature() -> None:
    featurizer, _ = _fit(["book 2 seats", "book 15 seats", "room a123"])
    assert "__number__" in featurizer.vocabulary_
    assert "a123" in featurizer.vocabulary_
    sentence, _ = _features(featurizer, "book 99 seats")
    assert sentence["__number__"] == 1


def test_sentence_should_count_and_sequence_should_have_a_row_per_token() -> None:
    featurizer, _ = _fit(["hello hello world"])
    sentence, tokens = _features(featurizer, "hello world hello unknown")
    assert sentence == {"hello": 2, "world": 1}
    assert tokens == [{"hello": 1}, {"world": 1}, {"hello": 1}, {}]


def test_word_ngrams_should_span_tokens_in_the_sentence_only() -> None:
    featurizer, _ = _fit(["book a flight"], max_ngram=2)
    assert set(featurizer.vocabulary_) == {"book", "a", "flight", "book a", "a flight"}
    sentence, tokens = _features(featurizer, "book a flight")
    assert sentence["a flight"] == 1
    assert all(" " not in term for row in tokens for term in row)


def test_char_wb_should_pad_words_with_spaces() -> None:
    featurizer, _ = _fit(["hi"], analyzer="char_wb", min_ngram=1, max_ngram=3)
    assert set(featurizer.vocabulary_) == {" ", "h", "i", " h", "hi", "i ", " hi", "hi "}
    sentence, _ = _features(featurizer, "hi hi")
    assert sentence[" "] == 4 and sentence["hi "] == 2


def test_char_wb_should_count_a_short_word_once_whole() -> None:
    featurizer, _ = _fit(["a"], analyzer="char_wb", min_ngram=2, max_ngram=5)
    assert set(featurizer.vocabulary_) == {" a", "a ", " a "}


def test_char_ngrams_should_cross_word_borders() -> None:
    featurizer, _ = _fit(["ab cd"], analyzer="char", min_ngram=2, max_ngram=2)
    assert set(featurizer.vocabulary_) == {"ab", "b ", " c", "cd"}


def test_min_df_max_df_and_max_features_should_prune_the_vocabulary() -> None:
    texts = ["the cat", "the dog", "the cat sat"]
    assert set(_fit(texts, min_df=2)[0].vocabulary_) == {"the", "cat"}
    assert set(_fit(texts, max_df=0.9)[0].vocabulary_) == {"cat", "dog", "sat"}
    assert set(_fit(texts, max_features=2)[0].vocabulary_) == {"the", "cat"}


def test_stop_words_and_strip_accents_should_apply() -> None:
    featurizer, _ = _fit(["the café is open"], stop_words=["the", "is"], strip_accents="unicode")
    assert set(featurizer.vocabulary_) == {"cafe", "open"}


def test_unseen_words_should_map_to_the_oov_token() -> None:
    featurizer, _ = _fit(["hello OOV", "hello there"], OOV_token="OOV")
    sentence, _ = _features(featurizer, "hello stranger danger")
    assert sentence == {"hello": 1, "oov": 2}


def test_oov_words_should_be_treated_as_the_oov_token_in_training() -> None:
    featurizer, _ = _fit(["hello rare", "hello there"], OOV_token="oov", OOV_words=["rare"])
    assert "rare" not in featurizer.vocabulary_
    assert "oov" in featurizer.vocabulary_


def test_messages_without_tokens_should_get_empty_features() -> None:
    featurizer, _ = _fit(["hello"])
    sentence, tokens = _features(featurizer, "")
    assert sentence == {} and tokens == []


@pytest.mark.parametrize("params", [
    {"analyzer": "chars"}, {"min_ngram": 3, "max_ngram": 2}, {"max_df": 1.5},
    {"stop_words": "english"}, {"strip_accents": "latin"}, {"max_features": 0},
])
def test_bad_params_should_raise_config_error(params: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        _fit(["hello"], **params)


def test_missing_tokens_should_name_the_tokenizer() -> None:
    with pytest.raises(ConfigError, match="tokenizer"):
        CountVectorsFeaturizer().fit(TrainingData(examples=[Message("hi")]))


def test_char_wb_sentence_should_equal_the_sum_of_token_rows() -> None:
    featurizer, data = _fit(["hello big world", "say hello"], analyzer="char_wb", max_ngram=4)
    featurizer.process(data.examples)
    record = data.examples[0].data["features"][-1]
    assert np.array_equal(record.sentence.toarray()[0], record.sequence.toarray().sum(axis=0))


@pytest.mark.parametrize(("min_df", "max_df"), [(0.9, 0.1), (5, 2)])
def test_min_df_above_max_df_should_be_refused_when_built(min_df, max_df) -> None:
    with pytest.raises(ConfigError, match="min_df .* must not be greater than max_df"):
        CountVectorsFeaturizer.from_params({"min_df": min_df, "max_df": max_df})


def test_a_vocabulary_pruned_to_nothing_should_warn() -> None:
    with pytest.warns(ParleyWarning, match="leave no word"):
        featurizer, _ = _fit(["hello world", "hello there"], min_df=1_000)
    assert featurizer.vocabulary_ == {}


@pytest.mark.parametrize("params", [
    {}, {"max_ngram": 2}, {"analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
    {"analyzer": "char", "min_ngram": 2, "max_ngram": 3},
    {"OOV_token": "oov", "OOV_words": ["zebra"]},
])
def test_one_message_should_get_the_arrays_a_batch_gives_it(params: dict[str, object]) -> None:
    """A parse counts with dictionaries, a batch with numpy: the same CSR arrays."""
    featurizer, _ = _fit(["hello hello world", "book a flight to berlin 42", "zebra crossing",
                          "Hello there"], **params)
    texts = ["hello hello there", "a flight to paris 7 zebra", "", "!!", "world world world"]
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
