"""Finetuning: continue from a trained model on changed data, for a fraction of the epochs.

The new config may differ from the old one only in epoch counts; the labels (intents,
entities, actions) and the domain as policies see it must stay the same, and the archive must
be in this Parley's model format. Each mismatch is its own clear error, raised before
anything trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.data.importer import TrainingDataImporter
from parley.errors import ConfigError, DataError
from parley.model_archive import check_format
from parley.recipe import Recipe
from parley.training.fingerprints import core_domain_fingerprint, labels

# Parameters that may change between the old config and the finetuning one.
EPOCH_PARAMS = {"epochs"}


def check_finetunable(meta: dict[str, Any], archive: Path, recipe: Recipe,
                      importer: TrainingDataImporter, training_type: str) -> None:
    """Raise the first reason why ``archive`` cannot be finetuned with this project."""
    check_format(meta, archive)
    if meta.get("training_type") != training_type:
        raise ConfigError(
            f"{archive} is a '{meta.get('training_type')}' model; finetuning it with "
            f"'{training_type}' training would change what it holds.")
    old_nodes = meta.get("train_graph", {})
    new_nodes = recipe.as_dict()
    for part in ("nlu", "policies"):
        old, new = old_nodes.get(part, []), new_nodes[part]
        if [n["component"] for n in old] != [n["component"] for n in new]:
            raise ConfigError(
                f"the config's {part} differ from the model's ({_names(old)} → {_names(new)}); "
                "finetuning allows only other epoch counts.")
        for before, after in zip(old, new, strict=True):
            changed = sorted(k for k in set(before["params"]) | set(after["params"])
                             if k not in EPOCH_PARAMS
                             and before["params"].get(k) != after["params"].get(k))
            if changed:
                raise ConfigError(
                    f"{after['component']} has other parameters than in the model "
                    f"({', '.join(changed)}); finetuning allows only other epoch counts.")
    old_labels, new_labels = meta.get("labels", {}), labels(importer)
    for kind in ("intents", "entities") if recipe.nlu else ():
        _same_labels(kind, old_labels.get(kind, []), new_labels[kind])
    if recipe.policies and meta.get("core_domain_fingerprint") != core_domain_fingerprint(
            importer.domain):
        raise DataError(
            "the domain changed (intents, entities, slots, actions or forms) since the model "
            "was trained; finetuning needs the same domain. Train a new model instead.")


def _same_labels(kind: str, old: list[str], new: list[str]) -> None:
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    if added or removed:
        parts = ([f"new: {', '.join(added)}"] if added else []) + (
            [f"gone: {', '.join(removed)}"] if removed else [])
        raise DataError(
            f"finetuning cannot change the {kind} the model knows ({'; '.join(parts)}). "
            "Train a new model instead.")


def _names(nodes: list[dict[str, Any]]) -> str:
    return ", ".join(n["component"] for n in nodes) or "none"
