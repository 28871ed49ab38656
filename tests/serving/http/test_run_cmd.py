"""``parley run`` as a user starts it: a process that logs when it is ready, answers on its
port, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json

from parley.cli.main import main
from tests.conftest import needs_shared_data
from tests.serving.http.server_process import READY, get, parley_run, post_json

pytestmark = needs_shared_data


def test_parley_run_should_serve_the_model_and_stop_on_sigterm(moodbot_model, tmp_path):
    log = tmp_path / "server.log"
    with parley_run(["-m", str(moodbot_model), "--enable-api", "--auth-token", "t"],
                    tmp_path, log) as url:
        status, replies = post_json(f"{url}/webhooks/rest/webhook",
                                    {"sender": "cli", "message": "hello"})
        assert status == 200 and replies[0]["text"] == "Hey! How are you?"
        code, body = get(f"{url}/status?token=t")
        assert code == 200 and json.loads(body)["model_file"] == moodbot_model.name
        assert get(f"{url}/status")[0] == 401
    text = log.read_text()
    ready = [line for line in text.splitlines() if READY in line]
    assert len(ready) == 1 and "channels: rest" in ready[0] and "API: on" in ready[0]
    assert "loaded the model" in text and "Traceback" not in text


def test_parley_run_should_refuse_channels_it_does_not_have(tmp_path, capsys):
    credentials = tmp_path / "credentials.yml"
    credentials.write_text("rest:\nmattermost:\n  url: x\n")
    code = main(["run", "-m", str(tmp_path), "--credentials", str(credentials)])
    assert code == 1
    assert "credentials.yml:2" in capsys.readouterr().err


def test_a_body_limit_that_is_not_positive_should_be_refused(tmp_path, capsys):
    # -1 started a server that answered every POST with "larger than the limit of -1
    # bytes"; 0 silently meant the 10 MB default.
    for size in ("0", "-1"):
        assert main(["run", "-m", str(tmp_path), "--max-body-size", size]) == 1
        assert f"--max-body-size must be a positive number of bytes, found {size}" in \
            capsys.readouterr().err


def test_a_message_length_limit_that_is_not_positive_should_be_refused(tmp_path, capsys):
    for size in ("0", "-5"):
        assert main(["run", "-m", str(tmp_path), "--max-message-length", size]) == 1
        assert f"--max-message-length must be a positive number of characters, found {size}" \
            in capsys.readouterr().err


def test_the_unsigned_jwt_method_should_be_refused(tmp_path, capsys):
    # 'none' was offered as available: a server whose JWTs can never be checked.
    assert main(["run", "-m", str(tmp_path), "--jwt-secret", "s3cret",
                 "--jwt-method", "none"]) == 1
    err = capsys.readouterr().err
    assert "--jwt-method none" in err and "unsigned" in err
    assert main(["run", "-m", str(tmp_path), "--jwt-secret", "s3cret",
                 "--jwt-method", "FOO"]) == 1
    assert "none" not in capsys.readouterr().err.split("available:")[1]
