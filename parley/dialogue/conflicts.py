"""Story structure conflicts: stories that lead to different actions from the same history.

A policy that learns from stories sees, before each action, the last ``max_history``
states of the conversation. When two stories reach the same states and go on with
different actions, MemoizationPolicy cannot remember either (it drops the history) and a
learned policy is left to guess. This is Rasa's story conflict check (``rasa data validate
--max-history``): the stories are turned into trackers as for training (without rules,
augmentation or de-duplication), every action's history is compared, and each conflict
names the actions, the stories and the lines of the steps.

The histories are the policies' own (:func:`~parley.dialogue.policies.base.state_histories`),
so what is reported here is exactly what training would find ambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from parley.data.config import ProjectConfig
from parley.data.domain import Domain
from parley.data.importer import TrainingDataImporter
from parley.data.stories import Story
from parley.data.tracker import (
    ACTION_LISTEN, ACTION_NAME, ACTION_TEXT, PREVIOUS_ACTION, USER, DialogueStateTracker,
    State,
)
from parley.dialogue.generator import TrainingDataGenerator
from parley.dialogue.policies.base import action_label, feature_key, state_histories
from parley.errors import ConfigError, Issue, location

__all__ = [
    "ActionSource", "StoryConflict", "StructureReport", "check_story_structure",
    "find_story_conflicts", "policies_max_history", "story_conflicts",
]

# An action no story-trained policy can learn (UnexpecTEDIntentPolicy predicts it):
# written in a story it is always reported, as Rasa does.
ACTION_UNLIKELY_INTENT = "action_unlikely_intent"
SHOWN_PER_ACTION = 3  # stories named per action before "and N more"


@dataclass(frozen=True)
class ActionSource:
    """Where an action of a conflict was written: the story, its file and line."""

    story: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = location(self.file, self.line)
        return f"'{self.story}' ({where})" if where else f"'{self.story}'"


@dataclass
class StoryConflict:
    """One history followed by different actions; ``actions`` maps each to its stories."""

    states: list[State]
    max_history: int | None
    actions: dict[str, list[ActionSource]] = field(default_factory=dict)

    @property
    def after(self) -> str:
        """What came last before the conflict, as Rasa names it ("intent 'greet'")."""
        found = previous_event(self.states[-1] if self.states else {})
        return f"{found[0]} '{found[1]}'" if found else "the start of the conversation"

    @property
    def first_source(self) -> ActionSource:
        """The first place named that has a file (the place of the issue)."""
        sources = [s for group in self.actions.values() for s in group]
        return next((s for s in sources if s.file), sources[0])

    def message(self) -> str:
        turns = compared(self.max_history)
        parts = []
        for action, sources in self.actions.items():
            shown = ", ".join(str(s) for s in sources[:SHOWN_PER_ACTION])
            more = len(sources) - SHOWN_PER_ACTION
            if more > 0:
                shown += f" and {more} more"
            kind = "story" if len(sources) == 1 else "stories"
            parts.append(f"'{action}' in {kind} {shown}")
        if len(self.actions) == 1:  # only action_unlikely_intent
            return (f"story structure conflict after {self.after} ({turns}): {parts[0]}: "
                    f"'{ACTION_UNLIKELY_INTENT}' cannot be learned from stories; "
                    "UnexpecTEDIntentPolicy predicts it. Remove it from the story.")
        return (f"story structure conflict after {self.after} ({turns}): "
                f"{'; '.join(parts)}. Policies cannot learn different actions for the same "
                "history (MemoizationPolicy drops it): make the stories agree, or tell "
                "them apart before this point (a slot, an entity, an earlier turn).")

    def as_issue(self) -> Issue:
        """A warning, as Rasa reports conflicts; placed at the first story's action."""
        source = self.first_source
        return Issue("warning", self.message(), source.file, source.line)

    def __str__(self) -> str:
        return str(self.as_issue())


def compared(max_history: int | None) -> str:
    """What a history of ``max_history`` states covers, in words."""
    if not max_history:
        return "the whole conversation"
    return "the last state" if max_history == 1 else f"the last {max_history} states"


def previous_event(state: State) -> tuple[str, str] | None:
    """The kind and name of what happened last in a state, ``action_listen`` aside."""
    action = state.get(PREVIOUS_ACTION, {})
    user = state.get(USER, {})
    if action.get(ACTION_NAME) and action[ACTION_NAME] != ACTION_LISTEN:
        return "action", str(action[ACTION_NAME])
    if action.get(ACTION_TEXT):
        return "bot utterance", str(action[ACTION_TEXT])
    if user.get("intent"):
        return "intent", str(user["intent"])
    if user.get("text"):
        return "user utterance", str(user["text"])
    return None


def _source(tracker: DialogueStateTracker, origin: tuple[str, str | None, int | None] | None
            ) -> ActionSource:
    if origin is None:  # not read from a story file: name the tracker's path of stories
        return ActionSource(tracker.sender_id)
    return ActionSource(*origin)


def find_story_conflicts(trackers: Sequence[DialogueStateTracker], domain: Domain,
                         max_history: int | None) -> list[StoryConflict]:
    """The conflicts among the trackers' histories, in the order they first appear.

    A history counts as a conflict when different actions follow it, or when
    ``action_unlikely_intent`` does. Conflicts at the very start of a conversation (nothing
    before them, e.g. stories that open with different actions) are left out, as in Rasa.
    """
    found: dict[str, StoryConflict] = {}
    for tracker, event, history in state_histories(trackers, domain, max_history):
        key = feature_key(history)
        conflict = found.get(key)
        if conflict is None:
            conflict = found[key] = StoryConflict(history, max_history)
        sources = conflict.actions.setdefault(action_label(event), [])
        source = _source(tracker, event.origin)
        if source not in sources:
            sources.append(source)
    return [c for c in found.values()
            if (len(c.actions) > 1 or ACTION_UNLIKELY_INTENT in c.actions)
            and c.states and previous_event(c.states[-1]) is not None]


def story_conflicts(stories: Sequence[Story], domain: Domain,
                    max_history: int | None) -> list[StoryConflict]:
    """The conflicts among the stories (rules are not compared: RulePolicy checks those)."""
    plain = [s for s in stories if not s.is_rule]
    trackers = TrainingDataGenerator(plain, [], domain, augmentation_factor=0,
                                     remove_duplicates=False).generate()
    return find_story_conflicts(trackers, domain, max_history)


def policies_max_history(config: ProjectConfig) -> tuple[int | None, str | None]:
    """The smallest ``max_history`` among the configured policies, and the policy with it.

    Rasa's docs ask users to pass this value to ``rasa data validate --max-history`` by
    hand; Parley reads it from config.yml (a policy's own default where the key is not
    written: MemoizationPolicy's is 5). (None, None) when no policy bounds its history.
    """
    from parley.registry import POLICY, get_class

    best: tuple[int | None, str | None] = (None, None)
    for entry in config.policies:
        if "max_history" in entry.params:
            value = entry.params["max_history"]
        else:
            try:
                cls = get_class(entry.name, POLICY)
            except ConfigError:  # reported by the config checks; nothing to read here
                continue
            value = cls.default_params().get("max_history")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0 and (
                best[0] is None or value < best[0]):
            best = (value, entry.name)
    return best


@dataclass
class StructureReport:
    """What ``parley data validate`` checked of the story structure, and what it found."""

    max_history: int | None
    chosen_by: str  # why this max_history: given, or which policy's it is
    stories: int
    conflicts: list[StoryConflict]

    @property
    def issues(self) -> list[Issue]:
        return [c.as_issue() for c in self.conflicts]

    def summary(self) -> str:
        return (f"story structure: {len(self.conflicts)} conflict(s) among {self.stories} "
                f"stories, comparing {compared(self.max_history)} before each action "
                f"({self.chosen_by})")


def check_story_structure(importer: TrainingDataImporter,
                          max_history: int | None = None) -> StructureReport:
    """The story conflict check of a project; ``max_history`` None takes the smallest of
    the configured policies (see :func:`policies_max_history`)."""
    chosen_by = "given with --max-history"
    if max_history is None:
        max_history, policy = policies_max_history(importer.config)
        chosen_by = (f"{policy}'s max_history, the smallest of the policies'" if policy
                     else "no policy limits max_history; pass --max-history N to compare "
                          "fewer")
    dialogue = [*importer.stories, *importer.rules]
    conflicts = story_conflicts(dialogue, importer.domain, max_history) if dialogue else []
    return StructureReport(max_history, chosen_by, sum(not s.is_rule for s in dialogue),
                           conflicts)
