"""Rasa's MultiProjectImporter: a project that imports other projects' domain and data.

``config.yml`` lists ``importers: [{name: MultiProjectImporter}]`` and ``imports:`` with
paths relative to its own folder. An imported folder gives every domain, NLU, story and
test file below it; a ``config.yml``/``config.yaml`` found there (or imported directly)
adds its own ``imports``, relative to its folder, and so on. The root config's pipeline
and policies are the ones trained; the imported configs add only their imports.

Decided differently from Rasa, which skips these without a word: an import path that does
not exist is an error naming config.yml:LINE (a whole skill silently missing from a model
is worse than a refused training). An imported file that is not a config file is skipped
with a warning, as Rasa does.
"""

from __future__ import annotations

from pathlib import Path

from parley.data.config import ProjectConfig, ProjectImport, read_imports
from parley.data.formats.yaml_io import read_yaml_file
from parley.errors import SchemaError, warn

CONFIG_FILE_NAMES = ("config.yml", "config.yaml")


def imported_folders(config: ProjectConfig) -> list[Path]:
    """The project folders ``config`` imports, directly or through imported configs.

    Absolute, each once, in the order they are first named; the root project's own folder
    is never among them (its files come from the domain and data paths, as in Rasa).
    """
    if not config.imports or not config.reads_imports or config.file is None:
        return []
    root = Path(config.file).resolve().parent
    found: list[Path] = []
    seen_configs: set[Path] = {Path(config.file).resolve()}
    _follow(config.imports, Path(config.file), root, found, seen_configs)
    return found


def _follow(imports: list[ProjectImport], config_file: Path, root: Path,
            found: list[Path], seen_configs: set[Path]) -> None:
    base = config_file.resolve().parent
    for entry in imports:
        path = (base / entry.path).resolve()
        if not path.exists():
            raise SchemaError(
                f"the imported project '{entry.path}' does not exist (looked for {path}).",
                config_file, entry.line,
                hint="Import paths are relative to the folder of this config file.",
            )
        if path.is_file():
            if path.name not in CONFIG_FILE_NAMES:
                warn(f"the import '{entry.path}' is a file but not a config file; it is "
                     "skipped, as Rasa skips it. Import the folder that holds it instead.",
                     config_file, entry.line)
                continue
            _follow_config(path, root, found, seen_configs)
            continue
        if path == root or any(path.is_relative_to(done) for done in found):
            continue  # already read as part of the project or of an earlier import
        found.append(path)
        for nested in sorted(p for name in CONFIG_FILE_NAMES for p in path.rglob(name)):
            _follow_config(nested.resolve(), root, found, seen_configs)


def _follow_config(path: Path, root: Path, found: list[Path], seen_configs: set[Path]) -> None:
    if path in seen_configs:
        return
    seen_configs.add(path)
    _follow(read_imports(read_yaml_file(path), path), path, root, found, seen_configs)
