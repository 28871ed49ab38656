from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parley.engine.cache import (
    DEFAULT_MAX_SIZE_BYTES,
    TrainingCache,
    cache_from_env,
    parse_size,
)
from parley.errors import CacheError

REPO = Path(__file__).resolve().parents[2]


def make_output(root: Path, name: str, size: int = 100) -> Path:
    """A directory as a component would save it: a file of ``size`` bytes and a subfolder."""
    out = root / name
    (out / "sub").mkdir(parents=True)
    (out / "weights.bin").write_bytes(name.encode()[:1] * size)
    (out / "sub" / "config.json").write_text("{}")
    return out


def entry_size(size: int) -> int:
    return size + 2  # weights.bin + "{}"


def test_put_then_get_should_return_a_copy_of_the_files(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    source = make_output(tmp_path, "a")
    stored = cache.put("fp1", source, {"component": "A"})
    assert stored != source
    assert cache.get("fp1") == stored
    assert (stored / "weights.bin").read_bytes() == (source / "weights.bin").read_bytes()
    assert (stored / "sub" / "config.json").read_text() == "{}"
    assert cache.contains("fp1")
    assert cache.meta("fp1") == {"component": "A"}
    assert cache.size_bytes() == entry_size(100)


def test_get_should_miss_for_unknown_fingerprints(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    assert cache.get("nope") is None
    assert not cache.contains("nope")
    assert cache.meta("nope") is None


def test_cache_should_survive_reopening(tmp_path: Path) -> None:
    TrainingCache(tmp_path / "cache").put("fp1", make_output(tmp_path, "a"), {"n": 1})
    reopened = TrainingCache(tmp_path / "cache")
    stored = reopened.get("fp1")
    assert stored is not None and (stored / "weights.bin").exists()
    assert reopened.meta("fp1") == {"n": 1}


def test_put_of_a_cached_fingerprint_should_replace_the_entry(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    first = cache.put("fp1", make_output(tmp_path, "a"), {"n": 1})
    (first / "planted.txt").write_text("not from training")
    again = cache.put("fp1", make_output(tmp_path, "b"), {"n": 2})
    assert cache.get("fp1") == again
    assert cache.meta("fp1") == {"n": 2}
    assert (again / "weights.bin").read_bytes() == b"b" * 100
    assert not (again / "planted.txt").exists()
    assert [e.fingerprint for e in cache.entries()] == ["fp1"]
    assert list((tmp_path / "cache" / "trash").iterdir()) == []


def test_size_zero_should_disable_the_cache(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache", max_size_bytes=0)
    source = make_output(tmp_path, "a")
    assert not cache.enabled
    assert cache.put("fp1", source, {}) == source
    assert cache.get("fp1") is None
    assert not cache.contains("fp1")
    assert cache.entries() == []
    assert not (tmp_path / "cache").exists()


def test_lru_eviction_should_drop_the_least_recently_used_entry(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache", max_size_bytes=2 * entry_size(100) + 10)
    cache.put("a", make_output(tmp_path, "a"), {})
    cache.put("b", make_output(tmp_path, "b"), {})
    assert cache.get("a") is not None  # "a" is now more recent than "b"
    cache.put("c", make_output(tmp_path, "c"), {})
    assert [e.fingerprint for e in cache.entries()] == ["a", "c"]
    assert not cache.contains("b")


def test_contains_should_not_count_as_use(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache", max_size_bytes=2 * entry_size(100) + 10)
    cache.put("a", make_output(tmp_path, "a"), {})
    cache.put("b", make_output(tmp_path, "b"), {})
    assert cache.contains("a") and cache.meta("a") == {}
    cache.put("c", make_output(tmp_path, "c"), {})
    assert [e.fingerprint for e in cache.entries()] == ["b", "c"]


def test_evict_to_should_evict_oldest_first_and_report_them(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    for name in "abcd":
        cache.put(name, make_output(tmp_path, name), {})
    cache.get("a")
    assert cache.evict_to(2 * entry_size(100)) == ["b", "c"]
    assert [e.fingerprint for e in cache.entries()] == ["d", "a"]
    assert cache.evict_to(0) == ["d", "a"]
    assert cache.size_bytes() == 0


def test_output_larger_than_the_limit_should_not_be_cached(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache", max_size_bytes=50)
    source = make_output(tmp_path, "big", size=100)
    assert cache.put("big", source, {}) == source
    assert not cache.contains("big")


def test_clear_should_remove_every_entry(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    cache.put("a", make_output(tmp_path, "a"), {})
    cache.put("b", make_output(tmp_path, "b"), {})
    cache.clear()
    assert cache.entries() == []
    assert cache.get("a") is None
    assert list((tmp_path / "cache" / "trash").iterdir()) == []


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".", "x" * 200])
def test_fingerprints_that_are_not_plain_tokens_should_be_refused(tmp_path: Path, bad: str) -> None:
    cache = TrainingCache(tmp_path / "cache")
    with pytest.raises(CacheError, match="not a valid cache fingerprint"):
        cache.put(bad, make_output(tmp_path, "a"), {})
    with pytest.raises(CacheError):
        cache.get(bad)


def test_meta_that_is_not_json_should_be_refused(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    with pytest.raises(CacheError, match="not JSON"):
        cache.put("a", make_output(tmp_path, "a"), {"when": object()})
    assert not cache.contains("a")
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_negative_size_limit_should_be_refused(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="0 or more"):
        TrainingCache(tmp_path / "cache", max_size_bytes=-1)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_a_crash_should_be_ignored_and_cleaned_on_open(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = TrainingCache(root)
    cache.put("good", make_output(tmp_path, "good"), {})
    # A put killed before its rename: a temp dir of a dead process.
    dead_temp = root / "tmp" / f"{_dead_pid()}-deadbeef"
    (dead_temp / "files").mkdir(parents=True)
    (dead_temp / "files" / "weights.bin").write_bytes(b"half")
    # A put still running in a live process must be left alone.
    live_temp = root / "tmp" / f"{os.getpid()}-cafe"
    live_temp.mkdir()
    # An entry without its record (e.g. tampered with): never served.
    half = root / "entries" / "half"
    (half / "files").mkdir(parents=True)
    # An eviction killed half-way through deleting.
    (root / "trash" / "old-1234" / "files").mkdir(parents=True)
    assert cache.get("half") is None and not cache.contains("half")
    assert [e.fingerprint for e in cache.entries()] == ["good"]

    reopened = TrainingCache(root)
    assert not dead_temp.exists()
    assert live_temp.exists()
    assert not half.exists()
    assert list((root / "trash").iterdir()) == []
    assert reopened.get("good") is not None


def test_corrupt_entry_record_should_read_as_a_miss(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    cache.put("a", make_output(tmp_path, "a"), {})
    (tmp_path / "cache" / "entries" / "a" / "entry.json").write_text('{"fingerp')
    assert cache.get("a") is None


@pytest.mark.parametrize("damage", [
    lambda files: (files / "weights.bin").write_bytes(b"garbage{"),  # rewritten
    lambda files: (files / "sub" / "config.json").unlink(),  # lost
    lambda files: (files / "extra.json").write_text("{}"),  # added
])
def test_an_entry_whose_files_changed_should_read_as_a_miss_and_go(tmp_path: Path,
                                                                  damage) -> None:
    # A damaged entry was handed out as a hit: the training packed it into a model that
    # trained without a word and failed to load.
    cache = TrainingCache(tmp_path / "cache")
    cache.put("a", make_output(tmp_path, "a"), {})
    damage(tmp_path / "cache" / "entries" / "a" / "files")
    assert cache.get("a") is None
    assert not (tmp_path / "cache" / "entries" / "a").exists()
    assert cache.put("a", make_output(tmp_path, "again"), {}).is_dir()
    assert cache.get("a") is not None


def test_missing_recency_should_fall_back_to_creation_time(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    cache.put("a", make_output(tmp_path, "a"), {})
    (tmp_path / "cache" / "entries" / "a" / "last_used").unlink()
    [entry] = cache.entries()
    assert entry.last_used_ns == entry.created_ns


_KILLED_PUT = """
import sys
from parley.engine.cache import TrainingCache
TrainingCache(sys.argv[1]).put("big", sys.argv[2], {"n": 1})
"""


def test_a_put_killed_with_sigkill_should_leave_a_usable_cache(tmp_path: Path) -> None:
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    root = tmp_path / "cache"
    TrainingCache(root).put("small", make_output(tmp_path, "small"), {})
    big = tmp_path / "big"
    big.mkdir()
    for index in range(800):
        (big / f"part-{index:04d}.bin").write_bytes(bytes([index % 256]) * 2048)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_PUT, str(root), str(big)], env=env)
    temp_root = root / "tmp"
    deadline = time.monotonic() + 5
    try:
        # Kill as soon as the copy has started writing files into its temp dir.
        while time.monotonic() < deadline and child.poll() is None:
            if any((temp / "files").is_dir() for temp in temp_root.iterdir()):
                break
            time.sleep(0.001)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=5)
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    assert list(temp_root.iterdir()), "the kill did not land in the middle of put"

    cache = TrainingCache(root)
    assert cache.get("big") is None
    assert list(temp_root.iterdir()) == []
    assert cache.get("small") is not None
    stored = cache.put("big", big, {"n": 1})
    assert len(list(stored.iterdir())) == 800
    assert (stored / "part-0799.bin").read_bytes() == bytes([799 % 256]) * 2048


def test_cache_from_env_should_default_to_the_project(tmp_path: Path) -> None:
    cache = cache_from_env(tmp_path, environ={})
    assert cache.directory == tmp_path / ".parley" / "cache"
    assert cache.max_size_bytes == DEFAULT_MAX_SIZE_BYTES
    assert (tmp_path / ".parley" / "cache" / "entries").is_dir()


def test_cache_from_env_should_follow_the_environment(tmp_path: Path) -> None:
    env = {"PARLEY_CACHE_DIR": str(tmp_path / "shared"), "PARLEY_CACHE_MAX_SIZE": "500MB"}
    cache = cache_from_env(tmp_path / "project", environ=env)
    assert cache.directory == tmp_path / "shared"
    assert cache.max_size_bytes == 500_000_000


def test_cache_from_env_with_size_zero_should_disable_caching(tmp_path: Path) -> None:
    cache = cache_from_env(tmp_path, environ={"PARLEY_CACHE_MAX_SIZE": "0"})
    assert not cache.enabled
    assert not (tmp_path / ".parley").exists()


def test_cache_from_env_should_explain_a_bad_size(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match=r"PARLEY_CACHE_MAX_SIZE='lots'.*500MB"):
        cache_from_env(tmp_path, environ={"PARLEY_CACHE_MAX_SIZE": "lots"})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1024", 1024),
        ("500MB", 500_000_000),
        ("500 mb", 500_000_000),
        ("2GB", 2_000_000_000),
        ("1.5G", 1_500_000_000),
        ("512MiB", 512 * 2**20),
        ("10k", 10_000),
        ("unlimited", None),
    ],
)
def test_parse_size_should_read_common_spellings(text: str, size: int | None) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-5MB", "5 parsecs", "1.2.3GB"])
def test_parse_size_should_refuse_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_entry_record_should_be_plain_json(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path / "cache")
    cache.put("a", make_output(tmp_path, "a"), {"component": "A"})
    record = json.loads((tmp_path / "cache" / "entries" / "a" / "entry.json").read_text())
    assert record["fingerprint"] == "a"
    assert record["size_bytes"] == entry_size(100)
    assert record["meta"] == {"component": "A"}


def test_a_replace_stopped_between_its_renames_should_leave_a_miss(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = TrainingCache(tmp_path / "cache")
    cache.put("fp1", make_output(tmp_path, "a"), {"n": 1})
    real_rename = os.rename

    def dies_on_publish(source, target):  # the old entry is in the trash, then the kill
        if Path(target).parent.name == "entries":
            raise KeyboardInterrupt
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", dies_on_publish)
    with pytest.raises(KeyboardInterrupt):
        cache.put("fp1", make_output(tmp_path, "b"), {"n": 2})
    monkeypatch.setattr(os, "rename", real_rename)
    reopened = TrainingCache(tmp_path / "cache")
    assert reopened.get("fp1") is None  # a miss, never old and new mixed
    stored = reopened.put("fp1", make_output(tmp_path, "c"), {"n": 3})
    assert (stored / "weights.bin").read_bytes() == b"c" * 100
