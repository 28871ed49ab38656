"""The training API of Rasa 3.x (``rasa.model_training``): train, train_core, train_nlu.

Signatures, defaults and meanings follow the spec. What Parley adds: every node is cached by
fingerprint, so only what changed retrains; an unchanged project reuses its newest model; a
dry run answers with a bitmask of what would retrain (see :mod:`parley.training.plan`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

from parley.data.domain import Domain
from parley.data.formats.nlu_yaml import nlu_to_yaml
from parley.data.importer import TrainingDataImporter
from parley.data.validation import validate_for_training
from parley.engine.cache import cache_from_env
from parley.engine.naming import default_model_name, resolve_model_path
from parley.errors import ConfigError
from parley.recipe import build_recipe
from parley.training.finetune import check_finetunable, read_metadata, resolve_finetune_model
from parley.training.plan import CODE_NOTHING, extract_model, extract_previous, make_plan
from parley.training.run import TrainingRun

DEFAULT_MODELS_PATH = "models"


class TrainingResult(NamedTuple):
    """Holds information about the results of training."""

    model: str | None = None
    code: int = 0
    dry_run_results: dict[str, Any] | None = None


def train(
    domain: str,
    config: str,
    training_files: str | list[str] | None,
    output: str = DEFAULT_MODELS_PATH,
    dry_run: bool = False,
    force_training: bool = False,
    fixed_model_name: str | None = None,
    persist_nlu_training_data: bool = False,
    core_additional_arguments: dict[str, Any] | None = None,
    nlu_additional_arguments: dict[str, Any] | None = None,
    model_to_finetune: str | None = None,
    finetuning_epoch_fraction: float = 1.0,
) -> TrainingResult:
    """Trains a model (Core and NLU); only what changed since the cache or newest model."""
    importer = TrainingDataImporter(domain, config, training_files)
    return _train(importer, "both", output, dry_run, force_training, fixed_model_name,
                  persist_nlu_training_data, core_additional_arguments,
                  nlu_additional_arguments, model_to_finetune, finetuning_epoch_fraction)


def train_core(
    domain: Domain | str,
    config: str,
    stories: str,
    output: str,
    fixed_model_name: str | None = None,
    additional_arguments: dict[str, Any] | None = None,
    model_to_finetune: str | None = None,
    finetuning_epoch_fraction: float = 1.0,
) -> str | None:
    """Trains a Core model; returns the path to the model archive."""
    importer = TrainingDataImporter(domain, config, stories)
    result = _train(importer, "core", output, False, False, fixed_model_name, False,
                    additional_arguments, None, model_to_finetune, finetuning_epoch_fraction)
    return result.model


def train_nlu(
    config: str,
    nlu_data: str | None,
    output: str,
    fixed_model_name: str | None = None,
    persist_nlu_training_data: bool = False,
    additional_arguments: dict[str, Any] | None = None,
    domain: Domain | str | None = None,
    model_to_finetune: str | None = None,
    finetuning_epoch_fraction: float = 1.0,
) -> str | None:
    """Trains an NLU model; returns the path to the model archive."""
    importer = TrainingDataImporter(domain, config, nlu_data)
    result = _train(importer, "nlu", output, False, False, fixed_model_name,
                    persist_nlu_training_data, None, additional_arguments, model_to_finetune,
                    finetuning_epoch_fraction)
    return result.model


def _train(importer: TrainingDataImporter, training_type: str, output: str, dry_run: bool,
           force: bool, fixed_model_name: str | None, persist_nlu: bool,
           core_arguments: dict[str, Any] | None, nlu_arguments: dict[str, Any] | None,
           model_to_finetune: str | None, finetuning_epoch_fraction: float) -> TrainingResult:
    importer.load_all()
    report = validate_for_training(importer, training_type)
    report.raise_for_errors()
    recipe = build_recipe(importer.config, training_type, nlu_arguments, core_arguments)
    output_dir = Path(output)
    cache = cache_from_env(Path.cwd())  # .parley/cache where training runs, as Rasa's .rasa/cache
    finetune_from = None
    if model_to_finetune is not None:
        finetune_from = resolve_finetune_model(model_to_finetune)
        check_finetunable(read_metadata(finetune_from), finetune_from, recipe, importer,
                          training_type)
        if not 0 < finetuning_epoch_fraction:
            raise ConfigError("finetuning_epoch_fraction must be greater than 0.")
        force = True  # everything continues from the old model
    plan = make_plan(importer, recipe, training_type, cache, output_dir, force)
    code = plan.code(force)
    if dry_run:
        return TrainingResult(None, code, plan.dry_run_results())
    prefix = "" if training_type == "both" else f"{training_type}-"
    if code == CODE_NOTHING and plan.previous_model is not None:
        return TrainingResult(str(_reuse(plan.previous_model, output_dir, fixed_model_name)), 0)
    name = fixed_model_name or default_model_name(prefix)
    target = resolve_model_path(output_dir, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = extract_previous(plan) if finetune_from is None else extract_model(finetune_from)
    model_dir = Path(previous.name) / "model" if previous else None
    try:
        run = TrainingRun(importer, recipe, training_type, plan.statuses, plan.model_fingerprint,
                          cache, model_dir if finetune_from is None else None,
                          model_dir if finetune_from is not None else None,
                          finetuning_epoch_fraction)
        nlu_yaml = nlu_to_yaml(importer.nlu_data) if persist_nlu else None
        path = run.pack(target, target.name.removesuffix(".tar.gz"), nlu_yaml)
    finally:
        if previous is not None:
            previous.cleanup()
    return TrainingResult(str(path), code)


def _reuse(previous: Path, output: Path, fixed_model_name: str | None) -> Path:
    """Nothing changed: hand back the newest model, copied under a fixed name if asked."""
    if fixed_model_name is None:
        return previous
    target = resolve_model_path(output, fixed_model_name)
    if target.resolve() != previous.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(previous, target)
    return target
