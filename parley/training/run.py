"""Train or restore each node of a recipe, then pack the model archive.

A node whose fingerprint is in the cache is restored, not trained; one whose fingerprint is
in the newest model of ``output`` is taken from that archive. NLU components run as a
chain, so a restored component still processes the training messages when a later one must
train. Every trained node is put into the cache as soon as it is saved, so a training killed
later keeps what was finished; the archive appears only when complete (written aside, renamed).

Restoring copies each planned folder into the run's own work folder before anything
trains, and a plan that no longer holds is not an error: a cache entry another training
evicted since the plan, or a component of the newest model whose files no longer match the
digest recorded when it was trained (tampered or damaged), is trained again, with a
warning. So what ends in the new archive is either trained now or byte for byte what an
earlier training wrote.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from parley import __version__
from parley.component import Finetunable
from parley.data.importer import TrainingDataImporter
from parley.engine.archive import pack_archive
from parley.engine.cache import TrainingCache
from parley.engine.runner import LocalRunner, Runner, Task
from parley.engine.leftovers import sweep_temp_dirs, temp_prefix
from parley.errors import ModelArchiveError, warn
from parley.ml.cores import SHARDS, lanes_in_processes
from parley.model_archive import (
    COMPONENTS_DIR, METADATA_FILE, MODEL_FORMAT, check_format, component_digest, component_dir,
    read_extracted_metadata)
from parley.recipe import NLU, Node, Recipe, component_class
from parley.training.blame import blamed_on
from parley.training.fingerprints import core_domain_fingerprint, input_fingerprints, labels
from parley.training.request import TrainingRequest
from parley.training.text_features import (
    PipelineTextFeaturizer, featurizes_text, reads_texts, story_texts, tagged_user_texts)

logger = logging.getLogger(__name__)


TRAIN = "train"
CACHED = "restored from cache"
IN_MODEL = "restored from the newest model"
TEXT_FEATURES = "text_features"  # the task that featurizes the stories' texts
# The NLU chain's first part, up to its last tokenizer or featurizer, when policies read the
# stories' texts: the texts are featurized, and the policies that read them train, beside the
# rest of the chain (DIET) instead of after it.
NLU_FEATURIZERS = "nlu_featurizers"


@dataclass
class NodeStatus:
    node: Node
    fingerprint: str
    status: str  # TRAIN, CACHED or IN_MODEL
    reason: str


@dataclass
class ChainPart:
    """What a part of the NLU chain hands on: each of its nodes' folder by name, and the
    training messages as its last node left them (what the next part trains on)."""

    dirs: dict[str, Path]
    training_data: Any


@dataclass
class TrainingRun:
    """Everything one training needs, decided before anything trains.

    ``model_dir`` is an extracted archive: the model to finetune when ``request`` finetunes,
    else the newest model in ``output`` when some node is reused from it.
    """

    request: TrainingRequest
    importer: TrainingDataImporter
    recipe: Recipe
    statuses: list[NodeStatus]
    model_fingerprint: str
    cache: TrainingCache
    model_dir: Path | None = None
    progress: Callable[[str], None] = field(default=logger.info)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _restored: dict[str, Path] = field(default_factory=dict, repr=False)
    _in_processes: set[str] = field(default_factory=set, repr=False)  # see _policy_processes

    @property
    def _finetune_dir(self) -> Path | None:
        return self.model_dir if self.request.finetuning else None

    def tasks(self, workdir: Path) -> list[Task]:
        """The run as a task graph: the NLU chain is one task (returning each node's folder
        by name), or two when policies read the stories' texts (the tokenizers and
        featurizers first, so that the texts' features need not wait for the classifiers);
        each policy is its own task (returning its folder), so policies train in parallel
        with each other and with NLU. What a task produced reaches the others only as its
        return value, so a runner may run each one in another process.

        The folders planned as restored are copied into ``workdir`` first; a node whose
        folder is gone or changed since the plan becomes a node to train.
        """
        self._restore_all(workdir)
        reading = self._text_readers()
        cut = self._featurizers_end() if reading else len(self.recipe.nlu)
        tasks = []
        if cut < len(self.recipe.nlu):
            # (not kept: the training messages, featurized so far, go on to the rest)
            tasks.append(Task(NLU_FEATURIZERS, lambda _: self._run_nlu(workdir, stop=cut),
                              keep=False))
            tasks.append(Task("nlu", partial(self._rest_of_nlu, workdir), (NLU_FEATURIZERS,)))
        else:
            tasks.append(Task("nlu", lambda _: self._run_nlu(workdir).dirs))
        policy_statuses = [s for s in self.statuses if s.node.kind != NLU]
        if any(s.status == TRAIN for s in policy_statuses):
            # (not kept: the runner lets go of them once every policy has them, and each
            # policy as soon as it has learned from them — see _run_policy)
            tasks.append(Task("trackers", lambda _: self._training_trackers(), keep=False))
        if reading:
            source = NLU_FEATURIZERS if cut < len(self.recipe.nlu) else "nlu"
            tasks.append(Task(TEXT_FEATURES, partial(self._story_text_features, reading),
                              (source,), keep=False))
        for status in policy_statuses:
            needs: tuple[str, ...] = ("trackers",) if status.status == TRAIN else ()
            if status.node.name in reading:
                needs += (TEXT_FEATURES,)
            tasks.append(Task(status.node.name, partial(self._run_policy, status, workdir),
                              needs))
        return tasks

    # --- end-to-end: the NLU pipeline's features of the stories' texts -------------------
    def _text_readers(self) -> dict[str, Node]:
        """The policies to train that read the stories' texts (end-to-end), by node name:
        empty when the stories have none, or when the pipeline has nothing to read them
        with (a warning: the policies then see those turns by their place only)."""
        found = {s.node.name: s.node for s in self.statuses
                 if s.node.kind != NLU and (s.status == TRAIN or self._finetune_dir is not None)
                 and reads_texts(component_class(s.node.kind, s.node.component))}
        if not found or not story_texts(self.importer.stories):
            return {}
        if not any(featurizes_text(component_class(NLU, n.component))
                   for n in self.recipe.nlu):
            warn("the stories have end-to-end texts ('user:' without an intent, or 'bot:'), "
                 "but the pipeline has no tokenizer or featurizer to read them; "
                 f"{', '.join(n.component for n in found.values())} will see those turns "
                 "by their place only. Add a featurizer (e.g. CountVectorsFeaturizer) to "
                 "the pipeline.")
            return {}
        return found

    def _featurizers_end(self) -> int:
        """Where the NLU chain's part that featurizes text ends: after its last tokenizer or
        featurizer (the components :class:`PipelineTextFeaturizer` runs)."""
        found = [i for i, node in enumerate(self.recipe.nlu)
                 if featurizes_text(component_class(NLU, node.component))]
        return found[-1] + 1 if found else len(self.recipe.nlu)

    def _story_text_features(self, readers: dict[str, Node], inputs: dict[str, Any]
                             ) -> dict[str, Any]:
        """Each reading policy's :class:`TextFeatures` of the stories' texts, made by the
        pipeline's tokenizers and featurizers as trained (or restored) in this run."""
        dirs: dict[str, Path] = (inputs[NLU_FEATURIZERS].dirs if NLU_FEATURIZERS in inputs
                                 else inputs["nlu"])
        components = []
        for node in self.recipe.nlu:
            cls: Any = component_class(NLU, node.component)
            if featurizes_text(cls):
                with blamed_on(node, "featurizing the stories' texts"):
                    components.append(cls.load(dirs[node.name]))
        featurizer = PipelineTextFeaturizer(components)
        texts = story_texts(self.importer.stories)
        tagged = tagged_user_texts(self.importer.stories)  # their tokens: for entity tagging
        out = {}
        for name, node in readers.items():
            origins = node.params.get("featurizers")
            out[name] = featurizer(texts, origins)
            if tagged:
                out[name] = out[name].merged(featurizer(tagged, origins, tokens=True))
        return out

    def node_dirs(self, workdir: Path, runner: Runner | None = None) -> dict[str, Path]:
        """Train or restore every node; returns where each one's files are."""
        tasks = self.tasks(workdir)
        self._in_processes = self._policy_processes()
        # A run that trains one model by epochs at a time in this process (an NLU pipeline
        # trains its nodes one after another) may give that training's second lane a
        # process of its own (parley/ml/lane_process.py).
        here = [s for s in self.statuses if s.node.kind == NLU and s.status == TRAIN][:1] + \
            [s for s in self._epoch_policies() if s.node.name not in self._in_processes]
        with lanes_in_processes(len(here) <= 1):
            results = (runner or LocalRunner()).run(tasks)
        dirs: dict[str, Path] = dict(results["nlu"])
        for status in self.statuses:
            if status.node.kind != NLU:
                dirs[status.node.name] = results[status.node.name]
        return dirs

    def _epoch_policies(self) -> list[NodeStatus]:
        """The policies this run trains (or finetunes) by epochs: TED, UnexpecTED."""
        from parley.dialogue.policies.base import FinetunablePolicy

        return [s for s in self.statuses if s.node.kind != NLU
                and (s.status == TRAIN or self._finetune_dir is not None)
                and issubclass(component_class(s.node.kind, s.node.component),
                               FinetunablePolicy)]

    def _policy_processes(self) -> set[str]:
        """The policies that train in processes of their own (parley/training/
        policy_process.py): those that learn by epochs, when another training by epochs (the
        NLU pipeline's, another such policy) would share this process with them — where
        forking is possible and a training's lanes run on one thread each (the child's
        model is then bitwise the thread's)."""
        from parley.ml.torch_env import configured_threads
        from parley.training import policy_process

        epochs = self._epoch_policies()
        nlu = any(s.node.kind == NLU and s.status == TRAIN for s in self.statuses)
        if (not policy_process.wanted() or len(epochs) + int(nlu) < 2
                or configured_threads() >= 2 * SHARDS):
            return set()
        return {s.node.name for s in epochs}

    def _put(self, status: NodeStatus, directory: Path) -> Path:
        """Cache what was trained; the run goes on with its own copy, which no other
        training's eviction can take away before the archive is packed."""
        with self._cache_lock:  # eviction must not race with another thread's put
            self.cache.put(status.fingerprint, directory,
                           {"node": status.node.name, "component": status.node.component})
        return directory

    # --- restoring: copies taken before anything trains ----------------------------------
    def _restore_all(self, workdir: Path) -> None:
        self._restored = {}
        model_meta = self._model_metadata()
        for index, status in enumerate(self.statuses):
            if status.status == TRAIN or self.request.finetuning:
                continue
            found, why = self._restore(status, workdir / status.node.name, model_meta)
            if found is not None:
                self._restored[status.node.name] = found
                continue
            warn(f"{status.node.name} was planned as {status.status}, but {why}; training "
                 "it again.")
            self.statuses[index] = NodeStatus(status.node, status.fingerprint, TRAIN,
                                              f"{why}; trained again")

    def _model_metadata(self) -> dict[str, Any] | None:
        if self.model_dir is None or self.request.finetuning:
            return None
        try:
            meta = read_extracted_metadata(self.model_dir)
            check_format(meta, self.model_dir)
        except ModelArchiveError:
            return None
        return meta

    def _restore(self, status: NodeStatus, target: Path, model_meta: dict[str, Any] | None
                 ) -> tuple[Path | None, str]:
        """Copy the node's saved folder to ``target``: from the cache, else from the newest
        model when its files match their recorded digest. (None, why) when neither can."""
        why = "its cache entry is gone (another training may have evicted it)"
        if status.status == CACHED:
            source = self.cache.get(status.fingerprint)
            if source is not None and _copy(source, target):
                return target, ""
        if model_meta is None or self.model_dir is None:
            return None, why if status.status == CACHED else "the newest model is unreadable"
        recorded = model_meta.get("component_digests", {})
        # The folder in the model trained with this fingerprint (its name may differ when
        # components were added before it), with a digest to check it against.
        names = [n for n, fp in model_meta.get("fingerprints", {}).items()
                 if fp == status.fingerprint and isinstance(recorded.get(n), str)]
        if not names:
            return None, "the newest model holds no checkable copy of it"
        name = status.node.name if status.node.name in names else names[0]
        source = component_dir(self.model_dir, name, self.model_dir)
        if not source.is_dir() or component_digest(source) != recorded[name]:
            return None, "its files in the newest model do not match their recorded digest"
        if not _copy(source, target):
            return None, "its files in the newest model cannot be copied"
        return target, ""

    # --- NLU: a chain over the training messages -------------------------------------
    def _rest_of_nlu(self, workdir: Path, inputs: dict[str, Any]) -> dict[str, Path]:
        """The chain from where :data:`NLU_FEATURIZERS` stopped, on the messages as that
        part left them; every node's folder."""
        before: ChainPart = inputs.pop(NLU_FEATURIZERS)
        rest = self._run_nlu(workdir, start=len(before.dirs), training_data=before.training_data)
        return {**before.dirs, **rest.dirs}

    def _run_nlu(self, workdir: Path, start: int = 0, stop: int | None = None,
                 training_data: Any = None) -> ChainPart:
        """The chain's nodes ``start:stop`` on ``training_data`` (the NLU training data when
        none); their folders, and the training messages as they leave the last one."""
        dirs: dict[str, Path] = {}
        statuses = [s for s in self.statuses if s.node.kind == NLU]
        if not statuses:
            return ChainPart(dirs, training_data)
        if training_data is None:
            training_data = self.importer.nlu_training_data
        last_to_train = max((i for i, s in enumerate(statuses) if s.status == TRAIN), default=-1)
        for index, status in enumerate(statuses[:stop]):
            if index < start:
                continue
            node = status.node
            cls: Any = component_class(NLU, node.component)
            # Later components train on this one's output: run it over the training data.
            feeds_later = index < last_to_train and cls.prepares_training_data
            started = time.perf_counter()
            with blamed_on(node, "training", training_data):
                if self._finetune_dir is not None:
                    component = self._finetuned(cls, node, training_data)
                    component.save(workdir / node.name)
                    dirs[node.name] = workdir / node.name  # not cached: it depends on the old model
                elif status.status == TRAIN:
                    component = cls.from_params(node.params).fit(training_data)
                    target = workdir / node.name
                    component.save(target)
                    dirs[node.name] = self._put(status, target)
                else:
                    dirs[node.name] = self._restored[node.name]
                    component = cls.load(dirs[node.name]) if feeds_later else None
                if component is not None and feeds_later:
                    component.process(training_data.examples)
            self._say(status, time.perf_counter() - started)
        return ChainPart(dirs, training_data)

    def _finetuned(self, cls: Any, node: Node, training_data: Any) -> Any:
        """The old component with the new epoch settings, continued on the new data;
        components that do not learn by epochs (tokenizers, featurizers) stay as they were,
        so the features keep their meaning."""
        assert self._finetune_dir is not None
        component = cls.load(self._finetune_dir / COMPONENTS_DIR / node.name)
        for key, value in node.params.items():
            setattr(component, key, value)
        if isinstance(component, Finetunable):
            component.finetune(training_data, self.request.epoch_fraction)
        return component

    # --- policies: independent branches on the same trackers --------------------------
    def _run_policy(self, status: NodeStatus, workdir: Path, inputs: dict[str, Any]) -> Path:
        node = status.node
        started = time.perf_counter()
        texts = {"text_features": inputs.pop(TEXT_FEATURES)[node.name]} \
            if TEXT_FEATURES in inputs else {}
        if self._finetune_dir is not None or status.status == TRAIN:
            # (in a box: handed over, not kept here — see _fit_and_save)
            trackers = [inputs.pop("trackers")] if "trackers" in inputs else []
            fit = partial(self._fit_and_save, status, workdir / node.name, trackers, texts)
            if node.name not in self._in_processes or not _in_child(fit, trackers, node):
                fit()
            found = workdir / node.name
            if self._finetune_dir is None:  # (finetuned: not cached, it depends on the old model)
                found = self._put(status, found)
        else:
            found = self._restored[node.name]
        self._say(status, time.perf_counter() - started)
        return found

    def _fit_and_save(self, status: NodeStatus, target: Path, trackers: list[Any],
                      texts: dict[str, Any]) -> None:
        """Train (or finetune) the policy on the trackers in ``trackers`` and save it in
        ``target``. Handed over, not kept: a policy that trains long (TED) lets go of the
        trackers once it has learned its examples from them (no ``**``: the argument tuple
        it builds would hold them for the whole call). An empty box — the trackers were let
        go of here while a process of its own trained it, and it failed — makes them
        again."""
        node = status.node
        with blamed_on(node, "training"):
            if self._finetune_dir is not None:
                policy = self._finetuned_policy(node, self._handed(trackers), texts)
            else:
                cls: Any = component_class(node.kind, node.component)
                policy = cls.from_params(node.params)
                if texts:
                    policy = policy.fit(self._handed(trackers), self.importer.domain,
                                        text_features=texts["text_features"])
                else:
                    policy = policy.fit(self._handed(trackers), self.importer.domain)
            policy.save(target)

    def _handed(self, trackers: list[Any]) -> list[Any]:
        """The trackers out of their box (which then holds them no more), or made again."""
        return trackers.pop() if trackers else self._training_trackers()

    def _finetuned_policy(self, node: Node, trackers: list[Any],
                          texts: dict[str, Any]) -> Any:
        """A policy that learns by epochs continues from the old model's weights for a
        fraction of them; the others (memoization, rules) learn the new stories afresh, as
        Rasa's do."""
        from parley.dialogue.policies.base import FinetunablePolicy

        assert self._finetune_dir is not None
        cls: Any = component_class(node.kind, node.component)
        old = cls.load(self._finetune_dir / COMPONENTS_DIR / node.name)
        if not isinstance(old, FinetunablePolicy):
            return cls.from_params(node.params).fit(trackers, self.importer.domain, **texts)
        for key, value in node.params.items():
            setattr(old, key, value)
        return old.finetune(trackers, self.importer.domain, self.request.epoch_fraction,
                            **texts)

    def _training_trackers(self) -> list[Any]:
        from parley.dialogue.generator import generate_trackers

        return generate_trackers(self.importer.stories, self.importer.rules, self.importer.domain,
                                 **self.recipe.tracker_settings)

    def _say(self, status: NodeStatus, seconds: float) -> None:
        verb = "trained" if status.status == TRAIN else status.status
        self.progress(f"  {status.node.name}: {verb} in {seconds:.2f}s ({status.reason})")

    # --- the archive ---------------------------------------------------------------------
    def metadata(self, model_id: str) -> dict[str, Any]:
        config = self.importer.config
        domain = self.importer.domain if self.recipe.policies or self.request.training_type != NLU else None
        return {
            "parley_version": __version__,
            "model_format": MODEL_FORMAT,
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model_id": model_id,
            "assistant_id": config.assistant_id,
            "language": config.language,
            "training_type": self.request.training_type,
            "model_fingerprint": self.model_fingerprint,
            "fingerprints": {s.node.name: s.fingerprint for s in self.statuses},
            "labels": labels(self.importer),
            "inputs": input_fingerprints(self.importer, self.recipe),
            "core_domain_fingerprint": core_domain_fingerprint(self.importer.domain),
            "domain": domain.as_dict() if domain is not None else None,
            "train_graph": self.recipe.as_dict(),
            "predict_graph": predict_graph(self.recipe),
        }

    def pack(self, target: Path, model_id: str, nlu_yaml: str | None = None,
             runner: Runner | None = None) -> Path:
        """Train/restore every node (on ``runner``, local threads by default) and write the
        archive atomically."""
        sweep_temp_dirs()  # the working folders of killed trainings, never a live one's
        with tempfile.TemporaryDirectory(prefix=temp_prefix("parley-train-")) as tmp:
            workdir = Path(tmp) / "work"
            staging = Path(tmp) / "model"
            (staging / COMPONENTS_DIR).mkdir(parents=True)
            dirs = self.node_dirs(workdir, runner)
            digests = {}
            for name, source in dirs.items():
                shutil.copytree(source, staging / COMPONENTS_DIR / name)
                digests[name] = component_digest(staging / COMPONENTS_DIR / name)
            if nlu_yaml is not None:
                (staging / "nlu.yml").write_text(nlu_yaml, encoding="utf-8")
            metadata = {**self.metadata(model_id), "component_digests": digests}
            (staging / METADATA_FILE).write_text(
                json.dumps(metadata, indent=1, sort_keys=True), encoding="utf-8")
            return pack_archive(staging, target)


def _copy(source: Path, target: Path) -> bool:
    """Copy a saved folder; False when it vanished or broke while copied (nothing is left)."""
    try:
        shutil.copytree(source, target)
    except (OSError, shutil.Error):
        shutil.rmtree(target, ignore_errors=True)
        return False
    return True


def predict_graph(recipe: Recipe) -> dict[str, list[dict[str, str]]]:
    """What a loaded model runs, in order: the NLU chain on each message, then the policies.

    Each node names its folder under ``components/`` and the class that loads it; the
    parameters are in that folder, so the Agent needs nothing from the train graph.
    """
    def nodes(part: list[Node]) -> list[dict[str, str]]:
        return [{"name": n.name, "kind": n.kind, "component": n.component} for n in part]

    return {"nlu": nodes(recipe.nlu), "policies": nodes(recipe.policies)}


def _in_child(fit: Callable[[], None], trackers: list[Any], node: Node) -> bool:
    """``fit`` in a process of its own (parley/training/policy_process.py); this process
    lets go of the trackers meanwhile. False: it is to run here."""
    from parley.training import policy_process

    return policy_process.train_in_child(fit, node.name, forget=trackers.clear)
