"""Regular expressions from a project's ``regex:`` and ``lookup:`` blocks.

Shared by RegexFeaturizer (every pattern) and RegexEntityExtractor (only patterns named
like an annotated entity). A ``regex:`` block gives one pattern per example, used as
written; a ``lookup:`` block gives one pattern that matches any of its elements, escaped,
longest first (so ``new york city`` wins over ``new york``), and with ``\\b`` around each
element when ``use_word_boundaries`` is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parley.data.training_data import TrainingData
from parley.errors import ConfigError


@dataclass(frozen=True)
class Pattern:
    name: str
    pattern: str


def extract_patterns(
    training_data: TrainingData,
    *,
    use_regexes: bool = True,
    use_lookup_tables: bool = True,
    use_word_boundaries: bool = True,
    only_entities: bool = False,
) -> list[Pattern]:
    """The patterns of the training data in file order: regexes first, then lookups."""
    entities = training_data.entities if only_entities else None
    patterns: list[Pattern] = []
    if use_regexes:
        for name, expressions in training_data.regexes.items():
            if entities is None or name in entities:
                patterns.extend(Pattern(name, expression) for expression in expressions)
    if use_lookup_tables:
        for name, elements in training_data.lookups.items():
            if (entities is None or name in entities) and elements:
                patterns.append(Pattern(name, lookup_regex(elements, use_word_boundaries)))
    return patterns


def lookup_regex(elements: list[str], use_word_boundaries: bool) -> str:
    unique = sorted({e.strip() for e in elements if e.strip()}, key=lambda e: (-len(e), e))
    escaped = [re.escape(e) for e in unique]
    if use_word_boundaries:
        escaped = [rf"\b{e}\b" for e in escaped]
    return "(" + "|".join(escaped) + ")"


def compile_patterns(
    patterns: list[Pattern], case_sensitive: bool, component: str
) -> list[re.Pattern[str]]:
    flags = 0 if case_sensitive else re.IGNORECASE
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p.pattern, flags))
        except re.error as error:
            raise ConfigError(
                f"{component}: the regex {p.pattern!r} of '{p.name}' is not a valid regular "
                f"expression ({error})."
            ) from None
    return compiled
