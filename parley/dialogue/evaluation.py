"""Walk test stories through a trained model and compare every prediction with the story.

A test story is replayed as a conversation, as ``rasa test`` replays it. At each user turn
that has a text (``user: …``) the text is parsed with the model's NLU (``parse``) and the
parse is what the conversation gets; an intent (and entities) written in the story are the
gold labels the parse is checked against. A turn written as an intent alone is taken as
written (there is nothing to parse). With ``check_entities`` (``--e2e``) the parse's
entities are checked against the story's too. At each action the policies predict, the prediction is
checked against the story's action, and the story's own action is applied so that the walk
goes on as written. Forms and loops are replayed from the story's own events
(``active_loop``, ``slot_was_set``); when the policies insist on an active form where the
story has something else, the form is rejected once and the policies asked again (the form
would have rejected without an action server too). When the policies predict
``action_unlikely_intent`` (UnexpecTEDIntentPolicy) where the story has something else, it
is applied as a warning and the policies asked again, as Rasa does. Like ``rasa test``, the
walk logs plain actions: no turn is hidden as rule-only and the winners' events are not
applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, ActionExecutionRejected, ActiveLoop, Event, SlotSet, UserUttered)
from parley.data.stories import ActiveLoopStep, CheckpointStep, Story
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.featurization.state import TextFeaturizer
from parley.dialogue.generator import slots_for_entities, story_event_sequences
from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.ensemble import PolicyEnsemble
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import DataError

__all__ = ["ActionCheck", "StoryResult", "UserCheck", "Walk", "evaluate_test_stories",
           "predict_test_story"]

ACTION_LISTEN = "action_listen"
ACTION_UNLIKELY_INTENT = "action_unlikely_intent"
UTTER_PREFIX = "utter_"
ParseFn = Callable[[str], dict[str, Any]]
# What a walk went through, in order: actions and user turns with their checks, and the
# story's own slot and loop events (the slots a user turn's entities fill are left out:
# they follow from the turn).
Step: TypeAlias = "ActionCheck | UserCheck | SlotSet | ActiveLoop"


@dataclass(frozen=True)
class ActionCheck:
    """One action of a test story: what was expected, what the policies predicted.

    ``warned``: the policies first predicted ``action_unlikely_intent`` here.
    """

    expected: str
    predicted: str | None
    policy: str | None
    confidence: float
    warned: bool = False
    is_text: bool = field(default=False, compare=False)  # an end-to-end ``bot:`` turn

    @property
    def correct(self) -> bool:
        if self.predicted is None:
            return False
        # A retrieval action `utter_faq/ask_name` is predicted as `utter_faq` when the
        # parse says nothing of the response (an intent written in the story).
        return self.predicted in (self.expected, self.expected.split("/", 1)[0])


@dataclass(frozen=True)
class UserCheck:
    """One user turn: the story's text and labels, and what the model's parse said.

    ``parsed`` is False for a turn written as an intent alone (taken as written, nothing
    to check); ``gold_intent`` is None where the story gives only the text. The entities
    count towards ``correct`` only when ``entities_checked`` (an end-to-end test).
    """

    text: str | None
    gold_intent: str | None
    predicted_intent: str | None
    gold_entities: tuple[dict[str, Any], ...] = ()
    predicted_entities: tuple[dict[str, Any], ...] = ()
    parsed: bool = True
    confidence: float | None = field(default=None, compare=False)
    entities_checked: bool = False

    @property
    def intent_correct(self) -> bool:
        return not self.parsed or self.gold_intent is None or \
            self.gold_intent == self.predicted_intent

    @property
    def entities_correct(self) -> bool:
        if not self.parsed:
            return True
        offsets = all("start" in e and "end" in e for e in self.gold_entities)
        return _entity_keys(self.gold_entities, offsets) == \
            _entity_keys(self.predicted_entities, offsets)

    @property
    def correct(self) -> bool:
        return self.intent_correct and (self.entities_correct or not self.entities_checked)


def _entity_keys(entities: Sequence[dict[str, Any]], offsets: bool) -> list[tuple[Any, ...]]:
    """What must match, as Rasa compares it: span, type and value (as text); only type and
    value where the story lists entities without a text to place them in."""
    keys = [((e.get("start"), e.get("end")) if offsets else ()) +
            (e.get("entity"), str(e.get("value"))) for e in entities]
    return sorted(keys, key=repr)


@dataclass
class Walk:
    """One replay of a test story (a story with ``or`` steps has one per alternative)."""

    steps: list[Step] = field(default_factory=list)

    @property
    def action_checks(self) -> list[ActionCheck]:
        return [s for s in self.steps if isinstance(s, ActionCheck)]

    @property
    def user_checks(self) -> list[UserCheck]:
        return [s for s in self.steps if isinstance(s, UserCheck) and s.parsed]

    @property
    def passed(self) -> bool:
        return all(c.correct for c in self.action_checks) and \
            all(c.correct for c in self.user_checks)

    @property
    def has_warnings(self) -> bool:
        return any(c.warned for c in self.action_checks)


@dataclass
class StoryResult:
    """Every check of one test story (all its ``or`` alternatives, in order)."""

    name: str
    checks: list[ActionCheck] = field(default_factory=list)
    user_checks: list[UserCheck] = field(default_factory=list)
    walks: list[Walk] = field(default_factory=list)
    story: Story | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(check.correct for check in self.checks) and \
            all(check.correct for check in self.user_checks)

    @property
    def has_warnings(self) -> bool:
        return any(walk.has_warnings for walk in self.walks)

    @property
    def first_failure(self) -> ActionCheck | UserCheck | None:
        for walk in self.walks:
            for step in walk.steps:
                if isinstance(step, (ActionCheck, UserCheck)) and not step.correct:
                    return step
        return next((c for c in self.checks if not c.correct), None)


def _ensemble(policies: PolicyEnsemble | Sequence[Policy]) -> PolicyEnsemble:
    return policies if isinstance(policies, PolicyEnsemble) else PolicyEnsemble(policies)


def _selected_response(parse: dict[str, Any], intent: str | None) -> str | None:
    """The response (``faq/ask_name``) the parse's selector chose for a retrieval intent."""
    selectors = parse.get("response_selector") or {}
    if intent is None or intent not in selectors.get("all_retrieval_intents", ()):
        return None
    selector = selectors.get(intent) or selectors.get("default") or {}
    return (selector.get("response") or {}).get("intent_response_key")


def _predicted_name(prediction: PolicyPrediction, tracker: DialogueStateTracker,
                    domain: Domain, expected: str) -> str | None:
    """The predicted action; for a retrieval action (``utter_faq``) where the story names a
    response (``utter_faq/ask_name``), the response the parse selected, as Rasa names it."""
    name = prediction.action_name(domain)
    if name is None or name == expected or not name.startswith(UTTER_PREFIX):
        return name
    key = _selected_response(tracker.latest_message.parse_data_extra,
                             name.removeprefix(UTTER_PREFIX))
    return f"{UTTER_PREFIX}{key}" if key else name


def _predict(ensemble: PolicyEnsemble, tracker: DialogueStateTracker, domain: Domain,
             expected: str, featurize: TextFeaturizer | None
             ) -> tuple[PolicyPrediction, str | None]:
    prediction = ensemble.predict(tracker, domain, featurize)
    predicted = _predicted_name(prediction, tracker, domain, expected)
    loop = tracker.active_loop_name
    if predicted != expected and loop is not None and predicted == loop and \
            loop in domain.forms:
        tracker.update(ActionExecutionRejected(action_name=loop))
        prediction = ensemble.predict(tracker, domain, featurize)
        predicted = _predicted_name(prediction, tracker, domain, expected)
    return prediction, predicted


def _check_action(ensemble: PolicyEnsemble, tracker: DialogueStateTracker, domain: Domain,
                  event: ActionExecuted, featurize: TextFeaturizer | None) -> ActionCheck:
    expected = event.action_name or event.action_text or ""
    prediction, predicted = _predict(ensemble, tracker, domain, expected, featurize)
    warned = False
    if predicted == ACTION_UNLIKELY_INTENT and expected != ACTION_UNLIKELY_INTENT:
        # UnexpecTEDIntentPolicy's warning: it runs, then the policies go on from there.
        tracker.update(ActionExecuted(action_name=ACTION_UNLIKELY_INTENT,
                                      policy=prediction.policy_name,
                                      confidence=prediction.max_confidence))
        warned = True
        prediction, predicted = _predict(ensemble, tracker, domain, expected, featurize)
    return ActionCheck(expected, predicted, prediction.policy_name, prediction.max_confidence,
                       warned, is_text=event.action_name is None)


def _parsed_turn(event: UserUttered, parse: ParseFn,
                 check_entities: bool) -> tuple[UserUttered, UserCheck]:
    """The user turn as the model understands its text, and the check of that parse."""
    result = parse(event.text or "")
    intent = dict(result.get("intent") or {})
    predicted = intent.get("name")
    gold = event.parse_data_extra.get("full_retrieval_intent_name") or event.intent_name
    if gold is not None and predicted != gold:
        # Rasa's _get_full_retrieval_intent: a retrieval intent is named by its response
        predicted = _selected_response(result, predicted) or predicted
    entities = [dict(e) for e in result.get("entities") or []]
    extra = {k: v for k, v in result.items() if k not in ("text", "intent", "entities")}
    turn = UserUttered(text=event.text, intent=intent or None, entities=entities,
                       parse_data_extra=extra)
    check = UserCheck(event.text, gold, predicted, tuple(event.entities), tuple(entities),
                      parsed=True, confidence=intent.get("confidence"),
                      entities_checked=check_entities)
    return turn, check


def _ran(action: str | None, domain: Domain) -> str | None:
    """The action the assistant runs for a story's action: a test story may name the
    response of a retrieval action (``utter_faq/ask_name``), the assistant runs
    ``utter_faq``, and that is what the policies know."""
    if action is None or "/" not in action:
        return action
    base = action.split("/", 1)[0]
    return base if base in domain.action_names else action


def _walk(ensemble: PolicyEnsemble, story: Story, events: list[Event], domain: Domain,
          parse: ParseFn | None, check_entities: bool,
          featurize: TextFeaturizer | None) -> Walk:
    walk = Walk()
    tracker = DialogueStateTracker.from_domain(story.name, domain, events[:1])
    skip = 0  # the slot events the story derived from the turn's written entities
    for event in events[1:]:
        if skip:
            skip -= 1
            continue
        if isinstance(event, UserUttered):
            skip = len(slots_for_entities(event.entities, domain))
            if parse is not None and event.text:
                turn, check = _parsed_turn(event, parse, check_entities)
            else:
                turn = event
                check = UserCheck(event.text, event.intent_name, event.intent_name,
                                  tuple(event.entities), tuple(event.entities), parsed=False)
            walk.steps.append(check)
            tracker.update(turn)
            for slot in slots_for_entities(turn.entities, domain):
                tracker.update(slot)
            continue
        if not isinstance(event, ActionExecuted):
            tracker.update(event)
            if isinstance(event, (SlotSet, ActiveLoop)):
                walk.steps.append(event)
            continue
        check = _check_action(ensemble, tracker, domain, event, featurize)
        walk.steps.append(check)
        tracker.update(ActionExecuted(
            action_name=_ran(event.action_name, domain), action_text=event.action_text,
            policy=check.policy, confidence=check.confidence))
    return walk


def _check_loops(story: Story, domain: Domain) -> None:
    """A loop the domain lacks would be predicted by the policies (RulePolicy runs the
    active loop) and cannot be: an error at the story's line, not a crash mid-replay."""
    actions = set(domain.action_names)
    for step in story.steps:
        if isinstance(step, ActiveLoopStep) and step.name is not None \
                and step.name not in actions:
            forms = ", ".join(domain.form_names) or "none"
            raise DataError(f"the test story '{story.name}' activates the loop "
                            f"'{step.name}', which is not an action of the model's domain "
                            f"(its forms: {forms}).", step.file, step.line,
                            hint="Test with the model trained for these stories, or fix the "
                                 "loop's name.")


def predict_test_story(policies: PolicyEnsemble | Sequence[Policy], story: Story,
                       domain: Domain, parse: ParseFn | None = None,
                       check_entities: bool = False,
                       featurize: TextFeaturizer | None = None) -> StoryResult:
    """Replay ``story`` and check each predicted action (and, with ``parse``, each parse of
    a ``user:`` text: its intent, and its entities with ``check_entities``) against the
    story's. ``featurize`` reads the texts for end-to-end policies (the model's NLU
    featurizers)."""
    ensemble = _ensemble(policies)
    checkpoint = next((s for s in story.steps if isinstance(s, CheckpointStep)), None)
    if checkpoint is not None:
        raise DataError(f"the test story '{story.name}' uses the checkpoint "
                        f"'{checkpoint.name}'; test stories are replayed whole.",
                        checkpoint.file, checkpoint.line,
                        hint="Write the conversation out in one story, without checkpoints.")
    _check_loops(story, domain)
    result = StoryResult(story.name, story=story)
    for events in story_event_sequences(story, domain):
        walk = _walk(ensemble, story, events, domain, parse, check_entities, featurize)
        result.walks.append(walk)
        result.checks.extend(walk.action_checks)
        result.user_checks.extend(walk.user_checks)
    return result


def evaluate_test_stories(policies: PolicyEnsemble | Sequence[Policy],
                          stories: Sequence[Story], domain: Domain,
                          parse: ParseFn | None = None,
                          check_entities: bool = False,
                          featurize: TextFeaturizer | None = None) -> list[StoryResult]:
    """Every story's result; ``parse`` (text → Rasa parse dict, e.g. ``Agent.parse``) reads
    the ``user:`` texts, as a conversation with the model would."""
    ensemble = _ensemble(policies)
    return [predict_test_story(ensemble, story, domain, parse, check_entities, featurize)
            for story in stories]
