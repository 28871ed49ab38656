"""End-to-end text features: the NLU pipeline's featurizers run over dialogue texts.

Rasa's "end-to-end features provider": a policy that reads the words of ``user:`` and
``bot:`` steps (TEDPolicy) gets them featurized by the same tokenizers and featurizers the
NLU pipeline trained — for the stories' texts when it trains (:func:`story_texts`, from the
run), for each new message when the model answers (the loaded model's
:class:`PipelineTextFeaturizer`). What crosses into the dialogue layer is plain arrays
(:class:`~parley.dialogue.featurization.state.TextFeatures`): the dialogue side never
imports NLU.

For the user texts of stories that annotate entities in them (:func:`tagged_user_texts`),
the policies also get each text's tokens and their sequence features
(:class:`~parley.dialogue.featurization.state.TextTokens`): TEDPolicy learns to tag those
entities, as Rasa's does.

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
from parley.dialogue.featurization.state import TextFeatures, TextTokens
from parley.dialogue.policies.base import Policy
from parley.nlu.features import features_of, to_dense

__all__ = ["PipelineTextFeaturizer", "featurizes_text", "reads_texts", "story_texts",
           "tagged_user_texts"]

# What a component must provide to take part (a tokenizer or a featurizer).
FEATURIZING = frozenset({TOKENS, SPARSE_FEATURES, DENSE_FEATURES})
# Texts featurized at once (bounds the memory of a bot with many story texts).
CHUNK = 512
# Texts whose tokens are remembered: a dense tokens × width matrix each, so far fewer than
# the sentence vectors (a conversation asks for the latest message's tokens once or twice).
TOKEN_MEMORY = 16


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


def tagged_user_texts(stories: Iterable[Story]) -> list[str]:
    """The user texts without an intent (those a policy reads by their words), each once,
    when at least one of them annotates an entity in its text; else none (with no entity to
    learn, TEDPolicy tags none, as Rasa's turns ``entity_recognition`` off)."""
    texts: dict[str, None] = {}
    annotated = False
    for story in stories:
        for step in story.iter_steps():
            if isinstance(step, UserStep) and step.text and step.intent is None:
                texts.setdefault(step.text)
                annotated = annotated or any(e.start is not None for e in step.entities)
    return list(texts) if annotated else []


class PipelineTextFeaturizer:
    """Texts → :class:`TextFeatures` by trained pipeline components (in pipeline order;
    those that neither tokenize nor featurize are skipped). Implements
    :class:`~parley.dialogue.featurization.state.TextFeaturizer`; remembers the last
    ``memory`` texts it featurized (a conversation asks for its texts again and again), and
    the tokens of the last :data:`TOKEN_MEMORY` asked with ``tokens``."""

    def __init__(self, components: Sequence[Any], memory: int = 1024) -> None:
        self.components = [c for c in components if featurizes_text(type(c))]
        self.memory = memory
        self._known: dict[tuple[str, tuple[str, ...], bool], TextFeatures] = {}
        self._lock = threading.Lock()  # a server may ask from several threads

    def __bool__(self) -> bool:
        return bool(self.components)

    def __call__(self, texts: Sequence[str], featurizers: Sequence[str] | None = None,
                 tokens: bool = False) -> TextFeatures:
        origins = tuple(featurizers or ())
        wanted = list(dict.fromkeys(texts))
        with self._lock:
            found = {t: self._known[(t, origins, tokens)] for t in wanted
                     if (t, origins, tokens) in self._known}
        missing = [t for t in wanted if t not in found]
        for start in range(0, len(missing), CHUNK):
            found.update(self._featurize(missing[start:start + CHUNK], origins, tokens))
        out = TextFeatures()
        for text in wanted:
            one = found[text]
            if one:
                out.dim = one.dim
                out.vectors.update(one.vectors)
                out.tokens.update(one.tokens)
        with self._lock:
            for text in missing:
                self._known[(text, origins, tokens)] = found[text]
            self._forget()
        return out

    def _forget(self) -> None:
        """Drop the oldest entries beyond the memories (those with tokens count apart)."""
        for with_tokens, memory in ((False, self.memory), (True, TOKEN_MEMORY)):
            keys = [k for k in self._known if k[2] == with_tokens]
            for key in keys[:max(0, len(keys) - memory)]:
                del self._known[key]

    def _featurize(self, texts: list[str], origins: tuple[str, ...], tokens: bool = False
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
            found = TextFeatures({text: sentence.astype(np.float32)}, int(sentence.shape[0]))
            if tokens:
                found.tokens[text] = _tokens(message, records)
            yield text, found


def _tokens(message: Message, records: Sequence[Any]) -> TextTokens:
    """The message's tokens (offsets) and their sequence features side by side."""
    spans = tuple((int(t.start), int(t.end)) for t in message.data.get(TOKENS) or ())
    sequence = np.concatenate([to_dense(r.sequence) for r in records], axis=1)
    if len(sequence) != len(spans):  # a featurizer that gives no token rows
        sequence = np.zeros((len(spans), sequence.shape[1]), np.float32)
    return TextTokens(spans, sequence.astype(np.float32))
