"""One training, described once: what to train, from where, to where, and how.

``train``, ``train_nlu`` and ``train_core`` each turn their (Rasa-shaped) arguments into a
:class:`TrainingRequest`; everything after that — planning, the run, the archive — reads it
instead of long argument lists. It is frozen and holds only plain values, so it can be logged,
compared, and handed to another process as it is (what a cluster runner needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.data.importer import TrainingDataImporter
from parley.errors import ConfigError, DataError, warn
from parley.recipe import CORE, NLU

BOTH = "both"
# Rasa's TrainingType.END_TO_END: NLU and Core, from stories with text turns. It trains
# what BOTH trains (TEDPolicy, the one policy that learns from the texts, is not in
# Parley yet) and is recorded as its own type, as Rasa records it.
END_TO_END = "end_to_end"
TRAINING_TYPES = (BOTH, END_TO_END, NLU, CORE)


@dataclass(frozen=True)
class TrainingRequest:
    """Everything a training was asked to do; the project's files come with the importer."""

    training_type: str  # BOTH, END_TO_END, NLU or CORE
    output: Path
    fixed_model_name: str | None = None
    dry_run: bool = False
    force: bool = False
    persist_nlu_data: bool = False
    core_arguments: dict[str, Any] = field(default_factory=dict)
    nlu_arguments: dict[str, Any] = field(default_factory=dict)
    model_to_finetune: str | None = None  # an archive or a folder (its newest archive)
    epoch_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.training_type not in TRAINING_TYPES:
            raise ValueError(f"training_type must be one of {', '.join(TRAINING_TYPES)}")
        if self.model_to_finetune is not None and not _finite_positive(self.epoch_fraction):
            raise ConfigError(
                "finetuning_epoch_fraction must be a finite number greater than 0 (the "
                f"configured epochs are multiplied by it), not {self.epoch_fraction!r}.")

    @property
    def finetuning(self) -> bool:
        return self.model_to_finetune is not None

    @property
    def parts(self) -> str:
        """What the recipe builds: BOTH, NLU or CORE (an end-to-end model has both)."""
        return BOTH if self.training_type == END_TO_END else self.training_type

    @property
    def archive_prefix(self) -> str:
        """``nlu-`` / ``core-`` before the names of partial models, as Rasa names them."""
        return "" if self.parts == BOTH else f"{self.training_type}-"


def _finite_positive(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def has_nlu_examples(importer: TrainingDataImporter) -> bool:
    """Whether NLU has labelled examples (Rasa's "pure NLU data"): those of the NLU files
    and story turns that give a text with an intent."""
    return any(m.intent is not None for m in importer.nlu_training_data.examples)


def has_dialogue(importer: TrainingDataImporter) -> bool:
    return bool(importer.stories or importer.rules)


def has_end_to_end_turns(importer: TrainingDataImporter) -> bool:
    """Whether the stories or rules have a ``user:`` text without an intent or a ``bot:``
    text: Rasa's ``has_e2e_examples``, which makes a training end-to-end."""
    return bool(importer.story_bot_texts) or any(
        m.intent is None for m in importer.story_messages)


def training_type_from_data(importer: TrainingDataImporter, asked: str) -> str:
    """What a ``train`` of ``asked`` type actually trains, decided by the data as Rasa 3.6
    does: nothing at all is an error; no domain or no stories/rules → NLU only; stories
    with ``user:``/``bot:`` texts → end-to-end; no NLU examples → Core only.
    ``train_nlu``/``train_core`` keep their type but need their data (and Core alone
    cannot take end-to-end stories, as in Rasa).
    """
    nlu, dialogue = has_nlu_examples(importer), has_dialogue(importer)
    end_to_end = has_end_to_end_turns(importer)
    where = _data_paths(importer)
    if asked == BOTH:
        if not nlu and not dialogue:
            raise DataError(
                f"no training data given: {where} holds no NLU examples and no stories or "
                "rules.", hint="Add an 'nlu:' or 'stories:'/'rules:' section to a file under "
                               "data/, or pass the training files with --data.")
        if dialogue and importer.domain.is_empty():
            warn("Core training was skipped because no domain was found; only an NLU model "
                 "is trained. Give one with --domain.")
            asked = NLU
        elif not dialogue:
            warn("no stories or rules in the training data; only an NLU model is trained.")
            return NLU
        elif end_to_end:
            if not nlu:
                raise DataError(
                    f"the stories in {where} have end-to-end turns (user: or bot: texts) "
                    "but there are no NLU examples: Parley's intent classifiers learn from "
                    "labelled examples, and TEDPolicy, which learns from the texts alone, "
                    "is not in Parley yet.", hint="Add NLU examples under 'nlu:', or give "
                                                  "the story turns an intent ('intent:' "
                                                  "beside 'user:').")
            warn("the stories have end-to-end turns (user: or bot: texts); an end-to-end "
                 "model is trained. Its policies use them as Rasa's MemoizationPolicy and "
                 "RulePolicy do: a rule's user text must match the message exactly.")
            return END_TO_END
        elif not nlu:
            warn("no NLU examples in the training data; only a Core model is trained.")
            return CORE
        else:
            return BOTH
    if asked == NLU and not nlu:
        raise DataError(f"no NLU training data: {where} holds no NLU examples.",
                        hint="Add examples under 'nlu:' (intent and examples), or pass the "
                             "NLU files with --nlu.")
    if asked == CORE and not dialogue:
        raise DataError(f"no stories or rules: {where} holds none to train Core on.",
                        hint="Add a 'stories:' or 'rules:' section, or pass the files with "
                             "--stories.")
    if asked == CORE and end_to_end:
        raise DataError(f"the stories in {where} have end-to-end turns (user: or bot: "
                        "texts), which need an NLU model too.",
                        hint="Train with 'parley train' so that NLU is trained as well.")
    return asked


def _data_paths(importer: TrainingDataImporter) -> str:
    paths = importer.training_paths
    return ", ".join(str(p) for p in paths) if paths else "the project"
