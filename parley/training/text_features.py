"""End-to-end text features: the NLU pipeline's featurizers run over dialogue texts.

Rasa's "end-to-end features provider": a policy that reads the words of ``user:`` and
``bot:`` steps (TEDPolicy) gets them featurized by the same tokenizers and featurizers the
NLU pipeline trained — for the stories' texts when it trains (:func:`story_texts`, from the
run), for each new message when the model answers (the loaded model's
:class:`PipelineTextFeaturizer`). What crosses into the dialogue layer is plain arrays
(:class:`~parley.dialogue.featurization.state.TextFeatures`): the dialogue side never
imports NLU.

Only the components that make tokens or features run (classifiers and extractors would
change nothing a policy reads, and cost time), as in Rasa's recipe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from parley.component import DENSE_FEATURES, SPARSE_FEATURES, TOKENS, Component
from parley.data.message import Message
from parley.data.stories import BotStep, Story, UserStep
from parley.dialogue.featurization.state import TextFeatures
from parley.dialogue.policies.base import Policy
from parley.nlu.features import features_of, to_dense

__all__ = ["PipelineTextFeaturizer", "featurizes_text", "reads_texts", "story_texts"]

# What a component must provide to take part (a tokenizer or a featurizer).
FEATURIZING = frozenset({TOKENS, SPARSE_FEATURES, DENSE_FEATURES})
# Texts featurized at once (bounds the memory of a bot with many story texts).
CHUNK = 512


def featurizes_text(component_class: type[Component]) -> bool:
    """Whether a pipeline component makes tokens or features (so the texts go through it)."""
    return bool(FEATURIZING & set(component_class.provides))


def reads_texts(component_class: type[Component]) -> bool:
    """Whether a policy reads the words of end-to-end turns (``uses_text_features``)."""
    return issubclass(component_class, Policy) and component_class.uses_text_features


def story_texts(stories: Iterable[Story]) -> list[str]:
    """The texts the policies read in ``stories``, each once in the order written: user
    texts of turns without an intent (with one, training shows the intent, as in Rasa) and
    the bot's texts."""
    found: dict[str, None] = {}
    for story in stories:
        for step in story.iter_steps():
            if isinstance(step, BotStep):
                found.setdefault(step.text)
            elif isinstance(step, UserStep) and step.text and step.intent is None:
                found.setdefault(step.text)
    return list(found)


class PipelineTextFeaturizer:
    """Texts → :class:`TextFeatures` by trained pipeline components (in pipeline order;
    those that neither tokenize nor featurize are skipped). Implements
    :class:`~parley.dialogue.featurization.state.TextFeaturizer`; remembers the last
    ``memory`` texts it featurized (a conversation asks for its texts again and again)."""

    def __init__(self, components: Sequence[Any], memory: int = 1024) -> None:
        self.components = [c for c in components if featurizes_text(type(c))]
        self.memory = memory
        self._known: dict[tuple[str, tuple[str, ...]], TextFeatures] = {}
        self._lock = threading.Lock()  # a server may ask from several threads

    def __bool__(self) -> bool:
        return bool(self.components)

    def __call__(self, texts: Sequence[str],
                 featurizers: Sequence[str] | None = None) -> TextFeatures:
        origins = tuple(featurizers or ())
        wanted = list(dict.fromkeys(texts))
        with self._lock:
            found = {t: self._known[(t, origins)] for t in wanted if (t, origins) in self._known}
        missing = [t for t in wanted if t not in found]
        for start in range(0, len(missing), CHUNK):
            found.update(self._featurize(missing[start:start + CHUNK], origins))
        out = TextFeatures()
        for text in wanted:
            one = found[text]
            if one:
                out.dim = one.dim
                out.vectors.update(one.vectors)
        with self._lock:
            for text in missing:
                self._known[(text, origins)] = found[text]
            while len(self._known) > self.memory:
                self._known.pop(next(iter(self._known)))
        return out

    def _featurize(self, texts: list[str], origins: tuple[str, ...]
                   ) -> Iterable[tuple[str, TextFeatures]]:
        messages = [Message(text) for text in texts]
        if not messages:
            return
        for component in self.components:
            component.process(messages)
        for text, message in zip(texts, messages, strict=True):
            records = features_of(message, origins or None)
            if not records:  # no featurizer (of those named) in the pipeline
                yield text, TextFeatures()
                continue
            sentence = np.concatenate([to_dense(r.sentence).reshape(-1) for r in records])
            yield text, TextFeatures({text: sentence.astype(np.float32)}, int(sentence.shape[0]))
