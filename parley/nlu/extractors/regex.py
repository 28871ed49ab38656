"""RegexEntityExtractor: entities wherever a regex or lookup table of their name matches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from parley.component import ENTITIES, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.extractors import ENTITIES_KEY
from parley.nlu.patterns import Pattern, compile_patterns, extract_patterns
from parley.params import Bool, Constraint

if TYPE_CHECKING:
    from typing import Self

    import numpy as np


class RegexEntityExtractor(NLUComponent):
    """Extracts an entity for every match of a pattern named like an annotated entity.

    Patterns are the ``regex:`` and ``lookup:`` blocks whose name is an entity annotated
    somewhere in the training data (as in Rasa). Each match appends
    ``{"entity", "start", "end", "value", "extractor"}`` to ``message.data["entities"]``.
    """

    name = "RegexEntityExtractor"
    prepares_training_data = False
    provides = (ENTITIES,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "case_sensitive": Bool(),
        "use_lookup_tables": Bool(),
        "use_regexes": Bool(),
        "use_word_boundaries": Bool(),
    }

    def __init__(
        self,
        *,
        case_sensitive: bool = False,
        use_lookup_tables: bool = True,
        use_regexes: bool = True,
        use_word_boundaries: bool = True,
    ) -> None:
        self.case_sensitive = case_sensitive
        self.use_lookup_tables = use_lookup_tables
        self.use_regexes = use_regexes
        self.use_word_boundaries = use_word_boundaries

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        self.patterns_ = extract_patterns(
            training_data,
            use_regexes=self.use_regexes,
            use_lookup_tables=self.use_lookup_tables,
            use_word_boundaries=self.use_word_boundaries,
            only_entities=True,
        )
        self._compiled = compile_patterns(self.patterns_, self.case_sensitive, self.name)
        return self

    def extract(self, text: str) -> list[dict[str, Any]]:
        self.check_is_fitted()
        entities = []
        for pattern, regex in zip(self.patterns_, self._compiled, strict=True):
            for match in regex.finditer(text):
                if match.end() > match.start():
                    entities.append({
                        "entity": pattern.name, "start": match.start(), "end": match.end(),
                        "value": match.group(), "extractor": self.name,
                    })
        return entities

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        for message in messages:
            found = self.extract(message.text)
            message.data[ENTITIES_KEY] = [*message.data.get(ENTITIES_KEY, []), *found]

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"patterns": [[p.name, p.pattern] for p in self.patterns_]}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.patterns_ = [Pattern(str(n), str(p)) for n, p in state["patterns"]]
        self._compiled = compile_patterns(self.patterns_, self.case_sensitive, self.name)
