"""``parley run actions`` starts rasa-sdk's action server, as ``rasa run actions`` does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from parley.cli.main import main
from tests.runtime.sdk_server import _free_port, sdk_python

ROOT = Path(__file__).resolve().parents[2]

ACTIONS = '''
from rasa_sdk import Action


class ActionHello(Action):
    def name(self):
        return "action_hello"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text="hello " + tracker.sender_id)
        return []
'''


def test_a_python_without_rasa_sdk_should_be_told_how_to_get_it(tmp_path, capsys):
    no_sdk = tmp_path / "python"
    no_sdk.write_text("#!/bin/sh\nexit 1\n")
    no_sdk.chmod(0o755)
    assert main(["run", "actions", "--python", str(no_sdk)]) == 1
    err = capsys.readouterr().err
    assert "cannot import rasa_sdk" in err and "pip install rasa-sdk" in err
    assert main(["run", "actions", "--python", str(tmp_path / "missing")]) == 1
    assert "cannot be run" in capsys.readouterr().err


def test_run_actions_should_serve_the_actions_and_stop_with_its_parent(tmp_path):
    python = sdk_python()
    (tmp_path / "actions.py").write_text(ACTIONS)
    port = _free_port()
    log = (tmp_path / "log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "parley", "run", "actions", "-p", str(port), "--python", python],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "log").read_text()
                time.sleep(0.2)
        call = {"next_action": "action_hello", "sender_id": "ann",
                "tracker": {"sender_id": "ann", "slots": {}, "events": [],
                            "latest_message": {}, "active_loop": {}, "paused": False,
                            "latest_action_name": "action_listen"},
                "domain": {}, "version": "3.6.0"}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/webhook",
                                         data=json.dumps(call).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["responses"][0]["text"] == "hello ann"
    finally:
        process.send_signal(signal.SIGTERM)  # to parley alone: the server must stop too
        assert process.wait(timeout=30) == 0, (tmp_path / "log").read_text()
        log.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
