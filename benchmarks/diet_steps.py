"""DIET's training steps in isolation: a per-operation CPU profile, or paired A/B timings.

    python benchmarks/diet_steps.py PROJECT [--config PATH] [--epochs N] [--threads N]
        profile [--steps N]             per aten operation: calls and thread CPU ms a step
        time                            thread CPU of whole trainings (all steps, epochs N)
        ab MODULE:FLAG [--rounds N]     the same training with FLAG False / True, alternating
        weights                         a hash of the weights after the epochs (same seed →
                                        same model; compare across thread counts)

PROJECT is a folder with config.yml (or a bot under ../shared/data/bots: its
config-portable.yml) and data/. The features are made by the project's own pipeline, in
this process (a cold cache in a temporary folder); the first DIETClassifier's trainer is
captured instead of trained, and every measurement then trains a fresh copy of its model
(same seed) on its batches, one thread per shard, lanes one after another on this thread
unless ``--threads 2``. CPU time is this thread's (``time.thread_time``): on a loaded
machine wall time means little, and an A/B pair alternates in the same minutes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BOTS = REPO.parent / "shared" / "data" / "bots"


def capture(project: Path, config: Path | None) -> Any:
    """The first DIETTrainer the project's training builds (not trained)."""
    os.environ.setdefault("PARLEY_QUIET", "1")
    from parley.nlu.neural import training as diet_training

    found: list[Any] = []
    original = diet_training.DIETTrainer.train
    original_init = diet_training.DIETTrainer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.seed_used = args[5] if len(args) > 5 else kwargs["seed"]

    def keep(self: Any, epochs: int | None = None) -> dict[str, float]:
        if not found:
            found.append(self)
            self.initial_state = copy.deepcopy(self.model.state_dict())
        return {}

    diet_training.DIETTrainer.train = keep  # type: ignore[method-assign]
    diet_training.DIETTrainer.__init__ = init  # type: ignore[method-assign]
    config = config or next(p for p in (project / "config-portable.yml", project / "config.yml")
                            if p.exists())
    try:
        with tempfile.TemporaryDirectory(prefix="diet-steps-") as tmp:
            os.environ["PARLEY_CACHE_DIR"] = str(Path(tmp) / "cache")
            from parley.model_training import train_nlu

            domain = project / "domain.yml"
            train_nlu(str(config), str(project / "data"), str(Path(tmp) / "models"),
                      domain=str(domain) if domain.exists() else None)
    finally:
        diet_training.DIETTrainer.train = original  # type: ignore[method-assign]
        diet_training.DIETTrainer.__init__ = original_init  # type: ignore[method-assign]
    if not found:
        raise SystemExit(f"{project}: no DIETClassifier trained")
    return found[0]


def fresh(trainer: Any) -> Any:
    """A new trainer of the same model at its initial weights, with the same seed."""
    from parley.nlu.neural.training import DIETTrainer

    model = copy.deepcopy(trainer.model)
    model.load_state_dict(trainer.initial_state)
    return DIETTrainer(model, trainer.table, trainer.targets, trainer.label_inputs,
                       trainer.schedule, trainer.seed_used)


def batches(trainer: Any, epochs: int) -> list[Any]:
    """Each step's messages, as the loop draws them (same generator, same order)."""
    import numpy as np

    from parley.ml.training import batch_size_at, epoch_order

    schedule = trainer.schedule
    train_index, _ = trainer._split()
    out = []
    for epoch in range(epochs):
        size = max(batch_size_at(epoch, schedule.batch_size, schedule.epochs), 1)
        labels = trainer.labels
        order = train_index[epoch_order(trainer.rng, None if labels is None else labels[train_index],
                                        len(train_index), schedule.batch_strategy)]
        out += [order[b * size:(b + 1) * size] for b in range(int(np.ceil(len(order) / size)))]
    return out


def run_steps(trainer: Any, steps: list[Any]) -> float:
    """Thread CPU seconds of the steps (model in training mode)."""
    trainer.model.train()
    began = time.thread_time()
    for index in steps:
        trainer.step(index)
    return time.thread_time() - began


def weights_hash(model: Any) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def profile(trainer: Any, steps: list[Any], by_shape: bool = False, top: int = 40) -> None:
    """Per aten operation, thread CPU per step (time between the call and its return);
    ``by_shape``: per operation and its tensor arguments' shapes, dtypes and strides."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    def describe(func: Any, args: Any) -> str:
        name = str(func.overloadpacket.__name__)
        if not by_shape:
            return name
        parts = []
        for a in args:
            if isinstance(a, torch.Tensor):
                contiguous = "" if a.is_contiguous() else f"s{tuple(a.stride())}"
                parts.append(f"{str(a.dtype)[6:]}{tuple(a.shape)}{contiguous}")
            elif isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor):
                parts.append(f"[{len(a)}]")
            elif isinstance(a, (int, float)):
                parts.append(str(a))
        return f"{name} {' '.join(parts)}"

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    class Timed(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            began = time.thread_time_ns()
            out = func(*args, **(kwargs or {}))
            key = describe(func, args)
            spent[key] += time.thread_time_ns() - began
            calls[key] += 1
            return out

    trainer.model.train()
    began = time.thread_time()
    with Timed():
        for index in steps:
            trainer.step(index)
    total = time.thread_time() - began
    ops = sum(spent.values()) / 1e9
    n = len(steps)
    print(f"{n} steps: {total / n * 1e3:.1f} ms CPU a step, of which in aten ops "
          f"{ops / n * 1e3:.1f} ms ({sum(calls.values()) / n:.0f} calls a step)")
    print(f"{'calls':>7} {'ms/step':>8} {'share':>6}  op")
    for name, ns in sorted(spent.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{calls[name] / n:7.1f} {ns / 1e6 / n:8.2f} {ns / 1e9 / ops:6.1%}  {name}")


PARTS = [  # (module, attribute path) of what ``parts`` times
    ("parley.nlu.neural.training", "DIETTrainer.losses"),
    ("parley.ml.batching", "FeatureTable.batch"),
    ("parley.nlu.neural.model", "DIETModel.encode_inputs"),
    ("parley.nlu.neural.model", "DIETModel.encode"),
    ("parley.ml.layers", "TransformerBlock.forward"),
    ("parley.ml.layers", "MultiHeadAttention.forward"),
    ("parley.ml.layers", "dropout_mask"),
    ("parley.ml.similarity", "label_loss"),
    ("parley.ml.crf", "CRF.negative_log_likelihood"),
    ("parley.ml.crf", "_LogPartition.backward"),
    ("parley.ml.grouped", "_GroupedProduct.forward"),
    ("parley.ml.grouped", "_GroupedProduct.backward"),
    ("parley.ml.layers", "_SparseProduct.backward"),
    ("parley.ml.adam", "Adam.step"),
    ("torch.autograd", "grad"),
]


def parts(trainer: Any, steps: list[Any], timed_parts: list[tuple[str, str]] | None = None,
          aliases: tuple[str, ...] = ("parley.ml.layers",)) -> None:
    """Thread CPU per step inside each of ``timed_parts`` (default :data:`PARTS`; nested
    parts count in both). A plain function is also re-pointed in the ``aliases`` modules,
    which imported it by name and call their own reference."""
    spent: dict[str, float] = defaultdict(float)
    undo = []
    for module_name, path in timed_parts or PARTS:
        owner: Any = importlib.import_module(module_name)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        original = owner.__dict__[name]
        is_static = isinstance(original, staticmethod)
        function = original.__func__ if is_static else original

        def timed(*args: Any, _f: Any = function, _key: str = path, **kwargs: Any) -> Any:
            began = time.thread_time()
            try:
                return _f(*args, **kwargs)
            finally:
                spent[_key] += time.thread_time() - began

        setattr(owner, name, staticmethod(timed) if is_static else timed)
        undo.append((owner, name, original))
        for alias in aliases:
            module = importlib.import_module(alias)
            if not outer and module.__dict__.get(name) is function:
                setattr(module, name, timed)
                undo.append((module, name, function))
    try:
        trainer.model.train()
        began = time.thread_time()
        for index in steps:
            trainer.step(index)
        total = time.thread_time() - began
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)
    n = len(steps)
    print(f"{n} steps: {total / n * 1e3:.1f} ms CPU a step")
    for key, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{seconds / n * 1e3:8.2f} ms  {seconds / total:6.1%}  {key}")


def set_flag(target: str, value: bool) -> None:
    module, _, name = target.rpartition(":")
    setattr(importlib.import_module(module), name, value)


def step_arguments(doc: str) -> argparse.ArgumentParser:
    """The command line of a step script (this one's, and benchmarks/ted_steps.py's)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("project")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="mode", required=True)
    prof = sub.add_parser("profile")
    prof.add_argument("--steps", type=int, default=0, help="the first N steps (0: all)")
    prof.add_argument("--skip", type=int, default=0, help="steps run before (warm-up)")
    prof.add_argument("--by-shape", action="store_true")
    prof.add_argument("--top", type=int, default=40)
    sub.add_parser("time")
    sub.add_parser("parts")
    ab = sub.add_parser("ab")
    ab.add_argument("flag")
    ab.add_argument("--rounds", type=int, default=3)
    sub.add_parser("weights")
    return parser


def main() -> int:
    parser = step_arguments(__doc__)
    args = parser.parse_args()
    project = Path(args.project) if Path(args.project).is_dir() else BOTS / args.project

    import torch

    from parley.ml.torch_env import roomy_heap

    trainer = capture(project, args.config)
    epochs = args.epochs or trainer.schedule.epochs
    torch.set_num_threads(1)

    def new() -> tuple[Any, list[Any]]:
        t = fresh(trainer)
        return t, batches(t, epochs)

    def timed(t: Any, steps: list[Any]) -> float:
        if args.threads > 1:
            with t._shard_threads(light=t.light()):
                return run_steps(t, steps)
        return run_steps(t, steps)

    print(f"{project.name}: {len(trainer.table)} examples, {epochs} epochs, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    with roomy_heap():  # as in training: large blocks kept on the heap
        run_mode(args, new, timed)
    return 0


def run_mode(args: Any, new: Any, timed: Any, timed_parts: list[tuple[str, str]] | None = None,
             aliases: tuple[str, ...] = ("parley.ml.layers",)) -> None:
    """The mode asked for; ``new()`` gives a fresh trainer and its steps, ``timed`` runs
    them and returns the thread CPU seconds."""
    if args.mode == "profile":
        t, steps = new()
        run_steps(t, steps[:args.skip])
        chosen = steps[args.skip:args.skip + args.steps] if args.steps else steps[args.skip:]
        profile(t, chosen, args.by_shape, args.top)
    elif args.mode == "parts":
        t, steps = new()
        parts(t, steps, timed_parts, aliases)
    elif args.mode == "time":
        t, steps = new()
        print(f"{len(steps)} steps: {timed(t, steps):.2f} s thread CPU")
    elif args.mode == "weights":
        t, steps = new()
        seconds = timed(t, steps)
        print(f"weights {weights_hash(t.model)} (threads {args.threads}, "
              f"{seconds:.2f} s thread CPU)")
    elif args.mode == "ab":
        results: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.rounds):
            for value in ((False, True) if r % 2 == 0 else (True, False)):
                set_flag(args.flag, value)
                t, steps = new()
                seconds = timed(t, steps)
                results[value].append(seconds)
                print(f"  {args.flag}={value}: {seconds:.2f} s  weights {weights_hash(t.model)}"
                      f"  load {os.getloadavg()[0]:.1f}", flush=True)
        a, b = statistics.median(results[False]), statistics.median(results[True])
        print(f"median False {a:.2f} s, True {b:.2f} s, ratio {b / a:.3f}")


if __name__ == "__main__":
    sys.exit(main())
