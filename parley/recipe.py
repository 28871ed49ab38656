"""config.yml → the nodes Parley trains: one per pipeline component and per policy.

The NLU pipeline is a chain (each component sees what the ones before it wrote on the
messages); each policy is its own branch fed by the domain and the stories. Everything is
checked here, before anything trains: unknown components, parameter values (against each
class's declared ``param_constraints``), featurizers named in ``featurizers`` that the pipeline
lacks, a policy in the pipeline, a classifier with no features before it — each an error
naming the config line. An unknown parameter key is a warning (Rasa ignores it, and so does
Parley: the key is dropped) unless ``strict``; :func:`config_issues` gives every finding at
once for ``parley data validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parley import registry
from parley.component import (
    DENSE_FEATURES, FEATURES, INTENT, PRODUCTS, SPARSE_FEATURES, TOKENS, Component, satisfied,
)
from parley.data.config import ComponentConfig, ProjectConfig
from parley.errors import ConfigError, Issue, warn

NLU = "nlu"
CORE = "core"

# What to put before a component that misses something, by what it misses.
_REMEDY = {
    TOKENS: "Put e.g. '- name: WhitespaceTokenizer' first in the pipeline.",
    FEATURES: "Add e.g. '- name: CountVectorsFeaturizer' before it.",
    INTENT: "Add e.g. '- name: LogisticRegressionClassifier' before it.",
}


@dataclass(frozen=True)
class Node:
    """One trainable step: a component or policy by its Rasa name with its parameters."""

    name: str  # unique, e.g. "nlu_3_CountVectorsFeaturizer"
    kind: str  # NLU or CORE
    component: str
    params: dict[str, Any] = field(default_factory=dict)
    file: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    # The line of each parameter written in config.yml, so later checks (finetuning) can
    # point at the parameter rather than the component.
    param_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "component": self.component,
                "params": self.params}


STRICT = "(strict mode, as with --strict, makes this an error)"
DEFAULT_AUGMENTATION = 50  # Rasa's default number of augmented stories


@dataclass
class Recipe:
    nlu: list[Node]
    policies: list[Node]
    # How stories become training trackers; part of every policy's fingerprint.
    tracker_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def nodes(self) -> list[Node]:
        return [*self.nlu, *self.policies]

    def as_dict(self) -> dict[str, Any]:
        return {"nlu": [n.as_dict() for n in self.nlu],
                "policies": [n.as_dict() for n in self.policies],
                "tracker_settings": self.tracker_settings}


def component_class(kind: str, name: str) -> type[Component]:
    """The class behind a config.yml name: an NLU component (``kind`` NLU) or a policy."""
    return registry.get_class(name, registry.NLU if kind == NLU else registry.POLICY)


def build_recipe(config: ProjectConfig, training_type: str = "both",
                 nlu_arguments: dict[str, Any] | None = None,
                 core_arguments: dict[str, Any] | None = None,
                 strict: bool = False) -> Recipe:
    """The nodes to train for ``training_type`` ("both", "nlu" or "core"), all checked.

    An unknown parameter key warns (and is dropped); with ``strict`` it is an error."""
    nlu_nodes: list[Node] = []
    policies: list[Node] = []
    if training_type in ("both", NLU):
        nlu_nodes = _nodes(NLU, config.pipeline, nlu_arguments or {}, strict)
        _check_pipeline_order(config.pipeline)
        _raise_first(_featurizer_issues(config.pipeline))
    settings: dict[str, Any] = {}
    if training_type in ("both", CORE):
        policies = _nodes(CORE, config.policies, core_arguments or {}, strict)
        for issue in _priority_issues(config.policies):
            warn(issue.message, issue.file, issue.line)
        factor = (core_arguments or {}).get("augmentation_factor", DEFAULT_AUGMENTATION)
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 0:
            raise ConfigError(f"augmentation_factor must be a whole number >= 0, not {factor!r}.")
        settings["augmentation_factor"] = factor
    return Recipe(nlu_nodes, policies, settings)


def config_issues(config: ProjectConfig, training_type: str = "both") -> list[Issue]:
    """Every finding about config.yml's pipeline and policies, errors and warnings, each
    with its file and line — what :func:`build_recipe` would stop at or warn about."""
    issues: list[Issue] = []
    parts = [(NLU, config.pipeline), (CORE, config.policies)]
    for kind, entries in parts:
        if training_type not in ("both", kind):
            continue
        for entry in entries:
            issues += _entry(kind, entry, {})[1]
    if training_type in ("both", CORE):
        issues += _priority_issues(config.policies)
    if training_type in ("both", NLU):
        try:
            _check_pipeline_order(config.pipeline)
        except ConfigError as error:
            issues.append(_located(str(error)))
        issues += _featurizer_issues(config.pipeline)
    return issues


def check_config(config: ProjectConfig, training_type: str = "both",
                 strict: bool = False) -> None:
    """Raise ConfigError for the first error of :func:`config_issues`; with ``strict``
    (``parley train --strict``) for the first warning too, such as an unknown key."""
    issues = config_issues(config, training_type)
    _raise_first(issues)
    if strict:
        _raise_first([Issue("error", f"{i.message} {STRICT}", i.file, i.line) for i in issues])


def _located(message: str) -> Issue:
    """An error whose message starts with ``file:line: `` as an Issue with that place."""
    where, _, rest = message.partition(": ")
    file, _, line = where.rpartition(":")
    if rest and file and line.isdigit():
        return Issue("error", rest, file, int(line))
    return Issue("error", message)


def _priority_issues(entries: list[ComponentConfig]) -> list[Issue]:
    """Policies sharing a priority (Rasa warns of it too); entries that cannot be built
    are reported elsewhere."""
    from parley.dialogue.policies.ensemble import same_priority_issues

    found = []
    for entry in entries:
        try:
            cls = component_class(CORE, entry.name)
        except ConfigError:
            continue
        priority = entry.params.get("priority", cls.default_params().get("priority"))
        if isinstance(priority, int) and not isinstance(priority, bool):
            found.append((entry.name, priority, entry.file,
                          entry.param_lines.get("priority", entry.line)))
    return same_priority_issues(found)


def _raise_first(issues: list[Issue]) -> None:
    for issue in issues:
        if issue.level == "error":
            raise ConfigError(issue.message, issue.file or "config.yml", issue.line)


def _nodes(kind: str, entries: list[ComponentConfig], extra: dict[str, Any],
           strict: bool = False) -> list[Node]:
    nodes = []
    for index, entry in enumerate(entries):
        params, issues = _entry(kind, entry, extra)
        _raise_first(issues)
        for issue in issues:  # only warnings are left
            if strict:
                raise ConfigError(f"{issue.message} {STRICT}", issue.file, issue.line)
            warn(issue.message, issue.file, issue.line)
        nodes.append(Node(f"{kind}_{index}_{entry.name}", kind, entry.name, params,
                          entry.file, entry.line, dict(entry.param_lines)))
    return nodes


def _entry(kind: str, entry: ComponentConfig,
           extra: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """The parameters a config entry builds its component with, and what is wrong with it:
    errors (unknown or misplaced component, a value not allowed) and warnings (unknown keys,
    which are dropped)."""
    def issue(level: str, message: str, key: str | None = None) -> Issue:
        line = entry.param_lines.get(key, entry.line) if key else entry.line
        return Issue(level, message, entry.file, line)

    try:
        cls: Any = _entry_class(kind, entry)
    except ConfigError as error:
        return {}, [issue("error", str(error))]
    accepted = cls.param_names()
    ignored = "Parley ignores it, as Rasa does."
    issues = [issue("warning", f"{cls.unknown_param_message(key, brief=True)} {ignored}", key)
              for key in entry.params if key not in accepted]
    params = {k: v for k, v in entry.params.items() if k in accepted}
    params.update({k: v for k, v in extra.items() if k in accepted})
    issues += [issue("error", f"{cls.name}: {p.message}", p.key)
               for p in cls.param_problems(params)]
    return params, issues


def _entry_class(kind: str, entry: ComponentConfig) -> type[Component]:
    """The entry's class; a ConfigError (without the place, which the caller adds) when it
    stands in the wrong section or cannot be had. The registry knows each name's kind."""
    found = registry.kind_of(entry.name)
    if kind == NLU and found == registry.POLICY:
        raise ConfigError(f"'{entry.name}' is a policy but stands in the pipeline. "
                          "Move it under 'policies:'.")
    if kind == CORE and found == registry.NLU:
        raise ConfigError(f"'{entry.name}' is an NLU component but stands under 'policies:'. "
                          "Move it under 'pipeline:'.")
    return component_class(kind, entry.name)


def _featurizer_issues(entries: list[ComponentConfig]) -> list[Issue]:
    """A ``featurizers`` list may only name featurizers that come earlier in the pipeline
    (their features are what it selects; a name that is not there selects nothing)."""
    issues = []
    before: list[str] = []
    for entry in entries:
        names = entry.params.get("featurizers")
        if isinstance(names, list):
            for name in names:
                if name not in before:
                    line = entry.param_lines.get("featurizers", entry.line)
                    available = ", ".join(dict.fromkeys(before)) or "none"
                    issues.append(Issue(
                        "error", f"{entry.name}: featurizers names '{name}', which is not a "
                        f"featurizer before it in the pipeline; those are: {available}.",
                        entry.file, line))
        if _makes_features(entry.name):
            before.append(entry.name)
    return issues


def _makes_features(name: str) -> bool:
    """Whether the component named ``name`` provides features (False if it is unknown:
    that error is reported on its own)."""
    try:
        cls = component_class(NLU, name)
    except ConfigError:
        return False
    return bool({SPARSE_FEATURES, DENSE_FEATURES} & set(cls.provides))


def _check_pipeline_order(entries: list[ComponentConfig]) -> None:
    """Each component's ``needs`` provided by a component before it (its ``provides``)."""
    provided: set[str] = set()
    for entry in entries:
        try:
            cls = component_class(NLU, entry.name)
        except ConfigError:
            continue  # an unknown or misplaced name is reported on its own
        for need in cls.needs_with(entry.params):
            if satisfied(need, provided):
                continue
            what = PRODUCTS.get(need, need)
            if need == INTENT:
                message = f"{entry.name} needs an intent classifier before it."
            elif need == TOKENS:
                message = f"{entry.name} needs tokens, but no tokenizer comes before it."
            elif need == FEATURES:
                message = f"{entry.name} needs features, but no featurizer comes before it."
            else:
                message = (f"{entry.name} needs {what} before it, and no component before "
                           "it provides that.")
            remedy = _REMEDY.get(need, "")
            raise ConfigError(message, entry.file or "config.yml", entry.line,
                              hint=remedy or None)
        provided.update(cls.provides)
