"""config.yml: recipe, language, assistant id, NLU pipeline, policies and importers.

A missing or empty ``pipeline`` / ``policies`` is filled from ``default_config.yml`` and
recorded in :attr:`ProjectConfig.filled_from_default`, so callers can tell the user.
Which component names exist and which parameters they take is checked later, by the
recipe, which knows the components; here only the file's shape is checked, and the
``importers`` (Rasa's built-in ones by name; nothing else) and ``imports`` (the project
folders the MultiProjectImporter reads, see :mod:`parley.data.projects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.data.formats.schema import (
    check_keys, did_you_mean, expect_list, expect_mapping, expect_type,
)
from parley.data.formats.version import is_readable_version
from parley.data.formats.yaml_io import line_of, parse_yaml, plain, read_yaml_file
from parley.errors import SchemaError, warn

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yml")
SUPPORTED_RECIPES = ("default.v1",)
PLACEHOLDER_ASSISTANT_ID = "placeholder_default"
CONFIG_TOP_KEYS = ("version", "recipe", "language", "assistant_id", "pipeline", "policies",
                   "importers", "imports", "data", "core_target", "nlu_target")
# Rasa's own importers: RasaFileImporter reads the given domain and data (what Parley does
# with no `importers:`), MultiProjectImporter adds the projects listed under `imports:`.
RASA_FILE_IMPORTER = "RasaFileImporter"
MULTI_PROJECT_IMPORTER = "MultiProjectImporter"
SUPPORTED_IMPORTERS = (RASA_FILE_IMPORTER, MULTI_PROJECT_IMPORTER)


@dataclass
class ComponentConfig:
    """One pipeline component or policy: its Rasa name and its parameters as written."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    file: str | None = field(default=None, compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)
    # The line of each parameter key, so a bad value can be pointed at exactly.
    param_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


@dataclass(frozen=True)
class ProjectImport:
    """One entry of ``imports:``: a path as written, relative to the config file's folder."""

    path: str
    line: int | None = field(default=None, compare=False)


@dataclass
class ProjectConfig:
    recipe: str = "default.v1"
    language: str = "en"
    assistant_id: str = PLACEHOLDER_ASSISTANT_ID
    pipeline: list[ComponentConfig] = field(default_factory=list)
    policies: list[ComponentConfig] = field(default_factory=list)
    importers: list[dict[str, Any]] = field(default_factory=list)
    imports: list[ProjectImport] = field(default_factory=list)
    file: str | None = field(default=None, compare=False)
    filled_from_default: list[str] = field(default_factory=list, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for fingerprints and archive metadata."""
        out = {
            "recipe": self.recipe,
            "language": self.language,
            "assistant_id": self.assistant_id,
            "pipeline": [c.as_dict() for c in self.pipeline],
            "policies": [c.as_dict() for c in self.policies],
            "importers": self.importers,
        }
        if self.imports:  # only when used, so existing fingerprints stay as they were
            out["imports"] = [i.path for i in self.imports]
        return out

    @property
    def importer_names(self) -> list[str]:
        """The importers in effect: the listed ones, or RasaFileImporter when none is."""
        return [i["name"] for i in self.importers] or [RASA_FILE_IMPORTER]

    @property
    def reads_imports(self) -> bool:
        return MULTI_PROJECT_IMPORTER in self.importer_names

    def notices(self) -> list[str]:
        """What was filled in for the user, in words they can act on."""
        out = [
            f"config.yml has no {part}: Parley's default {part} is used "
            f"(see {DEFAULT_CONFIG_PATH.name} in the parley package to copy and adjust it)."
            for part in self.filled_from_default
        ]
        if self.assistant_id == PLACEHOLDER_ASSISTANT_ID:
            out.append("config.yml has no unique assistant_id; set one to tell models apart.")
        return out


def _components(value: Any, file: str | None, line: int | None, where: str) -> list[ComponentConfig]:
    items = expect_list(value, file, line, f"'{where}'")
    out = []
    for index, item in enumerate(items):
        item_line = line_of(items, index)
        item = expect_mapping(item, file, item_line, f"an entry of '{where}'")
        if "name" not in item:
            raise SchemaError(
                f"an entry of '{where}' has no 'name'.", file, item_line,
                hint="Each entry starts with '- name: ComponentName'.",
            )
        expect_type(item["name"], str, file, line_of(item, "name"), "a component name")
        params = {k: v for k, v in item.items() if k != "name"}
        lines = {k: line for k in params if (line := line_of(item, k)) is not None}
        out.append(ComponentConfig(item["name"], plain(params), file, item_line, lines))
    return out



def config_from_content(content: Any, file: str | Path | None = None) -> ProjectConfig:
    file_name = str(file) if file is not None else None
    if content is None:
        content = {}
    content = expect_mapping(content, file, 1, "the config file's top level")
    # The recipe first: a graph.v1 config has keys (train_schema, …) only that recipe knows.
    recipe = content.get("recipe") or "default.v1"
    if recipe not in SUPPORTED_RECIPES:
        raise SchemaError(
            f"the recipe '{recipe}' is not supported: Parley builds the training graph "
            "itself from 'pipeline' and 'policies' (Rasa's default.v1 recipe); a graph "
            "written by hand (train_schema / predict_schema) is not read.",
            file, line_of(content, "recipe"),
            hint=f"Use recipe: {' or '.join(SUPPORTED_RECIPES)} with a pipeline and policies.",
        )
    check_keys(content, CONFIG_TOP_KEYS, file, "config.yml")
    if not is_readable_version(content, file):
        content = {}
    config = ProjectConfig(file=file_name)
    config.recipe = recipe
    for key in ("language", "assistant_id"):
        if content.get(key) is not None:
            expect_type(content[key], str, file, line_of(content, key), f"'{key}'")
            setattr(config, key, content[key])
    defaults = _default_content()
    if not _is_english(config.language):
        defaults["pipeline"] = _without_english_table(defaults["pipeline"])
    for part in ("pipeline", "policies"):
        if content.get(part):
            setattr(config, part, _components(content[part], file_name, line_of(content, part), part))
        else:
            setattr(config, part, _components(defaults[part], str(DEFAULT_CONFIG_PATH), None, part))
            config.filled_from_default.append(part)
    if content.get("importers"):
        importers = _components(content["importers"], file_name,
                                line_of(content, "importers"), "importers")
        for importer in importers:
            _check_importer(importer)
        config.importers = [c.as_dict() for c in importers]
    config.imports = read_imports(content, file)
    if config.imports and not config.reads_imports:
        warn("'imports' is read only by the MultiProjectImporter, which config.yml does not "
             "list under 'importers'; the imported projects are ignored (as Rasa ignores "
             "them). Add `importers: [{name: MultiProjectImporter}]` to read them.",
             file, line_of(content, "imports"))
    return config


def _check_importer(importer: ComponentConfig) -> None:
    """Rasa's built-in importers by name; a custom importer class is refused, not skipped."""
    name = importer.name
    supported = ", ".join(SUPPORTED_IMPORTERS)
    if name in SUPPORTED_IMPORTERS:
        for key in importer.params:
            warn(f"the parameter '{key}' of the importer '{name}' is ignored: Parley's "
                 "importers take no parameters (imports are relative to this config "
                 "file's folder).", importer.file, importer.line)
        return
    if "." in name:
        raise SchemaError(
            f"the importer '{name}' is a custom importer class; Parley does not load "
            "custom importers yet.", importer.file, importer.line,
            hint=f"Use Parley's importers ({supported}), or convert the data to Rasa's "
            "YAML files and list them under --data.",
        )
    raise SchemaError(
        f"unknown importer '{name}'.{did_you_mean(name, SUPPORTED_IMPORTERS)}",
        importer.file, importer.line,
        hint=f"Importers Parley has: {supported}.",
    )


def read_imports(content: Any, file: str | Path | None) -> list[ProjectImport]:
    """The ``imports:`` list of a config file: paths (strings), each with its line."""
    raw = content.get("imports") if isinstance(content, dict) else None
    if raw is None:
        return []
    items = expect_list(raw, file, line_of(content, "imports"), "'imports'")
    out = []
    for index, item in enumerate(items):
        expect_type(item, str, file, line_of(items, index), "an entry of 'imports'")
        out.append(ProjectImport(item, line_of(items, index)))
    return out


def _default_content() -> Any:
    return read_yaml_file(DEFAULT_CONFIG_PATH)


# The default pipeline's static embedding table holds English word pieces (all-MiniLM-L6-v2):
# for a project in another language it would add noise, so its default goes without it.
ENGLISH_ONLY_DEFAULT = "StaticEmbeddingFeaturizer"


def _is_english(language: str) -> bool:
    return language.lower().replace("_", "-").split("-")[0] == "en"


def _without_english_table(pipeline: list[Any]) -> list[Any]:
    out = []
    for item in pipeline:
        if item.get("name") == ENGLISH_ONLY_DEFAULT:
            continue
        if ENGLISH_ONLY_DEFAULT in (item.get("featurizers") or []):
            item = {**item, "featurizers": [name for name in item["featurizers"]
                                            if name != ENGLISH_ONLY_DEFAULT]}
            item.pop("dense_norm", None)  # scales the dense block, which is gone
        out.append(item)
    return out


def read_config(path: str | Path | None) -> ProjectConfig:
    """Read config.yml; a missing path gives Parley's default config (noted as filled)."""
    if path is None:
        return config_from_content(None)
    return config_from_content(read_yaml_file(path), path)


def read_config_text(text: str, file: str | Path | None = None) -> ProjectConfig:
    return config_from_content(parse_yaml(text, file), file)
