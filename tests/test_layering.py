"""Imports point down the layers DESIGN.md draws; ``nlu`` and ``dialogue`` never meet.

Every module under ``parley/`` is parsed (never imported) and each ``import parley…`` or
``from parley… import`` in it is checked against :data:`LAYERS`: a module may import its own
unit and the units of lower layers, never a unit of its own layer or a higher one.

What counts as an import, and why:

- Imports inside functions (lazy imports, there to keep ``import parley`` and start-up
  light) count: laziness changes when a module is loaded, not what the code depends on.
- Imports under ``if TYPE_CHECKING:`` count: a type taken from a higher layer is a
  dependency on it all the same.
- A class named by a string and loaded with ``importlib`` (the component registries'
  ``"DIETClassifier" → "parley.nlu.neural.diet:DIETClassifier"``) does not count: that table
  is configuration, which is how a low layer reaches plug-ins without depending on them.
- ``parley/__init__.py`` is not checked as an importer: it re-exports the public API, which
  lives in every layer. Other modules may take only :data:`ROOT_NAMES` from it — anything
  else would reach a higher layer through the root's re-exports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "parley"

# Lowest first. Each unit is parley's top-level module or package of that name, unless
# PLACED puts a module elsewhere. DESIGN.md's order is
#   errors → data, engine, ml → component, model_archive → nlu, dialogue → recipe →
#   training, model_training → runtime → serving, evaluation → cli;
# the units it does not name are placed here, each with its reason.
LAYERS: list[tuple[str, ...]] = [
    # progress: terminal progress bars, imports nothing of parley; training loops use them.
    # params: the parameter-constraint types components declare; imports nothing of parley.
    # stopping: the stop flag a runner sets and the training loops read; imports nothing.
    ("errors", "progress", "params", "stopping"),
    # starter: the starter project's files and the function that copies them (`parley init`);
    # it needs only errors.
    ("data", "engine", "ml", "starter"),
    ("component", "model_archive"),
    # registry: component and policy names → classes. It imports the contract (component)
    # and reaches the classes by importlib strings, so nlu and dialogue may use it.
    ("registry",),
    ("nlu", "dialogue"),
    ("recipe",),
    # model_training is the public train() over training/'s run: one step above it (DESIGN
    # lists the two together).
    ("training",),
    ("model_training",),
    ("runtime",),
    ("serving",),
    ("evaluation",),
    ("cli",),
    ("__main__",),  # `python -m parley`: the command line's entry, above everything
]

PLACED: dict[str, str] = {
    # Evaluation code that still lives beside what it evaluates (DESIGN's evaluation/ does not
    # exist yet): held to the evaluation layer, so that nothing in nlu or dialogue comes to
    # depend on it, and it may use serving when it needs to.
    "parley.nlu.evaluation": "evaluation",
    "parley.dialogue.evaluation": "evaluation",
}

ROOT = "parley"
ROOT_NAMES = frozenset({"__version__"})  # what any module may take from parley/__init__.py


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a submodule where ``from a import b`` names one)
    names: tuple[str, ...]  # the names taken by ``from … import``; () for ``import …``
    where: str  # path:line


def unit_of(module: str) -> str:
    """The unit a module belongs to: its PLACED layer, else parley's top-level name."""
    for prefix, unit in sorted(PLACED.items(), key=lambda item: -len(item[0])):
        if module == prefix or module.startswith(prefix + "."):
            return unit
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def violations(imports: Iterable[Import], layers: list[tuple[str, ...]] = LAYERS) -> list[str]:
    """Every import that does not point down, as ``path:line: what is wrong``."""
    tier = {unit: i for i, units in enumerate(layers) for unit in units}
    found = []
    for imp in imports:
        source, target = unit_of(imp.importer), unit_of(imp.imported)
        if source == ROOT:
            continue
        for unit, module in ((source, imp.importer), (target, imp.imported)):
            if unit != ROOT and unit not in tier:
                found.append(f"{imp.where}: {module} is in no layer; add '{unit}' to LAYERS "
                             "(or the module to PLACED) in tests/test_layering.py")
        if source not in tier or (target != ROOT and target not in tier):
            continue
        if target == ROOT:
            extra = set(imp.names) - ROOT_NAMES if imp.names else {"*"}
            if extra:
                found.append(f"{imp.where}: {imp.importer} takes {sorted(extra)} from parley/"
                             f"__init__.py; import them from their own module (only "
                             f"{sorted(ROOT_NAMES)} may come from the root)")
        elif source != target and tier[target] >= tier[source]:
            how = "its own layer" if tier[target] == tier[source] else "a higher layer"
            found.append(f"{imp.where}: {imp.importer} ({source}) imports {imp.imported} "
                         f"({target}), {how}")
    return found


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(path: Path, known: set[str], root: Path = PACKAGE) -> list[Import]:
    """The parley imports of one source file, lazy and TYPE_CHECKING ones included."""
    importer = module_name(path, root)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        where = f"{path.relative_to(root.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, (), where) for alias in node.names
                      if alias.name.split(".")[0] == ROOT]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the importer's package, up level - 1
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != ROOT:
                continue
            names = tuple(alias.name for alias in node.names)
            submodules = [f"{module}.{name}" for name in names if f"{module}.{name}" in known]
            if submodules:  # ``from parley.nlu import evaluation``: the submodule is the target
                found += [Import(importer, sub, (), where) for sub in submodules]
                rest = tuple(n for n in names if f"{module}.{n}" not in known)
                if rest:
                    found.append(Import(importer, module, rest, where))
            else:
                found.append(Import(importer, module, names, where))
    return found


def package_imports(root: Path = PACKAGE) -> list[Import]:
    files = sorted(root.rglob("*.py"))
    known = {module_name(f, root) for f in files}
    return [imp for f in files for imp in imports_in(f, known, root)]


# --- the package ----------------------------------------------------------------------------
def test_parley_imports_should_point_down_the_layers() -> None:
    found = violations(package_imports())
    assert not found, "imports against the layering in DESIGN.md:\n" + "\n".join(found)


def test_every_unit_of_parley_is_in_a_layer() -> None:
    """A new top-level module or package needs a place in LAYERS before it can pass."""
    tier = {unit for units in LAYERS for unit in units}
    units = {unit_of(module_name(f)) for f in PACKAGE.rglob("*.py")} - {ROOT}
    assert units <= tier, f"not in LAYERS: {sorted(units - tier)}"


def test_the_checker_reads_real_imports_of_every_kind() -> None:
    """Lazy, TYPE_CHECKING and relative imports are all found (they would otherwise slip by)."""
    imports = package_imports()
    pairs = {(i.importer, i.imported) for i in imports}
    assert ("parley.training.run", "parley.dialogue.generator") in pairs  # lazy, inside a function
    assert ("parley.nlu.neural.diet", "parley.ml.batching") in pairs  # under TYPE_CHECKING
    assert ("parley.ml.training", "parley.ml.adam") in pairs
    assert len(imports) > 200


# --- the checker, on fake import graphs ---------------------------------------------------
def _imp(importer: str, imported: str, *names: str) -> Import:
    return Import(importer, imported, names, f"{importer.replace('.', '/')}.py:1")


@pytest.mark.parametrize(("importer", "imported"), [
    ("parley.nlu.featurizers.count_vectors", "parley.dialogue.policies.rule"),
    ("parley.dialogue.policies.ted", "parley.nlu.neural.model"),
    ("parley.ml.training", "parley.nlu.features"),
    ("parley.data.domain", "parley.recipe"),
    ("parley.errors", "parley.data.message"),
    ("parley.engine.cache", "parley.ml.crf"),  # siblings do not import each other
    ("parley.serving.agent", "parley.cli.main"),
    ("parley.nlu.classifiers.keyword", "parley.nlu.evaluation"),  # placed above nlu
    ("parley.component", "parley.registry"),
])
def test_checker_should_catch_an_import_that_points_up_or_sideways(importer, imported) -> None:
    found = violations([_imp(importer, imported)])
    assert len(found) == 1 and importer in found[0] and imported in found[0]


@pytest.mark.parametrize(("importer", "imported"), [
    ("parley.dialogue.policies.ted", "parley.ml.layers"),
    ("parley.nlu.neural.diet", "parley.ml.training"),
    ("parley.nlu.neural.diet", "parley.ml.entity_tags"),
    ("parley.recipe", "parley.dialogue.registry"),
    ("parley.cli.test_cmd", "parley.nlu.evaluation"),
    ("parley.nlu.evaluation", "parley.serving.agent"),
    ("parley.model_training", "parley.training.run"),
    ("parley.dialogue.policies.ensemble", "parley.registry"),
    ("parley.model_archive", "parley.engine.archive"),
    ("parley.ml.training", "parley.progress"),
])
def test_checker_should_let_an_import_that_points_down_pass(importer, imported) -> None:
    assert violations([_imp(importer, imported)]) == []


def test_checker_should_name_a_unit_that_is_in_no_layer() -> None:
    found = violations([_imp("parley.telemetry", "parley.errors")])
    assert len(found) == 1 and "'telemetry'" in found[0] and "LAYERS" in found[0]


def test_checker_should_allow_only_the_version_from_the_root() -> None:
    assert violations([_imp("parley.training.run", "parley", "__version__")]) == []
    found = violations([_imp("parley.training.run", "parley", "__version__", "load")])
    assert len(found) == 1 and "'load'" in found[0]
    assert violations([_imp("parley.nlu.registry", "parley")])  # ``import parley``: anything
    assert violations([_imp("parley", "parley.cli.main")]) == []  # the root re-exports


def test_checker_should_find_a_planted_lazy_and_relative_import(tmp_path: Path) -> None:
    """Through the file parser: a lazy import and a relative one, both pointing up."""
    root = tmp_path / "parley"
    for name in ("nlu", "dialogue", "ml"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "dialogue" / "ted.py").write_text("from __future__ import annotations\n\n\n"
                                              "def fit():\n    from parley.nlu import features\n")
    (root / "nlu" / "features.py").write_text("")
    (root / "ml" / "blocks.py").write_text("from ..nlu.features import thing\n")
    found = violations(package_imports(root))
    assert len(found) == 2
    assert "parley/dialogue/ted.py:5: parley.dialogue.ted (dialogue) imports " \
           "parley.nlu.features (nlu), its own layer" in found
    assert any(f.startswith("parley/ml/blocks.py:1: parley.ml.blocks (ml) imports "
                            "parley.nlu.features (nlu), a higher layer") for f in found)
