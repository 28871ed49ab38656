"""Cross-file checks of a project: what ``parley data validate`` and training run first.

Errors: something used in NLU data, stories or rules (or referenced inside the domain)
that the domain does not declare; the same example under two intents; regexes that do not
compile; stories that make no sense. Warnings: declared but never used; odd annotations.
Every issue carries the file and line of the place to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from parley.data.domain import DEFAULT_INTENTS, RULE_SNIPPET_ACTION, Domain
from parley.data.formats.schema import did_you_mean
from parley.data.importer import TrainingDataImporter
from parley.data.message import Message
from parley.data.slots import needs_a_value, value_problem
from parley.data.stories import (
    ActionStep, ActiveLoopStep, CheckpointStep, SlotStep, Story, UserStep,
    story_structure_issues,
)
from parley.data.training_data import TrainingData
from parley.errors import Issue, ValidationError, warn

ERROR = "error"
WARNING = "warning"


@dataclass
class ValidationReport:
    issues: list[Issue]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == WARNING]

    def ok(self, fail_on_warnings: bool = False) -> bool:
        return not self.errors and not (fail_on_warnings and self.warnings)

    def raise_for_errors(self, fail_on_warnings: bool = False) -> None:
        if not self.ok(fail_on_warnings):
            issues = self.issues
            if fail_on_warnings:  # promote, so the exception lists them as errors
                issues = [Issue(ERROR, i.message, i.file, i.line) for i in issues]
            raise ValidationError(issues)


def validate_project(importer: TrainingDataImporter, scope: str = "both") -> ValidationReport:
    """Run the checks for ``scope`` ("both", "nlu" or "core"); reading errors raise first.

    NLU-only training needs no domain: without one, NLU data is checked on its own.
    """
    domain, nlu = importer.domain, importer.nlu_data
    dialogue = [*importer.stories, *importer.rules]
    has_domain = importer.has_domain and not domain.is_empty()
    issues: list[Issue] = []
    if scope in ("both", "nlu"):
        issues += check_examples(nlu)
        if has_domain:
            issues += check_nlu_against_domain(nlu, domain)
    if scope in ("both", "core") and dialogue and domain.is_empty():
        issues.append(empty_domain_issue(importer))
    elif scope in ("both", "core"):
        issues += check_stories_against_domain([*dialogue, *importer.test_stories], domain)
        issues += check_bare_slot_names([*dialogue, *importer.test_stories], domain)
        issues += check_slot_values([*dialogue, *importer.test_stories], domain)
        issues += check_domain(domain)
        issues += story_structure_issues(dialogue)
    if scope == "both":
        issues += check_unused(domain, nlu, dialogue)
        issues += check_something_to_train(nlu, dialogue)
    return ValidationReport(issues)


def empty_domain_issue(importer: TrainingDataImporter) -> Issue:
    """Stories or rules but an empty domain (an emptied file, a wrong --domain): one error
    that says so, as ``rasa data validate`` gives, instead of one per intent and action of
    every story; the stories are checked once the domain is back."""
    path = importer.domain_path
    return Issue(ERROR, (
        "the domain is empty: it declares no intents, entities, slots, responses, actions "
        "or forms, so the stories and rules cannot be checked against it, and `parley "
        "train` would skip the dialogue part, as Rasa's does. Fill in the domain, or give "
        "the project's domain with --domain."), str(path) if path is not None else None)


def check_something_to_train(nlu: TrainingData, dialogue: list[Story]) -> list[Issue]:
    """Say what ``parley train`` would make of the data, so that a project whose NLU data
    was lost (an emptied file, a folder left out) does not validate as if it were whole."""
    has_examples = any(m.intent is not None for m in nlu.examples)
    if not has_examples and not dialogue:
        return [Issue(ERROR, "the project holds no NLU examples and no stories or rules: "
                             "there is nothing to train. Add an 'nlu:' or 'stories:'/'rules:' "
                             "section to a file under data/, or pass the files with --data.")]
    if not has_examples:
        return [Issue(WARNING, "the project holds no NLU examples: `parley train` trains only "
                               "the dialogue part (a Core model), which cannot understand "
                               "messages. Add examples under 'nlu:' to train both.")]
    return []


def _where(domain: Domain, kind: str, name: str) -> tuple[str | None, int | None]:
    file, line = domain.locations.get((kind, name), (None, None))
    return file, line


def _unknown(what: str, name: str, known: Iterable[str], fix: str) -> str:
    return f"the {what} '{name}' is not in the domain.{did_you_mean(name, known)} {fix}"


# --- NLU ---------------------------------------------------------------------------------
def check_nlu_against_domain(nlu: TrainingData, domain: Domain) -> list[Issue]:
    issues: list[Issue] = []
    intents = set(domain.intent_names)
    reported: set[tuple[str, str]] = set()
    for message in nlu.examples:
        intent = message.base_intent
        if intent is not None and intent not in intents and ("intent", intent) not in reported:
            reported.add(("intent", intent))
            issues.append(Issue(ERROR, _unknown(
                "intent", intent, intents, "Add it under 'intents:' in the domain."),
                message.file, message.line))
        for entity in message.entities:
            spec = domain.entities.get(entity.entity)
            if spec is None:
                if ("entity", entity.entity) not in reported:
                    reported.add(("entity", entity.entity))
                    issues.append(Issue(ERROR, _unknown(
                        "entity", entity.entity, domain.entities,
                        "Add it under 'entities:' in the domain."), message.file, message.line))
                continue
            for kind, value, allowed in (("role", entity.role, spec.roles),
                                         ("group", entity.group, spec.groups)):
                if value is not None and value not in allowed and (kind, value) not in reported:
                    reported.add((kind, value))
                    issues.append(Issue(ERROR, (
                        f"the entity '{entity.entity}' has the {kind} '{value}', which the domain "
                        f"does not list under its '{kind}s'."), message.file, message.line))
    return issues


def check_examples(nlu: TrainingData) -> list[Issue]:
    """One text under two intents, odd entity spans, regexes that do not compile."""
    issues: list[Issue] = []
    first_seen: dict[str, Message] = {}
    for message in nlu.examples:
        first = first_seen.setdefault(message.text, message)
        if first.intent != message.intent:
            # A warning, as in Rasa: the data still trains, but one label must lose.
            issues.append(Issue(WARNING, (
                f"the example '{message.text}' is under the intent '{message.intent}' and also "
                f"under '{first.intent}' ({first.file}:{first.line}); one text can teach only "
                "one intent."), message.file, message.line))
        for entity in message.entities:
            surface = message.text[entity.start:entity.end]
            if surface != surface.strip():
                issues.append(Issue(WARNING, (
                    f"the entity '{entity.entity}' in '{message.text}' starts or ends with a space;"
                    " annotate the words only."), message.file, message.line))
            elif (entity.start > 0 and message.text[entity.start - 1].isalnum()) or (
                    entity.end < len(message.text) and message.text[entity.end].isalnum()):
                issues.append(Issue(WARNING, (
                    f"the entity '{entity.entity}' ('{surface}') in '{message.text}' cuts a word "
                    "in two; extractors work on whole tokens."), message.file, message.line))
    for name, patterns in nlu.regexes.items():
        file, line = nlu.locations.get(("regex", name), (None, None))
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                issues.append(Issue(ERROR, (
                    f"the regex '{pattern}' of '{name}' does not compile: {exc}."), file, line))
    for name, elements in nlu.lookups.items():
        if not elements:
            file, line = nlu.locations.get(("lookup", name), (None, None))
            issues.append(Issue(WARNING, f"the lookup table '{name}' is empty.", file, line))
    return issues


# --- stories and rules -------------------------------------------------------------------
def check_stories_against_domain(stories: list[Story], domain: Domain) -> list[Issue]:
    issues: list[Issue] = []
    intents = set(domain.intent_names)
    # Responses ``utter_faq/ask_name`` make ``utter_faq`` an action, as Rasa adds it.
    retrieval_actions = {name.split("/", 1)[0] for name in domain.responses if "/" in name}
    actions = set(domain.action_names) | retrieval_actions | {RULE_SNIPPET_ACTION}
    slots = set(domain.slot_names)
    loops = set(domain.forms) | set(domain.action_names)  # loop actions count, e.g. two-stage fallback
    for story in stories:
        for step in story.iter_steps():
            file, line = step.file, step.line
            if isinstance(step, UserStep):
                if step.intent is not None and step.base_intent not in intents:
                    issues.append(Issue(ERROR, _unknown(
                        "intent", step.intent, intents, "Add it under 'intents:' in the domain."),
                        file, line))
                for entity in step.entities:
                    if entity.entity not in domain.entities:
                        issues.append(Issue(ERROR, _unknown(
                            "entity", entity.entity, domain.entities,
                            "Add it under 'entities:' in the domain."), file, line))
            elif isinstance(step, ActionStep) and step.name not in actions:
                fix = ("Add a response with this name under 'responses:'."
                       if step.name.startswith("utter_") else "Add it under 'actions:' in the domain.")
                issues.append(Issue(ERROR, _unknown("action", step.name, actions, fix), file, line))
            elif isinstance(step, ActiveLoopStep) and step.name is not None and step.name not in loops:
                issues.append(Issue(ERROR, _unknown(
                    "form", step.name, loops, "Add it under 'forms:' in the domain."), file, line))
            elif isinstance(step, (SlotStep, CheckpointStep)):
                for slot in step.slots:
                    if slot.name not in slots:
                        issues.append(Issue(ERROR, _unknown(
                            "slot", slot.name, slots, "Add it under 'slots:' in the domain."),
                            file, line))
    return issues


def check_bare_slot_names(stories: list[Story], domain: Domain) -> list[Issue]:
    """``slot_was_set: [- name]`` for a slot whose value matters (bool, float, categorical):
    the step sets nothing useful, as in Rasa, which warns too."""
    issues: list[Issue] = []
    for story in stories:
        for step in story.iter_steps():
            if not isinstance(step, SlotStep):
                continue
            for slot in step.slots:
                declared = domain.slots.get(slot.name)
                if slot.any_value and declared is not None and needs_a_value(declared):
                    issues.append(Issue(WARNING, (
                        f"the {declared.type} slot '{slot.name}' is named without a value, so "
                        "this step treats it as not set (as Rasa does); only text and list "
                        f"slots can be named alone. Write `- {slot.name}: <value>`."),
                        step.file, step.line))
    return issues


def check_slot_values(stories: list[Story], domain: Domain) -> list[Issue]:
    """A value the slot's type cannot hold (``confirmed: maybe`` for a bool slot, a
    category the domain does not list): warnings, because Rasa trains such stories, each
    featurized as its type can (a bool as unset, a category as ``__other__``), with no word
    from ``rasa data validate``; the story almost surely meant something else."""
    issues: list[Issue] = []
    for story in stories:
        for step in story.iter_steps():
            if not isinstance(step, (SlotStep, CheckpointStep)):
                continue
            for slot in step.slots:
                declared = domain.slots.get(slot.name)
                if declared is None or slot.any_value:
                    continue
                problem = value_problem(declared, slot.value)
                if problem is not None:
                    issues.append(Issue(WARNING, (
                        f"'{story.name}' sets the {declared.type} slot '{slot.name}' to "
                        f"{slot.value!r}, {problem}."), step.file, slot.line or step.line))
    return issues


# --- the domain itself -------------------------------------------------------------------
def check_domain(domain: Domain) -> list[Issue]:
    """References inside the domain: forms → slots, mappings → entities/intents/forms,
    utter_ actions → responses."""
    issues: list[Issue] = []
    intents, slots = set(domain.intent_names), set(domain.slot_names)
    for form in domain.forms.values():
        file, line = _where(domain, "form", form.name)
        for required in form.required_slots:
            if required not in slots:
                issues.append(Issue(ERROR, (
                    f"the form '{form.name}' requires the slot '{required}', which is not in the "
                    f"domain.{did_you_mean(required, slots)}"), file,
                    form.lines.get(("required_slots", required)) or line))
        for intent in form.ignored_intents:
            if intent not in intents:
                issues.append(Issue(ERROR, _unknown(
                    "intent", intent, intents, f"The form '{form.name}' ignores it."), file,
                    form.lines.get(("ignored_intents", intent)) or line))
    for slot in domain.slots.values():
        file, line = _where(domain, "slot", slot.name)
        for mapping in slot.mappings:
            if mapping.entity is not None and mapping.entity not in domain.entities:
                issues.append(Issue(ERROR, _unknown(
                    "entity", mapping.entity, domain.entities,
                    f"The slot '{slot.name}' is filled from it."), file,
                    mapping.lines.get("entity") or line))
            for key, names in (("intent", mapping.intent), ("not_intent", mapping.not_intent)):
                for intent in names:
                    if intent not in intents:  # harmless at run time: the mapping never fires
                        issues.append(Issue(WARNING, _unknown(
                            "intent", intent, intents,
                            f"A mapping of the slot '{slot.name}' names it."), file,
                            mapping.lines.get(key) or line))
            for condition in mapping.conditions:
                loop = condition.active_loop
                if loop is not None and loop not in domain.forms and loop not in domain.actions:
                    issues.append(Issue(ERROR, _unknown(
                        "form", loop, domain.forms,
                        f"A mapping condition of the slot '{slot.name}' names it."), file,
                        mapping.lines.get("conditions") or line))
    for name in domain.actions:
        if name.startswith("utter_") and name not in domain.responses:
            file, line = _where(domain, "action", name)
            issues.append(Issue(WARNING, (
                f"the action '{name}' is named like a response but the domain has no response "
                f"'{name}'."), file, line))
    return issues


def check_unused(domain: Domain, nlu: TrainingData, dialogue: list[Story]) -> list[Issue]:
    """Declared in the domain but used nowhere: warnings, as Rasa gives them."""
    issues: list[Issue] = []
    used_intents = nlu.intents | {i for s in dialogue for i in s.intents()}
    used_intents = {i.split("/", 1)[0] for i in used_intents}
    for name in domain.intents:
        if name not in used_intents and name not in DEFAULT_INTENTS:
            file, line = _where(domain, "intent", name)
            issues.append(Issue(WARNING, (
                f"the intent '{name}' is in the domain but has no NLU examples and appears in no "
                "story or rule."), file, line))
    used_entities = nlu.entities | {e for s in dialogue for e in s.entities()}
    used_entities |= {m.entity for slot in domain.slots.values() for m in slot.mappings if m.entity}
    for name in domain.entities:
        if name not in used_entities and name not in nlu.lookups and name not in nlu.regexes:
            file, line = _where(domain, "entity", name)
            issues.append(Issue(WARNING, (
                f"the entity '{name}' is in the domain but no example annotates it."), file, line))
    used_actions = {a for s in dialogue for a in s.actions()}
    retrieval = {f"utter_{i}" for i in nlu.retrieval_intents}
    for name in domain.responses:
        base = name.split("/", 1)[0]
        if name.startswith("utter_") and name not in used_actions and base not in used_actions \
                and base not in retrieval and not _is_form_question(name, domain):
            file, line = _where(domain, "response", name)
            issues.append(Issue(WARNING, (
                f"the response '{name}' is used in no story or rule."), file, line))
    used_loops = {loop for s in dialogue for loop in s.active_loops()} | used_actions
    for name in domain.forms:
        if name not in used_loops:
            file, line = _where(domain, "form", name)
            issues.append(Issue(WARNING, f"the form '{name}' is used in no story or rule.", file, line))
    return issues


def _is_form_question(response: str, domain: Domain) -> bool:
    """``utter_ask_<slot>`` / ``utter_ask_<form>_<slot>`` are asked by forms, not stories."""
    for form in domain.forms.values():
        for slot in form.required_slots:
            if response in (f"utter_ask_{slot}", f"utter_ask_{form.name}_{slot}"):
                return True
    return False


# --- what training lets through ----------------------------------------------------------
_TRAINS_ANYWAY = (" Training goes on, as Rasa's does: the NLU model learns it, but the dialogue "
                  "policies cannot use it.")


def validate_for_training(importer: TrainingDataImporter, scope: str = "both") -> ValidationReport:
    """The checks of ``validate_project``, except what Rasa's ``rasa train`` lets through.

    NLU data that uses intents, entities, roles or groups the domain does not declare fails
    ``rasa data validate`` but trains with ``rasa train`` (Rasa's importer does not add
    them to the domain; the NLU model learns them, the policies never see them). Such
    issues become warnings here, each also emitted as a :class:`ParleyWarning` so that a
    training shows them; ``parley data validate`` keeps them errors. Slot values that do
    not suit their slot's type are emitted the same way (they are warnings in both).
    """
    report = validate_project(importer, scope)
    domain = importer.domain
    if scope in ("both", "core"):
        # Rasa trains these without a word; say it once per place, where training shows it.
        dialogue = [*importer.stories, *importer.rules, *importer.test_stories]
        for issue in check_slot_values(dialogue, domain):
            warn(issue.message, issue.file, issue.line)
    if scope not in ("both", "nlu") or not importer.has_domain or domain.is_empty():
        return report
    lenient = {i for i in check_nlu_against_domain(importer.nlu_data, domain) if i.level == ERROR}
    issues = []
    for issue in report.issues:
        if issue in lenient:
            issue = Issue(WARNING, issue.message + _TRAINS_ANYWAY, issue.file, issue.line)
            warn(issue.message, issue.file, issue.line)
        issues.append(issue)
    return ValidationReport(issues)
