"""UnexpecTEDIntentPolicy: is the user's last intent one the stories make likely here?

Rasa's policy of that name, with its keys and defaults. It is TED's network (it subclasses
:class:`~parley.dialogue.policies.ted.TEDPolicy` and reuses its model, training loop and
persistence) put to another task: the labels are the domain's intents, and a dialogue
history learns to lie near every intent that follows it in the stories
(:mod:`parley.dialogue.featurization.intents`; a sigmoid loss, several intents right at
once: :func:`parley.ml.similarity.multi_label_loss`).

After training, each intent said somewhere in the stories gets a threshold from the
training data itself (:func:`parley.dialogue.neural.thresholds.label_quantiles`): the scores
of the histories it did *not* follow, at the ``1 − tolerance`` quantile, never above the
lowest score of a history it did follow. With the default ``tolerance`` 0 that is the
highest score among histories it did not follow (or lower): a score under it is lower than
anywhere the stories say the intent.

Right after a user message it scores the message's intent against the history before it.
Below the intent's threshold — and not the intent it scores highest — it predicts
``action_unlikely_intent`` with confidence 1; otherwise it abstains (all zeros). It
abstains too when an action already ran since the message (so never twice per message),
for intents in ``ignore_intents_list``, for intents no story has, and for intents outside
the domain. Like Rasa's, it sees conversations as the stories show them (rule-only turns
and ``action_unlikely_intent`` left out). Its priority 2 puts it under rules (6) and
memoization (3), over TED (1): a rule or a remembered story that predicts with confidence
1 wins; otherwise the warning runs first, then the policies predict again as if it had not.

Differences from Rasa, on purpose:

- The prediction's ``reason`` holds what Rasa puts in the action's metadata: the intent's
  score and threshold, and the best-scoring intents (``ranking_length``).
- ``similarity_type``, ``loss_type``, ``entity_recognition`` and ``BILOU_flag`` are
  accepted as in Rasa, which overrides them (inner, cross-entropy, off, off); Parley warns
  when they are set to something else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, UserUttered
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.featurization.intents import intent_examples, intent_prediction_states
from parley.dialogue.featurization.state import StateFeaturizer
from parley.dialogue.policies.base import ACTION_UNLIKELY_INTENT
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.dialogue.policies.ted import (
    CONCAT_DIMENSION, DENSE_DIMENSION, TRANSFORMER_LAYERS, TRANSFORMER_SIZE, TEDPolicy,
)
from parley.errors import ConfigError, DataError, warn
from parley.ml.collector import collector_paused
from parley.ml.torch_env import torch_threads
from parley.params import Constraint, Float, Int, ListOf, Str

if TYPE_CHECKING:
    from typing import Self

    from parley.dialogue.featurization.trackers import Examples
    from parley.dialogue.neural.model import Architecture

# Rasa's defaults where they differ from TED's.
UNEXPECTED_DENSE = {**{k: v for k, v in DENSE_DIMENSION.items()
                       if k != "action_text" and not k.startswith("label_")},
                    "label_intent": 20}
UNEXPECTED_CONCAT = {"text": CONCAT_DIMENSION["text"]}
UNEXPECTED_SIZE = {k: TRANSFORMER_SIZE[k] for k in ("text", "dialogue")}
UNEXPECTED_LAYERS = {k: TRANSFORMER_LAYERS[k] for k in ("text", "dialogue")}
ROUNDING = 1e-5  # relative float32 noise of a score between batched and single inference
# Settings Rasa fixes for this policy whatever the config says.
FIXED: dict[str, Any] = {"similarity_type": "inner", "loss_type": "cross_entropy",
                         "entity_recognition": False, "BILOU_flag": False}
# TED's keys that Rasa's UnexpecTEDIntentPolicy does not have.
NOT_KEYS = {"maximum_positive_similarity", "maximum_negative_similarity",
            "use_maximum_negative_similarity", "negative_margin_scale",
            "constrain_similarities", "model_confidence", "e2e_confidence_threshold"}


class UnexpecTEDIntentPolicy(TEDPolicy):
    """Predicts ``action_unlikely_intent`` when the user says what the stories make
    unlikely (see the module docstring)."""

    name: ClassVar[str] = "UnexpecTEDIntentPolicy"
    default_priority: ClassVar[int] = 2
    # Rasa's UnexpecTED judges the user's intent, never the words of end-to-end turns.
    uses_text_features: ClassVar[bool] = False

    param_constraints: ClassVar[dict[str, Constraint]] = {
        **{k: v for k, v in TEDPolicy.param_constraints.items() if k not in NOT_KEYS},
        "ignore_intents_list": ListOf(Str(nonempty=True)),
        "tolerance": Float(0, 1),
        "ranking_length": Int(min=0),
    }

    # The loss-shape fields of TED's architecture that this policy has no keys for (its
    # sigmoid loss does not read them).
    maximum_positive_similarity = 0.8
    maximum_negative_similarity = -0.2
    use_maximum_negative_similarity = True
    negative_margin_scale = 0.8
    constrain_similarities = False

    def __init__(
        self,
        *,
        max_history: int | None = None,
        priority: int = 2,
        hidden_layers_sizes: dict[str, list[int]] = {"text": []},  # noqa: B006 - never mutated
        dense_dimension: int | dict[str, int] = UNEXPECTED_DENSE,  # noqa: B006
        concat_dimension: int | dict[str, int] = UNEXPECTED_CONCAT,  # noqa: B006
        encoding_dimension: int = 50,
        transformer_size: int | dict[str, int] = UNEXPECTED_SIZE,  # noqa: B006
        number_of_transformer_layers: int | dict[str, int] = UNEXPECTED_LAYERS,  # noqa: B006
        number_of_attention_heads: int = 4,
        use_key_relative_attention: bool = False,
        use_value_relative_attention: bool = False,
        max_relative_position: int | None = 5,
        unidirectional_encoder: bool = False,
        batch_size: int | list[int] = [64, 256],  # noqa: B006
        batch_strategy: str = "balanced",
        epochs: int = 1,
        random_seed: int | None = None,
        learning_rate: float = 0.001,
        embedding_dimension: int = 20,
        number_of_negative_examples: int = 20,
        ranking_length: int = 10,
        scale_loss: bool = True,
        regularization_constant: float = 0.001,
        drop_rate_dialogue: float = 0.1,
        drop_rate: float = 0.0,
        drop_rate_label: float = 0.0,
        drop_rate_attention: float = 0.0,
        connection_density: float = 0.2,
        use_sparse_input_dropout: bool = True,
        use_dense_input_dropout: bool = True,
        use_masked_language_model: bool = False,
        evaluate_every_number_of_epochs: int = 20,
        evaluate_on_number_of_examples: int = 0,
        tensorboard_log_directory: str | None = None,
        tensorboard_log_level: str = "epoch",
        checkpoint_model: bool = False,
        featurizers: list[str] | None = None,
        ignore_intents_list: list[str] = [],  # noqa: B006
        tolerance: float = 0.0,
        split_entities_by_comma: bool | dict[str, bool] = True,
        similarity_type: str = "inner",
        entity_recognition: bool = False,
        BILOU_flag: bool = False,  # noqa: N803 - Rasa's name
        loss_type: str = "cross_entropy",
    ) -> None:
        self.max_history = max_history
        self.priority = priority
        self.hidden_layers_sizes = hidden_layers_sizes
        self.dense_dimension = dense_dimension
        self.concat_dimension = concat_dimension
        self.encoding_dimension = encoding_dimension
        self.transformer_size = transformer_size
        self.number_of_transformer_layers = number_of_transformer_layers
        self.number_of_attention_heads = number_of_attention_heads
        self.use_key_relative_attention = use_key_relative_attention
        self.use_value_relative_attention = use_value_relative_attention
        self.max_relative_position = max_relative_position
        self.unidirectional_encoder = unidirectional_encoder
        self.batch_size = batch_size
        self.batch_strategy = batch_strategy
        self.epochs = epochs
        self.random_seed = random_seed
        self.learning_rate = learning_rate
        self.embedding_dimension = embedding_dimension
        self.number_of_negative_examples = number_of_negative_examples
        self.ranking_length = ranking_length
        self.scale_loss = scale_loss
        self.regularization_constant = regularization_constant
        self.drop_rate_dialogue = drop_rate_dialogue
        self.drop_rate = drop_rate
        self.drop_rate_label = drop_rate_label
        self.drop_rate_attention = drop_rate_attention
        self.connection_density = connection_density
        self.use_sparse_input_dropout = use_sparse_input_dropout
        self.use_dense_input_dropout = use_dense_input_dropout
        self.use_masked_language_model = use_masked_language_model
        self.evaluate_every_number_of_epochs = evaluate_every_number_of_epochs
        self.evaluate_on_number_of_examples = evaluate_on_number_of_examples
        self.tensorboard_log_directory = tensorboard_log_directory
        self.tensorboard_log_level = tensorboard_log_level
        self.checkpoint_model = checkpoint_model
        self.featurizers = featurizers
        self.ignore_intents_list = ignore_intents_list
        self.tolerance = tolerance
        self.split_entities_by_comma = split_entities_by_comma
        self.similarity_type = similarity_type
        self.entity_recognition = entity_recognition
        self.BILOU_flag = BILOU_flag
        self.loss_type = loss_type

    # --- what differs from TED's training ----------------------------------------------------
    def _architecture(self, featurizer: StateFeaturizer) -> Architecture:
        """TED's, over max-history dialogues (newest state first, read at it), with the
        intents (one-hot) as labels."""
        n = len(featurizer.intents)
        return replace(super()._architecture(featurizer), causal=False,
                       label_widths={"intent": n}, n_labels=n,
                       similarity_type=FIXED["similarity_type"], loss_type=FIXED["loss_type"])

    def fit(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
            text_features: Any = None) -> Self:
        self.quantiles_: dict[str, list[float]] = {}  # stays empty without stories
        return super().fit(trackers, domain, text_features)

    def _examples(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> Examples:
        for key, value in FIXED.items():
            if getattr(self, key) != value:
                warn(f"{self.name}: {key} is always {value!r} for this policy (as in Rasa); "
                     f"the configured {getattr(self, key)!r} is ignored.")
        examples = intent_examples(trackers, domain, self.max_history)
        said = {str(i) for row in examples.labels for i in row}
        unknown = sorted(said - set(domain.intent_names))
        if unknown:
            raise DataError(f"{self.name}: the stories use intents that are not in the domain: "
                            f"{', '.join(unknown)}.",
                            hint="Declare them under intents: in the domain.")
        return examples

    def _train(self, examples: Examples, epochs: int, entities: Any = None, *,
               seed: int) -> None:
        # (``entities``: TED's entity targets; UnexpecTED tags no entities, it is None)
        from parley.dialogue.neural.intents import (
            IntentTrainer, label_quantiles, padded, similarities,
        )
        from parley.ml.training import Schedule

        assert self.model_ is not None
        dialogues, label_sets = self._dialogues(examples)
        schedule = Schedule(
            epochs=epochs, batch_size=self.batch_size, batch_strategy=self.batch_strategy,
            learning_rate=self.learning_rate, regularization_constant=self.regularization_constant,
            evaluate_every_number_of_epochs=self.evaluate_every_number_of_epochs,
            evaluate_on_number_of_examples=self.evaluate_on_number_of_examples,
            checkpoint_model=self.checkpoint_model)
        trainer = IntentTrainer(self.model_, dialogues, padded(label_sets), self._label_inputs(),
                                self.number_of_negative_examples, schedule, seed,
                                description=f"{self.name} epochs")
        # (the collector paused, as for DIET: the steps make no cycles, and its walks were
        # ~4% of the CPU of a loop of e2ebot's TED steps under perf)
        with torch_threads(), collector_paused():
            trainer.train()
        # The thresholds' pass on one thread, wherever it trains: its sums follow the
        # count of threads, and a policy trained in a process of its own runs one
        # (parley/training/policy_process.py).
        with torch_threads(1), collector_paused():
            scores = similarities(self.model_, dialogues, self._label_inputs())
        intents = self.featurizer_.intents
        self.quantiles_ = {intents[label]: values
                           for label, values in label_quantiles(scores, label_sets).items()}

    def _dialogues(self, examples: Examples) -> tuple[Any, list[list[int]]]:
        from parley.dialogue.neural.training import Dialogues

        inputs = self.featurizer_.encode(examples.table.states, self.text_features_)
        index = {name: i for i, name in enumerate(self.featurizer_.intents)}
        label_sets = [[index[str(i)] for i in row] for row in examples.labels]
        return Dialogues.build(inputs, examples.histories, causal=False), label_sets

    def _label_arrays(self) -> dict[str, np.ndarray]:
        """The intents, one-hot: the labels."""
        return {"intent": np.eye(len(self.featurizer_.intents), dtype=np.float32)}

    # --- prediction ------------------------------------------------------------------------
    def thresholds(self) -> dict[str, float]:
        """Each intent's threshold at the configured ``tolerance``."""
        from parley.dialogue.neural.thresholds import threshold

        self.check_is_fitted()
        return {intent: threshold(values, self.tolerance)
                for intent, values in self.quantiles_.items()}

    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                rule_only_data: dict[str, Any] | None = None) -> PolicyPrediction:
        self.check_is_fitted()
        probabilities = self.default_predictions(domain)
        intent, why_not = self._query_intent(tracker, domain)
        if intent is None:
            return PolicyPrediction(probabilities, self.name, self.priority, reason=why_not)
        states = intent_prediction_states(tracker, domain, self.max_history, rule_only_data)
        scores = dict(zip(self.featurizer_.intents, self._intent_scores(states), strict=True))
        limit = self.thresholds()[intent]
        best = max(scores, key=lambda i: scores[i])
        # (below by more than float rounding: a story's own history, scored alone rather
        # than in a batch, may come out a rounding error under the threshold it set)
        unlikely = scores[intent] < limit - ROUNDING * max(1.0, abs(limit)) and intent != best
        if unlikely:
            if ACTION_UNLIKELY_INTENT not in domain.action_names:
                raise ConfigError(f"the domain lacks '{ACTION_UNLIKELY_INTENT}'; "
                                  f"{self.name} needs it (Rasa's default actions include it).")
            probabilities[domain.action_names.index(ACTION_UNLIKELY_INTENT)] = 1.0
        return PolicyPrediction(probabilities, self.name, self.priority,
                                reason=self._reason(intent, scores, unlikely))

    def predict_with_texts(self, tracker: DialogueStateTracker, domain: Domain,
                           rule_only_data: dict[str, Any] | None = None,
                           featurize: Any = None) -> PolicyPrediction:
        """As :meth:`predict`: the texts of the conversation are not read."""
        return self.predict(tracker, domain, rule_only_data)

    def _query_intent(self, tracker: DialogueStateTracker,
                      domain: Domain) -> tuple[str | None, str]:
        """The intent to judge, or None and why none is (Rasa's ``_should_skip_prediction``
        and ``_should_check_for_intent``)."""
        if not self._has_network():
            return None, "no stories to learn from"
        for event in reversed(tracker.applied_events()):
            if isinstance(event, ActionExecuted):
                return None, "an action ran since the user's message"
            if isinstance(event, UserUttered):
                intent = event.intent_name
                if not intent or intent not in domain.intent_names:
                    return None, "the user's message has no intent of the domain"
                if intent in self.ignore_intents_list:
                    return None, f"'{intent}' is in ignore_intents_list"
                if intent not in self.quantiles_ or intent not in self.featurizer_.intents:
                    return None, f"no story has '{intent}'"
                return intent, ""
        return None, "no user message yet"

    def _intent_scores(self, states: list[Any]) -> np.ndarray:
        """The history's similarity to every intent (the network in numpy)."""
        return self._predict(states, [range(len(states))], self.text_features_).similarities[0]

    def _reason(self, intent: str, scores: dict[str, float], unlikely: bool) -> str:
        limits = self.thresholds()
        ranked = sorted(scores, key=lambda i: -scores[i])
        if self.ranking_length > 0:
            ranked = ranked[:self.ranking_length]
        ranking = ", ".join(f"{i} {scores[i]:.2f}" for i in ranked)
        verdict = "unlikely" if unlikely else "likely"
        return (f"'{intent}' is {verdict} here: score {scores[intent]:.2f}, threshold "
                f"{limits[intent]:.2f} (tolerance {self.tolerance}); ranking: {ranking}")

    # --- persistence -----------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = super()._state()
        return {**state, "quantiles": self.quantiles_}, arrays

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        super()._set_state(state, arrays)
        self.quantiles_ = {str(k): [float(x) for x in v] for k, v in state["quantiles"].items()}
