"""Model file names: ``[nlu-|core-]YYYYMMDD-HHMMSS-<adjective>-<noun>.tar.gz``.

The timestamp sorts names by training time; the two words make two models trained in the
same second distinct and are easier to say aloud than a hash.
"""

from __future__ import annotations

import os
import random
from datetime import datetime
from pathlib import Path

from parley.engine.archive import ARCHIVE_SUFFIX

ADJECTIVES = (
    "amber", "brisk", "calm", "clever", "crisp", "daring", "eager", "fancy", "gentle",
    "glad", "golden", "humble", "jolly", "keen", "lively", "lucky", "mellow", "nimble",
    "patient", "plucky", "quiet", "rapid", "shiny", "silver", "steady", "sunny", "swift",
    "tidy", "witty", "zesty",
)  # fmt: skip
NOUNS = (
    "acorn", "badger", "beacon", "breeze", "canyon", "comet", "dolphin", "ember", "falcon",
    "fjord", "glacier", "harbor", "heron", "island", "kettle", "lantern", "maple", "meadow",
    "nebula", "otter", "pebble", "quokka", "raven", "river", "summit", "thistle", "tulip",
    "walrus", "willow", "zephyr",
)  # fmt: skip


def default_model_name(
    prefix: str = "", now: datetime | None = None, rng: random.Random | None = None
) -> str:
    """A fresh model name without suffix, e.g. ``nlu-20240131-154502-brisk-otter``.

    ``prefix`` is "", "nlu" or "core" (a trailing "-" is optional). ``now`` and ``rng``
    make names reproducible in tests; by default a private generator is used so naming
    never disturbs the global random state that seeded training relies on.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    chooser = rng or random.Random()
    words = f"{chooser.choice(ADJECTIVES)}-{chooser.choice(NOUNS)}"
    head = prefix if not prefix or prefix.endswith("-") else f"{prefix}-"
    return f"{head}{stamp}-{words}"


def resolve_model_path(
    output_dir: str | os.PathLike[str], fixed_model_name: str | None = None, prefix: str = ""
) -> Path:
    """Where the trained model goes: ``output_dir/<name>.tar.gz``.

    A ``fixed_model_name`` is used as given, with ``.tar.gz`` appended when missing; one
    with a directory part (``"experiments/v2"``) stays inside ``output_dir``, like Rasa;
    an absolute one is taken as it is.
    Without it a :func:`default_model_name` is made with ``prefix``, one no file in
    ``output_dir`` has yet: two trainings in the same second (a finetuning the cache makes
    quick) must not write over each other's model by drawing the same two words.
    """
    if fixed_model_name:
        return Path(output_dir) / _with_suffix(fixed_model_name)
    for _ in range(_FRESH_NAME_TRIES):
        target = Path(output_dir) / _with_suffix(default_model_name(prefix))
        if not target.exists():
            break
    return target


# 900 word pairs a second: 20 draws that all land on taken names do not happen by chance.
_FRESH_NAME_TRIES = 20


def _with_suffix(name: str) -> str:
    return name if name.endswith(ARCHIVE_SUFFIX) else name + ARCHIVE_SUFFIX
