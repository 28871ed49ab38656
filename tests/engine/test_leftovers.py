"""What killed trainings leave is removed by later runs; a live writer's files are not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from parley.engine.archive import pack_archive
from parley.engine.leftovers import (
    STALE_ARCHIVE_SECONDS,
    archive_temp_name,
    pid_alive,
    sweep_archive_temps,
    sweep_temp_dirs,
    temp_prefix,
)


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


def age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_killed_writers_temp_archive_should_be_removed_by_the_next_pack(tmp_path: Path
                                                                           ) -> None:
    models = tmp_path / "models"
    models.mkdir()
    dead = models / f".old.tar.gz.{dead_pid()}-abcdef012345.tmp"
    dead.write_bytes(b"half an archive")
    legacy_old = models / ".m.tar.gz.abcdef012345.tmp"  # before names had a process id
    legacy_old.touch()
    age(legacy_old, STALE_ARCHIVE_SECONDS + 60)
    legacy_fresh = models / ".n.tar.gz.0123456789ab.tmp"  # maybe being written right now
    legacy_fresh.write_bytes(b"")
    live = models / archive_temp_name("live.tar.gz", "feedfeedfeed")  # this process's
    live.write_bytes(b"")
    source = tmp_path / "src"
    source.mkdir()
    (source / "metadata.json").write_text("{}")
    pack_archive(source, models / "new.tar.gz")
    left = sorted(p.name for p in models.iterdir())
    assert left == sorted(["new.tar.gz", legacy_fresh.name, live.name])


def test_temp_dirs_of_dead_trainings_should_go_and_live_ones_stay(tmp_path: Path) -> None:
    dead = tmp_path / f"parley-train-{dead_pid()}-k2j3h4g5"
    mine = tmp_path / f"{temp_prefix('parley-train-')}a1b2c3d4"
    legacy_old = tmp_path / "parley-previous-x8y7z6w5"
    legacy_fresh = tmp_path / "parley-model-q1w2e3r4"
    other = tmp_path / "someone-elses-123-folder"
    for folder in (dead, mine, legacy_old, legacy_fresh, other):
        (folder / "work").mkdir(parents=True)
    age(legacy_old, 2 * 24 * 3600)
    removed = sweep_temp_dirs(folder=tmp_path)
    assert sorted(removed) == sorted([dead, legacy_old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (mine, legacy_fresh, other))


def test_sweeping_a_missing_folder_should_do_nothing(tmp_path: Path) -> None:
    assert sweep_archive_temps(tmp_path / "nope") == []
    assert sweep_temp_dirs(folder=tmp_path / "nope") == []
