"""Stories, rules and test stories as plain typed data (no story graph yet).

A :class:`Story` is a list of steps exactly as written in a Rasa 3.x ``stories:`` or
``rules:`` block. The YAML reader lives in :mod:`parley.data.formats.story_yaml`; the
dialogue layer turns these into trackers later. Every step keeps ``file``/``line`` so the
cross-file checks can point at the step that names an unknown intent, action or slot;
equality ignores them, so a story read, written and read again compares equal.

:func:`story_structure_issues` reports steps that are legal YAML but make no sense as a
conversation (see its docstring for the list).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from parley.data.message import RESPONSE_KEY_SEPARATOR
from parley.errors import Issue

STORY = "story"
RULE = "rule"


def _place() -> Any:
    """A ``file``/``line`` field: keyword-only, shown nowhere, ignored by ``==``."""
    return field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class StoryEntity:
    """An entity of a user turn.

    From an ``entities:`` list it has no offsets, and ``value`` is None for a bare name
    (``- city``: "the entity is there, whatever its value"). From an annotated ``user:``
    text it carries the character offsets into the plain text.
    """

    entity: str
    value: Any = None
    role: str | None = None
    group: str | None = None
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class SlotValue:
    """One slot of a ``slot_was_set`` list; ``any_value`` for the bare-name form.

    ``line`` is the item's own line (a step may list several slots), for the checks.
    """

    name: str
    value: Any = None
    any_value: bool = False
    line: int | None = _place()


@dataclass(frozen=True)
class UserStep:
    """A user turn: an intent (with entities), an end-to-end text, or both (test stories).

    ``intent`` is the label as written, so ``faq/ask_name`` stays whole for test stories;
    ``base_intent`` is what the dialogue policies see.
    """

    intent: str | None = None
    text: str | None = None
    entities: tuple[StoryEntity, ...] = ()
    file: str | None = _place()
    line: int | None = _place()

    @property
    def base_intent(self) -> str | None:
        if self.intent is None:
            return None
        return self.intent.split(RESPONSE_KEY_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class ActionStep:
    """The assistant runs an action (a response ``utter_*``, a custom action or a form)."""

    name: str
    file: str | None = _place()
    line: int | None = _place()


@dataclass(frozen=True)
class BotStep:
    """An end-to-end bot turn: the text the assistant says, no action name."""

    text: str
    file: str | None = _place()
    line: int | None = _place()


@dataclass(frozen=True)
class ActiveLoopStep:
    """A form/loop becomes active (``name``) or is deactivated (None)."""

    name: str | None
    file: str | None = _place()
    line: int | None = _place()


@dataclass(frozen=True)
class SlotStep:
    """``slot_was_set``: the slots an action (or the user) set at this point."""

    slots: tuple[SlotValue, ...]
    file: str | None = _place()
    line: int | None = _place()


@dataclass(frozen=True)
class CheckpointStep:
    """A named join point between story blocks, optionally conditioned on slot values."""

    name: str
    slots: tuple[SlotValue, ...] = ()
    file: str | None = _place()
    line: int | None = _place()


@dataclass(frozen=True)
class OrStep:
    """Alternatives that lead on the same way; each becomes its own training story."""

    alternatives: tuple[UserStep | SlotStep, ...]
    file: str | None = _place()
    line: int | None = _place()


Step: TypeAlias = (
    UserStep | ActionStep | BotStep | ActiveLoopStep | SlotStep | CheckpointStep | OrStep
)


def is_user_turn(step: Step) -> bool:
    """A user message, or an ``or`` whose alternatives include one."""
    if isinstance(step, OrStep):
        return any(isinstance(alt, UserStep) for alt in step.alternatives)
    return isinstance(step, UserStep)


def is_bot_turn(step: Step) -> bool:
    return isinstance(step, (ActionStep, BotStep))


@dataclass(frozen=True)
class Story:
    """One ``story:`` or ``rule:`` block. ``condition`` and the two flags apply to rules."""

    name: str
    steps: tuple[Step, ...] = ()
    kind: str = STORY
    condition: tuple[ActiveLoopStep | SlotStep, ...] = ()
    conversation_start: bool = False
    wait_for_user_input: bool = True
    metadata: Any = None
    file: str | None = _place()
    line: int | None = _place()

    @property
    def is_rule(self) -> bool:
        return self.kind == RULE

    def iter_steps(self) -> Iterator[Step]:
        """Every leaf step with its place: rule conditions, steps, ``or`` alternatives."""
        for step in (*self.condition, *self.steps):
            if isinstance(step, OrStep):
                yield from step.alternatives
            else:
                yield step

    def user_steps(self) -> list[UserStep]:
        return [s for s in self.iter_steps() if isinstance(s, UserStep)]

    def intents(self) -> set[str]:
        """Intent labels as written (``faq/ask_name`` included whole)."""
        return {s.intent for s in self.user_steps() if s.intent is not None}

    def entities(self) -> set[str]:
        return {e.entity for s in self.user_steps() for e in s.entities}

    def actions(self) -> set[str]:
        return {s.name for s in self.iter_steps() if isinstance(s, ActionStep)}

    def active_loops(self) -> set[str]:
        """Forms/loops activated (``active_loop: null`` is not a name)."""
        return {
            s.name for s in self.iter_steps()
            if isinstance(s, ActiveLoopStep) and s.name is not None
        }

    def slots(self) -> set[str]:
        """Slots named in ``slot_was_set`` steps, conditions and checkpoints."""
        return {
            slot.name for s in self.iter_steps()
            if isinstance(s, (SlotStep, CheckpointStep)) for slot in s.slots
        }

    def user_texts(self) -> list[str]:
        return [s.text for s in self.user_steps() if s.text is not None]

    def bot_texts(self) -> list[str]:
        return [s.text for s in self.iter_steps() if isinstance(s, BotStep)]

    def start_checkpoints(self) -> list[CheckpointStep]:
        """Checkpoints this block can continue from: leading ones and those mid-way."""
        return [s for i, s in enumerate(self.steps)
                if isinstance(s, CheckpointStep) and not _all_checkpoints(self.steps[i:])]

    def end_checkpoints(self) -> list[CheckpointStep]:
        """Checkpoints this block leads into: trailing ones and those mid-way."""
        return [s for i, s in enumerate(self.steps)
                if isinstance(s, CheckpointStep) and not _all_checkpoints(self.steps[:i + 1])]

    def user_turn_count(self) -> int:
        return sum(1 for s in self.steps if is_user_turn(s))


def _all_checkpoints(steps: Iterable[Step]) -> bool:
    return all(isinstance(s, CheckpointStep) for s in steps)


@dataclass
class StoryFile:
    """What one file holds: its stories and its rules, in file order."""

    stories: list[Story] = field(default_factory=list)
    rules: list[Story] = field(default_factory=list)
    file: str | None = field(default=None, compare=False)

    def all(self) -> list[Story]:
        return [*self.stories, *self.rules]


def _title(story: Story) -> str:
    return f"the {story.kind} '{story.name}'"


def story_structure_issues(stories: Iterable[Story]) -> list[Issue]:
    """Findings about blocks that parse but make no sense as conversations.

    Warnings: an empty block (Rasa skips it); two user turns with no action between,
    outside an active form (Rasa inserts ``action_listen``, so the assistant learns to
    stay silent after the first); an ``or`` with a single alternative; a rule with more
    than one user turn (RulePolicy rejects it unless ``restrict_rules: false``); a
    checkpoint that no block ends with, or that no block starts from. Error: a
    ``wait_for_user_input: false`` rule that does not end with an action (trailing slot
    and loop events count as that action's outcome), so there is nothing to hand over.
    Pass stories and rules together: checkpoints are matched across all of them.
    """
    issues: list[Issue] = []
    started: dict[str, CheckpointStep] = {}
    ended: dict[str, CheckpointStep] = {}
    for story in stories:
        issues.extend(_block_issues(story))
        for cp in story.start_checkpoints():
            started.setdefault(cp.name, cp)
        for cp in story.end_checkpoints():
            ended.setdefault(cp.name, cp)
    for name, cp in started.items():
        if name not in ended:
            issues.append(Issue(
                "warning",
                f"the checkpoint '{name}' is continued from here, but no story ends with it; "
                "this part is never reached. End a story with it, or remove it.",
                cp.file, cp.line,
            ))
    for name, cp in ended.items():
        if name not in started:
            issues.append(Issue(
                "warning",
                f"the checkpoint '{name}' ends a story, but no story starts from it; "
                "it leads nowhere. Start a story with it, or remove it.",
                cp.file, cp.line,
            ))
    return issues


def _block_issues(story: Story) -> list[Issue]:
    issues: list[Issue] = []
    if not story.steps:
        issues.append(Issue(
            "warning", f"{_title(story)} has no steps; Rasa skips it. Add steps or remove it.",
            story.file, story.line,
        ))
        return issues
    previous_user: Step | None = None
    # While a form runs it asks and the user answers; stories may leave the form's own
    # turns out, so user turns in a row are normal there.
    loop_active = any(isinstance(s, ActiveLoopStep) and s.name for s in story.condition)
    for step in story.steps:
        if isinstance(step, ActiveLoopStep):
            loop_active = step.name is not None
        if isinstance(step, OrStep) and len(step.alternatives) < 2:
            issues.append(Issue(
                "warning",
                f"the 'or' in {_title(story)} has only one alternative; write the step "
                "itself instead.",
                step.file, step.line,
            ))
        if is_user_turn(step):
            if previous_user is not None and not loop_active:
                issues.append(Issue(
                    "warning",
                    f"two user turns in a row in {_title(story)} (lines {previous_user.line} "
                    f"and {step.line}) with no action between them; the assistant learns to "
                    "wait silently after the first. Add the action it should run, or drop "
                    "one turn.",
                    step.file, step.line,
                ))
            previous_user = step
        elif is_bot_turn(step) or isinstance(step, CheckpointStep):
            previous_user = None
    if story.is_rule:
        issues.extend(_rule_issues(story))
    return issues


def _rule_issues(story: Story) -> list[Issue]:
    issues: list[Issue] = []
    turns = story.user_turn_count()
    if turns > 1:
        issues.append(Issue(
            "warning",
            f"{_title(story)} has {turns} user turns; RulePolicy rejects rules with more than "
            "one user message (unless restrict_rules: false). Rules are for short, fixed "
            "snippets; write this as a story.",
            story.file, story.line,
        ))
    if not story.wait_for_user_input:
        # Slot and loop events after the last action are that action's outcome.
        last = next((s for s in reversed(story.steps)
                     if not isinstance(s, (SlotStep, ActiveLoopStep))), None)
        if last is None or not is_bot_turn(last):
            place = last if last is not None else story
            issues.append(Issue(
                "error",
                f"{_title(story)} sets wait_for_user_input: false but does not end with an "
                "action, so there is nothing to hand over to the next story or rule. End it "
                "with an action, or drop wait_for_user_input.",
                place.file, place.line,
            ))
    return issues
