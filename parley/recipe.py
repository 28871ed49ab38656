"""config.yml → the nodes Parley trains: one per pipeline component and per policy.

The NLU pipeline is a chain (each component sees what the ones before it wrote on the
messages); each policy is its own branch fed by the domain and the stories. Everything is
checked here, before anything trains: unknown components, unknown parameters, a policy in the
pipeline, a classifier with no features before it — each an error naming the config line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parley.data.config import ComponentConfig, ProjectConfig
from parley.errors import ConfigError, location

NLU = "nlu"
CORE = "core"

# What a component needs before it in the pipeline, by Rasa name.
TOKENIZERS = {"WhitespaceTokenizer"}
FEATURIZERS = {"RegexFeaturizer", "LexicalSyntacticFeaturizer", "CountVectorsFeaturizer",
               "LanguageModelFeaturizer"}
NEEDS_FEATURES = {"LogisticRegressionClassifier", "SklearnIntentClassifier", "DIETClassifier",
                  "ResponseSelector"}
NEEDS_TOKENS = FEATURIZERS | {"CRFEntityExtractor"}
NEEDS_INTENT = {"FallbackClassifier"}
INTENT_CLASSIFIERS = {"LogisticRegressionClassifier", "KeywordIntentClassifier",
                      "SklearnIntentClassifier", "DIETClassifier"}


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


def component_class(kind: str, name: str) -> type:
    """The class behind a Rasa name: an NLU component (``kind`` NLU) or a policy."""
    if kind == NLU:
        from parley.nlu.registry import get_component_class

        return get_component_class(name)
    from parley.dialogue.registry import get_policy_class

    return get_policy_class(name)


def _where(entry: ComponentConfig) -> str:
    return location(entry.file, entry.line) or "config.yml"


def _is_policy_name(name: str) -> bool:
    return name.endswith("Policy")  # true of every Rasa policy, and of no NLU component


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
        if kind == NLU and _is_policy_name(entry.name):
            raise ConfigError(
                f"{_where(entry)}: '{entry.name}' is a policy but stands in the pipeline. "
                "Move it under 'policies:'."
            )
        if kind == CORE and not _is_policy_name(entry.name):
            component_class(NLU, entry.name)  # raises "unknown" with suggestions if it is neither
            raise ConfigError(
                f"{_where(entry)}: '{entry.name}' is an NLU component but stands under "
                "'policies:'. Move it under 'pipeline:'."
            )
        cls = component_class(kind, entry.name)
        params = dict(entry.params)
        accepted = set(cls.param_names())  # type: ignore[attr-defined]
        params.update({k: v for k, v in extra.items() if k in accepted})
        cls.from_params(params, _where(entry))  # type: ignore[attr-defined]  # checks keys
        nodes.append(Node(f"{kind}_{index}_{entry.name}", kind, entry.name, params,
                          entry.file, entry.line))
    return nodes


def _check_pipeline_order(entries: list[ComponentConfig]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.name in NEEDS_TOKENS and not seen & TOKENIZERS:
            raise ConfigError(
                f"{_where(entry)}: {entry.name} needs tokens, but no tokenizer comes before it. "
                "Put e.g. '- name: WhitespaceTokenizer' first in the pipeline."
            )
        if entry.name in NEEDS_FEATURES and not seen & FEATURIZERS:
            raise ConfigError(
                f"{_where(entry)}: {entry.name} needs features, but no featurizer comes before "
                "it. Add e.g. '- name: CountVectorsFeaturizer' before it."
            )
        if entry.name in NEEDS_INTENT and not seen & INTENT_CLASSIFIERS:
            raise ConfigError(
                f"{_where(entry)}: {entry.name} needs an intent classifier before it. "
                "Add e.g. '- name: LogisticRegressionClassifier' before it."
            )
        seen.add(entry.name)
