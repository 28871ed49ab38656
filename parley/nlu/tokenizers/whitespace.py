"""WhitespaceTokenizer: Rasa's whitespace splitting with its punctuation rules."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from parley.component import TOKENS, StatelessNLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.tokens import Token, make_token
from parley.params import Bool, Constraint, NoneOr, Regex, Rule, Str

if TYPE_CHECKING:
    from typing import Self

TOKENS_KEY = "tokens"
INTENT_TOKENS_KEY = "intent_tokens"

# Python's ``\w`` leaves out combining marks (Devanagari vowel signs, Arabic harakat,
# accents written as separate code points); without them words of those scripts would be
# cut apart, so they count as word characters here.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u0900-\u0dff\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
)
_WORD = r"\w" + _MARKS
# Characters that may sit inside a token between letters: URL and e-mail characters.
_URL = r"._~:/?#\[\]()@!$&*+,;=\-"

# Punctuation becomes a separator when it
_SEPARATORS = re.compile(
    # ends a word (followed by a space or the end of the text),
    rf"[^{_WORD}#@&]+(?=\s|$)"
    # starts a word, unless a digit follows (keeps "-5", ".5"),
    rf"|(?:\s|^)[^{_WORD}#@&]+(?=[^0-9\s])"
    # or sits between two non-digits and is not a URL character ("a|b", but "10'000.00",
    # "me@mail.com" and "a/b" stay whole).
    rf"|(?<=[^0-9\s])[^{_WORD}{_URL}]+(?=[^0-9\s])"
)
# A text of word characters and whitespace alone (most messages): every match of
# _SEPARATORS is then whitespace only (its classes leave out word characters), so cutting
# leaves the words of str.split() as they are — and the check is a tenth of the cutting.
_PLAIN = re.compile(rf"[{_WORD}\s]*")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff"
    "\ufe0f\u200d\U0001f1e6-\U0001f1ff]+"
)


class WhitespaceTokenizer(StatelessNLUComponent):
    """Splits on whitespace after cutting punctuation off words, like Rasa's tokenizer.

    Writes ``message.data["tokens"]`` (a list of :class:`Token`); messages with an intent
    label also get ``message.data["intent_tokens"]`` (the label split on
    ``intent_split_symbol`` when ``intent_tokenization_flag`` is set, else one token).
    A token that is only emoji is dropped; a text of nothing but symbols (``:)``) becomes
    one token. ``token_pattern`` (a regex) further splits each token into its matches; a
    token it does not match stays whole.
    """

    name = "WhitespaceTokenizer"
    provides = (TOKENS,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "intent_tokenization_flag": Bool(),
        "intent_split_symbol": Str(),
        "token_pattern": NoneOr(Regex()),
    }
    param_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(("intent_split_symbol", "intent_tokenization_flag"),
             lambda symbol, flag: "intent_split_symbol must not be empty when "
             "intent_tokenization_flag is true." if flag and not symbol else None),
    )

    def __init__(
        self,
        *,
        intent_tokenization_flag: bool = False,
        intent_split_symbol: str = "_",
        token_pattern: str | None = None,
    ) -> None:
        self.intent_tokenization_flag = intent_tokenization_flag
        self.intent_split_symbol = intent_split_symbol
        self.token_pattern = token_pattern

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        self.pattern_ = re.compile(self.token_pattern) if self.token_pattern else None
        return self

    # --- prediction --------------------------------------------------------------------
    def tokenize(self, text: str) -> list[Token]:
        self.check_is_fitted()
        # (an ASCII word is never emoji; ❶ is a word character and an emoji)
        words = [w for w in (text if _PLAIN.fullmatch(text) else _SEPARATORS.sub(" ", text)
                             ).split() if w.isascii() or not _EMOJI.fullmatch(w)]
        if not words:
            words = [text.strip()] if text.strip() else []
        tokens = _locate(words, text)
        if self.pattern_ is not None:
            tokens = _split_by_pattern(tokens, self.pattern_)
        return tokens

    def tokenize_intent(self, intent: str) -> list[Token]:
        self.check_is_fitted()
        if not self.intent_tokenization_flag:
            return [Token(intent, 0, len(intent))]
        parts = [p for p in intent.split(self.intent_split_symbol) if p]
        return _locate(parts or [intent], intent)

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        for message in messages:
            message.data[TOKENS_KEY] = self.tokenize(message.text)
            if message.intent is not None:
                message.data[INTENT_TOKENS_KEY] = self.tokenize_intent(message.intent)


def _locate(words: list[str], text: str) -> list[Token]:
    """Tokens for ``words`` found left to right in ``text``."""
    tokens = []
    offset = 0
    find = text.index
    for word in words:
        start = find(word, offset)
        offset = start + len(word)
        tokens.append(make_token(word, start, offset))
    return tokens


def _split_by_pattern(tokens: list[Token], pattern: re.Pattern[str]) -> list[Token]:
    result = []
    for token in tokens:
        pieces = [m for m in pattern.finditer(token.text) if m.group()]
        if not pieces:
            result.append(token)
            continue
        result.extend(
            Token(m.group(), token.start + m.start(), token.start + m.end()) for m in pieces
        )
    return result
