"""A policy that learns by epochs trains in a forked process beside the NLU pipeline: the
same model as on a thread, and every way the child can fail ends in a thread's training."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tarfile
import threading
import time
import types
import warnings
from pathlib import Path

import pytest

pytest.importorskip("torch")

from parley.errors import ParleyWarning  # noqa: E402
from parley.ml import training  # noqa: E402
from parley.model_training import train, train_core  # noqa: E402
from parley.starter import create_starter_project  # noqa: E402
from parley.stopping import StopRequested, under_flag  # noqa: E402
from parley.training import policy_process  # noqa: E402
from tests.training.tiny_configs import TINY_PIPELINE  # noqa: E402

pytestmark = pytest.mark.skipif(not policy_process.wanted(), reason="needs fork (Linux)")

CONFIG = "recipe: default.v1\n" + TINY_PIPELINE + """\
policies:
- name: MemoizationPolicy
- name: UnexpecTEDIntentPolicy
  epochs: 3
- name: TEDPolicy
  epochs: 3
- name: RulePolicy
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    create_starter_project(tmp_path)
    (tmp_path / "config.yml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PARLEY_TORCH_THREADS", "2")  # (lanes of one thread: the fork's case)
    return tmp_path


def _archive_files(path: str) -> dict[str, str]:
    with tarfile.open(path) as archive:
        return {m.name: hashlib.sha1(archive.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                for m in archive.getmembers() if m.isfile() and not m.name.endswith("metadata.json")}


def test_a_policy_trained_in_its_own_process_should_be_the_one_a_thread_trains(
        project, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="parley.training.policy_process")
    forked = train("domain.yml", "config.yml", ["data"], "forked", force_training=True)
    assert any("trains in process" in r.getMessage() for r in caplog.records)
    assert policy_process.peak_private_kb > 0
    caplog.clear()
    monkeypatch.setenv(policy_process.SWITCH, "0")
    threaded = train("domain.yml", "config.yml", ["data"], "threaded", force_training=True)
    assert not any("trains in process" in r.getMessage() for r in caplog.records)
    files = _archive_files(forked.model)
    # (UnexpecTED's thresholds too: computed after its training, on one thread either way)
    assert any("UnexpecTEDIntentPolicy" in name and name.endswith(".json") for name in files)
    assert any(name.split("/")[-2:][0].endswith("_TEDPolicy") for name in files)
    assert files == _archive_files(threaded.model)


def test_a_policy_trained_alone_should_train_on_a_thread(project, caplog):
    (project / "config.yml").write_text(CONFIG.replace(
        "- name: UnexpecTEDIntentPolicy\n  epochs: 3\n", ""))
    caplog.set_level(logging.DEBUG, logger="parley.training.policy_process")
    assert train_core("domain.yml", "config.yml", "data", "core_only") is not None
    assert not any("trains in process" in r.getMessage() for r in caplog.records)


def test_two_policies_by_epochs_should_each_train_in_a_process_of_their_own(project, caplog):
    """UnexpecTED and TED without the NLU pipeline: two trainings by epochs still."""
    caplog.set_level(logging.DEBUG, logger="parley.training.policy_process")
    from parley.model_training import train_core as core

    assert core("domain.yml", "config.yml", "data", "core_only") is not None
    forked = [r.getMessage() for r in caplog.records if "trains in process" in r.getMessage()]
    assert len(forked) == 2


# --- train_in_child itself -------------------------------------------------------------
def test_the_child_should_do_the_work_and_say_so(tmp_path):
    done = tmp_path / "done"
    forgotten = []
    parent = os.getpid()

    def work():
        done.write_text(str(os.getpid()))

    assert policy_process.train_in_child(work, "test", forget=lambda: forgotten.append(1))
    assert done.read_text() != str(parent) and forgotten == [1]


@pytest.mark.parametrize("how", ["raises", "dies", "killed"])
def test_a_child_that_fails_should_leave_the_work_to_the_caller(tmp_path, how, caplog):
    forgotten = []

    def work():
        if how == "raises":
            raise ValueError("bad policy")
        if how == "dies":
            os._exit(3)
        os.kill(os.getpid(), 9)

    caplog.set_level(logging.DEBUG, logger="parley.training.policy_process")
    assert policy_process.train_in_child(work, "test", forget=lambda: forgotten.append(1)) is False
    assert forgotten == [1]  # it had started: the caller makes its inputs again
    if how == "raises":
        assert any("bad policy" in r.getMessage() for r in caplog.records)


def test_a_child_stuck_on_a_lock_should_leave_the_work_to_the_caller(monkeypatch, caplog):
    """A fork copies a lock another thread held: the child then waits for ever, using no
    CPU — the parent sees its CPU time stand still and trains the policy itself."""
    monkeypatch.setattr(policy_process, "STILL_S", 1.0)
    held = threading.Lock()
    held.acquire()
    started = time.monotonic()
    assert policy_process.train_in_child(held.acquire, "test") is False
    assert time.monotonic() - started < 10
    assert any("stopped" in r.getMessage() for r in caplog.records)
    held.release()


def test_the_child_should_get_a_second_core_once_the_parent_trains_nothing(tmp_path):
    """One core while a training of the parent runs beside it, two once none does."""
    from parley.ml.cores import CORES

    seen = tmp_path / "caps"

    def work():
        caps = [CORES._cap]
        deadline = time.monotonic() + 20
        while CORES._cap < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.write_text(f"{caps[0]} {CORES._cap}")

    with CORES.training():  # a training of this process runs: the child keeps to one core
        done = threading.Event()
        result = []
        thread = threading.Thread(target=lambda: (
            result.append(policy_process.train_in_child(work, "test")), done.set()))
        thread.start()
        time.sleep(2.5)
        assert not done.is_set()  # still on one core
    thread.join(30)
    assert result == [True]
    assert seen.read_text() == "1 2"


def test_warnings_in_the_child_should_be_given_again_here():
    def work():
        warnings.warn(ParleyWarning("a story is odd", "data/stories.yml", 7), stacklevel=1)

    with pytest.warns(ParleyWarning, match="a story is odd") as caught:
        assert policy_process.train_in_child(work, "test")
    again = caught[0].message
    assert isinstance(again, ParleyWarning)  # made again from its parts: the same text
    assert (again.file, again.line, str(again)) == (
        "data/stories.yml", 7, str(ParleyWarning("a story is odd", "data/stories.yml", 7)))


def test_a_module_half_imported_at_the_fork_should_fork_again(tmp_path, monkeypatch, caplog):
    half = types.ModuleType("parley_half_made")
    half.__spec__ = types.SimpleNamespace(_initializing=True)  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "parley_half_made", half)
    threading.Timer(0.3, lambda: sys.modules.pop("parley_half_made", None)).start()
    caplog.set_level(logging.DEBUG, logger="parley.training.policy_process")
    done = tmp_path / "done"
    assert policy_process.train_in_child(lambda: done.write_text("yes"), "test")
    assert done.read_text() == "yes"
    assert any("forking again" in r.getMessage() for r in caplog.records)


def test_the_child_should_wait_for_room_beside_the_parents_trainings(tmp_path):
    waited = tmp_path / "waited"

    def work():
        asked = time.monotonic()
        with training._room_keeper[0](training.BESIDE_ROWS):
            waited.write_text(str(time.monotonic() - asked))

    held = threading.Event()

    def hold_the_room():
        with training.room(training.BESIDE_ROWS):
            held.set()
            time.sleep(1.0)

    holder = threading.Thread(target=hold_the_room)
    holder.start()
    held.wait()
    assert policy_process.train_in_child(work, "test")
    holder.join()
    assert float(waited.read_text()) > 0.5
    assert training._ROWS_RUNNING[0] == 0  # given back


def test_a_stopped_run_should_end_the_child():
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(StopRequested):
        under_flag(stop, policy_process.train_in_child)(lambda: time.sleep(60), "test")
    assert time.monotonic() - started < 10


def test_a_child_gone_before_the_parent_speaks_should_not_break_the_run():
    """The parent tells the child its cores and its go; a child already gone (it asked to be
    forked again, or died) must not end the parent's run with a broken pipe."""
    from parley.ml import forking

    orders_read, orders = os.pipe()
    answers, answers_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(orders_read)
            forking.send(answers_write, {"fork_again": ["somewhere"]})
        finally:
            os._exit(1)
    os.close(orders_read)
    os.close(answers_write)
    try:
        os.waitpid(pid, 0)  # gone before the parent's first word
        assert policy_process._parent(pid, orders, answers, "test", None) is None
    finally:
        os.close(orders)
        os.close(answers)


CHILD_OF_A_KILLED_PARENT = """
import sys, time
sys.path.insert(0, {repo!r})
from parley.training import policy_process
print("ready", flush=True)
policy_process.train_in_child(lambda: time.sleep(60), "test")
"""


def test_a_child_should_end_with_the_process_that_forked_it(tmp_path):
    import signal
    import subprocess

    script = tmp_path / "parent.py"
    script.write_text(CHILD_OF_A_KILLED_PARENT.format(repo=str(Path(__file__).parents[2])))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        children: list[int] = []
        deadline = time.monotonic() + 30
        while not children and time.monotonic() < deadline:
            time.sleep(0.1)
            for listing in Path(f"/proc/{parent.pid}/task").glob("*/children"):
                children += [int(c) for c in listing.read_text().split()]
        assert children, "no child forked"
        time.sleep(0.5)  # (past its start)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.1)
        assert not any(_alive(c) for c in children)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
