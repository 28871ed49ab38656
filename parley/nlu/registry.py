"""Rasa component names → Parley classes, imported only when asked for."""

from __future__ import annotations

import difflib
import importlib

from parley.component import Component
from parley.errors import ConfigError

NLU_COMPONENTS: dict[str, str] = {
    "WhitespaceTokenizer": "parley.nlu.tokenizers.whitespace:WhitespaceTokenizer",
    "RegexFeaturizer": "parley.nlu.featurizers.regex:RegexFeaturizer",
    "LexicalSyntacticFeaturizer":
        "parley.nlu.featurizers.lexical_syntactic:LexicalSyntacticFeaturizer",
    "CountVectorsFeaturizer": "parley.nlu.featurizers.count_vectors:CountVectorsFeaturizer",
    "LogisticRegressionClassifier":
        "parley.nlu.classifiers.logistic_regression:LogisticRegressionClassifier",
    "KeywordIntentClassifier": "parley.nlu.classifiers.keyword:KeywordIntentClassifier",
    "FallbackClassifier": "parley.nlu.classifiers.fallback:FallbackClassifier",
    "RegexEntityExtractor": "parley.nlu.extractors.regex:RegexEntityExtractor",
    "EntitySynonymMapper": "parley.nlu.extractors.synonyms:EntitySynonymMapper",
    "CRFEntityExtractor": "parley.nlu.extractors.crf:CRFEntityExtractor",
    "SklearnIntentClassifier": "parley.nlu.classifiers.sklearn_svm:SklearnIntentClassifier",
    "DIETClassifier": "parley.nlu.neural.diet:DIETClassifier",
    "ResponseSelector": "parley.nlu.neural.response_selector:ResponseSelector",
    "LanguageModelFeaturizer": "parley.nlu.featurizers.language_model:LanguageModelFeaturizer",
}

KNOWN_RASA_COMPONENTS_NOT_YET_AVAILABLE: frozenset[str] = frozenset({
    "SpacyNLP", "SpacyTokenizer", "SpacyFeaturizer",
    "SpacyEntityExtractor", "MitieNLP", "MitieTokenizer", "MitieFeaturizer",
    "MitieEntityExtractor", "MitieIntentClassifier", "DucklingEntityExtractor",
    "ConveRTFeaturizer", "ConveRTTokenizer", "JiebaTokenizer", "LanguageModelTokenizer",
    "HFTransformersNLP",
})


def available() -> str:
    return ", ".join(sorted(NLU_COMPONENTS))


def get_component_class(name: str) -> type[Component]:
    """The class for a config.yml ``name``; a ConfigError says what is available."""
    path = NLU_COMPONENTS.get(name)
    if path is None:
        if name in KNOWN_RASA_COMPONENTS_NOT_YET_AVAILABLE:
            raise ConfigError(
                f"'{name}' is a Rasa component Parley does not have yet; available: {available()}."
            )
        known = [*NLU_COMPONENTS, *KNOWN_RASA_COMPONENTS_NOT_YET_AVAILABLE]
        close = difflib.get_close_matches(name, known, n=1)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Unknown NLU component '{name}'.{guess} Available: {available()}.")
    module_name, class_name = path.split(":")
    cls: type[Component] = getattr(importlib.import_module(module_name), class_name)
    return cls
