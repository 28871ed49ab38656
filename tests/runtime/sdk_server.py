"""A real rasa-sdk action server on loopback, serving actions a test writes.

rasa-sdk runs in a Python of its own (its pins — sanic, pydantic, grpcio … — need not
match Parley's environment): ``PARLEY_RASA_SDK_PYTHON`` names it (``scripts/test.sh`` makes
one), else this interpreter is used if it has ``rasa_sdk``; without one the test skips,
saying so.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The formbot's form validation as its upstream actions.py does it, written for the tests.
FORMBOT_ACTIONS = textwrap.dedent('''
    from rasa_sdk import FormValidationAction

    CUISINES = ("caribbean", "chinese", "french", "greek", "indian", "italian", "mexican")


    class ValidateRestaurantForm(FormValidationAction):
        def name(self):
            return "validate_restaurant_form"

        def validate_cuisine(self, value, dispatcher, tracker, domain):
            if str(value).lower() in CUISINES:
                return {"cuisine": value}
            dispatcher.utter_message(response="utter_wrong_cuisine")
            return {"cuisine": None}

        def validate_num_people(self, value, dispatcher, tracker, domain):
            try:
                if int(value) > 0:
                    return {"num_people": value}
            except (TypeError, ValueError):
                pass
            dispatcher.utter_message(response="utter_wrong_num_people")
            return {"num_people": None}
''')


def sdk_python() -> str:
    """A Python that can import rasa_sdk, or the test skips with the reason."""
    candidate = os.environ.get("PARLEY_RASA_SDK_PYTHON") or sys.executable
    try:
        found = subprocess.run([candidate, "-c", "import rasa_sdk"], capture_output=True,
                               timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        found = False
    if not found:
        pytest.skip(f"rasa_sdk is not importable by {candidate}; install it (pip install "
                    "rasa-sdk) or set PARLEY_RASA_SDK_PYTHON to a Python that has it")
    return candidate


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The server runs under this small watchdog, the leader of the server's own session: when
# the test process disappears without its teardown (killed, crashed hard), the watchdog is
# handed to another parent, notices, and stops the whole group, sanic's workers included.
# A plain signal handler, not SIG_IGN, keeps it alive through the group's SIGTERM: a handler
# is reset when the server execs, an ignored signal would be inherited.
WATCHDOG = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    parent, grace = int(sys.argv[1]), float(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: None)
    server = subprocess.Popen(sys.argv[3:])
    while server.poll() is None and os.getppid() == parent:
        time.sleep(0.2)
    if server.poll() is None:
        os.killpg(0, signal.SIGTERM)
        try:
            server.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(0, signal.SIGKILL)
    sys.exit(server.returncode)
""")
GRACE = 15.0  # seconds the server gets to stop on SIGTERM before SIGKILL


def stop_group(process: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """Stop the server and everything it started (sanic runs its app in worker processes):
    SIGTERM to its whole process group, SIGKILL to what is left after ``grace`` seconds."""
    group = process.pid  # start_new_session made the watchdog the leader of a new group
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    # poll() reaps the leader once it exits; until then it would count as alive
    while (process.poll() is None or _group_alive(group)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(group):
        os.killpg(group, signal.SIGKILL)
    process.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group exists (it changed its user)
        return True
    return True


@contextmanager
def action_server(actions: str, folder: Path) -> Iterator[str]:
    """Run ``python -m rasa_sdk`` with ``actions`` as its actions module; yields the webhook
    URL once the server answers its health check, and stops it afterwards.

    The server runs in a session (and process group) of its own, and the teardown stops
    that whole group, so no worker process outlives a test that failed or was interrupted.
    """
    python = sdk_python()
    (folder / "actions.py").write_text(actions)
    port = _free_port()
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [python, "-c", WATCHDOG, str(os.getpid()), str(GRACE),
             python, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(folder)}, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health",
                                                timeout=1) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the rasa-sdk action server did not start:\n"
                                         + log_path.read_text()[-3000:])
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/webhook"
        finally:
            stop_group(process)
