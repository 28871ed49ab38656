"""Train/test splits of a project's data, as ``rasa data split nlu`` / ``split stories`` make.

NLU: stratified by label (an intent, or a retrieval intent's full ``faq/ask_name`` label, so
each response is tested), with every label that has two examples or more on both sides.
Labels are handled rarest first and each takes its share of a running count, so the rounding
of the small ones is made up by the large ones and the whole split lands on the fraction.
Stories: each file's stories are sampled on their own, the rest of the file (rules, NLU)
stays with the training part.

Unlike Rasa, the split is the same on every run for a seed (Rasa's default draws a new one),
and a label with a single example stays in training: Rasa moves it to the test set, where a
model that never saw the label can only get it wrong.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.data.message import Message
from parley.data.training_data import TrainingData

RESPONSE_PREFIX = "utter_"


@dataclass
class NLUSplit:
    train: TrainingData
    test: TrainingData
    single_example_labels: list[str]


def check_fraction(fraction: float) -> float:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the training fraction must lie between 0 and 1 (exclusive), "
                         f"not {fraction}")
    return fraction


def split_nlu(data: TrainingData, training_fraction: float = 0.8,
              seed: int = 42) -> NLUSplit:
    """Examples split per label; synonyms, regexes and lookup tables go to both parts (the
    test part needs them to be read the same way); each part keeps the responses its
    retrieval examples use."""
    check_fraction(training_fraction)
    by_label: dict[str, list[Message]] = defaultdict(list)
    for message in data.examples:
        if message.intent is not None:
            by_label[message.intent].append(message)
    rng = random.Random(seed)
    train_ids: set[int] = set()
    single: list[str] = []
    seen = in_train = 0
    for label in sorted(by_label, key=lambda name: (len(by_label[name]), name)):
        examples = list(by_label[label])
        rng.shuffle(examples)
        if len(examples) == 1:
            single.append(label)
            take = 1
        else:
            due = _floor((seen + len(examples)) * training_fraction) - in_train
            take = min(len(examples) - 1, max(1, due))
        train_ids.update(id(m) for m in examples[:take])
        seen += len(examples)
        in_train += take
    # Each part keeps the files' order, so a split reads like the data it came from.
    train = [m for m in data.examples if m.intent is not None and id(m) in train_ids]
    test = [m for m in data.examples if m.intent is not None and id(m) not in train_ids]
    return NLUSplit(_part(data, train), _part(data, test), single)


def _part(data: TrainingData, examples: list[Message]) -> TrainingData:
    needed = {f"{RESPONSE_PREFIX}{m.intent}" for m in examples if m.response_key is not None}
    return TrainingData(
        examples=examples,
        synonyms={k: list(v) for k, v in data.synonyms.items()},
        regexes={k: list(v) for k, v in data.regexes.items()},
        lookups={k: list(v) for k, v in data.lookups.items()},
        responses={k: v for k, v in data.responses.items() if k in needed},
        intent_metadata={k: v for k, v in data.intent_metadata.items()
                         if any(m.intent == k for m in examples)},
    )


def split_story_content(content: dict[str, Any], training_fraction: float,
                        rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A story file's content as (training part, test part), or None when it holds no
    stories: ``int(n × (1 − fraction))`` stories drawn for the test part, the rest of the
    file — other stories, rules, NLU — kept for training."""
    stories = content.get("stories") or []
    if not isinstance(stories, list) or not stories:
        return None
    test_count = _floor(len(stories) * (1.0 - training_fraction))
    test_at = set(rng.sample(range(len(stories)), test_count))
    train = {key: value for key, value in content.items()}
    train["stories"] = [s for i, s in enumerate(stories) if i not in test_at]
    test: dict[str, Any] = {}
    if "version" in content:
        test["version"] = content["version"]
    test["stories"] = [s for i, s in enumerate(stories) if i in test_at]
    return train, test


def _floor(value: float) -> int:
    # 5 × (1 − 0.8) is 0.999… in floating point: rounded first, it is the 1 a user expects.
    return int(round(value, 9))


def nlg_file_name(nlu_name: str) -> str:
    """Where Rasa writes a split's retrieval responses: ``nlg_`` before the NLU file's name."""
    return f"nlg_{Path(nlu_name).name}"


__all__ = ["NLUSplit", "check_fraction", "nlg_file_name", "split_nlu", "split_story_content"]
