"""Decide, before training, what each node needs: train, restore from cache, or reuse.

The same decision answers ``dry_run``: a bitmask of what would retrain (1 core, 2 NLU,
4 only responses (or whether the NLU data is persisted) changed, 8 forced; 0 nothing to
do) and, per node, why.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.data.importer import TrainingDataImporter
from parley.engine.archive import extract_archive, verify_archive
from parley.engine.cache import TrainingCache
from parley.engine.leftovers import temp_prefix
from parley.errors import ModelArchiveError, warn
from parley.model_archive import MODEL_FORMAT, check_format, model_archives, read_metadata
from parley.recipe import NLU, Node, Recipe
from parley.training.fingerprints import input_fingerprints, model_fingerprint, node_fingerprints
from parley.training.request import TrainingRequest
from parley.training.run import CACHED, IN_MODEL, TRAIN, NodeStatus

logger = logging.getLogger(__name__)

CODE_NOTHING = 0
CODE_CORE = 1
CODE_NLU = 2
CODE_RESPONSES = 4
CODE_FORCED = 8


@dataclass
class Plan:
    statuses: list[NodeStatus]
    model_fingerprint: str
    previous_model: Path | None  # newest archive in output
    previous_metadata: dict[str, Any] | None

    @property
    def unchanged(self) -> bool:
        """The newest model was built from exactly this project."""
        return (self.previous_metadata is not None
                and self.previous_metadata.get("model_fingerprint") == self.model_fingerprint)

    @property
    def needs_model_components(self) -> bool:
        return any(s.status == IN_MODEL for s in self.statuses)

    def code(self, force: bool) -> int:
        if force:
            return CODE_FORCED
        code = CODE_NOTHING
        for status in self.statuses:
            if status.status == TRAIN:
                code |= CODE_NLU if status.node.kind == NLU else CODE_CORE
        if code == CODE_NOTHING and not self.unchanged:
            code = CODE_RESPONSES
        return code

    def dry_run_results(self) -> dict[str, dict[str, str]]:
        return {s.node.name: {"status": s.status, "reason": s.reason} for s in self.statuses}


def previous_model(output: Path, training_type: str) -> tuple[Path | None, dict[str, Any] | None]:
    """The newest model in ``output`` that this training may reuse parts of: in this
    Parley's model format, trained with the same training type, and sound to its end.

    A damaged archive (truncated, a checksum error, not a tar, metadata that does not
    check) is skipped with a warning naming it, so it never blocks training; the next
    newest is tried. Reading it to the end costs one decompression of the newest model.
    """
    for archive in model_archives(output):
        try:
            meta = read_metadata(archive)
            if meta.get("model_format") != MODEL_FORMAT:
                continue
            check_format(meta, archive)
            if meta.get("training_type") != training_type:
                continue
            verify_archive(archive)
        except ModelArchiveError as exc:
            warn(f"not reusing anything from {archive}, it is damaged: {exc}", archive)
            continue
        return archive, meta
    return None, None


def make_plan(importer: TrainingDataImporter, recipe: Recipe, cache: TrainingCache,
              request: TrainingRequest) -> Plan:
    """Each node's status for ``request`` (its training type is the one the data decided)."""
    training_type, force = request.training_type, request.force
    fps = node_fingerprints(recipe, importer)
    inputs = input_fingerprints(importer, recipe)
    previous, meta = previous_model(request.output, training_type)
    # Only components whose files the model can vouch for (a digest recorded when it was
    # trained) are reused from it; the run checks the digest again before copying.
    recorded = (meta or {}).get("component_digests", {})
    in_model = {fp for name, fp in (meta or {}).get("fingerprints", {}).items()
                if name in recorded}
    statuses = []
    for node in recipe.nodes:
        fp = fps[node.name]
        if force:
            statuses.append(NodeStatus(node, fp, TRAIN, "training was forced"))
        elif cache.contains(fp):
            statuses.append(NodeStatus(node, fp, CACHED, "nothing it depends on changed"))
        elif fp in in_model:
            statuses.append(NodeStatus(node, fp, IN_MODEL,
                                       f"unchanged since {previous.name if previous else ''}"))
        else:
            statuses.append(NodeStatus(node, fp, TRAIN, _why_train(node, meta, inputs)))
    return Plan(statuses, model_fingerprint(fps, importer, training_type,
                                            request.persist_nlu_data), previous, meta)


def _why_train(node: Node, meta: dict[str, Any] | None, inputs: dict[str, str]) -> str:
    """Why a node must train, found by comparing with the newest model's records."""
    if meta is None:
        return "no earlier model or cache entry"
    old_nodes = {n["name"]: n for part in ("nlu", "policies")
                 for n in meta.get("train_graph", {}).get(part, [])}
    old = old_nodes.get(node.name)
    if old is None or old.get("component") != node.component:
        return "new in the config"
    if old.get("params") != node.params:
        return "its parameters changed"
    before = meta.get("inputs", {})
    if node.kind == NLU:
        if before.get("nlu_data") != inputs.get("nlu_data"):
            return "the NLU training data changed"
        return "a component before it changed"
    if before.get("core_domain") != inputs.get("core_domain"):
        return "the domain changed"
    if before.get("stories") != inputs.get("stories"):
        return "the stories or rules changed"
    return "its code, a package it uses, or the augmentation changed"


def extract_previous(plan: Plan) -> tempfile.TemporaryDirectory[str] | None:
    """Extract the newest model when some node is taken from it; caller cleans up.

    When it cannot be extracted after all (damaged since the plan), warn and return
    ``None``: the run then trains the nodes it would have taken from it.
    """
    if plan.previous_model is None or not plan.needs_model_components:
        return None
    try:
        return extract_model(plan.previous_model)
    except ModelArchiveError as exc:
        warn(f"not reusing anything from {plan.previous_model}, it is damaged: {exc}",
             plan.previous_model)
        return None


def extract_model(archive: Path) -> tempfile.TemporaryDirectory[str]:
    """``archive`` extracted safely into ``<holder>/model``; caller cleans the holder up."""
    holder = tempfile.TemporaryDirectory(prefix=temp_prefix("parley-previous-"))
    try:
        extract_archive(archive, Path(holder.name) / "model")
    except BaseException:
        holder.cleanup()
        raise
    return holder
