"""The starter assistant that ``parley init`` writes: a small houseplant helper.

It shows every file kind of a Rasa 3.x project (config, domain, NLU with entities, a
lookup table and a synonym, stories with a checkpoint branch, rules, test stories).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from parley.errors import ProjectExistsError

_TEMPLATE = Path(__file__).parent
STARTER_FILES = (
    "config.yml",
    "domain.yml",
    "data/nlu.yml",
    "data/stories.yml",
    "data/rules.yml",
    "tests/test_stories.yml",
)


def create_starter_project(path: str | Path = ".") -> list[Path]:
    """Write the starter project into ``path`` (created if needed); never overwrites."""
    target = Path(path)
    existing = [target / name for name in STARTER_FILES if (target / name).exists()]
    if existing:
        raise ProjectExistsError(
            f"{existing[0]} already exists; parley init never overwrites files. "
            "Choose an empty folder, e.g. `parley init --no-prompt my-bot`."
        )
    written = []
    for name in STARTER_FILES:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_TEMPLATE / name, destination)
        written.append(destination)
    return written
