"""EntitySynonymMapper: maps extracted entity values to their canonical synonym."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from parley.component import NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import warn
from parley.nlu.extractors import ENTITIES_KEY
from parley.params import Constraint

if TYPE_CHECKING:
    from typing import Self

    import numpy as np


class EntitySynonymMapper(NLUComponent):
    """Replaces an entity's value when its lower-cased text is a known synonym.

    Synonyms come from ``synonym:`` blocks and from annotated entities whose value differs
    from their text (``[NYC]{"entity": "city", "value": "New York"}``). A mapped entity
    gets ``"processors": ["EntitySynonymMapper"]``. Only ``message.data["entities"]`` (what
    extractors found) is changed, never a training example's annotations.
    """

    name = "EntitySynonymMapper"
    prepares_training_data = False

    param_constraints: ClassVar[dict[str, Constraint]] = {}

    def __init__(self) -> None:
        pass

    def fit(self, training_data: TrainingData) -> Self:
        synonyms: dict[str, str] = {}

        def add(text: str, value: str) -> None:
            if text == value:
                return
            key = text.lower()
            if key in synonyms and synonyms[key] != value:
                warn(f"'{text}' is a synonym of '{synonyms[key]}' and of '{value}'; "
                     f"{self.name} maps it to '{value}'.")
            synonyms[key] = value

        for variant, value in training_data.entity_synonyms.items():
            add(variant, str(value))
        for example in training_data.examples:
            for entity in example.entities:
                add(example.text[entity.start:entity.end], str(entity.value))
        self.synonyms_ = synonyms
        return self

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        for message in messages:
            for entity in message.data.get(ENTITIES_KEY, []):
                replacement = self.synonyms_.get(str(entity.get("value")).lower())
                if replacement is not None:
                    entity["value"] = replacement
                    entity.setdefault("processors", []).append(self.name)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"synonyms": self.synonyms_}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.synonyms_ = {str(k): str(v) for k, v in dict(state["synonyms"]).items()}
