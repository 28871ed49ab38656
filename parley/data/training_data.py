"""NLU training data: examples plus synonyms, regexes, lookup tables and retrieval responses."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from parley.data.message import Message


@dataclass
class TrainingData:
    """Everything the NLU files of a project hold, merged.

    ``synonyms`` maps a canonical value to its variants, as written in ``synonym:`` blocks;
    ``entity_synonyms`` gives the variant → value lookup components use. ``locations`` keeps
    the file and line of each synonym/regex/lookup block for error messages.
    """

    examples: list[Message] = field(default_factory=list)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    intent_metadata: dict[str, Any] = field(default_factory=dict)
    locations: dict[tuple[str, str], tuple[str, int | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    # --- merging -----------------------------------------------------------------------
    def merge(self, *others: TrainingData) -> TrainingData:
        """A new TrainingData with the examples and blocks of all, in order."""
        merged = TrainingData(
            examples=list(self.examples),
            synonyms={k: list(v) for k, v in self.synonyms.items()},
            regexes={k: list(v) for k, v in self.regexes.items()},
            lookups={k: list(v) for k, v in self.lookups.items()},
            responses=dict(self.responses),
            intent_metadata=dict(self.intent_metadata),
            locations=dict(self.locations),
        )
        for other in others:
            merged.examples.extend(other.examples)
            for target, source in (
                (merged.synonyms, other.synonyms),
                (merged.regexes, other.regexes),
                (merged.lookups, other.lookups),
            ):
                for name, values in source.items():
                    known = target.setdefault(name, [])
                    known.extend(v for v in values if v not in known)
            for name, variants in other.responses.items():
                merged.responses.setdefault(name, variants)
            for name, meta in other.intent_metadata.items():
                merged.intent_metadata.setdefault(name, meta)
            for key, where in other.locations.items():
                merged.locations.setdefault(key, where)
        return merged

    def without_duplicate_examples(self) -> TrainingData:
        """The same data with each example once: a repeat of an earlier example's text,
        intent, entities and metadata is dropped (the first keeps its file and line), as
        Rasa's loader does — a duplicate would otherwise weigh double in training and count
        twice in an evaluation."""
        seen: set[str] = set()
        kept = []
        for message in self.examples:
            key = json.dumps([message.text, message.intent,
                              [entity.to_dict() for entity in message.entities], message.metadata],
                             sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                kept.append(message)
        if len(kept) == len(self.examples):
            return self
        return dataclasses.replace(self, examples=kept)

    # --- views -------------------------------------------------------------------------
    @property
    def nlu_examples(self) -> list[Message]:
        """The examples without the end-to-end story texts (a text with no intent), which
        only the featurizers' vocabulary learns from — Rasa's ``nlu_examples``."""
        return [m for m in self.examples if m.intent is not None or m.entities]

    @property
    def intent_examples(self) -> list[Message]:
        return [m for m in self.examples if m.intent is not None]

    @property
    def entity_examples(self) -> list[Message]:
        return [m for m in self.examples if m.entities]

    @property
    def intents(self) -> set[str]:
        """Intent names as the domain lists them (``faq``, not ``faq/ask_name``)."""
        return {m.base_intent for m in self.examples if m.base_intent is not None}

    @property
    def full_intents(self) -> set[str]:
        """Intent labels as written, retrieval sub-intents included."""
        return {m.intent for m in self.examples if m.intent is not None}

    @property
    def retrieval_intents(self) -> set[str]:
        return {m.base_intent for m in self.examples
                if m.response_key is not None and m.base_intent is not None}

    @property
    def entities(self) -> set[str]:
        return {e.entity for m in self.examples for e in m.entities}

    @property
    def entity_roles(self) -> set[str]:
        return {e.role for m in self.examples for e in m.entities if e.role is not None}

    @property
    def entity_groups(self) -> set[str]:
        return {e.group for m in self.examples for e in m.entities if e.group is not None}

    @property
    def entity_synonyms(self) -> dict[str, str]:
        """Variant → canonical value, from ``synonym:`` blocks (lower-cased like Rasa)."""
        return {variant.lower(): value for value, variants in self.synonyms.items()
                for variant in variants}

    def examples_per_intent(self) -> Counter[str]:
        return Counter(m.intent for m in self.examples if m.intent is not None)

    def is_empty(self) -> bool:
        return not (self.examples or self.synonyms or self.regexes or self.lookups
                    or self.responses)
