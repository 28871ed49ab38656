"""Files and folders a user can hand Parley (issue 18): each refusal names the path, nothing
hangs, nothing is skipped without a word."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parley.data.config import read_config
from parley.data.formats import yaml_io
from parley.data.formats.domain_yaml import read_domain
from parley.data.formats.project_files import yaml_files, yaml_files_below
from parley.data.formats.yaml_io import read_file_bytes, read_yaml_file
from parley.data.importer import TrainingDataImporter
from parley.errors import DataError
from tests.data.unreadable import make_unreadable

NLU = 'version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi\n'


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "more").mkdir(parents=True)
    (data / "nlu.yml").write_text(NLU)
    (data / "more" / "other.yml").write_text(NLU.replace("intent: a", "intent: b"))
    return data


def test_an_unreadable_data_folder_should_be_an_error_not_zero_examples(tmp_path, monkeypatch):
    data = _data(tmp_path)
    make_unreadable(data, monkeypatch)
    with pytest.raises(DataError, match=r"folder cannot be read \(Permission denied\)") as info:
        TrainingDataImporter(None, None, [data]).load_all()
    assert info.value.file == str(data)


def test_an_unreadable_sub_folder_should_be_an_error_naming_it(tmp_path, monkeypatch):
    data = _data(tmp_path)
    make_unreadable(data / "more", monkeypatch)
    with pytest.raises(DataError, match="folder cannot be read") as info:
        yaml_files([data])
    assert info.value.file == str(data / "more")


def test_an_unreadable_domain_folder_should_be_an_error(tmp_path, monkeypatch):
    folder = tmp_path / "domain"
    folder.mkdir()
    (folder / "a.yml").write_text('version: "3.1"\nintents: [greet]\n')
    make_unreadable(folder, monkeypatch)
    with pytest.raises(DataError, match="folder cannot be read"):
        read_domain(folder)


def test_a_symlink_loop_in_the_data_folder_should_be_an_error_naming_it(tmp_path):
    data = _data(tmp_path)
    (data / "loop.yml").symlink_to("loop.yml")
    with pytest.raises(DataError, match="Too many levels of symbolic links") as info:
        TrainingDataImporter(None, None, [data]).load_all()
    assert info.value.file == str(data / "loop.yml")


def test_a_link_to_a_parent_folder_should_not_loop(tmp_path):
    data = _data(tmp_path)
    (data / "more" / "up.yml").symlink_to(data, target_is_directory=True)
    (data / "more" / "up").symlink_to(data, target_is_directory=True)
    assert [p.name for p in yaml_files_below(data)] == ["other.yml", "nlu.yml"]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_device_should_be_refused_without_reading_it(tmp_path, kind):
    data = _data(tmp_path)
    odd = data / "odd.yml"
    if kind == "fifo":
        os.mkfifo(odd)  # opening it for reading would wait for a writer forever
    else:
        odd.symlink_to("/dev/zero")  # reading it would fill memory
    with pytest.raises(DataError, match="not a regular file") as info:
        TrainingDataImporter(None, None, [data]).load_all()
    assert info.value.file == str(odd)
    with pytest.raises(DataError, match="not a regular file"):
        read_config(odd)
    with pytest.raises(DataError, match="not a regular file"):
        read_domain(odd)


def test_a_folder_where_a_file_should_be_is_an_error_naming_it(tmp_path):
    (tmp_path / "config.yml").mkdir()
    with pytest.raises(DataError, match="this is a folder, but a file is expected") as info:
        read_config(tmp_path / "config.yml")
    assert info.value.file == str(tmp_path / "config.yml")


def test_a_missing_config_should_be_an_error_naming_it(tmp_path):
    with pytest.raises(DataError, match="No such file or directory") as info:
        read_config(tmp_path / "config.yml")
    assert info.value.file == str(tmp_path / "config.yml")


def test_a_file_over_the_size_bound_should_be_refused_before_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "big.yml"
    path.write_text("a: " + "x" * 200 + "\n")
    with pytest.raises(DataError, match="larger than"):
        read_file_bytes(path, 100)
    assert read_file_bytes(path, 1000) == path.read_bytes()
    monkeypatch.setattr(yaml_io, "MAX_FILE_BYTES", 100)
    with pytest.raises(DataError, match="larger than") as info:
        read_yaml_file(path)
    assert info.value.file == str(path)


def test_read_only_data_should_read_normally(tmp_path):
    data = _data(tmp_path)
    for path in (data / "nlu.yml", data / "more" / "other.yml"):
        path.chmod(0o444)
    importer = TrainingDataImporter(None, None, [data])
    assert len(importer.nlu_data.examples) == 2


def test_read_nlu_file_should_refuse_a_pipe_instead_of_waiting_for_it(tmp_path):
    from parley.data.formats.nlu_yaml import read_nlu_file

    os.mkfifo(tmp_path / "nlu.yml")
    with pytest.raises(DataError, match="not a regular file"):
        read_nlu_file(tmp_path / "nlu.yml")
    (tmp_path / "ok.yml").write_text(NLU)
    assert len(read_nlu_file(tmp_path / "ok.yml").examples) == 1
