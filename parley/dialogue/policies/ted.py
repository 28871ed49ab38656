"""TEDPolicy: the Transformer Embedding Dialogue policy, with Rasa's keys and defaults.

What it learns: for every action of the stories, the ``max_history`` dialogue states before
it (all of them when null; ``featurization.trackers.max_history_examples``), each state
featurized as Rasa's single-state featurizer does (``featurization.state``); the network
(``neural.model``) embeds the dialogue and every action and learns, by the similarity loss,
to put the right action nearest (``neural.training`` over the shared epoch loop). It
predicts a softmax over the domain's actions, the top ``ranking_length`` renormalised.

Differences from Rasa, on purpose (docs/dialogue-policies.md has the table):

- ``max_history`` null trains whole dialogues with causal attention, every action of a
  story in one pass (Rasa 2's full-dialogue layout), not one example per prefix (Rasa 3):
  O(length) rows instead of O(length²); each prediction still sees the whole dialogue.
- ``random_seed`` left null still trains deterministically (seed 42), as DIET does.
- End-to-end texts (``user:`` without an intent, ``bot:``) are read by the NLU pipeline's
  sentence features (``TextFeatures``, handed to ``fit`` by the training run and, for new
  messages, read through the ``featurize`` that :meth:`TEDPolicy.predict_with_texts`
  gets); the dialogue reads a text by its sentence features, not through a text
  transformer over its tokens, so ``concat_dimension`` has no effect and the text
  transformer keys (``text`` of ``transformer_size`` …) serve only entity recognition.
- Entity recognition (``entity_recognition``, ``BILOU_flag``, ``split_entities_by_comma``,
  Rasa's meanings and defaults) learns the entities annotated in ``user:`` texts
  (:mod:`parley.dialogue.neural.entities`); an end-to-end prediction returns those it finds
  in the latest message as an optional ``EntitiesAdded`` event. Its tag set is the tags
  the stories use (Rasa's: every entity of the domain), and as in DIET the CRF allows only
  whole BILOU spans. Like Rasa's, it is off when no user text annotates an entity.
- ``tensorboard_log_directory`` is not supported (a warning).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import finetune_epochs
from parley.data.domain import Domain
from parley.data.events import EntitiesAdded, Event, UserUttered
from parley.data.message import Entity
from parley.data.tracker import ACTION_LISTEN, TEXT, USER, DialogueStateTracker
from parley.dialogue.featurization.state import (
    StateFeaturizer, TextFeatures, TextFeaturizer, last_user_text, shown_texts,
)
from parley.dialogue.featurization.trackers import (
    full_dialogue_examples, max_history_examples,
)
from parley.dialogue.policies.base import (
    FinetunablePolicy, Policy, check_actions_in_domain, prediction_states,
)
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import DataError, warn
from parley.ml.collector import collector_paused
from parley.ml.entity_tags import NO_ENTITY, Span, comma_rule, decode_entities, token_tags
from parley.ml.torch_env import import_torch, seeded, torch_threads
from parley.params import (
    AnyOf, Bool, Choice, Constraint, Float, Hint, Int, ListOf, MappingOf, NoneOr, Rule, Str,
)

if TYPE_CHECKING:
    from typing import Self

    from parley.dialogue.featurization.trackers import Examples
    from parley.dialogue.neural.entities import EntityTargets
    from parley.dialogue.neural.model import Architecture, TEDModel
    from parley.dialogue.neural.predictor import Predicted, TEDPredictor

DEFAULT_SEED = 42
DIALOGUE = "dialogue"
# Caps that refuse typos (1e12 epochs) instead of hanging; real configs stay far below.
MAX_EPOCHS = 100_000
MAX_WIDTH = 16_384
MAX_LAYERS = 128
MAX_BATCH = 10_000_000

DENSE_DIMENSION = {"text": 128, "action_text": 128, "label_action_text": 128, "intent": 20,
                   "action_name": 20, "label_action_name": 20, "entities": 20, "slots": 20,
                   "active_loop": 20}
CONCAT_DIMENSION = {"text": 128, "action_text": 128, "label_action_text": 128}
TRANSFORMER_SIZE = {"text": 128, "action_text": 128, "label_action_text": 128, DIALOGUE: 128}
TRANSFORMER_LAYERS = {"text": 1, "action_text": 1, "label_action_text": 1, DIALOGUE: 1}
HIDDEN_LAYERS = {"text": [], "action_text": [], "label_action_text": []}


def _per_attribute(value: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Rasa's size settings: one value for every attribute, or a mapping over the defaults."""
    if isinstance(value, dict):
        return {**defaults, **value}
    return dict.fromkeys(defaults, value)


def _sizes(limit: int, low: int = 1) -> Constraint:
    return AnyOf(Int(low, limit), MappingOf(Str(), Int(low, limit)))


def _heads_divide_size(size: Any, layers: Any, heads: int) -> str | None:
    for part in (DIALOGUE, "text"):  # the text transformer: entity recognition's
        units = _per_attribute(size, TRANSFORMER_SIZE)[part]
        if _per_attribute(layers, TRANSFORMER_LAYERS)[part] and units % heads:
            return (f"the {part} transformer_size ({units}) must be a multiple of "
                    f"number_of_attention_heads ({heads}).")
    return None


class TEDPolicy(Policy, FinetunablePolicy):
    """Transformer Embedding Dialogue policy (Vlasov et al., 2019)."""

    name: ClassVar[str] = "TEDPolicy"
    uses_packages = ("torch", "numpy")
    default_priority: ClassVar[int] = 1
    uses_text_features: ClassVar[bool] = True

    @classmethod
    def runtime_fingerprint(cls) -> dict[str, Any]:
        """What this machine decides that changes what TED learns: its attention runs
        message by message in Parley's C kernel where it was built (other last bits than
        torch's blocks). Its products are float32, in torch's kernels everywhere."""
        from parley.ml.torch_env import training_kernels

        found = training_kernels()
        return {"attention": found["attention"]} if "attention" in found else {}

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "max_history": NoneOr(Int(min=1)),
        "priority": Int(),
        "hidden_layers_sizes": MappingOf(Str(), ListOf(Int(1, MAX_WIDTH), max_len=MAX_LAYERS)),
        "dense_dimension": _sizes(MAX_WIDTH),
        "concat_dimension": _sizes(MAX_WIDTH),
        "encoding_dimension": Int(1, MAX_WIDTH),
        "transformer_size": _sizes(MAX_WIDTH),
        "number_of_transformer_layers": _sizes(MAX_LAYERS, low=0),
        "number_of_attention_heads": Int(1, MAX_WIDTH),
        "use_key_relative_attention": Bool(),
        "use_value_relative_attention": Bool(),
        "max_relative_position": NoneOr(Int(1, 10_000)),
        "unidirectional_encoder": Bool(),
        "batch_size": AnyOf(Int(1, MAX_BATCH), ListOf(Int(1, MAX_BATCH), 2, 2)),
        "batch_strategy": Choice("balanced", "sequence"),
        "epochs": Int(1, MAX_EPOCHS),
        "random_seed": NoneOr(Int(0, 2**32 - 1)),
        "learning_rate": Float(min=0, min_exclusive=True),
        "embedding_dimension": Int(1, MAX_WIDTH),
        "number_of_negative_examples": Int(0, 100_000),
        "similarity_type": Choice("auto", "inner", "cosine"),
        "loss_type": Choice("cross_entropy", "margin"),
        "ranking_length": Int(min=0),
        "maximum_positive_similarity": Float(),
        "maximum_negative_similarity": Float(),
        "use_maximum_negative_similarity": Bool(),
        "scale_loss": Bool(),
        "regularization_constant": Float(min=0),
        "negative_margin_scale": Float(min=0),
        "drop_rate_dialogue": Float(0, 1, max_exclusive=True),
        "drop_rate": Float(0, 1, max_exclusive=True),
        "drop_rate_label": Float(0, 1, max_exclusive=True),
        "drop_rate_attention": Float(0, 1, max_exclusive=True),
        "connection_density": Float(0, 1, min_exclusive=True),
        "use_sparse_input_dropout": Bool(),
        "use_dense_input_dropout": Bool(),
        "use_masked_language_model": Hint(Choice(False), "In TED it only drops tokens of "
                                          "user texts; Parley's TED sees sentence features, "
                                          "so leave it false."),
        "evaluate_every_number_of_epochs": AnyOf(Int(1, MAX_EPOCHS), Choice(-1)),
        "evaluate_on_number_of_examples": Int(min=0),
        "tensorboard_log_directory": NoneOr(Str()),
        "tensorboard_log_level": Choice("epoch", "batch"),
        "checkpoint_model": Bool(),
        "e2e_confidence_threshold": Float(0, 1),
        "featurizers": NoneOr(ListOf(Str(nonempty=True))),
        "entity_recognition": Bool(),
        "constrain_similarities": Bool(),
        "model_confidence": Hint(Choice("softmax"), "Rasa 3 has only softmax."),
        "BILOU_flag": Bool(),
        "split_entities_by_comma": AnyOf(Bool(), MappingOf(Str(), Bool())),
    }
    param_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(("transformer_size", "number_of_transformer_layers", "number_of_attention_heads"),
             _heads_divide_size),
    )

    def __init__(
        self,
        *,
        max_history: int | None = None,
        priority: int = 1,
        hidden_layers_sizes: dict[str, list[int]] = HIDDEN_LAYERS,  # noqa: B006 - never mutated
        dense_dimension: int | dict[str, int] = DENSE_DIMENSION,  # noqa: B006
        concat_dimension: int | dict[str, int] = CONCAT_DIMENSION,  # noqa: B006
        encoding_dimension: int = 50,
        transformer_size: int | dict[str, int] = TRANSFORMER_SIZE,  # noqa: B006
        number_of_transformer_layers: int | dict[str, int] = TRANSFORMER_LAYERS,  # noqa: B006
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
        similarity_type: str = "auto",
        loss_type: str = "cross_entropy",
        ranking_length: int = 10,
        maximum_positive_similarity: float = 0.8,
        maximum_negative_similarity: float = -0.2,
        use_maximum_negative_similarity: bool = True,
        scale_loss: bool = True,
        regularization_constant: float = 0.001,
        negative_margin_scale: float = 0.8,
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
        e2e_confidence_threshold: float = 0.5,
        featurizers: list[str] | None = None,
        entity_recognition: bool = True,
        constrain_similarities: bool = False,
        model_confidence: str = "softmax",
        BILOU_flag: bool = True,  # noqa: N803 - Rasa's name
        split_entities_by_comma: bool | dict[str, bool] = True,
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
        self.similarity_type = similarity_type
        self.loss_type = loss_type
        self.ranking_length = ranking_length
        self.maximum_positive_similarity = maximum_positive_similarity
        self.maximum_negative_similarity = maximum_negative_similarity
        self.use_maximum_negative_similarity = use_maximum_negative_similarity
        self.scale_loss = scale_loss
        self.regularization_constant = regularization_constant
        self.negative_margin_scale = negative_margin_scale
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
        self.e2e_confidence_threshold = e2e_confidence_threshold
        self.featurizers = featurizers
        self.entity_recognition = entity_recognition
        self.constrain_similarities = constrain_similarities
        self.model_confidence = model_confidence
        self.BILOU_flag = BILOU_flag
        self.split_entities_by_comma = split_entities_by_comma

    # --- parameters → network --------------------------------------------------------------
    def _seed(self) -> int:
        return DEFAULT_SEED if self.random_seed is None else int(self.random_seed)

    def _architecture(self, featurizer: StateFeaturizer) -> Architecture:
        from parley.dialogue.neural.architecture import Architecture

        similarity = self.similarity_type
        if similarity == "auto":
            similarity = "inner" if self.loss_type == "cross_entropy" else "cosine"
        widths = featurizer.widths()
        label_widths = {"action_name": len(featurizer.actions),
                        "action_text": featurizer.text_dim}
        return Architecture(
            widths=widths, causal=self.max_history is None, label_widths=label_widths,
            n_labels=len(featurizer.actions),
            dense_dimension=_per_attribute(self.dense_dimension, DENSE_DIMENSION),
            encoding_dimension=self.encoding_dimension,
            hidden_layers={k: list(v) for k, v in {**HIDDEN_LAYERS,
                                                   **self.hidden_layers_sizes}.items()},
            transformer_layers=_per_attribute(self.number_of_transformer_layers,
                                              TRANSFORMER_LAYERS)[DIALOGUE],
            transformer_size=_per_attribute(self.transformer_size, TRANSFORMER_SIZE)[DIALOGUE],
            attention_heads=self.number_of_attention_heads,
            key_relative_attention=self.use_key_relative_attention,
            value_relative_attention=self.use_value_relative_attention,
            max_relative_position=int(self.max_relative_position or 5),
            embedding_dimension=self.embedding_dimension, drop_rate=self.drop_rate,
            drop_rate_dialogue=self.drop_rate_dialogue, drop_rate_label=self.drop_rate_label,
            drop_rate_attention=self.drop_rate_attention,
            input_dropout=self.use_sparse_input_dropout or self.use_dense_input_dropout,
            connection_density=self.connection_density, similarity_type=similarity,
            loss_type=self.loss_type, negative_examples=self.number_of_negative_examples,
            maximum_positive_similarity=self.maximum_positive_similarity,
            maximum_negative_similarity=self.maximum_negative_similarity,
            use_maximum_negative_similarity=self.use_maximum_negative_similarity,
            negative_margin_scale=self.negative_margin_scale, scale_loss=self.scale_loss,
            constrain_similarities=self.constrain_similarities,
            unidirectional_encoder=self.unidirectional_encoder)

    def _entity_shape(self, tags: list[str], token_width: int) -> dict[str, Any]:
        """The entity head's shape (``EntityShape``'s fields) from the text keys."""
        hidden = {**HIDDEN_LAYERS, **self.hidden_layers_sizes}.get("text", [])
        return {"tags": tags, "token_width": token_width,
                "dense_dimension": _per_attribute(self.dense_dimension, DENSE_DIMENSION)["text"],
                "hidden_layers": list(hidden),
                "transformer_layers": _per_attribute(self.number_of_transformer_layers,
                                                     TRANSFORMER_LAYERS)["text"],
                "transformer_size": _per_attribute(self.transformer_size,
                                                   TRANSFORMER_SIZE)["text"],
                "bilou": bool(self.BILOU_flag)}

    # --- training --------------------------------------------------------------------------
    def _examples(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> Examples:
        stories = [t for t in trackers if not t.is_rule_tracker]
        if self.max_history is None:
            examples = full_dialogue_examples(stories, domain)
            names = {a for row in examples.labels for a in row if isinstance(a, str)}
        else:
            examples = max_history_examples(stories, domain, self.max_history)
            names = {str(a) for a in examples.labels}
        check_actions_in_domain(sorted(names), domain, self.name)
        return examples

    def fit(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
            text_features: TextFeatures | None = None) -> Self:
        """Learn from the story trackers (rules are RulePolicy's). ``text_features`` are what
        the NLU pipeline's featurizers make of the stories' texts (end-to-end turns; the
        training layer hands them in)."""
        self.check_params()
        if self.tensorboard_log_directory:
            warn(f"{self.name}: tensorboard_log_directory is not supported by Parley and "
                 "is ignored.")
        import_torch(self.name)
        from parley.dialogue.neural.model import TEDModel

        examples = self._examples(trackers, domain)
        self.featurizer_ = StateFeaturizer.from_domain(
            domain, text_features.dim if text_features else 0)
        self._learn_texts(examples, text_features)
        tagged = self._tagged_texts(trackers, examples, None)
        self.architecture_ = self._architecture(self.featurizer_)
        if tagged is not None:
            self.architecture_ = replace(self.architecture_,
                                         entities=self._entity_shape(tagged[2], tagged[3]))
        # What follows reads only the examples: let go of the trackers (the training run
        # hands them over, keeping none), ~110 MB for financial-demo's, before the long part.
        del trackers
        with seeded(self._seed()):
            self.model_: TEDModel | None = TEDModel(self.architecture_)
        if not examples.histories:
            warn(f"{self.name} has no stories to learn from; it will predict nothing.")
            self.model_ = None
            return self
        self._train(examples, self.epochs, self._entity_targets(examples, tagged),
                    seed=self._seed())
        return self

    # --- entity recognition ----------------------------------------------------------------
    def _tagged_texts(self, trackers: Sequence[DialogueStateTracker], examples: Examples,
                      tags: list[str] | None
                      ) -> tuple[dict[str, int], list[list[str]], list[str], int] | None:
        """The user texts whose entities TED learns to tag (those the examples show, with
        tokens), each text's tags, the tag set (``tags``: a trained head's), and the token
        width; None without entity recognition (off, or no text annotates an entity)."""
        if not self.entity_recognition:
            return None
        features = self.text_features_
        annotated = _annotated_entities(trackers)
        shown = [t for t in shown_texts(examples.table.states)[0]
                 if t in features.tokens and features.tokens[t].spans]
        per_text = [token_tags(_Annotated(annotated.get(t, [])),
                               [Span(a, b) for a, b in features.tokens[t].spans],
                               "entity", bool(self.BILOU_flag)) for t in shown]
        if tags is None:
            if not any(tag != NO_ENTITY for found in per_text for tag in found):
                return None  # Rasa turns entity recognition off then
            from parley.dialogue.neural.entities import tag_vocabulary

            tags = tag_vocabulary(per_text)
        unknown = sorted({t for found in per_text for t in found} - set(tags))
        if unknown:
            warn(f"{self.name}: the stories tag {', '.join(unknown)}, which the model did "
                 "not learn before finetuning; those tokens are learned as no entity.")
        widths = {features.tokens[t].features.shape[1] for t in shown}
        if len(widths) != 1 or not min(widths):  # no tokens, or featurizers that disagree
            return None
        return {t: i for i, t in enumerate(shown)}, per_text, tags, widths.pop()

    def _entity_targets(self, examples: Examples,
                        tagged: tuple[dict[str, int], list[list[str]], list[str], int] | None
                        ) -> EntityTargets | None:
        """What training reads: the text each state of the table shows, its tokens, tags."""
        if tagged is None or self.model_ is None or self.model_.entities is None:
            return None
        from parley.dialogue.neural.entities import EntityTargets

        texts, per_text, tags, _ = tagged
        ids = {tag: i for i, tag in enumerate(tags)}
        shown: dict[int, int] = {}
        for state_id, state in enumerate(examples.table.states):
            user = state.get(USER, {})
            if not user.get("intent") and user.get(TEXT) in texts:
                shown[state_id] = texts[user[TEXT]]
        order = sorted(texts, key=texts.__getitem__)
        return EntityTargets.build(
            len(examples.table), shown,
            [self.text_features_.tokens[t].features for t in order],
            [[ids.get(tag, 0) for tag in found] for found in per_text])

    def _entities_found(self, tracker: DialogueStateTracker, states: list[Any],
                        output: np.ndarray, texts: TextFeatures,
                        featurize: TextFeaturizer | None) -> list[Event]:
        """Rasa's optional event of an end-to-end prediction: the entities the head finds
        in the latest user text (``output``: the dialogue transformer's row for its turn;
        the text's tokens from ``texts`` or else read by ``featurize``)."""
        head = self._predictor().entities if self.architecture_.entities else None
        text = last_user_text(states)
        if head is None or not text or text != tracker.latest_message.text:
            return []
        found = texts.tokens.get(text)
        if found is None and featurize is not None:
            found = featurize([text], self.featurizers, tokens=True).tokens.get(text)
        if found is None or not found.spans or found.features.shape[1] != head.token_width:
            return []
        tags, confidences = head(output, found.features)  # in numpy, as the actions
        entities = decode_entities(
            text, [Span(a, b) for a, b in found.spans], {"entity": tags},
            {"entity": confidences}, bool(self.BILOU_flag), extractor=self.name,
            split_by_comma=comma_rule(self.split_entities_by_comma))
        return [EntitiesAdded(entities=entities)] if entities else []

    def _learn_texts(self, examples: Examples, text_features: TextFeatures | None) -> None:
        """Keep the features of the texts the examples show (and of the bot texts among the
        actions), and note how user turns are shown: by text somewhere (then prediction
        tries the new message's text too), and by intent anywhere (else only by text)."""
        texts, by_text, by_intent = shown_texts(examples.table.states)
        self.reads_user_text_ = bool(text_features) and by_text
        self.only_e2e_ = self.reads_user_text_ and not by_intent
        self.text_features_ = (text_features.only([*texts, *self.featurizer_.actions])
                               if text_features else TextFeatures())

    def finetune(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
                 epoch_fraction: float, text_features: TextFeatures | None = None) -> Self:
        """Continue from the learned weights on (new) stories for
        ``ceil(epochs × epoch_fraction)`` epochs; the domain must be the one it learned."""
        self.check_is_fitted()
        self.check_params()
        featurizer = StateFeaturizer.from_domain(
            domain, text_features.dim if text_features else 0)
        if featurizer != self.featurizer_:
            raise DataError(f"{self.name}: the domain (intents, entities, slots, actions or "
                            "forms) or the text features changed since the model was trained; "
                            "finetuning needs the same. Train a new model instead.")
        examples = self._examples(trackers, domain)
        if not self._has_network() or not examples.histories:
            return self.fit(trackers, domain, text_features)
        old_texts = self.text_features_
        self._learn_texts(examples, text_features)
        self.text_features_ = self.text_features_.merged(old_texts)
        head = self.model_.entities
        tagged = (self._tagged_texts(trackers, examples, list(head.shape.tags))
                  if head is not None else None)
        if tagged is not None and tagged[3] != head.shape.token_width:  # type: ignore[union-attr]
            tagged = None  # (the featurizer check above makes this unreachable in practice)
        del trackers  # as in fit: only the examples are read from here on
        self._train(examples, finetune_epochs(self.epochs, epoch_fraction),
                    self._entity_targets(examples, tagged), seed=self._seed() + 1)
        return self

    def _train(self, examples: Examples, epochs: int,
               entities: EntityTargets | None = None, *, seed: int) -> None:
        """Train the model on ``examples``; ``seed`` fixes the training's draws (dropout,
        negatives, batches)."""
        from parley.dialogue.neural.training import Dialogues, TEDTrainer
        from parley.ml.training import Schedule

        assert self.model_ is not None
        inputs = self.featurizer_.encode(examples.table.states, self.text_features_)
        index = {name: i for i, name in enumerate(self.featurizer_.actions)}
        causal = self.max_history is None
        labels: Any = ([[-1 if a is None else index[a] for a in row] for row in examples.labels]
                       if causal else [index[str(a)] for a in examples.labels])
        dialogues = Dialogues.build(inputs, examples.histories, causal, labels)
        schedule = Schedule(
            epochs=epochs, batch_size=self.batch_size, batch_strategy=self.batch_strategy,
            learning_rate=self.learning_rate, regularization_constant=self.regularization_constant,
            evaluate_every_number_of_epochs=self.evaluate_every_number_of_epochs,
            evaluate_on_number_of_examples=self.evaluate_on_number_of_examples,
            checkpoint_model=self.checkpoint_model)
        trainer = TEDTrainer(self.model_, dialogues, self._label_inputs(), schedule,
                             seed, description=f"{self.name} epochs",
                             entities=entities)
        # (the collector paused, as for DIET: the steps make no cycles, and its walks were
        # ~4% of the CPU of a loop of e2ebot's TED steps under perf)
        with torch_threads(), collector_paused():
            trainer.train()
        # the tokens served training only (prediction reads the new message's own)
        self.text_features_ = TextFeatures(self.text_features_.vectors,
                                           self.text_features_.dim)

    def _label_inputs(self) -> dict[str, Any]:
        """The labels' features as torch tensors (training)."""
        import torch

        return {k: torch.from_numpy(v) for k, v in self._label_arrays().items()}

    def _label_arrays(self) -> dict[str, np.ndarray]:
        """The labels' features (attribute → one row per label): every action's name, and
        its text for the bot texts of end-to-end stories."""
        encoded = self.featurizer_.encode_labels(self.text_features_)
        return {k: v for k, v in encoded.items() if self.architecture_.label_widths.get(k)}

    # --- prediction ------------------------------------------------------------------------
    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                rule_only_data: dict[str, Any] | None = None) -> PolicyPrediction:
        return self.predict_with_texts(tracker, domain, rule_only_data)

    def predict_with_texts(self, tracker: DialogueStateTracker, domain: Domain,
                           rule_only_data: dict[str, Any] | None = None,
                           featurize: TextFeaturizer | None = None) -> PolicyPrediction:
        """As Rasa's TED: the conversation with the latest message by its intent and, when
        TED learned user texts, again by its text (``featurize`` reads texts it has not
        seen); the text's prediction wins when its best confidence passes
        ``e2e_confidence_threshold`` and its best similarity beats the intent's."""
        self.check_is_fitted()
        probabilities = self.default_predictions(domain)
        if not self._has_network():
            return PolicyPrediction(probabilities, self.name, self.priority)
        variants = [prediction_states(tracker, domain, self.max_history,
                                      use_text_for_last_user_input=self.only_e2e_,
                                      ignore_rule_only_turns=True, rule_only_data=rule_only_data)]
        if (tracker.latest_action_name == ACTION_LISTEN and self.reads_user_text_
                and not self.only_e2e_):
            variants.append(prediction_states(
                tracker, domain, self.max_history, use_text_for_last_user_input=True,
                ignore_rule_only_turns=True, rule_only_data=rule_only_data))
        texts = self._texts_for(variants, featurize)
        if len(variants) == 2 and last_user_text(variants[1]) not in texts:
            variants.pop()  # the message has no text, or nothing can read it
        confidences, similarities, outputs = self._scores(variants, texts)
        by_text, picked = self.only_e2e_, 0
        if len(variants) == 2 and (confidences[1].max() > self.e2e_confidence_threshold
                                   and similarities[1].max() > similarities[0].max()):
            by_text, picked = True, 1
        chosen = self._ranked(confidences[picked])
        entities: list[Event] = []
        if by_text and tracker.latest_action_name == ACTION_LISTEN:
            # entities belong to the latest user message, read by its text (Rasa's TED)
            entities = self._entities_found(tracker, variants[picked], outputs[picked],
                                            texts, featurize)
        positions = {name: i for i, name in enumerate(domain.action_names)}
        for name, confidence in zip(self.featurizer_.actions, chosen, strict=True):
            if name in positions:
                probabilities[positions[name]] = float(confidence)
        reason = "from the user's text (end-to-end)" if by_text else ""
        return PolicyPrediction(probabilities, self.name, self.priority,
                                optional_events=entities,
                                is_end_to_end_prediction=by_text, reason=reason)

    def _texts_for(self, variants: list[list[Any]], featurize: TextFeaturizer | None
                   ) -> TextFeatures:
        """The features of every text the states show: learned ones, the others read by
        ``featurize`` (without it they stay unknown, i.e. zeros)."""
        known = self.text_features_
        if not self.featurizer_.text_dim:
            return known
        wanted = {t for states in variants for t in shown_texts(states)[0]}
        missing = sorted(wanted - set(known.vectors))
        if missing and featurize is not None:
            if self.architecture_.entities:
                # their tokens too, should the entity head read one (one featurization)
                return known.merged(featurize(missing, self.featurizers, tokens=True))
            return known.merged(featurize(missing, self.featurizers))
        return known

    def _scores(self, variants: list[list[Any]], texts: TextFeatures
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Softmax confidences and similarities over the actions, and the dialogue
        transformer's output (what the entity head reads), a row per variant (the network
        in numpy: :mod:`parley.dialogue.neural.predictor`)."""
        states = [s for variant in variants for s in variant]
        histories, start = [], 0
        for variant in variants:
            histories.append(range(start, start + len(variant)))
            start += len(variant)
        predicted = self._predict(states, histories, texts)
        return predicted.confidences, predicted.similarities, predicted.outputs

    def _predict(self, states: list[Any], histories: list[range],
                 texts: TextFeatures) -> Predicted:
        """The network's answer for the dialogues ``histories`` name among ``states``. The
        states' rows are kept by their content (a state with a user text is read afresh:
        ``featurize`` gives its features)."""
        predictor = self._predictor()
        keys = [None if state.get("user", {}).get("text") else repr(state) for state in states]
        rows = predictor.rows(keys, lambda which: self.featurizer_.encode(
            [states[i] for i in which], texts))
        return predictor.predict_rows(rows, histories)

    def _ranked(self, confidences: np.ndarray) -> np.ndarray:
        """Only the top ``ranking_length`` keep a confidence, renormalised (Rasa's TED)."""
        if not 0 < self.ranking_length < len(confidences):
            return confidences
        kept = np.zeros_like(confidences)
        top = np.argsort(-confidences, kind="stable")[:self.ranking_length]
        kept[top] = confidences[top]
        return kept / max(float(kept.sum()), np.finfo(np.float32).tiny)

    # --- the network: torch to train, numpy to predict ------------------------------------
    def _has_network(self) -> bool:
        """Whether there is a trained network (none when there were no stories)."""
        if "model_" in self.__dict__:
            return self.model_ is not None
        return self.__dict__.get("_saved_weights") is not None

    def _predictor(self) -> TEDPredictor:
        """The network in numpy: from the saved weights of a loaded model, or from the torch
        model trained (or finetuned) in this process — made again when its weights change."""
        from parley.dialogue.neural.predictor import TEDPredictor

        model = self.__dict__.get("model_")
        key = (None if model is None else
               (id(model), tuple(p._version for p in model.parameters())),
               id(self.text_features_))
        kept = self.__dict__.get("_kept_predictor")
        if kept is not None and kept[0] == key:
            return kept[1]  # type: ignore[no-any-return]
        weights = (self.__dict__["_saved_weights"] if model is None else
                   {k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
        predictor = TEDPredictor(self.architecture_, weights, self._label_arrays())
        self._kept_predictor = (key, predictor)
        return predictor

    def __getattr__(self, name: str) -> Any:
        """``model_`` of a loaded model: the torch network, built from the saved weights the
        first time something trains it further (finetuning); None when it had no stories."""
        if name == "model_" and "_saved_weights" in self.__dict__:
            arrays = self.__dict__["_saved_weights"]
            if arrays is None:
                self.model_ = None
                return None
            torch = import_torch(self.name)
            from parley.dialogue.neural.model import TEDModel

            model = TEDModel(self.architecture_)
            model.load_state_dict({k: torch.from_numpy(np.array(arrays[k]))
                                   for k in model.state_dict()})
            model.eval()
            self.model_ = model
            return model
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # --- persistence -----------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        texts = self.text_features_
        trained = self._has_network()
        state = {"featurizer": self.featurizer_.as_dict(),
                 "architecture": asdict(self.architecture_),
                 "trained": trained, "texts": sorted(texts.vectors),
                 "reads_user_text": self.reads_user_text_, "only_e2e": self.only_e2e_}
        arrays: dict[str, np.ndarray] = {}
        if "model_" not in self.__dict__ and trained:  # loaded, not trained since: as saved
            arrays = {f"model.{k}": v for k, v in self.__dict__["_saved_weights"].items()}
        elif trained:
            arrays = {f"model.{k}": v.detach().numpy()
                      for k, v in self.model_.state_dict().items()}
        if texts.vectors:
            arrays["texts"] = np.stack([texts.vectors[t] for t in state["texts"]])
        return state, arrays

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        from parley.dialogue.neural.architecture import Architecture

        self.featurizer_ = StateFeaturizer.from_dict(state["featurizer"])
        self.architecture_ = Architecture(**state["architecture"])
        names = [str(t) for t in state["texts"]]
        vectors = arrays["texts"] if names else np.zeros((0, 0), np.float32)
        self.text_features_ = TextFeatures(
            {t: np.asarray(v, np.float32) for t, v in zip(names, vectors, strict=True)},
            self.featurizer_.text_dim)
        self.reads_user_text_ = bool(state.get("reads_user_text", False))
        self.only_e2e_ = bool(state.get("only_e2e", False))
        # Predicting runs the weights in numpy; the torch network is built only when
        # something trains it further (see __getattr__).
        self.__dict__.pop("model_", None)
        self._kept_predictor = None
        self._saved_weights: dict[str, np.ndarray] | None = None
        if state["trained"]:
            prefix = "model."
            self._saved_weights = {k[len(prefix):]: arrays[k] for k in arrays
                                   if k.startswith(prefix)}
            self._predictor()  # each weight the network has must be saved, in its shape


class _Annotated:
    """Entities in the shape :func:`token_tags` reads (a message's ``entities``)."""

    def __init__(self, entities: list[Entity]) -> None:
        self.entities = entities


def _annotated_entities(trackers: Sequence[DialogueStateTracker]) -> dict[str, list[Entity]]:
    """The entities annotated in each user text without an intent (the first time a text
    is annotated; entities written without a place in the text are left out)."""
    found: dict[str, list[Entity]] = {}
    for tracker in trackers:
        for event in tracker.events:
            if not (isinstance(event, UserUttered) and event.text and not event.intent_name):
                continue
            placed = [Entity(int(e["start"]), int(e["end"]), e.get("value"), str(e["entity"]),
                             e.get("role"), e.get("group"))
                      for e in event.entities if "start" in e and "end" in e and "entity" in e]
            if placed and event.text not in found:
                found[event.text] = placed
    return found
