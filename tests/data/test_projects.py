"""`importers:` and `imports:` in config.yml: Rasa's MultiProjectImporter and its limits."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from parley.data.config import read_config_text
from parley.data.importer import TrainingDataImporter
from parley.errors import ParleyWarning, SchemaError

MULTI = "importers:\n- name: MultiProjectImporter\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _intent_project(folder: Path, intent: str, example: str) -> None:
    _write(folder / "domain.yml", f'version: "3.1"\nintents: [{intent}]\n')
    _write(folder / "data" / "nlu.yml",
           f'version: "3.1"\nnlu:\n- intent: {intent}\n  examples: |\n    - {example}\n')


@pytest.fixture
def skills(tmp_path: Path) -> Path:
    """root imports skills/faq; faq's own config imports ../chit (relative to faq)."""
    _intent_project(tmp_path / "root", "greet", "hello")
    _intent_project(tmp_path / "skills" / "faq", "faq", "what is this")
    _intent_project(tmp_path / "skills" / "chit", "chitchat", "how are you")
    _write(tmp_path / "skills" / "faq" / "config.yml", "imports:\n- ../chit\n")
    return tmp_path


def _importer(root: Path, config: str) -> TrainingDataImporter:
    _write(root / "config.yml", config)
    return TrainingDataImporter(root / "domain.yml", root / "config.yml", [root / "data"])


def test_multi_project_importer_should_read_imported_projects_recursively(skills):
    importer = _importer(skills / "root", MULTI + "imports:\n- ../skills/faq\n")
    assert set(importer.domain.intents) == {"greet", "faq", "chitchat"}
    assert importer.nlu_data.intents == {"greet", "faq", "chitchat"}
    assert importer.imported_paths == [(skills / "skills" / "faq").resolve(),
                                       (skills / "skills" / "chit").resolve()]


def test_importing_a_config_file_should_follow_only_its_imports(skills):
    # As Rasa: an imported config.yml adds its imports, not the files beside it.
    importer = _importer(skills / "root", MULTI + "imports:\n- ../skills/faq/config.yml\n")
    assert set(importer.domain.intents) == {"greet", "chitchat"}


def test_import_cycles_and_the_root_itself_should_be_read_once(skills):
    _write(skills / "skills" / "chit" / "config.yml", "imports:\n- ../faq\n- ../../root\n")
    importer = _importer(skills / "root", MULTI + "imports:\n- ../skills/faq\n- ../skills/faq\n")
    assert len(importer.imported_paths) == 2
    assert len(importer.nlu_data.examples) == 3


def test_rasa_file_importer_with_multi_project_importer_should_read_both(skills):
    config = "importers:\n- name: RasaFileImporter\n- name: MultiProjectImporter\n"
    importer = _importer(skills / "root", config + "imports:\n- ../skills/faq\n")
    assert len(importer.nlu_data.examples) == 3


def test_imports_without_the_multi_project_importer_should_be_ignored_with_a_warning(skills):
    with pytest.warns(ParleyWarning, match="read only by the MultiProjectImporter") as caught:
        importer = _importer(skills / "root", "imports:\n- ../skills/faq\n")
        assert set(importer.domain.intents) == {"greet"}
    assert caught[0].message.line == 1


def test_an_import_that_does_not_exist_should_name_the_config_line(skills):
    importer = _importer(skills / "root", MULTI + "imports:\n- ../skills/faq\n- ../skils/chit\n")
    with pytest.raises(SchemaError, match="imported project '../skils/chit' does not exist") as info:
        importer.load_all()
    assert info.value.file.endswith("config.yml") and info.value.line == 5


def test_an_imported_data_file_should_be_skipped_with_a_warning(skills):
    importer = _importer(skills / "root", MULTI + "imports:\n- ../skills/faq/data/nlu.yml\n")
    with pytest.warns(ParleyWarning, match="not a config file; it is skipped"):
        assert importer.nlu_data.intents == {"greet"}


def test_builtin_importers_should_be_accepted_by_name():
    config = read_config_text(
        "importers:\n- name: RasaFileImporter\n- name: MultiProjectImporter\n", "c.yml")
    assert config.importer_names == ["RasaFileImporter", "MultiProjectImporter"]
    assert read_config_text("language: en\n").importer_names == ["RasaFileImporter"]


@pytest.mark.parametrize("text, message", [
    ("importers:\n- name: MultiProjectImport\n",
     "c.yml:2: unknown importer 'MultiProjectImport'. Did you mean 'MultiProjectImporter'? "
     "Importers Parley has: RasaFileImporter, MultiProjectImporter."),
    ("language: en\nimporters:\n- name: my_pkg.importers.DbImporter\n",
     "c.yml:3: the importer 'my_pkg.importers.DbImporter' is a custom importer class; "
     "Parley does not load custom importers yet."),
    ("imports: ../skills\n", "c.yml:1: 'imports' must be a list (- item)"),
])
def test_other_importers_should_be_refused_with_the_config_line(text, message):
    with pytest.raises(SchemaError) as info:
        read_config_text(text, "c.yml")
    assert str(info.value).startswith(message)


def test_imports_should_enter_the_config_fingerprint_only_when_used():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParleyWarning)
        assert "imports" in read_config_text(MULTI + "imports:\n- a\n").as_dict()
    assert "imports" not in read_config_text("language: en\n").as_dict()


def test_importer_parameters_should_be_ignored_with_a_warning():
    with pytest.warns(ParleyWarning, match="parameter 'project_directory' of the importer"):
        read_config_text(MULTI + "  project_directory: elsewhere\n", "c.yml")


def test_a_root_with_only_a_config_should_take_domain_and_data_from_its_imports(skills):
    """Rasa's multi-project layout: the root holds config.yml alone."""
    root = skills / "bare"
    importer = _importer(root, MULTI + "imports:\n- ../skills/faq\n")
    assert not (root / "domain.yml").exists() and not (root / "data").exists()
    assert set(importer.domain.intents) == {"faq", "chitchat"}
    assert importer.nlu_data.intents == {"faq", "chitchat"}
    assert importer.has_domain


def test_without_imports_a_missing_data_path_should_stay_an_error(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        _ = _importer(tmp_path / "lone", "language: en\n").files
