"""Find a project's files, tell each file's kind by its content, read and merge them.

``TrainingDataImporter(domain_path, config_path, training_files)`` takes the same three
inputs as ``train()`` in the spec. Every YAML file is parsed once; its top-level keys say
what it holds (``nlu``/``responses`` → NLU, ``stories``/``rules`` → dialogue, test stories
when the file name starts with ``test_``, domain keys → domain). A file may hold several.
A ``.json`` file is NLU data in Rasa's JSON format; a ``.md`` file (Rasa 1.x/2.x Markdown)
or other JSON is named in a warning, or an error where the user named it outright
(:mod:`parley.data.formats.unread_files`).
With ``importers: [{name: MultiProjectImporter}]`` the folders under config.yml's
``imports:`` are read the same way (:mod:`parley.data.projects`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from parley.data.config import CONFIG_TOP_KEYS, ProjectConfig, read_config
from parley.data.domain import Domain
from parley.data.message import Entity, Message
from parley.data.formats.domain_yaml import DOMAIN_KEYS, domain_from_content, read_domain
from parley.data.formats.json_io import read_json_file
from parley.data.formats.nlu_json import is_rasa_nlu_json, nlu_from_json_content
from parley.data.formats.nlu_yaml import nlu_from_content
from parley.data.formats.project_files import JSON_SUFFIX, MARKDOWN_SUFFIX, training_files
from parley.data.formats.schema import did_you_mean
from parley.data.formats.story_yaml import StoryFile, story_file_from_content
from parley.data.formats.unread_files import UnreadFile, json_notice, markdown_notice
from parley.data.formats.yaml_io import read_yaml_file
from parley.data.projects import imported_folders
from parley.data.stories import BotStep, Story, StoryEntity
from parley.data.training_data import TrainingData
from parley.errors import SchemaError, warn

NLU_KEYS = ("nlu", "responses")
STORY_KEYS = ("stories", "rules")
CONFIG_KEYS = tuple(key for key in CONFIG_TOP_KEYS if key != "version")
TEST_FILE_PREFIX = "test_"
DEFAULT_DOMAIN = "domain.yml"
DEFAULT_CONFIG = "config.yml"
DEFAULT_DATA = "data"


@dataclass
class ProjectFiles:
    """Which file holds what kind of data."""

    nlu: list[Path] = field(default_factory=list)
    stories: list[Path] = field(default_factory=list)
    tests: list[Path] = field(default_factory=list)
    domain: list[Path] = field(default_factory=list)


class TrainingDataImporter:
    """Reads and merges a project's domain, config, NLU data, stories, rules and tests."""

    def __init__(
        self,
        domain_path: str | Path | Domain | None = None,
        config_path: str | Path | None = None,
        training_files: str | Path | Iterable[str | Path] | None = None,
        *,
        from_stories: bool = True,
    ) -> None:
        """``from_stories``: add the stories' user texts to the NLU data and their bot
        texts to the domain, as Rasa's E2EImporter does; ``train_nlu`` turns it off, as
        Rasa's NLU-only importer leaves the stories out."""
        # A Domain object stands in for the domain files (train_core/train_nlu accept one).
        self._given_domain = domain_path if isinstance(domain_path, Domain) else None
        self.domain_path = (Path(domain_path) if isinstance(domain_path, (str, Path))
                            else None)
        self.config_path = Path(config_path) if config_path is not None else None
        if training_files is None:
            training_files = []
        elif isinstance(training_files, (str, Path)):
            training_files = [training_files]
        self.training_paths = [Path(p) for p in training_files]
        self.from_stories = from_stories
        self._content: dict[Path, Any] = {}

    @classmethod
    def from_project(cls, project: str | Path = ".") -> TrainingDataImporter:
        """Rasa's default layout: domain.yml (or domain/), config.yml, data/."""
        root = Path(project)
        domain = root / DEFAULT_DOMAIN
        if not domain.exists() and (root / "domain").is_dir():
            domain = root / "domain"
        return cls(domain if domain.exists() else None, root / DEFAULT_CONFIG
                   if (root / DEFAULT_CONFIG).exists() else None, [root / DEFAULT_DATA]
                   if (root / DEFAULT_DATA).exists() else [])

    # --- files -------------------------------------------------------------------------
    def _parsed(self, path: Path) -> Any:
        if path not in self._content:
            read = read_json_file if path.suffix == JSON_SUFFIX else read_yaml_file
            self._content[path] = read(path)
        return self._content[path]

    def _nlu_file(self, path: Path) -> TrainingData:
        if path.suffix == JSON_SUFFIX:
            return nlu_from_json_content(self._parsed(path), path)
        return nlu_from_content(self._parsed(path), path)

    def _not_read(self, notice: UnreadFile, path: Path, named: set[Path]) -> None:
        """A file Parley does not read: an error when the user named it or Rasa would
        train on it, a warning when it was found in a folder; nothing for what is not
        training data in another project imported whole (its README)."""
        if path in named or notice.rasa_reads_it:
            raise SchemaError(notice.message, path, hint=notice.hint)
        if notice.training_data or not any(
                path.is_relative_to(folder) for folder in self.imported_paths):
            warn(f"{notice.message} {notice.hint}", path)

    @cached_property
    def imported_paths(self) -> list[Path]:
        """Folders of other projects that config.yml imports (MultiProjectImporter)."""
        return imported_folders(self.config)

    @cached_property
    def files(self) -> ProjectFiles:
        files = ProjectFiles()
        # With imports, the project's own data folder may be absent (Rasa's multi-project
        # layout: a root with only config.yml); without, a missing path is an error.
        own = ([p for p in self.training_paths if Path(p).exists()] if self.imported_paths
               else self.training_paths)
        given = [*own, *self.imported_paths]
        named = {Path(p) for p in given if not Path(p).is_dir()}
        for path in training_files(given):
            if path.suffix == MARKDOWN_SUFFIX:
                self._not_read(markdown_notice(path), path, named)
                continue
            content = self._parsed(path)
            if content is None:
                warn("the file is empty; it holds no training data.", path)
                continue
            if path.suffix == JSON_SUFFIX:
                if is_rasa_nlu_json(content):
                    files.nlu.append(path)
                else:
                    self._not_read(json_notice(content, path), path, named)
                continue
            if not isinstance(content, dict):
                raise SchemaError("a training data file must be a mapping at its top level, "
                                  "with keys such as nlu, stories, rules.", path, 1)
            keys = set(content) - {"version"}
            kinds = 0
            if keys & set(NLU_KEYS):
                files.nlu.append(path)
                kinds += 1
            if keys & set(STORY_KEYS):
                (files.tests if path.name.startswith(TEST_FILE_PREFIX) else files.stories).append(path)
                kinds += 1
            if keys & set(DOMAIN_KEYS) - set(NLU_KEYS):
                files.domain.append(path)
                kinds += 1
            known = set(NLU_KEYS) | set(STORY_KEYS) | set(DOMAIN_KEYS) | set(CONFIG_KEYS)
            for key in keys - known:
                raise SchemaError(
                    f"unknown top-level key '{key}' in a training data file.{did_you_mean(key, known)}",
                    path, getattr(content, "key_lines", {}).get(key),
                    hint="Valid keys: version, nlu, responses, stories, rules (and domain keys).",
                )
            if not kinds and not keys & set(CONFIG_KEYS):
                warn("the file holds no training data (no nlu, responses, stories or rules).", path)
        return files

    # --- what the project holds --------------------------------------------------------
    @cached_property
    def config(self) -> ProjectConfig:
        return read_config(self.config_path)

    @cached_property
    def nlu_data(self) -> TrainingData:
        data = TrainingData()
        parts = [self._nlu_file(p) for p in self.files.nlu]
        return data.merge(*parts).without_duplicate_examples()

    @property
    def has_domain(self) -> bool:
        """Whether a domain was given or found (not just responses from NLU files)."""
        return (self._given_domain is not None or self._own_domain_path is not None
                or bool(self.files.domain))

    @cached_property
    def _own_domain_path(self) -> Path | None:
        """The project's own domain path; a path that does not exist is left out when
        config.yml imports other projects, whose domains then make the domain (Rasa's
        multi-project layout has no root domain)."""
        if self.domain_path is not None and not self.domain_path.exists() \
                and self.imported_paths:
            return None
        return self.domain_path

    @cached_property
    def nlu_training_data(self) -> TrainingData:
        """What NLU trains on: the NLU data, the user texts of the stories and rules
        (:attr:`story_messages`), and the domain's retrieval responses (``utter_faq/…``),
        which ResponseSelector returns; the domain's win, as in Rasa."""
        retrieval = {name: variants for name, variants in self.domain.responses.items()
                     if "/" in name}
        if not retrieval and not self.story_messages:
            return self.nlu_data
        data = self.nlu_data.merge(TrainingData(self.story_messages))
        data.responses = {**data.responses, **retrieval}
        return data.without_duplicate_examples()

    @cached_property
    def story_messages(self) -> list[Message]:
        """The user turns of the stories and rules that carry a text, as NLU messages.

        Rasa's E2EImporter adds every story turn to the NLU data. Only those with a text
        matter to Parley's pipeline: a bare ``user:`` text (an end-to-end turn) trains the
        featurizers' vocabulary but no classifier, as it has no intent; a text with an
        intent is a labelled example like those of the NLU files. Each once, sorted, so
        that the order of the stories changes no fingerprint.
        """
        if not self.from_stories:
            return []
        found: dict[tuple[str, str | None], Message] = {}
        for story in (*self.stories, *self.rules):
            for step in story.user_steps():
                if step.text is None:
                    continue
                intent = step.base_intent
                # Rasa keeps entities only on turns with an intent; an end-to-end text is
                # featurized as text alone.
                entities = [] if intent is None else [
                    entity for entity in map(_entity, step.entities) if entity is not None]
                message = Message(step.text, intent, entities, file=step.file,
                                  line=step.line)
                found.setdefault((step.text, intent), message)
        return [found[key] for key in sorted(found, key=lambda k: (k[1] or k[0], k[0]))]

    @cached_property
    def story_bot_texts(self) -> list[str]:
        """The ``bot:`` texts of the stories, in the order first written."""
        texts = (s.text for story in self.stories for s in story.iter_steps()
                 if isinstance(s, BotStep))
        return list(dict.fromkeys(texts))

    @cached_property
    def domain(self) -> Domain:
        """The domain files merged, plus domain sections found among the training files
        and the retrieval responses of the NLU files (as Rasa syncs them)."""
        if self._given_domain is not None:
            domain = self._given_domain
        elif self._own_domain_path is not None:
            domain = read_domain(self._own_domain_path)
        else:
            domain = Domain.empty()
        for path in self.files.domain:
            domain = domain.merge(domain_from_content(self._parsed(path), path))
        if self.nlu_data.responses:
            # Domain responses win over NLU-file responses of the same name, as in Rasa.
            merged = {**self.nlu_data.responses, **domain.responses}
            locations = {key: (file, line or 0) for key, (file, line)
                         in self.nlu_data.locations.items()}
            locations.update(domain.locations)
            domain = replace(domain, responses=merged, locations=locations)
        if self.from_stories and not domain.is_empty() and self.story_bot_texts:
            # A bot text is an action the policies predict (Rasa's E2EImporter adds them
            # as e2e actions); without a domain nothing trains Core, so none is added.
            texts = [t for t in self.story_bot_texts if t not in domain.e2e_actions]
            domain = replace(domain, e2e_actions=[*domain.e2e_actions, *texts])
        return domain

    @cached_property
    def _story_files(self) -> list[StoryFile]:
        return [story_file_from_content(self._parsed(p), p) for p in self.files.stories]

    @cached_property
    def stories(self) -> list[Story]:
        return [s for f in self._story_files for s in f.stories]

    @cached_property
    def rules(self) -> list[Story]:
        return [r for f in self._story_files for r in f.rules]

    @cached_property
    def test_stories(self) -> list[Story]:
        tests = [story_file_from_content(self._parsed(p), p) for p in self.files.tests]
        return [s for f in tests for s in (*f.stories, *f.rules)]

    def load_all(self) -> None:
        """Read everything now, so that reading errors surface here and not later."""
        for _ in (self.config, self.domain, self.nlu_data, self.stories, self.rules,
                  self.test_stories):
            pass

    def summary(self) -> dict[str, int]:
        """Counts of what the project holds, as ``parley data validate`` prints them."""
        nlu, domain = self.nlu_data, self.domain
        return {
            "intents": len(domain.intents),
            "entities": len(domain.entities),
            "slots": len(domain.slots),
            "responses": len(domain.responses),
            "actions": len(domain.actions),
            "forms": len(domain.forms),
            "NLU examples": len(nlu.examples),
            "intents with examples": len(nlu.intents),
            "entity annotations": sum(len(m.entities) for m in nlu.examples),
            "synonyms": len(nlu.synonyms),
            "regexes": len(nlu.regexes),
            "lookup tables": len(nlu.lookups),
            "stories": len(self.stories),
            "rules": len(self.rules),
            "test stories": len(self.test_stories),
        }


def _entity(entity: StoryEntity) -> Entity | None:
    """The entity as annotated in a user text; None for one without offsets."""
    if entity.start is None or entity.end is None:
        return None
    return Entity(entity.start, entity.end, entity.value, entity.entity, entity.role,
                  entity.group)
