"""ResponseSelector: picks the response of a retrieval intent (``faq/ask_name``).

A DIET network with Rasa's ResponseSelector defaults (no transformer, two hidden layers,
``scale_loss``) that learns, from the examples of retrieval intents, which response key a
text belongs to. ``retrieval_intent`` limits it to one retrieval intent (several selectors
can share a pipeline); ``use_text_as_label`` learns the response texts themselves as labels
(their words, from a small vocabulary of the response texts) instead of the keys.

The parse result gets Rasa's ``response_selector`` entry::

    {"all_retrieval_intents": ["faq"],
     "default": {"response": {"responses": [...], "confidence": 0.93,
                              "intent_response_key": "faq/ask_name",
                              "utter_action": "utter_faq/ask_name"},
                 "ranking": [{"intent_response_key": "faq/ask_name", "confidence": 0.93}, ...]}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import RESPONSE
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.classifiers.calibration import IDENTITY_TOP_MAP
from parley.nlu.neural.diet import DIETClassifier
from parley.params import Bool, Constraint, NoneOr, Str, keyword_signature

if TYPE_CHECKING:
    from typing import Self

RESPONSE_SELECTOR_KEY = "response_selector"
DEFAULT_SELECTOR = "default"
_WORD = re.compile(r"\w+")
# DIET's parameters are ResponseSelector's too, with Rasa's ResponseSelector defaults where
# they differ; DIET's entity and task switches are not ResponseSelector keys.
DIET_DEFAULTS: dict[str, Any] = {
    "transformer_size": None, "number_of_transformer_layers": 0, "scale_loss": True,
    "connection_density": 1.0, "use_sparse_input_dropout": False,
    # Responses are chosen, not gated by a fallback threshold: no extra trainings to
    # calibrate them unless asked for.
    "calibration_folds": 0,
}
NOT_KEYS = ("intent_classification", "entity_recognition", "BILOU_flag",
            "split_entities_by_comma")


class ResponseSelector(DIETClassifier):
    name: ClassVar[str] = "ResponseSelector"
    provides: ClassVar[tuple[str, ...]] = (RESPONSE,)
    default_hidden_layers: ClassVar[dict[str, list[int]]] = {"text": [256, 128], "label": [256, 128]}

    param_constraints: ClassVar[dict[str, Constraint]] = {
        **{k: v for k, v in DIETClassifier.param_constraints.items() if k not in NOT_KEYS},
        "retrieval_intent": NoneOr(Str(nonempty=True)),
        "use_text_as_label": Bool(),
    }

    def __init__(self, *, retrieval_intent: str | None = None, use_text_as_label: bool = False,
                 **diet_params: Any) -> None:
        unknown = sorted(set(diet_params) - set(self.param_names()))
        if unknown:
            raise TypeError(f"ResponseSelector() got an unexpected keyword argument '{unknown[0]}'")
        super().__init__(**{**DIET_DEFAULTS, **diet_params},
                         intent_classification=True, entity_recognition=False)
        del self.intent_classification, self.entity_recognition  # not ResponseSelector keys
        del self.BILOU_flag, self.split_entities_by_comma
        self.retrieval_intent = retrieval_intent
        self.use_text_as_label = use_text_as_label

    __init__.__signature__ = keyword_signature(  # type: ignore[attr-defined]
        __init__, DIETClassifier.__init__, NOT_KEYS, DIET_DEFAULTS)

    # --- what is learned ---------------------------------------------------------------------
    def _learns_labels(self) -> bool:
        return True

    def _learns_entities(self) -> bool:
        return False

    def _examples(self, training_data: TrainingData) -> list[Message]:
        self._responses = training_data.responses
        return [m for m in training_data.examples if m.text and m.response_key is not None
                and (self.retrieval_intent is None or m.base_intent == self.retrieval_intent)]

    def _label_of(self, message: Message) -> str | None:
        if self.use_text_as_label:
            return self._response_text(message.intent or "")
        return message.intent

    def _response_text(self, intent_response_key: str) -> str | None:
        variants = getattr(self, "_responses", {}).get(f"utter_{intent_response_key}", [])
        texts = [v.get("text") for v in variants if isinstance(v, dict) and v.get("text")]
        return str(texts[0]) if texts else None

    def _label_inputs(self) -> np.ndarray:
        if not self.use_text_as_label:
            return super()._label_inputs()
        # Each label text as a bag of its words, over the words of all label texts.
        words = [sorted(set(_WORD.findall(label.lower()))) for label in self.labels_]
        vocabulary = {w: i for i, w in enumerate(sorted({w for ws in words for w in ws}))}
        out = np.zeros((len(self.labels_), max(len(vocabulary), 1)), dtype=np.float32)
        for row, ws in enumerate(words):
            out[row, [vocabulary[w] for w in ws]] = 1.0
        return out

    def _architecture(self, layout: list[list[Any]], tag_sets: dict[str, int]) -> Any:
        arch = super()._architecture(layout, tag_sets)
        arch.label_features = self._label_inputs().shape[1] if self.labels_ else 0
        return arch

    # --- training ----------------------------------------------------------------------------
    def fit(self, training_data: TrainingData) -> Self:
        examples = self._examples(training_data)
        if not examples:  # Rasa too trains nothing without retrieval intents
            self._validate()
            self.labels_ = []
            self.tags_ = {}
            self.layout_ = []
            self.keys_: dict[str, str] = {}
            self.temperature_, self.top_map_ = 1.0, IDENTITY_TOP_MAP
            self.responses_: dict[str, list[Any]] = {}
            return self
        super().fit(training_data)
        self.keys_ = {}
        for message in examples:
            label = self._label_of(message)
            if label is not None:
                self.keys_.setdefault(label, message.intent or "")
        self.responses_ = {key: self._responses.get(f"utter_{key}", []) for key in self.keys_.values()}
        self.all_retrieval_intents_ = sorted({m.base_intent or "" for m in examples})
        return self

    def finetune(self, training_data: TrainingData, epoch_fraction: float) -> Self:
        if not self.labels_:
            return self
        return super().finetune(training_data, epoch_fraction)

    # --- prediction --------------------------------------------------------------------------
    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if self.labels_:
            super().process(messages)

    def _write_labels(self, message: Message, confidences: np.ndarray) -> None:
        order = np.argsort(-confidences, kind="stable")
        if self.ranking_length > 0:
            order = order[: self.ranking_length]
        shown = confidences[order]
        if self.renormalize_confidences and self.ranking_length > 0:
            shown = shown / shown.sum()
        ranking = [{"intent_response_key": self.keys_[self.labels_[j]], "confidence": float(c)}
                   for j, c in zip(order, shown, strict=True)]
        best = ranking[0]["intent_response_key"]
        selectors = message.data.setdefault(RESPONSE_SELECTOR_KEY, {})
        known = set(selectors.get("all_retrieval_intents", []))
        selectors["all_retrieval_intents"] = sorted(known | set(self.all_retrieval_intents_))
        selectors[self.retrieval_intent or DEFAULT_SELECTOR] = {
            "response": {"responses": self.responses_.get(str(best), []),
                         "confidence": ranking[0]["confidence"], "intent_response_key": best,
                         "utter_action": f"utter_{best}"},
            "ranking": ranking,
        }

    # --- persistence -------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        if self.labels_:
            state, arrays = super()._state()
        state.update({"keys": self.keys_, "responses": self.responses_,
                      "all_retrieval_intents": getattr(self, "all_retrieval_intents_", [])})
        return state, arrays

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        if state["keys"]:
            super()._set_state(state, arrays)
        else:
            self.labels_, self.tags_, self.layout_ = [], {}, []
            self.temperature_, self.top_map_ = 1.0, IDENTITY_TOP_MAP
        self.keys_ = {str(k): str(v) for k, v in state["keys"].items()}
        self.responses_ = dict(state["responses"])
        self.all_retrieval_intents_ = [str(x) for x in state["all_retrieval_intents"]]
