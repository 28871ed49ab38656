"""How the importer finds a project's files: nothing it cannot read is skipped silently."""

from __future__ import annotations

import pytest

from parley.data.importer import TrainingDataImporter
from parley.errors import DataError


def test_a_broken_link_in_the_data_folder_should_be_an_error_naming_it(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "nlu.yml").write_text('version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi\n')
    (data / "more.yml").symlink_to(tmp_path / "elsewhere" / "more.yml")
    with pytest.raises(DataError) as info:
        TrainingDataImporter(None, None, [data]).load_all()
    assert info.value.file == str(data / "more.yml")
    assert info.value.message == (
        f"the file is a symbolic link to '{tmp_path / 'elsewhere' / 'more.yml'}', which does "
        "not exist.")
    assert info.value.hint == "Point the link at the file, or remove the link."
