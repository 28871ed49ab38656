"""What the command line says when files, folders or the disk refuse (issue 18): one clear
line and exit 1, never a traceback, and nothing half-written left behind."""

from __future__ import annotations

import errno
import gzip
import io
import os

import pytest

from parley.cli.main import EXIT_BROKEN_PIPE, main
from parley.engine.archive import pack_archive
from parley.errors import ModelArchiveError
from tests.data.unreadable import make_unreadable


@pytest.fixture
def bot(tmp_path, monkeypatch):
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    return tmp_path


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_reader_that_goes_away_should_end_the_command_quietly(tmp_path, monkeypatch, capsys):
    # `parley predict hi | head -1`: head exits, the next write fails with EPIPE
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert main(["init", "--no-prompt", str(tmp_path)]) == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


def test_an_unreadable_data_folder_should_fail_validation(bot, monkeypatch, capsys):
    make_unreadable(bot / "data", monkeypatch)
    assert main(["data", "validate"]) == 1
    err = capsys.readouterr().err
    assert "data: error: the folder cannot be read (Permission denied)" in err


def test_validate_should_say_that_without_nlu_examples_only_core_trains(bot, capsys):
    (bot / "data" / "nlu.yml").write_text('version: "3.1"\nnlu: []\n')
    assert main(["data", "validate"]) == 0
    out = capsys.readouterr().out
    assert "no NLU examples: `parley train` trains only the dialogue part" in out
    for name in ("stories.yml", "rules.yml"):
        (bot / "data" / name).unlink()
    assert main(["data", "validate"]) == 1
    assert "there is nothing to train" in capsys.readouterr().out


def test_models_being_a_file_should_be_refused_before_training(bot, capsys):
    (bot / "models").write_text("not a folder")
    assert main(["train", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--out models is a file, but models are written into a folder" in err
    assert (bot / "models").read_text() == "not a folder"


def test_a_model_name_too_long_for_the_disk_should_be_refused_before_training(bot, capsys):
    assert main(["train", "--quiet", "--fixed-model-name", "a" * 300]) == 1
    assert "a model name may have at most 230" in capsys.readouterr().err


def test_a_failing_cleanup_should_not_hide_why_the_archive_could_not_be_written(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "metadata.json").write_text("{}")
    with pytest.raises(ModelArchiveError, match="File name too long"):
        pack_archive(tmp_path / "src", tmp_path / ("a" * 300))


def test_a_full_disk_while_saving_should_be_one_clear_error_and_leave_no_file(
        bot, monkeypatch, capsys):
    written = []
    real_write = gzip.GzipFile.write

    def write(self, data):  # the disk fills up after the first block
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(data))
        return real_write(self, data)

    monkeypatch.setattr(gzip.GzipFile, "write", write)
    assert main(["train", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "The disk is full" in err
    assert "Traceback" not in err
    assert list((bot / "models").iterdir()) == []
