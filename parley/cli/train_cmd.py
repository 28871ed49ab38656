"""``parley train [nlu|core]``: Rasa's training command and flags."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from parley.cli.data_cmd import add_project_arguments
from parley.cli.numbers import whole_number


# ``--finetune`` without a path: the newest model in ``--out``, as Rasa's CLI takes it.
_NEWEST_IN_OUT = object()


def _model_to_finetune(args: argparse.Namespace) -> str | None:
    if args.finetune is _NEWEST_IN_OUT:
        return str(args.out)
    return args.finetune


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="models", help="Folder for the model (default: models).")
    parser.add_argument("--fixed-model-name", help="Name of the model archive.")
    parser.add_argument("--finetune", nargs="?", const=_NEWEST_IN_OUT, default=None,
                        metavar="PATH",
                        help="Continue from a model, or the newest in a folder "
                             "(default: the --out folder).")
    parser.add_argument("--epoch-fraction", type=float, default=1.0,
                        help="Fraction of the configured epochs when finetuning.")
    parser.add_argument("--num-threads", type=whole_number(1), default=None,
                        help="Threads for numeric work (default: all cores).")
    parser.add_argument("--quiet", action="store_true",
                        help="No progress bars (also: PARLEY_QUIET=1).")
    parser.add_argument("--strict", action="store_true",
                        help="Refuse config.yml keys a component does not have (else a warning).")


def register(commands: Any) -> None:
    train = commands.add_parser("train", help="Train a model from the project.")
    add_project_arguments(train)
    _common(train)
    train.add_argument("--dry-run", action="store_true",
                       help="Say what would retrain and exit with its code; train nothing.")
    train.add_argument("--force", action="store_true", help="Retrain everything.")
    train.add_argument("--persist-nlu-data", action="store_true",
                       help="Put the merged NLU training data into the archive.")
    train.add_argument("--augmentation", type=int, default=50,
                       help="How many augmented stories to build from the stories.")
    train.set_defaults(handler=run_train)
    sub = train.add_subparsers(dest="train_part", metavar="PART")
    nlu = sub.add_parser("nlu", help="Train only the NLU part.")
    nlu.add_argument("-u", "--nlu", default="data", help="NLU data files or folder.")
    nlu.add_argument("-c", "--config", default="config.yml")
    nlu.add_argument("-d", "--domain", default=None)
    nlu.add_argument("--persist-nlu-data", action="store_true")
    _common(nlu)
    nlu.add_argument("--force", action="store_true", help="Retrain even what the cache holds.")
    nlu.set_defaults(handler=run_train_nlu)
    core = sub.add_parser("core", help="Train only the dialogue part.")
    core.add_argument("-s", "--stories", default="data", help="Story/rule files or folder.")
    core.add_argument("-c", "--config", default="config.yml")
    core.add_argument("-d", "--domain", default="domain.yml")
    core.add_argument("--augmentation", type=int, default=50)
    _common(core)
    core.add_argument("--force", action="store_true", help="Retrain even what the cache holds.")
    core.set_defaults(handler=run_train_core)


class _PrintHandler(logging.Handler):
    """Shows log records as plain lines on the current stdout (looked up per line, so
    redirected output is followed)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record))


@contextlib.contextmanager
def _showing_progress() -> Iterator[None]:
    """Training reports each node through the ``parley.training`` logger; show those lines
    while the command runs, and leave logging as it was afterwards."""
    logger = logging.getLogger("parley.training")
    handler, level, propagate = _PrintHandler(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown here; not a second time by a root handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _check_strictly(args: argparse.Namespace, training_type: str) -> None:
    """``--strict``: config.yml's warnings (unknown keys) stop the training before it starts."""
    if args.strict:
        from parley.data.config import read_config
        from parley.recipe import check_config

        check_config(read_config(args.config), training_type, strict=True)


# A file name holds at most 255 bytes; the archive is first written as
# ".<name>.tar.gz.<12 hex>.tmp", 25 bytes more than the name.
_MAX_NAME_BYTES = 255 - len("..tar.gz.123456789abc.tmp")


def _check_output(args: argparse.Namespace) -> None:
    """Refuse an output folder or model name that cannot be written before training, not
    after minutes of it."""
    from pathlib import Path

    from parley.errors import ModelArchiveError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ModelArchiveError(f"--out {out} is a file, but models are written into a "
                                "folder. Move the file, or pass another folder with --out.")
    name = args.fixed_model_name
    if name is not None and len(Path(name).name.encode()) > _MAX_NAME_BYTES:
        raise ModelArchiveError(
            f"the model name given with --fixed-model-name has {len(name.encode())} bytes; "
            f"a model name may have at most {_MAX_NAME_BYTES}. Choose a shorter name.")


def _threads(args: argparse.Namespace) -> None:
    """``--quiet`` and ``--num-threads``, then numpy's BLAS threads (:func:`_one_blas_thread`):
    all before anything imports numpy, which reads its thread count once, when it loads."""
    if args.quiet:
        from parley.progress import set_quiet

        set_quiet(True)
    if args.num_threads:
        import os

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "PARLEY_TORCH_THREADS"):
            os.environ[var] = str(args.num_threads)
    _one_blas_thread()


# Where OpenBLAS (numpy's and scipy's BLAS) reads its thread count from, in its order.
_BLAS_THREAD_SETTINGS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def _one_blas_thread() -> None:
    """numpy's BLAS on one thread for this training process, unless the environment says
    otherwise (read once, when numpy loads OpenBLAS: so before anything imports numpy).

    OpenBLAS starts a thread per core and, after each product, its threads spin waiting
    for the next: a training's numpy products are many and small (logistic regression,
    CRF, the featurizers), and the spinning threads take the cores from the work itself
    and from PyTorch's threads. Training banking77-small with Parley's default pipeline
    took 32 s (26 s of CPU) on two cores, and 12 s (11.5 s) with one BLAS thread. It also
    keeps the model from depending on the core count: OpenBLAS sums a product's parts in
    another order with more threads (the logistic regression's weights differed by 5e-7).
    """
    import os
    import sys

    if "numpy" in sys.modules or any(os.environ.get(var) for var in _BLAS_THREAD_SETTINGS):
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"


def run_train(args: argparse.Namespace) -> int:
    _threads(args)
    from parley.model_training import train

    _check_strictly(args, "both")
    _check_output(args)
    with _showing_progress():
        result = train(
            args.domain, args.config, args.data, args.out, dry_run=args.dry_run,
            force_training=args.force, fixed_model_name=args.fixed_model_name,
            persist_nlu_training_data=args.persist_nlu_data,
            core_additional_arguments={"augmentation_factor": args.augmentation},
            model_to_finetune=_model_to_finetune(args), finetuning_epoch_fraction=args.epoch_fraction,
        )
    if args.dry_run:
        for node, info in (result.dry_run_results or {}).items():
            print(f"  {node}: {info['status']} ({info['reason']})")
        print(f"Dry run: code {result.code} ({describe_code(result.code)}).")
        return result.code
    print(f"Your model is at {result.model}")
    return 0


def describe_code(code: int) -> str:
    if code == 0:
        return "nothing to do"
    parts = [text for bit, text in ((8, "training forced"), (1, "core must retrain"),
                                    (2, "NLU must retrain"),
                                    (4, "only responses or the persisted NLU data changed"))
             if code & bit]
    return ", ".join(parts)


def _check_data_path(path: str, flag: str) -> None:
    """A missing path said with the flag it came from (the importer's own message
    suggests ``--data``, which ``train nlu`` and ``train core`` do not have)."""
    from pathlib import Path

    from parley.errors import DataError

    if not Path(path).exists() and not Path(path).is_symlink():
        raise DataError(f"the {flag} path '{path}' does not exist.",
                        hint=f"Pass existing files or folders with {flag}.")


def run_train_nlu(args: argparse.Namespace) -> int:
    _threads(args)
    from parley.model_training import train_nlu

    _check_strictly(args, "nlu")
    _check_output(args)
    _check_data_path(args.nlu, "--nlu")
    with _showing_progress():
        path = train_nlu(args.config, args.nlu, args.out, args.fixed_model_name,
                         args.persist_nlu_data, domain=args.domain,
                         model_to_finetune=_model_to_finetune(args),
                         finetuning_epoch_fraction=args.epoch_fraction,
                         force_training=args.force)
    print(f"Your NLU model is at {path}")
    return 0


def run_train_core(args: argparse.Namespace) -> int:
    _threads(args)
    from parley.model_training import train_core

    _check_strictly(args, "core")
    _check_output(args)
    _check_data_path(args.stories, "--stories")
    with _showing_progress():
        path = train_core(args.domain, args.config, args.stories, args.out,
                          args.fixed_model_name, {"augmentation_factor": args.augmentation},
                          model_to_finetune=_model_to_finetune(args),
                          finetuning_epoch_fraction=args.epoch_fraction,
                          force_training=args.force)
    print(f"Your Core model is at {path}")
    return 0
