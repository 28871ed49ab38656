from __future__ import annotations

import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
from parley.nlu.tokens import Token


def texts(text: str, **params: object) -> list[str]:
    return [t.text for t in WhitespaceTokenizer(**params).fit(TrainingData()).tokenize(text)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("Hi, how are you?", ["Hi", "how", "are", "you"]),
    ("I'm fine!!", ["I", "m", "fine"]),
    ("send 10'000.00 to me@mail.com", ["send", "10'000.00", "to", "me@mail.com"]),
    ("see https://rasa.com/docs?a=1 now", ["see", "https://rasa.com/docs?a=1", "now"]),
    ("it costs -5 or .5", ["it", "costs", "-5", "or", ".5"]),
    ("(hello) [world]", ["hello", "world"]),
    ("a|b c/d", ["a", "b", "c/d"]),
    ("#hashtag @user R&D", ["#hashtag", "@user", "R&D"]),
    ("Hello 😀 world", ["Hello", "world"]),
    ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),
    ("  spaced   out  ", ["spaced", "out"]),
])
def test_should_split_like_rasa(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


def test_text_of_only_symbols_should_become_one_token() -> None:
    assert texts(":)") == [":)"]


def test_empty_text_should_have_no_tokens() -> None:
    assert texts("") == []
    assert texts("   ") == []


def test_offsets_should_point_into_the_text() -> None:
    text = "Book 2 tickets, to New-York!"
    tokens = WhitespaceTokenizer().fit(TrainingData()).tokenize(text)
    assert all(text[t.start:t.end] == t.text for t in tokens)
    assert tokens[0] == Token("Book", 0, 4)


def test_token_pattern_should_split_tokens_further() -> None:
    tokens = WhitespaceTokenizer(token_pattern=r"\w+").fit(TrainingData()).tokenize("e-mail me")
    assert tokens == [Token("e", 0, 1), Token("mail", 2, 6), Token("me", 7, 9)]


def test_invalid_token_pattern_should_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="token_pattern"):
        WhitespaceTokenizer(token_pattern="(").fit(TrainingData())


def test_process_should_write_tokens_and_intent_tokens() -> None:
    message = Message("hello there", intent="greet_user")
    WhitespaceTokenizer().fit(TrainingData()).process([message])
    assert [t.text for t in message.data["tokens"]] == ["hello", "there"]
    assert [t.text for t in message.data["intent_tokens"]] == ["greet_user"]
    assert message.intent == "greet_user"


def test_intent_tokenization_flag_should_split_the_intent() -> None:
    message = Message("hi", intent="greet_user")
    tokenizer = WhitespaceTokenizer(intent_tokenization_flag=True, intent_split_symbol="_")
    tokenizer.fit(TrainingData()).process([message])
    assert message.data["intent_tokens"] == [Token("greet", 0, 5), Token("user", 6, 10)]


@pytest.mark.parametrize("text", [
    "play some jazz music", "  spaced \t out\n", "naïve café 10 000", "a\u00a0b\u2003c",
    "नमस्ते दुनिया", "❶ ❷ three", "x_y z__", "日本語 テキスト", "",
])
def test_plain_texts_should_skip_the_punctuation_rules_with_the_same_tokens(text: str) -> None:
    # a text of word characters and whitespace takes a shortcut past _SEPARATORS
    from parley.nlu.tokenizers import whitespace

    assert whitespace._PLAIN.fullmatch(text)  # noqa: SLF001 - the shortcut's test
    words = [w for w in whitespace._SEPARATORS.sub(" ", text).split()  # noqa: SLF001
             if not whitespace._EMOJI.fullmatch(w)]  # noqa: SLF001
    if not words and text.strip():
        words = [text.strip()]
    assert texts(text) == words


def test_a_token_made_fast_should_be_a_token_like_any_other() -> None:
    import dataclasses

    from parley.nlu.tokens import make_token

    fast, slow = make_token("Paris", 3, 8), Token("Paris", 3, 8)
    assert type(fast) is Token and fast == slow and hash(fast) == hash(slow)
    assert repr(fast) == repr(slow) and dataclasses.astuple(fast) == ("Paris", 3, 8)
    assert fast != make_token("Paris", 3, 9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.start = 0  # type: ignore[misc]
