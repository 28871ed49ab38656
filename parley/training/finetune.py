"""Finetuning: continue from a trained model on changed data, for a fraction of the epochs.

The new config may differ from the old one only in epoch counts; the labels (intents,
entities, actions) and the domain as policies see it must stay the same, and the archive must
be in this Parley's model format. Each mismatch is its own clear error, raised before
anything trains; a config mismatch names config.yml's line of the component or parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parley.data.importer import TrainingDataImporter
from parley.errors import ConfigError, DataError
from parley.model_archive import check_format
from parley.recipe import Node, Recipe, component_class
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
    config_file = importer.config.file
    for part, section in (("nlu", "pipeline"), ("policies", "policies")):
        old, new = old_nodes.get(part, []), getattr(recipe, part)
        old_names, new_names = [n["component"] for n in old], [n.component for n in new]
        if old_names != new_names:
            raise ConfigError(
                f"the config's {section} differs from the model's "
                f"({', '.join(old_names) or 'none'} → {', '.join(new_names) or 'none'}); "
                "finetuning allows only other epoch counts. Restore the model's components, "
                "or train a new model.", *_place(_first_change(old_names, new), config_file))
        for before, after in zip(old, new, strict=True):
            # Written and left out mean the same when the value is the default.
            defaults = component_class(after.kind, after.component).default_params()
            old_params = {**defaults, **before["params"]}
            new_params = {**defaults, **after.params}
            changed = sorted(k for k in set(old_params) | set(new_params)
                             if k not in EPOCH_PARAMS and old_params.get(k) != new_params.get(k))
            if changed:
                shown = ", ".join(f"{key} {_shown(old_params, key)} → {_shown(new_params, key)}"
                                  for key in changed)
                raise ConfigError(
                    f"{after.component} has other parameters than in the model ({shown}); "
                    "finetuning allows only other epoch counts. Restore the model's values, "
                    "or train a new model.", *_place(after, config_file, changed))
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


def _first_change(old_names: list[str], new: list[Node]) -> Node | None:
    """The first component of the new config that is not the model's; when the config only
    lost components at its end, its last one (the place to add them back after)."""
    for index, node in enumerate(new):
        if index >= len(old_names) or old_names[index] != node.component:
            return node
    return new[-1] if new else None


def _place(node: Node | None, config_file: str | None, params: Sequence[str] = ()
           ) -> tuple[str, int | None]:
    """File and line of the first of ``params`` written in config.yml, else of the node."""
    if node is None:
        return config_file or "config.yml", None
    lines = [node.param_lines[p] for p in params if p in node.param_lines]
    return node.file or config_file or "config.yml", min(lines, default=node.line)


def _shown(params: dict[str, Any], key: str) -> str:
    return repr(params[key]) if key in params else "not set"
