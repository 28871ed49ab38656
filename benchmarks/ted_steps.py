"""TEDPolicy's training steps in isolation: a per-operation CPU profile, or paired A/B timings.

    python benchmarks/ted_steps.py BOT [--config PATH] [--epochs N] [--threads N]
        profile [--steps N] [--skip N] [--by-shape]   per aten op: calls, thread CPU a step
        parts                           thread CPU a step inside TED's parts
        time                            thread CPU of all steps of ``--epochs``
        ab MODULE:FLAG [--rounds N]     the same training with FLAG False / True, alternating
                                        (``__main__:PAUSE_COLLECTOR``: the collector's cost)
        weights                         a hash of the weights after the epochs

BOT is a folder under ../shared/data/bots (or a path) with domain.yml, data/ and a config
(config-portable.yml, else config.yml). The whole project trains in this process (a cold
cache in a temporary folder) with every learned model's ``train`` stubbed out: the NLU
pipeline's featurizers still make the end-to-end texts' features, and the first
TEDPolicy's trainer is captured instead of trained. Every measurement then trains a fresh
copy of its model (same seed, same initial weights) on the batches the loop would draw,
lanes one after another on this thread unless ``--threads 2``. CPU time is this thread's
(``time.thread_time``): on a shared machine wall time means little, and an A/B pair
alternates in the same minutes. The weights hash must not change with ``--threads``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diet_steps import batches, run_mode, run_steps, step_arguments  # noqa: E402

BOTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bots"
PAUSE_COLLECTOR = True  # ``ab __main__:PAUSE_COLLECTOR`` measures the collector's share


def capture(project: Path, config: Path | None) -> Any:
    """The first TEDTrainer the project's training builds (not trained); DIET's and the
    other learned models' trainings are skipped (TED reads only the featurizers' output)."""
    os.environ.setdefault("PARLEY_QUIET", "1")
    from parley.dialogue.neural import training as ted_training
    from parley.ml import training as loop

    found: list[Any] = []
    original_train = loop.Trainer.train
    original_init = ted_training.TEDTrainer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.seed_used = args[4] if len(args) > 4 else kwargs["seed"]
        self.init_args = (args, kwargs)

    def keep(self: Any, epochs: int | None = None) -> dict[str, float]:
        if isinstance(self, ted_training.TEDTrainer) and not found:
            found.append(self)
            self.initial_state = copy.deepcopy(self.model.state_dict())
        return {}

    loop.Trainer.train = keep  # type: ignore[method-assign]
    ted_training.TEDTrainer.__init__ = init  # type: ignore[method-assign]
    config = config or next(p for p in (project / "config-portable.yml", project / "config.yml")
                            if p.exists())
    try:
        with tempfile.TemporaryDirectory(prefix="ted-steps-") as tmp:
            os.environ["PARLEY_CACHE_DIR"] = str(Path(tmp) / "cache")
            from parley.model_training import train

            train(str(project / "domain.yml"), str(config), str(project / "data"),
                  str(Path(tmp) / "models"))
    finally:
        loop.Trainer.train = original_train  # type: ignore[method-assign]
        ted_training.TEDTrainer.__init__ = original_init  # type: ignore[method-assign]
    if not found:
        raise SystemExit(f"{project}: no TEDPolicy trained")
    return found[0]


def fresh(trainer: Any) -> Any:
    """A new trainer of the same model at its initial weights, with the same seed."""
    from parley.dialogue.neural.training import TEDTrainer

    model = copy.deepcopy(trainer.model)
    model.load_state_dict(trainer.initial_state)
    args, kwargs = trainer.init_args
    return TEDTrainer(model, *args[1:], **kwargs)


PARTS = [  # (module, attribute path) of what ``parts`` times
    ("parley.dialogue.neural.training", "TEDTrainer.losses"),
    ("parley.dialogue.neural.training", "Dialogues.batch"),
    ("parley.dialogue.neural.model", "AttributeEncoder.forward"),
    ("parley.dialogue.neural.model", "TEDModel.dialogue_outputs"),
    ("parley.dialogue.neural.model", "TEDModel.label_embeddings"),
    ("parley.dialogue.neural.entities", "EntityTargets.loss"),
    ("parley.ml.layers", "TransformerEncoder.forward"),
    ("parley.ml.layers", "MultiHeadAttention.forward"),
    ("parley.ml.layers", "dropout_mask"),
    ("parley.ml.layers", "positional_encoding"),
    ("parley.ml.similarity", "label_loss"),
    ("parley.ml.grouped", "RandomlyConnectedLinear.forward"),
    ("parley.ml.adam", "Adam.step"),
    ("torch.autograd", "grad"),
]


def main() -> int:
    parser = step_arguments(__doc__)
    args = parser.parse_args()
    project = Path(args.project) if Path(args.project).is_dir() else BOTS / args.project

    import torch

    from parley.ml.collector import collector_paused
    from parley.ml.torch_env import roomy_heap

    trainer = capture(project, args.config)
    epochs = args.epochs or trainer.schedule.epochs
    torch.set_num_threads(args.threads)

    def new() -> tuple[Any, list[Any]]:
        t = fresh(trainer)
        return t, batches(t, epochs)

    def timed(t: Any, steps: list[Any]) -> float:
        # (as TEDPolicy trains: the cyclic collector paused, unless an A/B turns it on)
        with collector_paused() if PAUSE_COLLECTOR else contextlib.nullcontext():
            if args.threads > 1:
                with t._shard_threads(light=t.light()):
                    return run_steps(t, steps)
            return run_steps(t, steps)

    table = trainer.table
    print(f"{project.name}: {len(table)} examples, {int(table.lengths.sum())} rows, "
          f"{epochs} epochs, load {os.getloadavg()[0]:.1f}", flush=True)
    with roomy_heap():  # as in training: large blocks kept on the heap
        run_mode(args, new, timed, PARTS, ("parley.dialogue.neural.model", "parley.ml.layers",
                                           "parley.dialogue.neural.training"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
