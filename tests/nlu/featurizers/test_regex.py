from __future__ import annotations

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.featurizers.regex import RegexFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer


def _featurize(text: str, data: TrainingData, **params: object) -> tuple[list[list[float]], list[float]]:
    message = Message(text)
    WhitespaceTokenizer().fit(data).process([message])
    RegexFeaturizer(**params).fit(data).process([message])  # type: ignore[arg-type]
    record = message.data["features"][0]
    return record.sequence.toarray().tolist(), record.sentence.toarray()[0].tolist()


DATA = TrainingData(regexes={"zipcode": [r"\d{5}"]}, lookups={"city": ["Berlin", "new york"]})


def test_tokens_a_pattern_matches_should_be_marked() -> None:
    sequence, sentence = _featurize("move from new york to 10115", DATA)
    #                  zipcode, city
    assert sequence == [[0, 0], [0, 0], [0, 1], [0, 1], [0, 0], [1, 0]]
    assert sentence == [1, 1]


def test_case_sensitive_by_default() -> None:
    assert _featurize("NEW YORK", DATA)[1] == [0, 0]
    assert _featurize("NEW YORK", DATA, case_sensitive=False)[1] == [0, 1]


def test_lookups_should_respect_word_boundaries() -> None:
    assert _featurize("Berliner", DATA)[1] == [0, 0]
    assert _featurize("Berliner", DATA, use_word_boundaries=False)[1] == [0, 1]


def test_regexes_or_lookups_can_be_switched_off() -> None:
    assert _featurize("Berlin 10115", DATA, use_regexes=False)[1] == [1]
    assert _featurize("Berlin 10115", DATA, use_lookup_tables=False)[1] == [1]


def test_additional_patterns_should_widen_the_features() -> None:
    sequence, sentence = _featurize("Berlin", DATA, number_additional_patterns=3)
    assert sentence == [0, 1, 0, 0, 0]


def test_without_patterns_no_features_should_be_added() -> None:
    message = Message("hello")
    WhitespaceTokenizer().fit(TrainingData()).process([message])
    RegexFeaturizer().fit(TrainingData()).process([message])
    assert "features" not in message.data
