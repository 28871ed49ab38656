"""``parley data split nlu`` / ``parley data split stories``: Rasa's train/test split files."""

from __future__ import annotations

import argparse
import os
import random
import secrets
from pathlib import Path
from typing import Any

DEFAULT_OUT = "train_test_split"
DEFAULT_SEED = 42


def register(data_commands: Any) -> None:
    split = data_commands.add_parser(
        "split", help="Split the training data into a training and a test part.")
    parts = split.add_subparsers(dest="split_part", metavar="PART")
    nlu = parts.add_parser(
        "nlu", help="Split the NLU examples, keeping each intent's share on both sides.",
        description="Write training_data.yml and test_data.yml to --out: each intent (and "
                    "each retrieval intent's response) keeps --training-fraction of its "
                    "examples for training and at least one for testing; synonyms, "
                    "regexes and lookup tables go to both. Retrieval responses found in "
                    "the data files go to nlg_training_data.yml / nlg_test_data.yml.")
    _add_arguments(nlu)
    nlu.set_defaults(handler=run_split_nlu)
    stories = parts.add_parser(
        "stories", help="Split each story file's stories into train_ and test_ files.",
        description="For each file under --nlu that holds stories, write train_<name> "
                    "(everything but the drawn stories) and test_<name> (the drawn "
                    "stories: a test stories file for `parley test core`) to --out.")
    _add_arguments(stories)
    stories.set_defaults(handler=run_split_stories)
    split.set_defaults(handler=lambda args: split.print_help() or 2)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"the value of `--training-fraction {text}` must be a number between 0 and 1")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    # Rasa's flags: both parts read the data paths from -u/--nlu.
    parser.add_argument("-u", "--nlu", nargs="+", default=["data"], metavar="PATH",
                        help="Training data files or folders (default: data).")
    parser.add_argument("--training-fraction", type=_fraction, default=0.8,
                        help="Share of the data kept for training (default: 0.8).")
    parser.add_argument("--random-seed", type=int, default=DEFAULT_SEED,
                        help=f"Seed of the draw: the same seed gives the same split "
                             f"(default: {DEFAULT_SEED}).")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"Folder for the split files (default: {DEFAULT_OUT}).")


def run_split_nlu(args: argparse.Namespace) -> int:
    from parley.data.formats.nlu_yaml import nlu_to_content
    from parley.data.formats.version import LATEST_FORMAT_VERSION
    from parley.data.importer import TrainingDataImporter
    from parley.data.split import nlg_file_name, split_nlu
    from parley.errors import DataError

    data = TrainingDataImporter(None, None, _input_files(args.nlu, args.out)).nlu_data
    if not data.intent_examples:
        raise DataError(f"no NLU examples with an intent found in {' '.join(args.nlu)}; "
                        "nothing to split.")
    split = split_nlu(data, args.training_fraction, args.random_seed)
    out = _out_folder(args.out)
    for name, part in (("training_data.yml", split.train), ("test_data.yml", split.test)):
        content = nlu_to_content(part)
        responses = content.pop("responses", None)
        _write(out / name, content)
        if responses:
            _write(out / nlg_file_name(name),
                   {"version": LATEST_FORMAT_VERSION, "responses": responses})
    print(f"{len(split.train.examples)} training and {len(split.test.examples)} test "
          f"examples (fraction {args.training_fraction}, seed {args.random_seed}) in {out}")
    if split.single_example_labels:
        print(f"  kept in training only (a single example): "
              f"{', '.join(split.single_example_labels)}")
    return 0


def run_split_stories(args: argparse.Namespace) -> int:
    from parley.data.formats.story_yaml import is_test_stories_file, story_file_from_content
    from parley.data.formats.yaml_io import plain, read_yaml_file
    from parley.data.split import has_checkpoint, split_story_content
    from parley.errors import DataError

    files = _input_files(args.nlu, args.out)
    rng = random.Random(args.random_seed)
    out = _out_folder(args.out)
    written = train_total = test_total = 0
    for path, folder in _story_sources(args.nlu, out, files):
        if is_test_stories_file(path):
            continue  # already test stories: splitting them again would mix the two
        content = read_yaml_file(path)
        if not isinstance(content, dict):
            continue
        story_file_from_content(content, path)  # a broken story is named, not copied along
        parts = split_story_content(plain(content), args.training_fraction, rng)
        if parts is None:
            continue
        train, test = parts
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / f"train_{path.name}", train)
        _write(folder / f"test_{path.name}", test)
        written += 1
        train_total += len(train["stories"])
        test_total += len(test["stories"])
        kept = sum(has_checkpoint(story) for story in train["stories"])
        note = f" ({kept} with checkpoints kept for training)" if kept else ""
        print(f"{path}: {len(train['stories'])} training, {len(test['stories'])} test "
              f"stories{note}")
    if not written:
        raise DataError(f"no stories found in {' '.join(args.nlu)}; nothing to split.")
    print(f"{train_total} training and {test_total} test stories from {written} file(s) "
          f"(fraction {args.training_fraction}, seed {args.random_seed}) in {out}")
    return 0


def _story_sources(paths: list[str], out: Path, files: list[Path]
                   ) -> list[tuple[Path, Path]]:
    """Each of ``files`` (see :func:`_input_files`) with the folder its split files go to:
    ``out`` plus the file's place below the folder it was found in, so that
    ``data/a/stories.yml`` and ``data/b/stories.yml`` do not both write
    ``out/train_stories.yml``. Two files that would still write the same place are an
    error before anything is written."""
    from parley.data.formats.project_files import yaml_files, yaml_files_below
    from parley.errors import DataError

    sources: list[tuple[Path, Path]] = []
    targets: dict[Path, Path] = {}
    wanted = set(files)
    for raw in paths:
        root = Path(raw)
        below = yaml_files_below(root) if root.is_dir() else yaml_files([root])
        for path in below:
            if path not in wanted:
                continue
            folder = out / path.parent.relative_to(root) if root.is_dir() else out
            target = folder / path.name
            if target in targets and targets[target] != path:
                raise DataError(
                    f"{targets[target]} and {path} would both be split into "
                    f"{folder / ('train_' + path.name)}; give them in one folder, or split "
                    "them one at a time with another --out.")
            if target not in targets:
                targets[target] = path
                sources.append((path, folder))
    return sources


def _input_files(paths: list[str], out: str) -> list[Path]:
    """The YAML files under ``paths``, less those under ``out`` when it lies inside a given
    folder: with --out data/split, a second run would otherwise split the first one's files
    again (train_train_stories.yml) and take its test part for training data. Files named
    by a path in or below ``out`` itself are split, as asked."""
    from parley.data.formats.project_files import yaml_files
    from parley.errors import DataError

    for path in paths:
        if not Path(path).exists():
            raise DataError(f"the data path '{path}' given to -u/--nlu does not exist.")
    out_folder = Path(out).resolve()

    def in_out(path: Path) -> bool:
        return out_folder == path or out_folder in path.parents

    files = yaml_files(paths)
    if any(in_out(Path(path).resolve()) for path in paths):
        return files
    # The folders are compared, resolved: a file may be a broken or looping link.
    return [path for path in files if not in_out(path.parent.resolve())]


def _out_folder(path: str) -> Path:
    from parley.errors import DataError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {path} is a file, not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write(path: Path, content: dict[str, Any]) -> None:
    """Write whole or not at all: a split interrupted halfway leaves no torn file."""
    from parley.data.formats.yaml_io import dump_yaml

    text = dump_yaml(content)
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        # Mode 0o666 less the umask, as for any new file (mkstemp's would be 0o600).
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
