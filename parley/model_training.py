"""The training API of Rasa 3.x (``rasa.model_training``): train, train_core, train_nlu.

Signatures, defaults and meanings follow the spec. What Parley adds: every node is cached by
fingerprint, so only what changed retrains; an unchanged project reuses its newest model; a
dry run answers with a bitmask of what would retrain (see :mod:`parley.training.plan`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from dataclasses import replace
from typing import Any, NamedTuple

from parley.data.domain import Domain
from parley.data.formats.nlu_yaml import nlu_to_yaml
from parley.data.importer import TrainingDataImporter
from parley.data.validation import validate_for_training
from parley.engine.cache import cache_from_env
from parley.engine.naming import resolve_model_path
from parley.ml.numpy_net import blas_threads
from parley.model_archive import read_metadata, resolve_model
from parley.recipe import build_recipe
from parley.training.finetune import check_finetunable
from parley.training.plan import CODE_NOTHING, extract_model, extract_previous, make_plan
from parley.training.request import BOTH, CORE, NLU, TrainingRequest, training_type_from_data
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
    """Trains a model: Core and NLU, or only the part the data holds, as Rasa decides it.

    Only what changed since the cache or the newest model trains.
    """
    importer = TrainingDataImporter(domain, config, training_files)
    return _train(importer, TrainingRequest(
        BOTH, Path(output), fixed_model_name, dry_run, force_training,
        persist_nlu_training_data, dict(core_additional_arguments or {}),
        dict(nlu_additional_arguments or {}), model_to_finetune, finetuning_epoch_fraction))


def train_core(
    domain: Domain | str,
    config: str,
    stories: str,
    output: str,
    fixed_model_name: str | None = None,
    additional_arguments: dict[str, Any] | None = None,
    model_to_finetune: str | None = None,
    finetuning_epoch_fraction: float = 1.0,
    *,
    force_training: bool = False,
) -> str | None:
    """Trains a Core model; returns the path to the model archive.

    ``force_training`` (not in Rasa's ``train_core``; ``train``'s meaning) retrains every
    part instead of taking what the cache holds."""
    importer = TrainingDataImporter(domain, config, stories)
    return _train(importer, TrainingRequest(
        CORE, Path(output), fixed_model_name, force=force_training,
        core_arguments=dict(additional_arguments or {}),
        model_to_finetune=model_to_finetune, epoch_fraction=finetuning_epoch_fraction)).model


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
    *,
    force_training: bool = False,
) -> str | None:
    """Trains an NLU model; returns the path to the model archive.

    ``force_training`` as :func:`train_core`'s."""
    # The stories add nothing to an NLU-only model, as with Rasa's NLU-only importer.
    importer = TrainingDataImporter(domain, config, nlu_data, from_stories=False)
    return _train(importer, TrainingRequest(
        NLU, Path(output), fixed_model_name, force=force_training,
        persist_nlu_data=persist_nlu_training_data,
        nlu_arguments=dict(additional_arguments or {}), model_to_finetune=model_to_finetune,
        epoch_fraction=finetuning_epoch_fraction)).model


def _train(importer: TrainingDataImporter, request: TrainingRequest) -> TrainingResult:
    importer.load_all()
    request = replace(request, training_type=training_type_from_data(
        importer, request.training_type))
    validate_for_training(importer, request.parts).raise_for_errors()
    recipe = build_recipe(importer.config, request.parts, request.nlu_arguments,
                          request.core_arguments)
    cache = cache_from_env(Path.cwd())  # .parley/cache where training runs, as Rasa's .rasa/cache
    finetune_from = None
    if request.model_to_finetune is not None:
        finetune_from = resolve_model(request.model_to_finetune, "model to finetune")
        check_finetunable(read_metadata(finetune_from), finetune_from, recipe, importer,
                          request.training_type)
        request = replace(request, force=True)  # everything continues from the old model
    plan = make_plan(importer, recipe, cache, request)
    code = plan.code(request.force)
    if request.dry_run:
        return TrainingResult(None, code, plan.dry_run_results())
    if code == CODE_NOTHING and plan.previous_model is not None:
        return TrainingResult(str(_reuse(plan.previous_model, request)), 0)
    target = resolve_model_path(request.output, request.fixed_model_name,
                                request.archive_prefix)
    target.parent.mkdir(parents=True, exist_ok=True)
    holder = extract_model(finetune_from) if finetune_from else extract_previous(plan)
    try:
        run = TrainingRun(request, importer, recipe, plan.statuses, plan.model_fingerprint,
                          cache, Path(holder.name) / "model" if holder else None)
        nlu_yaml = nlu_to_yaml(importer.nlu_data) if request.persist_nlu_data else None
        # numpy's products on one thread while training, in any caller's process (the CLI
        # also sets it before numpy loads): OpenBLAS adds a product's parts in another order
        # on more threads, so the model would depend on the core count (banking77-small's
        # logistic regression: other weights with OPENBLAS_NUM_THREADS=2 than with 1).
        with blas_threads(1):
            path = run.pack(target, target.name.removesuffix(".tar.gz"), nlu_yaml)
    finally:
        if holder is not None:
            holder.cleanup()
    return TrainingResult(str(path), code)


def _reuse(previous: Path, request: TrainingRequest) -> Path:
    """Nothing changed: hand back the newest model, copied under a fixed name if asked."""
    if request.fixed_model_name is None:
        return previous
    target = resolve_model_path(request.output, request.fixed_model_name)
    if target.resolve() != previous.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(previous, target)
    return target
