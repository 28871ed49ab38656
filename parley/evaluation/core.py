"""Test stories against a trained model, with Rasa's reports (``parley test core``).

:func:`evaluate_core` replays each test story with the model (``user:`` texts parsed by its
NLU, see :mod:`parley.dialogue.evaluation`) and gathers a :class:`CoreReport`;
:meth:`CoreReport.write` puts Rasa's files into a folder:

- ``story_report.json``: scikit-learn's ``classification_report`` as Rasa writes it — per
  action (with ``e2e``, also per intent and per entity) precision, recall, ``f1-score``
  and support over the labels of the stories, then ``accuracy`` (``micro avg`` instead when
  something outside those labels was predicted), ``macro avg``, ``weighted avg``, and
  ``conversation_accuracy`` (stories passed, with warnings, total).
- ``failed_test_stories.yml``, ``successful_test_stories.yml`` (``successes``),
  ``stories_with_warnings.yml`` (stories that passed though ``action_unlikely_intent``
  was predicted on the way): see :mod:`parley.evaluation.story_writer`.
- ``story_confusion_matrix.png``: actions, target against prediction (with matplotlib,
  drawn by :mod:`parley.nlu.plots`).

Only stories are tested: the rules of test files are left out, as ``rasa test core`` leaves
them out (:func:`split_rules`). A story passes when every action, and the intent of every
parsed ``user:`` text, match the story; with ``e2e`` (Rasa's end-to-end test) the parsed
entities must match too, and the intents and entities are scored in story_report.json
beside the actions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parley.data.stories import Story
from parley.dialogue.evaluation import (
    ActionCheck, StoryResult, UserCheck, Walk, evaluate_test_stories)
from parley.evaluation.story_writer import marked_stories_yaml
from parley.nlu.evaluation import accuracy, label_scores

__all__ = [
    "CONFUSION_MATRIX_FILE", "FAILED_STORIES_FILE", "REPORT_FILE", "SUCCESSFUL_STORIES_FILE",
    "RULES_NOT_TESTED", "WARNINGS_FILE", "CoreReport", "classification_report", "evaluate_core",
    "rules_note", "split_rules",
]

REPORT_FILE = "story_report.json"
FAILED_STORIES_FILE = "failed_test_stories.yml"
SUCCESSFUL_STORIES_FILE = "successful_test_stories.yml"
WARNINGS_FILE = "stories_with_warnings.yml"
CONFUSION_MATRIX_FILE = "story_confusion_matrix.png"
NO_ENTITY = "None"  # Rasa's label for "no entity here" when entities are aligned


def classification_report(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, Any]:
    """scikit-learn's ``classification_report(output_dict=True, labels=<target labels>)``,
    which is what Rasa writes: labels predicted but never a target get no row of their own
    and turn ``accuracy`` into ``micro avg``."""
    labels = sorted(set(targets))
    scores = label_scores(targets, predictions)
    out: dict[str, Any] = {label: scores[label].as_dict() for label in labels}
    total = len(targets)
    if set(predictions) <= set(labels):
        out["accuracy"] = accuracy(targets, predictions)
    else:
        right = sum(t == p for t, p in zip(targets, predictions, strict=True))
        within = sum(p in set(labels) for p in predictions)
        precision = right / within if within else 0.0
        recall = right / total if total else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out["micro avg"] = {"precision": precision, "recall": recall, "f1-score": f1,
                            "support": total}
    rows = [scores[label] for label in labels]
    weights = np.array([s.support for s in rows], dtype=float)
    for name, weighted in (("macro avg", False), ("weighted avg", True)):
        out[name] = {key: float(np.average([getattr(s, attr) for s in rows],
                                           weights=weights if weighted else None))
                     if rows else 0.0
                     for key, attr in (("precision", "precision"), ("recall", "recall"),
                                       ("f1-score", "f1"))} | {"support": total}
    return out


def _entity_label(text: str | None, entity: dict[str, Any]) -> str:
    """Rasa's label for an entity in reports: ``[surface](type)``."""
    surface = (text or "")[int(entity["start"]):int(entity["end"])] \
        if entity.get("start") is not None else str(entity.get("value"))
    return f"[{surface}]({entity.get('entity')})"


def _aligned_entities(check: UserCheck) -> tuple[list[str], list[str]]:
    """Gold and predicted entities of one turn paired by position (Rasa's alignment): an
    entity on one side only is paired with ``None``."""
    def key(e: dict[str, Any]) -> tuple[int, int]:
        return int(e.get("start") or 0), int(e.get("end") or 0)

    gold = sorted(check.gold_entities, key=key)
    predicted = sorted(check.predicted_entities, key=key)
    targets: list[str] = []
    predictions: list[str] = []
    i = j = 0
    while i < len(gold) or j < len(predicted):
        if j == len(predicted) or (i < len(gold) and key(gold[i]) < key(predicted[j])):
            targets.append(_entity_label(check.text, gold[i]))
            predictions.append(NO_ENTITY)
            i += 1
        elif i == len(gold) or key(predicted[j]) < key(gold[i]):
            targets.append(NO_ENTITY)
            predictions.append(_entity_label(check.text, predicted[j]))
            j += 1
        else:
            targets.append(_entity_label(check.text, gold[i]))
            predictions.append(_entity_label(check.text, predicted[j]))
            i += 1
            j += 1
    return targets, predictions


@dataclass
class CoreReport:
    """The results of every test story, and the figures ``rasa test core`` reports."""

    results: list[StoryResult]
    parsed: bool  # whether user texts were parsed (a model with an NLU part)
    e2e: bool = False  # entities checked; intents and entities scored in the report

    @property
    def n_stories(self) -> int:
        return len(self.results)

    @property
    def end_to_end(self) -> bool:
        """Whether the evaluation was end-to-end: asked for, and the texts parsed (a model
        without an NLU part has nothing to parse them with)."""
        return self.e2e and self.parsed

    @property
    def notes(self) -> list[str]:
        """What a reader of the figures must know about how they were made."""
        if self.parsed:
            return []
        note = "the model has no NLU part; the intents written in the stories are used"
        if self.e2e:
            note += (", so the evaluation is not end-to-end (no text is parsed and no entity "
                     "checked)")
        return [note + "."]

    @property
    def passed(self) -> list[StoryResult]:
        return [r for r in self.results if r.passed]

    @property
    def failed(self) -> list[StoryResult]:
        return [r for r in self.results if not r.passed]

    @property
    def with_warnings(self) -> list[StoryResult]:
        return [r for r in self.results if r.passed and r.has_warnings]

    @property
    def action_checks(self) -> list[ActionCheck]:
        return [c for r in self.results for c in r.checks]

    @property
    def action_targets(self) -> list[str]:
        return [c.expected for c in self.action_checks]

    @property
    def action_predictions(self) -> list[str]:
        """What was predicted, counted as the target where it matches (a retrieval
        action's base name), as Rasa counts it."""
        return [c.expected if c.correct else str(c.predicted) for c in self.action_checks]

    @property
    def action_accuracy(self) -> float:
        return accuracy(self.action_targets, self.action_predictions)

    @property
    def conversation_accuracy(self) -> float:
        return len(self.passed) / self.n_stories if self.n_stories else 0.0

    def labels(self, e2e: bool | None = None) -> tuple[list[str], list[str]]:
        """Targets and predictions as Rasa scores them: the actions, then with ``e2e`` the
        intents of the parsed turns that have one and their aligned entities."""
        targets, predictions = self.action_targets, self.action_predictions
        if not (self.e2e if e2e is None else e2e):
            return targets, predictions
        checks = [c for r in self.results for c in r.user_checks]
        with_intent = [c for c in checks if c.gold_intent is not None]
        targets = targets + [str(c.gold_intent) for c in with_intent]
        predictions = predictions + [str(c.predicted_intent) for c in with_intent]
        for check in checks:
            gold, predicted = _aligned_entities(check)
            targets, predictions = targets + gold, predictions + predicted
        return targets, predictions

    def story_report(self, e2e: bool | None = None) -> dict[str, Any]:
        """``story_report.json``."""
        report = classification_report(*self.labels(e2e)) if self.action_checks else {}
        if self.n_stories:
            report["conversation_accuracy"] = {
                "accuracy": self.conversation_accuracy, "correct": len(self.passed),
                "with_warnings": len(self.with_warnings), "total": self.n_stories}
        return report

    def _walks(self, keep: Callable[[StoryResult, Walk], bool]) -> list[tuple[StoryResult, Walk]]:
        return [(r, w) for r in self.results for w in r.walks if keep(r, w)]

    def write(self, out: str | Path, *, errors: bool = True, successes: bool = False,
              warnings: bool = True, plot: bool = True) -> list[Path]:
        """Write Rasa's report files into ``out`` (created if missing); the paths written."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        files = {REPORT_FILE: json.dumps(self.story_report(), indent=2, ensure_ascii=False)
                 + "\n"}
        if errors:
            files[FAILED_STORIES_FILE] = marked_stories_yaml(
                self._walks(lambda r, w: not w.passed),
                "None of the test stories failed - all good!")
        # Walk by walk, as Rasa writes a tracker per `or` alternative: an alternative that
        # passed is a success even where another alternative of its story failed.
        if successes:
            files[SUCCESSFUL_STORIES_FILE] = marked_stories_yaml(
                self._walks(lambda r, w: w.passed), "None of the test stories succeeded :(")
        if warnings:
            files[WARNINGS_FILE] = marked_stories_yaml(
                self._walks(lambda r, w: w.passed and w.has_warnings),
                "No warnings for test stories")
        written = []
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
            written.append(folder / name)
        if plot and self.action_checks:
            from parley.nlu import plots

            if plots.plots_available():  # an optional extra: without it, no picture
                plots.confusion_matrix_png(self.action_targets, self.action_predictions,
                                           folder / CONFUSION_MATRIX_FILE,
                                           title="Action Confusion matrix")
                written.append(folder / CONFUSION_MATRIX_FILE)
        return written

    def summary(self) -> str:
        checks = self.action_checks
        right = sum(c.correct for c in checks)
        turns = [c for r in self.results for c in r.user_checks]
        lines = [f"Core evaluation of {self.n_stories} test "
                 f"{'story' if self.n_stories == 1 else 'stories'}",
                 f"  stories:  {len(self.passed)} of {self.n_stories} passed "
                 f"(conversation accuracy {self.conversation_accuracy:.3f}"
                 f"{f', {len(self.with_warnings)} with warnings' if self.with_warnings else ''})",
                 f"  actions:  {right} of {len(checks)} right (accuracy "
                 f"{self.action_accuracy:.3f})"]
        if self.parsed:
            checked = "intent and entities" if self.e2e else "intent"
            lines.append(f"  user turns parsed: {len(turns)}, {sum(c.correct for c in turns)} "
                         f"as the stories say ({checked})")
        for result in self.failed:
            failure = result.first_failure
            if isinstance(failure, ActionCheck):
                what = f"expected {failure.expected}, predicted {failure.predicted}"
            elif isinstance(failure, UserCheck):
                what = (f"'{failure.text}' is {failure.gold_intent} in the story, parsed as "
                        f"{failure.predicted_intent}" if not failure.intent_correct else
                        f"'{failure.text}': entities differ from the story")
            else:  # pragma: no cover - a failed story has a failed check
                what = "failed"
            lines.append(f"  failed:   {result.name}: {what}")
        return "\n".join(lines)


RULES_NOT_TESTED = ("as in Rasa, whose `rasa test core` replays the stories of test files "
                    "only: a rule is a fragment that may start mid-conversation, not a "
                    "conversation. To test what a rule does, write a story that goes "
                    "through it.")


def split_rules(tests: Sequence[Story]) -> tuple[list[Story], list[Story]]:
    """(stories, rules) of what test files hold: only the stories are tested (see
    :data:`RULES_NOT_TESTED`)."""
    return ([test for test in tests if not test.is_rule],
            [test for test in tests if test.is_rule])


def rules_note(rules: Sequence[Story]) -> str:
    """The note that ``rules`` of test files were left out."""
    count = f"{len(rules)} rule{'' if len(rules) == 1 else 's'}"
    return f"{count} of the test files {'is' if len(rules) == 1 else 'are'} not tested, " \
        f"{RULES_NOT_TESTED}"


def evaluate_core(agent: Any, stories: Sequence[Story], *, parse: bool = True,
                  e2e: bool = False) -> CoreReport:
    """Replay ``stories`` with a loaded model (an :class:`~parley.serving.agent.Agent`).

    The ``user:`` texts are parsed with the model's NLU part (``parse=False``, or a model
    without one, takes the intents written in the stories instead), and end-to-end
    policies read them with its featurizers. ``e2e``: the parsed entities are checked too,
    and intents and entities scored in the report.
    """
    parse_fn = agent.parse if parse and agent.nlu_components else None
    results = evaluate_test_stories(agent.policies, stories, agent.domain, parse_fn,
                                    check_entities=e2e, featurize=agent.text_featurizer)
    return CoreReport(results, parse_fn is not None, e2e)
