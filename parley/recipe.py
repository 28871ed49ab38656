"""config.yml → the nodes Parley trains: one per pipeline component and per policy.

The NLU pipeline is a chain (each component sees what the ones before it wrote on the
messages); each policy is its own branch fed by the domain and the stories. Everything is
checked here, before anything trains: unknown components, unknown parameters, a policy in the
pipeline, a classifier with no features before it — each an error naming the config line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parley import registry
from parley.component import FEATURES, INTENT, PRODUCTS, TOKENS, Component, satisfied
from parley.data.config import ComponentConfig, ProjectConfig
from parley.errors import ConfigError, location

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

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "component": self.component,
                "params": self.params}


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


def _where(entry: ComponentConfig) -> str:
    return location(entry.file, entry.line) or "config.yml"


def _resolved(kind: str, entry: ComponentConfig) -> type[Component]:
    """The entry's class, refused with its config line when it stands in the wrong section
    or cannot be had."""
    try:
        found = registry.kind_of(entry.name)
        if kind == NLU and found == registry.POLICY:
            raise ConfigError(
                f"{_where(entry)}: '{entry.name}' is a policy but stands in the pipeline. "
                "Move it under 'policies:'.")
        if kind == CORE and found == registry.NLU:
            raise ConfigError(
                f"{_where(entry)}: '{entry.name}' is an NLU component but stands under "
                "'policies:'. Move it under 'pipeline:'.")
        return component_class(kind, entry.name)
    except ConfigError as error:
        if str(error).startswith(_where(entry)):
            raise
        raise ConfigError(f"{_where(entry)}: {error}") from None


def build_recipe(config: ProjectConfig, training_type: str = "both",
                 nlu_arguments: dict[str, Any] | None = None,
                 core_arguments: dict[str, Any] | None = None) -> Recipe:
    """The nodes to train for ``training_type`` ("both", "nlu" or "core"), all checked."""
    nlu_nodes: list[Node] = []
    policies: list[Node] = []
    if training_type in ("both", NLU):
        nlu_nodes = _nodes(NLU, config.pipeline, nlu_arguments or {})
        _check_pipeline_order(config.pipeline)
    settings: dict[str, Any] = {}
    if training_type in ("both", CORE):
        policies = _nodes(CORE, config.policies, core_arguments or {})
        factor = (core_arguments or {}).get("augmentation_factor", DEFAULT_AUGMENTATION)
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 0:
            raise ConfigError(f"augmentation_factor must be a whole number >= 0, not {factor!r}.")
        settings["augmentation_factor"] = factor
    return Recipe(nlu_nodes, policies, settings)


def _nodes(kind: str, entries: list[ComponentConfig], extra: dict[str, Any]) -> list[Node]:
    nodes = []
    for index, entry in enumerate(entries):
        cls = _resolved(kind, entry)
        params = dict(entry.params)
        accepted = set(cls.param_names())
        params.update({k: v for k, v in extra.items() if k in accepted})
        cls.from_params(params, _where(entry))  # checks keys
        nodes.append(Node(f"{kind}_{index}_{entry.name}", kind, entry.name, params,
                          entry.file, entry.line))
    return nodes


def _check_pipeline_order(entries: list[ComponentConfig]) -> None:
    """Each component's ``needs`` provided by a component before it (its ``provides``)."""
    provided: set[str] = set()
    for entry in entries:
        cls = component_class(NLU, entry.name)
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
            raise ConfigError(f"{_where(entry)}: {message}{' ' + remedy if remedy else ''}")
        provided.update(cls.provides)
