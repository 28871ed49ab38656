"""RulePolicy: fixed behaviour from rules, forms' happy paths and the core fallback.

Training turns every rule into lookup keys: the states since the rule's ``...`` (all of
them for ``conversation_start`` rules), with only what the rule mentions; at prediction a
rule applies when each of its states is contained in the conversation's matching state
(``should_not_be_set`` demands absence; a start-of-conversation state only matches one).
Among applicable rules the longest wins.

Around the rules, in Rasa's order: the intents ``restart``/``back``/``session_start``
trigger their default actions; an active loop is predicted again until it is rejected,
and ``action_listen`` after it ran; rules predicting ``action_listen`` inside an active
loop give way to the loop, unless stories show another action there. When nothing
applies, ``core_fallback_action_name`` is predicted with ``core_fallback_threshold``.

Training also checks the data: rules with more than one user turn (``restrict_rules``),
and rules that contradict each other or the stories (``check_for_contradictions``), each
reported with the rule and story names. It records which rule turns appear in no story,
so that story-trained policies can skip them (``hide_rule_turn``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted,
    ActionExecutionRejected,
    LoopInterrupted,
    UserUttered,
)
from parley.data.tracker import (
    ACTIVE_LOOP, LOOP_NAME, PREVIOUS_ACTION, RULE_ONLY_LOOPS, RULE_ONLY_SLOTS,
    SHOULD_NOT_BE_SET, SLOTS, DialogueStateTracker, State, prev_action_is_listen,
)
from parley.dialogue.generator import RULE_SNIPPET_ACTION
from parley.dialogue.policies.base import (
    Policy, check_actions_in_domain, prediction_states, training_states_and_labels,
    nlu_confidence_score, unambiguous_lookup,
)
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import ConfigError, DataError, location
from parley.params import Bool, Constraint, Float, Int, Str

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RulePolicy"]

ACTION_LISTEN = "action_listen"
DEFAULT_ACTION_MAPPINGS = {
    "restart": "action_restart",
    "back": "action_back",
    "session_start": "action_session_start",
}
RULES = "rules"
RULES_FOR_LOOP_UNHAPPY_PATH = "rules_for_loop_unhappy_path"
RULES_NOT_IN_STORIES = "rules_not_in_stories"
RULE_NAMES = "rule_names"  # rule key → the rule it came from, to say which rule applied
LOOP_WAS_INTERRUPTED = "loop_was_interrupted"
DO_NOT_PREDICT_LOOP_ACTION = "do_not_predict_loop_action"
DEFAULT_RULES = "predicting default action with intent "
LOOP_RULES = "handling active loops and forms - "
LOOP_RULES_SEPARATOR = " - "
ALLOWED_USER_TURNS = 1

ParsedRule = list[State]


def _active_loop(state: State) -> str | None:
    name = state.get(ACTIVE_LOOP, {}).get(LOOP_NAME)
    return None if name == SHOULD_NOT_BE_SET else name


def _tuples(value: Any) -> Any:
    """JSON turns tuples into lists; states compare with tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _rule_matches_state(rule_state: State, state: State) -> bool:
    for kind, rule_sub in rule_state.items():
        sub = state.get(kind, {})
        for key, wanted in rule_sub.items():
            found = sub.get(key)
            if wanted == SHOULD_NOT_BE_SET:
                if found and found != SHOULD_NOT_BE_SET:
                    return False
            elif wanted and found != wanted:
                return False
    return True


class RulePolicy(Policy):
    """Rasa's RulePolicy (see the module docstring)."""

    name: ClassVar[str] = "RulePolicy"
    default_priority: ClassVar[int] = 6
    uses_rules: ClassVar[bool] = True

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "core_fallback_threshold": Float(0, 1),
        "core_fallback_action_name": Str(nonempty=True),
        "enable_fallback_prediction": Bool(),
        "restrict_rules": Bool(),
        "check_for_contradictions": Bool(),
        "use_nlu_confidence_as_score": Bool(),
        "priority": Int(),
    }

    def __init__(self, core_fallback_threshold: float = 0.3,
                 core_fallback_action_name: str = "action_default_fallback",
                 enable_fallback_prediction: bool = True, restrict_rules: bool = True,
                 check_for_contradictions: bool = True,
                 use_nlu_confidence_as_score: bool = False, priority: int = 6) -> None:
        self.core_fallback_threshold = core_fallback_threshold
        self.core_fallback_action_name = core_fallback_action_name
        self.enable_fallback_prediction = enable_fallback_prediction
        self.restrict_rules = restrict_rules
        self.check_for_contradictions = check_for_contradictions
        self.use_nlu_confidence_as_score = use_nlu_confidence_as_score
        self.priority = priority
        self._parsed: dict[str, ParsedRule] = {}

    # ---- keys ----------------------------------------------------------------------

    @staticmethod
    def _feature_key(states: Sequence[State]) -> str | None:
        """The key of the states after the last rule snippet ``...``; None if none."""
        kept: list[State] = []
        for state in reversed(states):
            if state.get(PREVIOUS_ACTION, {}).get("action_name") == RULE_SNIPPET_ACTION:
                break
            kept.insert(0, state)
        return json.dumps(kept, sort_keys=True) if kept else None

    def _reversed_rule(self, key: str) -> ParsedRule:
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = [_tuples(s) for s in reversed(json.loads(key))]
            self._parsed[key] = parsed
        return parsed

    def _applicable(self, key: str, turn: int, state: State) -> bool:
        rule = self._reversed_rule(key)
        if turn >= len(rule):
            return True
        current = state.get(PREVIOUS_ACTION)
        wanted = rule[turn].get(PREVIOUS_ACTION)
        if not wanted and not current:
            return True  # both are the conversation's start
        if not wanted or not current:
            return False
        return _rule_matches_state(rule[turn], state)

    def _possible_keys(self, lookup: dict[str, str], states: list[State]) -> list[str]:
        keys = list(lookup)
        for turn, state in enumerate(reversed(states)):
            keys = [k for k in keys if self._applicable(k, turn, state)]
            if not keys:
                break
        return keys

    # ---- training ------------------------------------------------------------------

    def fit(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> RulePolicy:
        self.check_params()
        if self.core_fallback_action_name not in domain.action_names:
            raise ConfigError(
                f"RulePolicy: the fallback action '{self.core_fallback_action_name}' "
                "(core_fallback_action_name) is not in the domain. Add it to the domain's "
                "actions, or use action_default_fallback.")
        trackers = [t for t in trackers if not getattr(t, "is_augmented", False)]
        rule_trackers = [t for t in trackers if t.is_rule_tracker]
        story_trackers = [t for t in trackers if not t.is_rule_tracker]
        if self.restrict_rules:
            self._check_rule_restriction(rule_trackers)
        self._parsed = {}
        rule_names: list[str] = []
        rule_states, rule_labels = training_states_and_labels(
            rule_trackers, domain, None, omit_unset_slots=True, names=rule_names)
        story_states, story_labels = training_states_and_labels(story_trackers, domain, None)
        check_actions_in_domain([*rule_labels, *story_labels], domain, self.name)
        lookup: dict[str, Any] = {RULES: self._rules_lookup(rule_states, rule_labels)}
        lookup[RULE_NAMES] = {}
        for history, name in zip(rule_states, rule_names, strict=True):
            key = self._feature_key(history)
            if key in lookup[RULES]:
                lookup[RULE_NAMES].setdefault(key, name)
        if self.check_for_contradictions:
            lookup[RULE_ONLY_SLOTS], lookup[RULE_ONLY_LOOPS] = _rule_only_slots_loops(
                rule_states, story_states)
        lookup[RULES_FOR_LOOP_UNHAPPY_PATH] = self._unhappy_lookup(
            rule_states + story_states, rule_labels + story_labels)
        self.lookup_ = lookup
        if self.check_for_contradictions:
            lookup[RULES_NOT_IN_STORIES] = self._analyze_rules(rule_trackers, trackers, domain)
        return self

    def _check_rule_restriction(self, rule_trackers: Sequence[DialogueStateTracker]) -> None:
        too_long = sorted({t.sender_id for t in rule_trackers
                           if sum(isinstance(e, UserUttered) for e in t.events)
                           > ALLOWED_USER_TURNS})
        if too_long:
            raise DataError(
                f"the rules {', '.join(repr(n) for n in too_long)} contain more than "
                f"{ALLOWED_USER_TURNS} user message; rules are not meant to hard-code a "
                "state machine.",
                hint="Write these as stories, or set restrict_rules: false for RulePolicy.")

    def _rules_lookup(self, histories: list[list[State]], labels: list[str]) -> dict[str, str]:
        lookup = unambiguous_lookup((self._feature_key(h) for h in histories), labels)
        # "..." is no action to predict
        return {k: v for k, v in lookup.items() if v != RULE_SNIPPET_ACTION}

    def _unhappy_lookup(self, histories: list[list[State]], labels: list[str]) -> dict[str, str]:
        """Auxiliary keys for unhappy loop paths: after the user answered something else,
        the loop runs without validating; after another action the loop is not forced."""
        lookup: dict[str, str] = {}
        for history, label in zip(histories, labels, strict=True):
            loop = _active_loop(history[-1])
            if not loop:
                continue
            if len(history) == 1 or not history[-2].get(PREVIOUS_ACTION):
                states = [history[-1]]
            else:
                states = [{PREVIOUS_ACTION: history[-2][PREVIOUS_ACTION]}, history[-1]]
            key = self._feature_key(states)
            if key is None:
                continue
            if prev_action_is_listen(states[-1]) and label == loop:
                lookup[key] = LOOP_WAS_INTERRUPTED
            elif not prev_action_is_listen(states[-1]) and label != loop:
                lookup[key] = DO_NOT_PREDICT_LOOP_ACTION
        return lookup

    # ---- contradictions ------------------------------------------------------------

    def _analyze_rules(self, rule_trackers: Sequence[DialogueStateTracker],
                       all_trackers: Sequence[DialogueStateTracker], domain: Domain) -> list[str]:
        """Replays the trackers through the learned rules: collects which rules predict
        what, raises on contradictions, returns the prediction sources no story uses."""
        sources: defaultdict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self._replay(rule_trackers, domain, sources, collect=True)
        errors, used = self._replay(all_trackers, domain, sources, collect=False)
        if errors:
            raise DataError(
                "contradicting rules or stories found:\n" + "\n".join(errors),
                hint="Update your stories and rules so that they do not contradict each "
                "other.")
        every = set(sources) | {DEFAULT_RULES + intent for intent in DEFAULT_ACTION_MAPPINGS}
        for loop in domain.form_names:
            every |= {LOOP_RULES + loop, LOOP_RULES + loop + LOOP_RULES_SEPARATOR + ACTION_LISTEN}
        return sorted(every - used)

    def _replay(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
                sources: defaultdict[str, list[tuple[str, str, str]]],
                collect: bool) -> tuple[list[str], set[str]]:
        errors: list[str] = []
        used: set[str] = set()
        for tracker in trackers:
            running = tracker.init_copy()
            running.sender_id = tracker.sender_id
            unpredictable = True  # nothing predicts a tracker's first action
            written: ActionExecuted | None = None  # the last action a step wrote
            for event in tracker.applied_events():
                if not isinstance(event, ActionExecuted):
                    running.update(event)
                    continue
                place = (event, written)
                if event.action_name != ACTION_LISTEN and event.origin is not None:
                    written = event
                if event.action_name == RULE_SNIPPET_ACTION:
                    unpredictable = True
                    running.update(event)
                    continue
                if unpredictable or event.unpredictable:
                    unpredictable = False
                    running.update(event)
                    continue
                gold = event.action_name or event.action_text or ""
                predicted, source = self._predicted_for_check(running, domain, gold)
                if collect:
                    if source:
                        rule_name, gold_name = running.sender_id, gold
                        if source.startswith((DEFAULT_RULES, LOOP_RULES)):
                            rule_name, gold_name = source, predicted or ""
                        sources[source].append((rule_name, gold_name, _where(*place)))
                else:
                    if not running.is_rule_tracker and predicted == gold and source:
                        used.add(source)
                    errors += self._check_prediction(running, predicted, gold, source, sources,
                                                     place)
                running.update(event)
        return errors, used

    def _predicted_for_check(self, tracker: DialogueStateTracker, domain: Domain,
                             gold: str) -> tuple[str | None, str | None]:
        predicted, source = self._next_action(tracker, domain)
        loop = tracker.active_loop_name
        if loop and predicted != gold and predicted == loop:
            # Inside a loop the rules always try the loop first; in an unhappy path the
            # loop would have rejected: emulate that and ask again.
            tracker.update(ActionExecutionRejected(action_name=loop))
            predicted, source = self._next_action(tracker, domain)
        return predicted, source

    def _next_action(self, tracker: DialogueStateTracker,
                     domain: Domain) -> tuple[str | None, str | None]:
        prediction, source = self._predict(tracker, domain)
        if prediction.probabilities != self.default_predictions(domain) or \
                tracker.is_rule_tracker:
            return domain.action_names[prediction.max_confidence_index], source
        return None, source

    def _check_prediction(self, tracker: DialogueStateTracker, predicted: str | None,
                          gold: str, source: str | None,
                          sources: defaultdict[str, list[tuple[str, str, str]]],
                          place: tuple[ActionExecuted, ActionExecuted | None] | None = None
                          ) -> list[str]:
        if not predicted or not source or predicted == gold:
            return []
        if self._should_delete(source, tracker, predicted):
            self.lookup_[RULES].pop(source, None)
            return []
        contradicting = sorted({(name, rule_where) for name, action, rule_where
                                in sources.get(source, []) if action != gold})
        if not contradicting:
            return []
        kind = "rule" if tracker.is_rule_tracker else "story"
        names = ", ".join(dict.fromkeys(name for name, _ in contradicting))
        message = (f"- the prediction of the action '{gold}' in {kind} '{tracker.sender_id}' "
                   f"{_at(_where(*place) if place else '')}is contradicting with rule(s) '{names}'")
        rule_places = [place for _, place in contradicting if place]
        if rule_places:
            message += f" ({', '.join(rule_places)})"
        if predicted != self.core_fallback_action_name:
            message += f" which predicted action '{predicted}'"
        return [message + "."]

    def _should_delete(self, source: str, tracker: DialogueStateTracker,
                       predicted: str) -> bool:
        """A story may continue differently after a rule's action_listen: the rule's
        listen is then dropped rather than reported (Rasa's rule for action-intent pairs)."""
        if tracker.is_rule_tracker or source.count(PREVIOUS_ACTION) > 1 or \
                predicted != ACTION_LISTEN:
            return False
        return any(key.startswith(source[:-2]) and key != source for key in self.lookup_[RULES])

    # ---- prediction ----------------------------------------------------------------

    def rule_only_data(self) -> dict[str, Any] | None:
        lookup = getattr(self, "lookup_", None)
        if lookup is None:
            return None
        return {key: list(lookup.get(key, [])) for key in (RULE_ONLY_SLOTS, RULE_ONLY_LOOPS)}

    def default_predictions(self, domain: Domain) -> list[float]:
        result = super().default_predictions(domain)
        if self.enable_fallback_prediction:
            result[self._action_index(self.core_fallback_action_name, domain)] = \
                self.core_fallback_threshold
        return result

    def _result(self, action: str, tracker: DialogueStateTracker,
                domain: Domain) -> list[float]:
        result = self.default_predictions(domain)
        score = 1.0
        if self.use_nlu_confidence_as_score:
            score = nlu_confidence_score(tracker)
        result[self._action_index(action, domain)] = score
        return result

    def _find_from_rules(self, tracker: DialogueStateTracker, domain: Domain,
                         use_text: bool) -> tuple[str | None, str | None, bool]:
        """(action or None, the matching rule key or the states' key, returning from
        an unhappy loop path)."""
        if use_text and tracker.latest_action_name != ACTION_LISTEN:
            return None, None, False
        states = prediction_states(tracker, domain, None, use_text_for_last_user_input=use_text)
        returning = False
        rules: dict[str, str] = self.lookup_[RULES]
        keys = self._possible_keys(rules, states)
        predicted: str | None = None
        best = ""
        if keys:
            best = max(keys, key=lambda k: (len(k), k))
            predicted = rules.get(best)
        loop = tracker.active_loop_name
        if loop:
            unhappy: dict[str, str] = self.lookup_[RULES_FOR_LOOP_UNHAPPY_PATH]
            conditions = [unhappy[k] for k in self._possible_keys(unhappy, states)]
            listen_from_general_rule = (
                predicted == ACTION_LISTEN and not _active_loop(json.loads(best)[-1]))
            if listen_from_general_rule:
                if DO_NOT_PREDICT_LOOP_ACTION not in conditions:
                    return loop, best, returning
                predicted = None
            if LOOP_WAS_INTERRUPTED in conditions:
                returning = True
        return predicted, best or self._feature_key(states), returning

    def _predict(self, tracker: DialogueStateTracker,
                 domain: Domain) -> tuple[PolicyPrediction, str | None]:
        from_text, source_text, returning_text = self._find_from_rules(tracker, domain, True)
        default = self._default_action(tracker)
        if default and not from_text:
            intent = str(tracker.latest_message.intent_name)
            source = DEFAULT_RULES + intent
            return self._prediction(self._result(default, tracker, domain), source,
                                    reason=f"the intent '{intent}' always runs '{default}'"
                                    ), source
        loop_action, loop_source = self._loop_happy_path(tracker)
        if loop_action and loop_source:
            loop = tracker.active_loop_name
            reason = (f"the loop '{loop}' ran: wait for the user" if loop_action == ACTION_LISTEN
                      else f"the active loop '{loop}' goes on until it is rejected")
            return self._prediction(self._result(loop_action, tracker, domain), loop_source,
                                    no_user=True, reason=reason), loop_source
        if from_text:
            return self._prediction(self._result(from_text, tracker, domain), source_text,
                                    returning=returning_text, end_to_end=True,
                                    reason=self._rule_reason(tracker, from_text, source_text)
                                    + " (on the user's text)"), source_text
        from_intent, source_intent, returning_intent = self._find_from_rules(
            tracker, domain, False)
        if from_intent:
            probabilities = self._result(from_intent, tracker, domain)
            reason = self._rule_reason(tracker, from_intent, source_intent)
        else:
            probabilities = self.default_predictions(domain)
            reason = "no rule applies"
            if self.enable_fallback_prediction:
                reason += (f"; core fallback '{self.core_fallback_action_name}' at "
                           f"core_fallback_threshold {self.core_fallback_threshold:.2f}")
        return self._prediction(probabilities, source_intent,
                                returning=returning_text or returning_intent,
                                reason=reason), source_intent

    def _rule_reason(self, tracker: DialogueStateTracker, action: str,
                     source: str | None) -> str:
        loop = tracker.active_loop_name
        name = self.lookup_.get(RULE_NAMES, {}).get(source or "")
        if loop and action == loop and self.lookup_[RULES].get(source or "") != loop:
            return f"the active loop '{loop}' goes on (no rule for it stops here)"
        return f"rule '{name}'" if name else "a rule applies"

    @staticmethod
    def _default_action(tracker: DialogueStateTracker) -> str | None:
        if tracker.latest_action_name != ACTION_LISTEN or tracker.latest_message.is_empty():
            return None
        return DEFAULT_ACTION_MAPPINGS.get(tracker.latest_message.intent_name or "")

    @staticmethod
    def _loop_happy_path(tracker: DialogueStateTracker) -> tuple[str | None, str | None]:
        loop = tracker.active_loop_name
        if loop is None or tracker.is_active_loop_rejected:
            return None, None
        if tracker.latest_action and tracker.latest_action_name != loop:
            return loop, LOOP_RULES + loop
        if tracker.latest_action_name == loop:
            return ACTION_LISTEN, LOOP_RULES + loop + LOOP_RULES_SEPARATOR + ACTION_LISTEN
        return None, None

    def _prediction(self, probabilities: list[float], source: str | None,
                    returning: bool = False, end_to_end: bool = False,
                    no_user: bool = False, reason: str = "") -> PolicyPrediction:
        hidden = source is not None and source in self.lookup_.get(RULES_NOT_IN_STORIES, [])
        return PolicyPrediction(
            probabilities, self.name, self.priority,
            events=[LoopInterrupted(is_interrupted=True)] if returning else [],
            is_end_to_end_prediction=end_to_end, is_no_user_prediction=no_user,
            hide_rule_turn=hidden, reason=reason,
        )

    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                rule_only_data: dict[str, Any] | None = None) -> PolicyPrediction:
        self.check_is_fitted()
        return self._predict(tracker, domain)[0]

    # ---- persistence ---------------------------------------------------------------

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"lookup": self.lookup_}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        lookup = dict(state["lookup"])
        for part in (RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RULE_NAMES):
            # models trained before rule names were kept have none
            lookup[part] = {str(k): str(v) for k, v in dict(lookup.get(part, {})).items()}
        self._parsed = {}
        self.lookup_ = lookup


def _rule_only_slots_loops(rule_states: list[list[State]],
                           story_states: list[list[State]]) -> tuple[list[str], list[str]]:
    def collect(histories: list[list[State]]) -> tuple[set[str], set[str]]:
        slots: set[str] = set()
        loops: set[str] = set()
        for history in histories:
            for state in history:
                slots.update(state.get(SLOTS, {}))
                loop = state.get(ACTIVE_LOOP, {}).get(LOOP_NAME)
                if loop:
                    loops.add(loop)
        return slots, loops

    rule_slots, rule_loops = collect(rule_states)
    story_slots, story_loops = collect(story_states)
    return (sorted(rule_slots - story_slots - {SHOULD_NOT_BE_SET}),
            sorted(rule_loops - story_loops - {SHOULD_NOT_BE_SET}))


def _where(event: ActionExecuted, written: ActionExecuted | None = None) -> str:
    """``file:line`` of the story or rule step an action was read from; for an
    ``action_listen`` (never written) the place after the last action that was; empty if
    unknown."""
    if event.action_name == ACTION_LISTEN and written is not None and written.origin:
        return f"after {location(written.origin[1], written.origin[2])}"
    if event.origin is None:
        return ""
    return location(event.origin[1], event.origin[2])


def _at(where: str) -> str:
    return f"({where}) " if where else ""
