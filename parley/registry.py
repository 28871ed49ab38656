"""config.yml names → component and policy classes, imported only when asked for.

One table for both kinds: each entry knows whether it is an NLU component (``pipeline:``)
or a policy (``policies:``), and so do the Rasa names Parley does not have yet, so nothing
is told apart by the suffix of its name. A name with dots (``my_package.my_module.MyComponent``)
is a user's own class, loaded when it follows Parley's component contract
(:class:`parley.component.NLUComponent` or ``parley.dialogue.policies.base.Policy``);
docs/custom-components.md describes it. Like Rasa, the current directory is searched for
such modules (it is added to the end of ``sys.path`` when the first one is imported).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any, Literal

from parley.component import Component, NLUComponent
from parley.errors import ConfigError

__all__ = [
    "ENTRIES", "NLU", "NOT_YET", "POLICY", "REMOVED_IN_RASA_3", "Entry", "available", "build",
    "get_class", "kind_of", "names",
]

Kind = Literal["nlu", "policy"]
NLU: Kind = "nlu"
POLICY: Kind = "policy"
# The base class each kind must subclass, by string: the registry imports no component
# (and nothing of the dialogue layer) until a name is asked for.
CONTRACT: dict[str, str] = {
    NLU: "parley.component:NLUComponent",
    POLICY: "parley.dialogue.policies.base:Policy",
}
SECTION = {NLU: "pipeline", POLICY: "policies"}
WHAT = {NLU: "an NLU component", POLICY: "a policy"}


@dataclass(frozen=True)
class Entry:
    """A registered name: its kind and where its class lives (``module:Class``)."""

    kind: Kind
    target: str


def _nlu(target: str) -> Entry:
    return Entry(NLU, target)


def _policy(target: str) -> Entry:
    return Entry(POLICY, target)


ENTRIES: dict[str, Entry] = {
    "WhitespaceTokenizer": _nlu("parley.nlu.tokenizers.whitespace:WhitespaceTokenizer"),
    "CountVectorsFeaturizer": _nlu("parley.nlu.featurizers.count_vectors:CountVectorsFeaturizer"),
    "RegexFeaturizer": _nlu("parley.nlu.featurizers.regex:RegexFeaturizer"),
    "LexicalSyntacticFeaturizer":
        _nlu("parley.nlu.featurizers.lexical_syntactic:LexicalSyntacticFeaturizer"),
    "LanguageModelFeaturizer":
        _nlu("parley.nlu.featurizers.language_model:LanguageModelFeaturizer"),
    "StaticEmbeddingFeaturizer":
        _nlu("parley.nlu.featurizers.static_embedding:StaticEmbeddingFeaturizer"),
    "LogisticRegressionClassifier":
        _nlu("parley.nlu.classifiers.logistic_regression:LogisticRegressionClassifier"),
    "KeywordIntentClassifier": _nlu("parley.nlu.classifiers.keyword:KeywordIntentClassifier"),
    "SklearnIntentClassifier":
        _nlu("parley.nlu.classifiers.sklearn_svm:SklearnIntentClassifier"),
    "FallbackClassifier": _nlu("parley.nlu.classifiers.fallback:FallbackClassifier"),
    "RegexEntityExtractor": _nlu("parley.nlu.extractors.regex:RegexEntityExtractor"),
    "EntitySynonymMapper": _nlu("parley.nlu.extractors.synonyms:EntitySynonymMapper"),
    "CRFEntityExtractor": _nlu("parley.nlu.extractors.crf:CRFEntityExtractor"),
    "DIETClassifier": _nlu("parley.nlu.neural.diet:DIETClassifier"),
    "ResponseSelector": _nlu("parley.nlu.neural.response_selector:ResponseSelector"),
    "MemoizationPolicy": _policy("parley.dialogue.policies.memoization:MemoizationPolicy"),
    "AugmentedMemoizationPolicy":
        _policy("parley.dialogue.policies.memoization:AugmentedMemoizationPolicy"),
    "RulePolicy": _policy("parley.dialogue.policies.rule:RulePolicy"),
    "TEDPolicy": _policy("parley.dialogue.policies.ted:TEDPolicy"),
    "UnexpecTEDIntentPolicy":
        _policy("parley.dialogue.policies.unexpected:UnexpecTEDIntentPolicy"),
}

# Rasa 3.x names Parley does not have yet, with their kind.
NOT_YET: dict[str, Kind] = {
    **dict.fromkeys((
        "SpacyNLP", "SpacyTokenizer", "SpacyFeaturizer", "SpacyEntityExtractor", "MitieNLP",
        "MitieTokenizer", "MitieFeaturizer", "MitieEntityExtractor", "MitieIntentClassifier",
        "DucklingEntityExtractor", "ConveRTFeaturizer", "ConveRTTokenizer", "JiebaTokenizer",
        "LanguageModelTokenizer", "HFTransformersNLP"), NLU),
}
# Rasa 2 policies that Rasa 3 removed, and what replaces them.
REMOVED_IN_RASA_3: dict[str, str] = {
    "MappingPolicy": "rules (RulePolicy)",
    "FormPolicy": "RulePolicy with rules for the form",
    "FallbackPolicy": "RulePolicy's core_fallback_threshold and core_fallback_action_name",
    "TwoStageFallbackPolicy": "RulePolicy with the action_two_stage_fallback rule",
}


def names(kind: Kind) -> list[str]:
    """The registered names of one kind, in table order."""
    return [name for name, entry in ENTRIES.items() if entry.kind == kind]


def available(kind: Kind) -> str:
    return ", ".join(sorted(names(kind)) if kind == NLU else names(kind))


def is_module_path(name: str) -> bool:
    return "." in name


def kind_of(name: str) -> Kind | None:
    """The kind of a name (registered, not yet available or removed); for a module path,
    the kind of the class it names (imported and checked); None for an unknown name."""
    if name in ENTRIES:
        return ENTRIES[name].kind
    if name in NOT_YET:
        return NOT_YET[name]
    if name in REMOVED_IN_RASA_3:
        return POLICY
    if is_module_path(name):
        cls = _custom_class(name)
        return NLU if issubclass(cls, NLUComponent) else POLICY
    return None


def get_class(name: str, kind: Kind | None = None) -> type[Component]:
    """The class for a config.yml ``name``; with ``kind``, it must be of that kind.

    A ConfigError says what is wrong: a Rasa name Parley lacks, a policy Rasa 3 removed,
    an unknown name (with the closest known one), a custom class that breaks the contract.
    """
    if is_module_path(name):
        return _custom_class(name, kind)
    entry = ENTRIES.get(name)
    if entry is not None and (kind is None or entry.kind == kind):
        return _import(entry.target)
    expected: Kind = kind or kind_of(name) or NLU
    if name in NOT_YET and NOT_YET[name] == expected:
        if expected == POLICY:
            raise ConfigError(
                f"the policy '{name}' is a Rasa policy that Parley does not have yet. "
                f"Remove it from config.yml or use one of: {available(POLICY)}.")
        raise ConfigError(
            f"'{name}' is a Rasa component Parley does not have yet; available: "
            f"{available(NLU)}.")
    if name in REMOVED_IN_RASA_3 and expected == POLICY:
        raise ConfigError(f"the policy '{name}' was removed in Rasa 3.0; use "
                          f"{REMOVED_IN_RASA_3[name]} instead.")
    other = kind_of(name)
    if other is not None and other != expected:
        raise ConfigError(f"'{name}' is {WHAT[other]}, not {WHAT[expected]}; it belongs "
                          f"under '{SECTION[other]}:'.")
    known = [*names(expected), *(n for n, k in NOT_YET.items() if k == expected)]
    close = difflib.get_close_matches(name, known, n=1)
    guess = f" Did you mean '{close[0]}'?" if close else ""
    if expected == POLICY:
        raise ConfigError(f"unknown policy '{name}'.{guess} Available: {available(POLICY)}.")
    raise ConfigError(f"Unknown NLU component '{name}'.{guess} Available: {available(NLU)}.")


def _import(target: str) -> type[Component]:
    module_name, _, class_name = target.partition(":")
    cls: type[Component] = getattr(importlib.import_module(module_name), class_name)
    return cls


def _custom_class(path: str, kind: Kind | None = None) -> type[Component]:
    """A user's class named ``package.module.Class``, checked against the contract."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ConfigError(f"'{path}' is not a module path; write it as "
                          "my_package.my_module.MyComponent.")
    # As Rasa does, a project's own modules are found from where it runs.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"the component '{path}' cannot be imported: {error}. Its module must be "
            "importable from where Parley runs (the project folder, or an installed package)."
        ) from None
    except Exception as error:  # the user's module itself failed: say where
        raise ConfigError(f"importing the module of '{path}' failed: "
                          f"{type(error).__name__}: {error}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"the module '{module_name}' has no '{class_name}' (for '{path}').")
    if not inspect.isclass(cls):
        raise ConfigError(f"'{path}' is a {type(cls).__name__}, not a class; name the "
                          "component class.")
    kinds = [kind] if kind is not None else [NLU, POLICY]
    bases = {k: _import(CONTRACT[k]) for k in kinds}
    fitting = [k for k, base in bases.items() if issubclass(cls, base)]
    if not fitting:
        wanted = " or ".join(CONTRACT[k].replace(":", ".") for k in kinds)
        raise ConfigError(f"'{path}' does not follow Parley's component contract: it must "
                          f"subclass {wanted} (see docs/custom-components.md).")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise ConfigError(f"'{path}' does not implement {', '.join(missing)}, which "
                          f"{bases[fitting[0]].__name__} requires (see "
                          "docs/custom-components.md).")
    own_init = cls.__init__ is not object.__init__  # object's (*args, **kwargs) takes nothing
    unusable = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if own_init and p.name != "self" and (p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                                         or p.default is inspect.Parameter.empty)]
    if unusable:
        raise ConfigError(
            f"'{path}' takes {', '.join(unusable)} in __init__ without a default (or as "
            "*args / **kwargs); Parley builds components from config.yml keys, so every "
            "parameter must be a keyword with a default (see docs/custom-components.md).")
    return cls


def build(name: str, params: dict[str, Any] | None = None, kind: Kind | None = None,
          where: str = "") -> Component:
    """An unfitted component from its config.yml entry; unknown parameters are errors."""
    return get_class(name, kind).from_params(dict(params or {}), where)
