"""BERT's tokenization: the basic tokenizer, then greedy longest-match WordPiece.

The basic tokenizer drops control characters and normalises whitespace, puts spaces around
CJK ideographs (which then stand as one token each), lower-cases and strips accents (for
uncased models), and splits punctuation off. WordPiece then cuts each word into the longest
vocabulary entries from the left, continuations written ``##piece``; a word that cannot be
cut, or longer than ``max_chars_per_word`` characters, becomes ``[UNK]`` as a whole.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from parley.errors import ModelArchiveError

UNK, CLS, SEP, PAD = "[UNK]", "[CLS]", "[SEP]", "[PAD]"
# Distinct words remembered between calls; past this the memory starts afresh.
_CACHE_SIZE = 200_000


def read_vocab(path: Path) -> dict[str, int]:
    """``vocab.txt``: one word piece a line, its id the line number."""
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelArchiveError(f"cannot read the vocabulary {path}: {error}") from None
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for index, piece in enumerate(lines):
        vocab.setdefault(piece.rstrip("\r"), index)
    missing = [t for t in (UNK, CLS, SEP, PAD) if t not in vocab]
    if missing:
        raise ModelArchiveError(f"{path} is not a BERT vocabulary: it lacks {', '.join(missing)}.")
    return vocab


# As the fast (Rust) BERT tokenizer that sentence-transformers runs: line and paragraph
# separators are whitespace, and unassigned code points (Cn) are kept (they become [UNK]).
def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r\u2028\u2029" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    # All non-letter, non-digit ASCII counts, e.g. "$", "^", "`" that Unicode calls symbols.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    """CJK Unified Ideographs and their extensions (not Hiragana, Katakana or Hangul)."""
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPieceTokenizer:
    """Text → word pieces → vocabulary ids, as BERT's own tokenizer does it.

    ``lowercase`` and ``strip_accents`` follow the model's ``tokenizer_config.json``
    (``strip_accents`` None means: strip when lower-casing, as BERT does).
    """

    def __init__(
        self,
        vocab: dict[str, int],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        max_chars_per_word: int = 100,
    ) -> None:
        self.vocab = vocab
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.max_chars_per_word = max_chars_per_word
        self.unk_id = vocab[UNK]
        self.cls_id = vocab[CLS]
        self.sep_id = vocab[SEP]
        self.pad_id = vocab[PAD]
        self._ids_cache: dict[str, list[int]] = {}

    # --- basic tokenizer ---------------------------------------------------------------
    def _clean(self, text: str) -> str:
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            if _is_whitespace(char):
                out.append(" ")
            elif self.tokenize_chinese_chars and _is_cjk(cp):
                out.append(f" {char} ")
            else:
                out.append(char)
        return "".join(out)

    def _split_punctuation(self, word: str) -> list[str]:
        pieces: list[str] = []
        current: list[str] = []
        for char in word:
            if _is_punctuation(char):
                if current:
                    pieces.append("".join(current))
                    current = []
                pieces.append(char)
            else:
                current.append(char)
        if current:
            pieces.append("".join(current))
        return pieces

    def basic_tokenize(self, text: str) -> list[str]:
        """Words and punctuation marks, normalised as the model's vocabulary expects."""
        words: list[str] = []
        for word in self._clean(text).split():
            if self.lowercase:
                word = word.lower()
            if self.strip_accents:
                word = "".join(c for c in unicodedata.normalize("NFD", word)
                               if unicodedata.category(c) != "Mn")
            words.extend(self._split_punctuation(word))
        return words

    # --- WordPiece ---------------------------------------------------------------------
    def wordpiece(self, word: str) -> list[str]:
        """The longest vocabulary pieces from the left; ``[UNK]`` if that fails."""
        if len(word) > self.max_chars_per_word:
            return [UNK]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else f"##{word[start:end]}"
                if piece in self.vocab:
                    break
                end -= 1
            else:
                return [UNK]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text`` (without ``[CLS]``/``[SEP]``)."""
        return [piece for word in self.basic_tokenize(text) for piece in self.wordpiece(word)]

    def ids(self, text: str) -> list[int]:
        """Vocabulary ids of ``text``'s word pieces (without ``[CLS]``/``[SEP]``)."""
        cached = self._ids_cache.get(text)
        if cached is None:
            cached = [self.vocab[piece] for piece in self.tokenize(text)]
            if len(self._ids_cache) >= _CACHE_SIZE:
                self._ids_cache.clear()
            self._ids_cache[text] = cached
        return list(cached)

    def encode(self, text: str) -> list[int]:
        """``[CLS]`` + the ids of ``text`` + ``[SEP]``, as the model sees one sentence."""
        return [self.cls_id, *self.ids(text), self.sep_id]
