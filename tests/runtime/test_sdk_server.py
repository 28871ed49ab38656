"""The rasa-sdk test server helper leaves no process behind: not after a normal test, not
after a test that fails inside it, not when the test process itself is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.runtime import sdk_server

ACTIONS = textwrap.dedent('''
    from rasa_sdk import Action


    class ActionHello(Action):
        def name(self):
            return "action_hello"

        def run(self, dispatcher, tracker, domain):
            return []
''')
ROOT = Path(__file__).resolve().parents[2]


def server_group(port: str) -> int:
    """The process group of the rasa-sdk server listening on ``port`` (found in /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"rasa_sdk" in command and port.encode() in command:
            return os.getpgid(int(entry.name))
    raise AssertionError(f"no rasa-sdk process listens on port {port}")


def group_members(group: int) -> list[str]:
    """What is left of ``group``: pid, state and command of each process."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == group:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{entry.name} {state} {command[:80]}")
        except (OSError, ProcessLookupError):
            continue
    return found


def group_gone(group: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1].split("/", 1)[0]


pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")


def test_the_server_should_run_in_its_own_session_and_leave_nothing_behind(tmp_path):
    with sdk_server.action_server(ACTIONS, tmp_path) as url:
        group = server_group(port_of(url))
        assert group != os.getpgrp()  # a group of its own, not the test's
        assert os.getsid(group) == group
    assert group_gone(group)


def test_a_test_failing_inside_should_still_stop_the_whole_group(tmp_path):
    with pytest.raises(RuntimeError, match="the test broke"):
        with sdk_server.action_server(ACTIONS, tmp_path) as url:
            group = server_group(port_of(url))
            raise RuntimeError("the test broke")
    assert group_gone(group)


def test_a_killed_test_process_should_not_leave_an_orphan_server(tmp_path):
    sdk_server.sdk_python()  # skips when there is no rasa-sdk
    script = textwrap.dedent(f'''
        import sys, time
        from pathlib import Path
        from tests.runtime import sdk_server
        with sdk_server.action_server({ACTIONS!r}, Path({str(tmp_path)!r})) as url:
            print(url, flush=True)
            time.sleep(600)
    ''')
    test_process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                                    stdout=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = test_process.stdout.readline().strip()
        assert url, "the helper did not start the server"
        group = server_group(port_of(url))
    finally:
        test_process.send_signal(signal.SIGKILL)  # no teardown runs
        test_process.wait()
    gone = group_gone(group)
    left = [] if gone else group_members(group)
    if not gone:  # do not leave it behind ourselves
        os.killpg(group, signal.SIGKILL)
    assert gone, f"the server outlived the killed test process: {left}"
