"""``parley interactive``: talk to the assistant, correct it, and keep the conversation as
training data (Rasa's interactive learning, in a plain terminal).

Each message is parsed and shown; you confirm the intent and entities or correct them (pick
another intent by number or name, retype the message with ``[value](entity)`` marks). Then
each action the bot wants to run is shown; you confirm it or pick another from the list
(sorted by the policies' confidence), and it runs — responses, forms, custom actions, as in
``parley shell``. ``/stop`` as the message (or end of input, Ctrl-D, at any prompt; a
question about a parse or an action takes only its answers) opens the menu:
continue, undo the last message, start afresh, export and quit, or quit without exporting.
The end of input at the menu asks whether to export before quitting (Rasa exports when its
quit menu is cancelled); only the end of input there too quits without exporting, and the
screen says so.

Export writes the conversations as training stories (intents, entities, slots, loops: no
texts) and the corrected messages as NLU examples into one YAML file (default
``data/interactive.yml``). A file that exists is read and added to, so that nothing of an
earlier export — or of a project file named with ``--export`` — is lost; other files are
never rewritten. A Core-only model reads only ``/intent`` messages, so for other texts the
intent is asked. New intents or actions cannot be made here: the model only knows the
domain's (add them to domain.yml and retrain).

As ``rasa interactive --endpoints`` does, the conversations go where a served one goes:
endpoints.yml's tracker store keeps them (saved after each step, under the lock store's lock)
and its event broker gets their events. An undo is recorded as Rasa records it — the user's
message reverted (``rewind``) and ``action_listen`` — so the store and the broker's
consumers see it happen instead of events vanishing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from parley.data.events import ActionExecuted, Restarted, UserUttered, UserUtteranceReverted
from parley.data.formats.annotations import annotate, parse_annotated_text
from parley.data.formats.nlu_yaml import nlu_from_content, nlu_to_content
from parley.data.formats.story_yaml import stories_to_yaml, story_file_from_content
from parley.data.formats.yaml_io import dump_yaml, parse_yaml, plain, read_yaml_file
from parley.data.message import Entity, Message
from parley.data.stories import Story, UserStep
from parley.data.tracker import DialogueStateTracker
from parley.data.training_data import TrainingData
from parley.errors import DataError
from parley.nlu.intent_message import PREFIX as INTENT_PREFIX
from parley.runtime.actions.registry import action_for_name
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.executor import ActionExecutor
from parley.runtime.nlg_server import NLGServerClient
from parley.runtime.processor import MessageProcessor, UserMessage, prediction_for
from parley.runtime.stores.base import LockStore, TrackerStore
from parley.serving.agent import Agent
from parley.serving.http.story import story_steps
from parley.serving.shell import CHANNEL, STOP, format_message

__all__ = ["DEFAULT_EXPORT", "Session", "export", "run_interactive"]

DEFAULT_EXPORT = "data/interactive.yml"
ACTION_LISTEN = "action_listen"
SHOWN_ACTIONS = 10  # how many of the policies' choices are listed when one is corrected
# Rasa's rule snippet "..." and actions the runtime runs on its own are never picked by hand.
NOT_CHOSEN = ("...", "action_session_start", "action_extract_slots", "action_unlikely_intent")


class _Quit(Exception):
    """End of input while a question waited for an answer."""


@dataclass
class Session:
    """The conversations held so far (the finished ones, then the current one)."""

    done: list[DialogueStateTracker] = field(default_factory=list)
    examples: list[Message] = field(default_factory=list)


class _Terminal:
    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin, self.stdout = stdin, stdout

    def say(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    def ask(self, prompt: str) -> str:
        print(prompt, end="", file=self.stdout, flush=True)
        line = self.stdin.readline()
        if not line:
            print(file=self.stdout)
            raise _Quit
        return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip()

    def yes(self, prompt: str) -> bool:
        while True:
            answer = self.ask(f"{prompt} [Y/n] ").lower()
            if answer in ("", "y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.say("Answer y or n.")

    def choose(self, prompt: str, options: list[str]) -> str:
        """One of ``options``, by its number or its name."""
        for number, option in enumerate(options, 1):
            self.say(f"  {number:>2}: {option}")
        while True:
            answer = self.ask(prompt)
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return options[int(answer) - 1].split(" ", 1)[0]
            names = [option.split(" ", 1)[0] for option in options]
            if answer in names:
                return answer
            self.say(f"Type a number from 1 to {len(options)} or one of the names.")


class _Conversation:
    def __init__(self, agent: Agent, processor: MessageProcessor, term: _Terminal) -> None:
        self.agent, self.processor, self.term = agent, processor, term
        self.domain = processor.domain

    async def start(self) -> DialogueStateTracker:
        tracker = self.processor.tracker_store.init_tracker(uuid.uuid4().hex)
        await self.processor.update_session(tracker, self.processor.context(CHANNEL))
        await self.save(tracker, 0)
        return tracker

    async def save(self, tracker: DialogueStateTracker, start: int) -> None:
        """Store the events since ``start`` and hand them to the event broker, as a served
        conversation's are (under its lock)."""
        processor = self.processor
        async with processor.lock_store.lock(tracker.sender_id, processor.lock_lifetime):
            await processor.save(tracker, start)

    async def turn(self, tracker: DialogueStateTracker, text: str, session: Session) -> None:
        start = len(tracker.events)
        try:
            await self._turn(tracker, text, session)
        finally:  # what happened stays, also when the input ended halfway
            await self.save(tracker, start)

    async def undo(self, tracker: DialogueStateTracker) -> bool:
        """Take back the last user message and what followed, as Rasa's interactive
        learning does: a ``rewind`` and ``action_listen`` (the tracker then is as before the
        message); False when there is no message to take back."""
        if not any(isinstance(e, UserUttered) for e in tracker.applied_events()):
            return False
        start = len(tracker.events)
        self.processor.apply(tracker, [UserUtteranceReverted(),
                                       ActionExecuted(action_name=ACTION_LISTEN)])
        await self.save(tracker, start)
        return True

    async def _turn(self, tracker: DialogueStateTracker, text: str, session: Session) -> None:
        if self.agent.has_nlu or text.startswith(INTENT_PREFIX):
            parse = await self.processor.compute(lambda: self.agent.parse(text))
        else:
            # A Core-only model reads only "/intent" messages (as Rasa's): the intent is asked.
            parse = {"text": text, "intent": {"name": None, "confidence": 0.0}, "entities": []}
        intent = parsed = (parse.get("intent") or {}).get("name")
        entities = [Entity(int(e["start"]), int(e["end"]), e.get("value"), e["entity"],
                           e.get("role"), e.get("group"))
                    for e in parse.get("entities") or []
                    if isinstance(e.get("start"), int) and isinstance(e.get("end"), int)]
        shown = annotate(text, entities)
        confidence = (parse.get("intent") or {}).get("confidence") or 0.0
        self.term.say(f"Parsed: intent '{intent}' ({confidence:.2f}), message {shown}")
        if intent is None or not self.term.yes(f"Is the intent '{intent}' right for \"{text}\" "
                                               "and are all entities marked?"):
            intent = self.term.choose("Which intent is it? ", self._intents(parse))
            text, entities = self._entities(text, shown)
        session.examples.append(Message(text, intent, list(entities)))
        # The rest of the parse stays while its intent does: a retrieval intent's response
        # (utter_faq) is the ResponseSelector's answer in it.
        parse_data = {**(parse if intent == parsed else {}), "text": text,
                      "intent": {"name": intent, "confidence": 1.0},
                      "entities": [e.to_dict() for e in entities]}
        await self.processor.log_user_message(tracker, UserMessage(
            text, tracker.sender_id, CHANNEL, CHANNEL, parse_data=parse_data))
        context = self.processor.context(CHANNEL)
        await self.processor.extract_slots(tracker, context)
        await self._bot_turn(tracker, context)

    def _intents(self, parse: dict[str, Any]) -> list[str]:
        # The domain's own intents, the parse's ranking first (Rasa's built-in intents such
        # as restart or session_start are not what a user's message is corrected to).
        declared = list(self.domain.intents)
        ranked = [r.get("name") for r in parse.get("intent_ranking") or []]
        names = [n for n in ranked if n in declared]
        return names + [n for n in declared if n not in names]

    def _entities(self, text: str, shown: str) -> tuple[str, list[Entity]]:
        self.term.say(f"Mark the entities as [value](entity), or press enter to keep: {shown}")
        while True:
            typed = self.term.ask("Message: ") or shown
            try:
                plain_text, entities = parse_annotated_text(typed)
            except DataError as error:
                self.term.say(f"That is not a message with [value](entity) marks: {error.message}")
                continue
            if plain_text != text:
                self.term.say(f"The text changed (\"{plain_text}\"): mark entities in \"{text}\".")
                continue
            unknown = [e.entity for e in entities if e.entity not in self.domain.entities]
            if unknown:
                self.term.say(f"Not entities of the domain: {', '.join(unknown)}. Known: "
                              f"{', '.join(self.domain.entities) or 'none'}.")
                continue
            return plain_text, entities

    async def _bot_turn(self, tracker: DialogueStateTracker, context: Any) -> None:
        previous: str | None = None
        for _ in range(self.processor.max_number_of_predictions):
            prediction = await self.processor.predict(tracker, previous)
            names = self.domain.action_names
            name = names[prediction.max_confidence_index]
            choosable = [n for n in names if n not in NOT_CHOSEN]
            if not self.term.yes(f"The bot wants to run '{name}' "
                                 f"({prediction.max_confidence:.2f}, {prediction.policy_name}). "
                                 "Correct?"):
                ranked = sorted((i for i, n in enumerate(names) if n in choosable),
                                key=lambda i: -prediction.probabilities[i])[:SHOWN_ACTIONS]
                options = [f"{names[i]} ({prediction.probabilities[i]:.2f})" for i in ranked]
                options += [n for n in choosable if n not in {names[i] for i in ranked}]
                name = self.term.choose("Which action should run? ", options)
                prediction = prediction_for(self.domain, name, prediction.policy_name, 1.0)
            start = len(tracker.events)
            go_on = await self.processor.run_action(action_for_name(name, self.domain),
                                                    tracker, context, prediction)
            for reply in self.processor.bot_messages(tracker, start):
                for line in format_message(reply):
                    self.term.say(f"  bot: {line}")
            if not go_on:
                return
            previous = name
        self.term.say("The bot ran its limit of actions without listening; it listens now.")
        await self.processor.run_action(action_for_name(ACTION_LISTEN, self.domain), tracker,
                                        context, prediction_for(self.domain, ACTION_LISTEN,
                                                                None))


def training_story(name: str, tracker: DialogueStateTracker) -> Story:
    """The conversation as a training story: intents and entities, no texts."""
    steps = [UserStep(intent=step.intent, entities=tuple(
        type(e)(e.entity, e.value, e.role, e.group) for e in step.entities))
        if isinstance(step, UserStep) else step for step in story_steps(tracker)]
    return Story(name, tuple(steps))


def _restarted_parts(tracker: DialogueStateTracker) -> list[DialogueStateTracker]:
    """The conversation cut at each restart, as Rasa's export cuts it: what came before an
    ``action_restart`` is a story of its own, where the restart would drop it."""
    parts = [tracker.init_copy()]
    for event in tracker.events:
        if isinstance(event, Restarted):
            parts.append(tracker.init_copy())
        else:
            parts[-1].update(event)
    return parts


def _read_export(target: Path) -> tuple[dict[str, Any], set[str], TrainingData]:
    """What the export file holds: its content, its stories' names, its NLU data (nothing,
    when there is no file yet); a DataError names what is wrong with it."""
    if not target.exists() and not target.is_symlink():
        return {}, set(), TrainingData()
    existing = read_yaml_file(target)
    if existing is None:
        return {}, set(), TrainingData()
    names = {story.name for story in story_file_from_content(existing, target).stories}
    return plain(existing), names, nlu_from_content(existing, target)


def export(session: Session, path: str | Path) -> tuple[int, int]:
    """Add the conversations (as stories) and the examples to ``path``; the numbers of
    stories and examples added. The file is replaced whole, never half-written; what it held
    (stories, rules, responses, …) stays as it was, the NLU examples merged with the new."""
    target = Path(path)
    content, names, data = _read_export(target)
    stories: list[Story] = []
    added = 0
    for tracker in (part for done in session.done for part in _restarted_parts(done)):
        if not any(isinstance(e, UserUttered) for e in tracker.applied_events()):
            continue
        number = len(names) + 1
        while f"interactive_story_{number}" in names:
            number += 1
        names.add(f"interactive_story_{number}")
        stories.append(training_story(f"interactive_story_{number}", tracker))
        added += 1
    known = {(m.text, m.intent) for m in data.examples}
    # "/intent" messages name their intent: no text to learn from (Rasa leaves them out too).
    new = [m for m in session.examples
           if (m.text, m.intent) not in known and not m.text.startswith(INTENT_PREFIX)]
    data = data.merge(TrainingData(examples=new)).without_duplicate_examples()
    if stories:
        written = plain(parse_yaml(stories_to_yaml(stories)))
        content.setdefault("version", written["version"])
        content["stories"] = [*(content.get("stories") or []), *written["stories"]]
    nlu = nlu_to_content(data)
    if "nlu" in nlu:
        content.setdefault("version", nlu["version"])
        content["nlu"] = nlu["nlu"]
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        # A new file gets 0o666 less the umask (mkstemp's would be 0o600); one that is
        # replaced keeps its mode.
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            if target.exists():
                os.chmod(temp, stat.S_IMODE(target.stat().st_mode))
            stream.write(dump_yaml(content))
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return added, len(new)


MENU = ["continue", "undo", "restart", "export", "quit"]


def _leaving(term: _Terminal, trackers: list[DialogueStateTracker],
             export_path: str | Path) -> str:
    """``export`` or ``quit``, asked when the input ends at the menu (Rasa exports when its
    quit menu is cancelled): a conversation is never dropped without a word. The end of
    input again is a quit without exporting, said so."""
    if not any(isinstance(e, UserUttered) for t in trackers for e in t.applied_events()):
        return "quit"  # nothing to export: "Quit without exporting." says all there is
    try:
        wanted = term.yes(f"The input ended. Export the conversations to {export_path} "
                          "before quitting?")
    except _Quit:
        term.say("The input ended again: the conversations are not exported.")
        return "quit"
    return "export" if wanted else "quit"


def run_interactive(agent: Agent, stdin: TextIO, stdout: TextIO,
                    export_path: str | Path = DEFAULT_EXPORT,
                    executor: ActionExecutor | None = None, seed: int | None = None,
                    nlg_server: NLGServerClient | None = None,
                    tracker_store: TrackerStore | None = None,
                    lock_store: LockStore | None = None,
                    event_broker: EndpointConfig | None = None) -> Session:
    """Hold corrected conversations until export or quit; what was held. The conversations
    are kept in ``tracker_store`` (default: in memory) and ``event_broker`` (endpoints.yml's
    section; connected first) gets their events, as in ``parley shell``."""
    if not agent.has_core or agent.domain is None:
        raise DataError("this model has no dialogue part to learn interactively with; "
                        "train it with stories or rules.")
    _read_export(Path(export_path))  # a file that cannot be added to fails now, not at the end
    processor = MessageProcessor(agent, tracker_store=tracker_store, lock_store=lock_store,
                                 executor=executor, seed=seed, nlg_server=nlg_server)
    term = _Terminal(stdin, stdout)
    conversation = _Conversation(agent, processor, term)
    session = Session()

    async def converse() -> None:
        from parley.runtime.brokers.factory import create_event_broker

        processor.event_broker = await create_event_broker(event_broker,
                                                           processor.tracker_store)
        try:
            await talk()
        finally:
            if processor.event_broker is not None:
                await processor.event_broker.close()

    async def talk() -> None:
        tracker = await conversation.start()
        term.say(f"Type a message; '{STOP}' (or Ctrl-D) opens the menu to undo, restart, "
                 "export or quit.")
        while True:
            try:
                text = term.ask("Your input -> ")
            except _Quit:
                text = STOP
            if text and text != STOP:
                try:
                    await conversation.turn(tracker, text, session)
                except _Quit:
                    text = STOP
                else:
                    continue
            if text != STOP:
                continue
            try:
                choice = term.choose("What now? ", [
                    "continue (go on with this conversation)",
                    "undo (take back the last message and what followed)",
                    "restart (keep this conversation, start a new one)",
                    f"export (add the conversations to {export_path} and quit)",
                    "quit (without exporting)"])
            except _Quit:
                # End of input at the menu: never drop the conversations without asking.
                choice = _leaving(term, [*session.done, tracker], export_path)
            if choice == "undo":
                if not await conversation.undo(tracker):
                    term.say("Nothing to undo.")
                else:
                    if session.examples:
                        session.examples.pop()
                    term.say("The last message and what followed are undone.")
            elif choice == "restart":
                session.done.append(tracker)
                tracker = await conversation.start()
                term.say("A new conversation starts.")
            elif choice == "export":
                session.done.append(tracker)
                try:
                    stories, examples = export(session, export_path)
                except (DataError, OSError) as error:
                    # Changed or removed since the start: the conversations are kept, so
                    # the file can be fixed and the export chosen again.
                    session.done.pop()
                    term.say(f"Could not export: {error}")
                    continue
                term.say(f"Added {stories} stories and {examples} NLU examples to "
                         f"{export_path}. Retrain (parley train) to learn them.")
                return
            elif choice == "quit":
                term.say("Quit without exporting.")
                return

    asyncio.run(converse())
    return session
