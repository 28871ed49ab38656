"""Content fingerprints of a project's parts and of each node of its recipe.

What a node's fingerprint covers decides what retrains: NLU nodes see the NLU data and the
node before them; policies see the domain *as policies see it* (response names, not their
texts) and the stories and rules. So editing a response text retrains nothing, and a new
NLU example leaves the policies alone.
"""

from __future__ import annotations

from typing import Any

from parley.data.domain import Domain
from parley.data.formats.story_yaml import stories_to_yaml
from parley.data.importer import TrainingDataImporter
from parley.data.training_data import TrainingData
from parley.engine.fingerprint import fingerprint, node_fingerprint, package_versions
from parley.component import Component
from parley.recipe import NLU, Node, Recipe, component_class
from parley.training.code_fingerprint import implementation_fingerprint
from parley.training.text_features import featurizes_text, reads_texts, story_texts


def nlu_data_fingerprint(data: TrainingData) -> str:
    return fingerprint({
        "examples": [(m.text, m.intent, [e.to_dict() for e in m.entities], m.metadata)
                     for m in data.examples],
        "synonyms": data.synonyms, "regexes": data.regexes, "lookups": data.lookups,
        "responses": data.responses,  # retrieval responses: what a ResponseSelector learns
    })


def core_domain_fingerprint(domain: Domain) -> str:
    """The domain without response texts: policies see only which responses exist."""
    content = domain.as_dict()
    content["responses"] = sorted(domain.responses)
    return fingerprint(content)


def stories_fingerprint(importer: TrainingDataImporter) -> str:
    return fingerprint(stories_to_yaml(importer.stories, importer.rules))


def node_fingerprints(recipe: Recipe, importer: TrainingDataImporter) -> dict[str, str]:
    """Fingerprint of every node, in recipe order."""
    result: dict[str, str] = {}
    previous = nlu_data_fingerprint(importer.nlu_training_data) if recipe.nlu else ""
    for node in recipe.nlu:
        previous = _node_fp(node, {"previous": previous})
        result[node.name] = previous
    if recipe.policies:
        inputs = {"domain": core_domain_fingerprint(importer.domain),
                  "stories": stories_fingerprint(importer),
                  "trackers": fingerprint(recipe.tracker_settings)}
        # A policy that reads the stories' texts depends on the featurizers that read them
        # (the last one's fingerprint covers those before it and the NLU data).
        readers = [n.name for n in recipe.nlu if featurizes_text(component_class(NLU, n.component))]
        texts = story_texts(importer.stories)
        for node in recipe.policies:
            reads = texts and readers and reads_texts(component_class(node.kind, node.component))
            extra = {"text_features": result[readers[-1]]} if reads else {}
            result[node.name] = _node_fp(node, {**inputs, **extra})
    return result


def _node_fp(node: Node, inputs: dict[str, str]) -> str:
    cls: Any = component_class(node.kind, node.component)
    return component_fingerprint(cls, node.component, node.params, inputs)


def component_fingerprint(cls: type[Component], name: str, params: dict[str, Any],
                          inputs: dict[str, str]) -> str:
    """What decides the result of training ``cls``: its code (hashed from the source, see
    :mod:`parley.training.code_fingerprint`), the parameters, the inputs, the versions of
    the packages it uses, and what the machine decides (e.g. bfloat16 or float32)."""
    return node_fingerprint(name, implementation_fingerprint(cls), params, inputs,
                            package_versions(cls.uses_packages), cls.runtime_fingerprint())


def model_fingerprint(node_fps: dict[str, str], importer: TrainingDataImporter,
                      training_type: str, persist_nlu_data: bool = False) -> str:
    """Equal fingerprints → an identical archive would come out (responses included, and
    the NLU data when it is persisted: a model without it is no answer to a training that
    asks for it, nor the other way round)."""
    config = importer.config
    domain = importer.domain if training_type != NLU else None
    parts: dict[str, Any] = {
        "nodes": node_fps, "training_type": training_type,
        "domain": domain.as_dict() if domain is not None else None,
        "language": config.language, "assistant_id": config.assistant_id,
    }
    if persist_nlu_data:  # (only then: models trained before keep their fingerprints)
        parts["persisted_nlu_data"] = nlu_data_fingerprint(importer.nlu_data)
    return fingerprint(parts)


def labels(importer: TrainingDataImporter) -> dict[str, list[str]]:
    """What a model's outputs are named after; finetuning cannot change them."""
    nlu = importer.nlu_data
    domain = importer.domain
    return {"intents": sorted(nlu.intents), "entities": sorted(nlu.entities),
            "actions": [] if domain.is_empty() else list(domain.action_names)}


def input_fingerprints(importer: TrainingDataImporter, recipe: Recipe) -> dict[str, str]:
    """The project's parts, fingerprinted: kept in the model to say later what changed."""
    out: dict[str, str] = {}
    if recipe.nlu:
        out["nlu_data"] = nlu_data_fingerprint(importer.nlu_training_data)
    if recipe.policies:
        out["core_domain"] = core_domain_fingerprint(importer.domain)
        out["stories"] = stories_fingerprint(importer)
    return out
