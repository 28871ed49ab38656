"""credentials.yml sections of the messaging-platform channels: Rasa's keys, the keys a
channel cannot do without, values of the wrong shape — errors at their line."""

from __future__ import annotations

import pytest

from parley.errors import SchemaError
from parley.serving.http.channels.credentials import read_credentials


def read(tmp_path, text):
    path = tmp_path / "credentials.yml"
    path.write_text(text)
    return read_credentials(path)


def test_platform_sections_should_be_read_with_rasas_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_SECRET", "from-env")
    channels = read(tmp_path, (
        "callback:\n  url: http://cb/x\n  headers:\n    A: b\n"
        "telegram:\n  access_token: 1:AB\n  verify: my_bot\n  webhook_url: https://x/y\n"
        "slack:\n  slack_token: xoxb-1\n  slack_signing_secret: ${SLACK_SECRET}\n"
        "  errors_ignore_retry: [http_timeout]\n  use_threads: true\n"))
    assert channels == {
        "callback": {"url": "http://cb/x", "headers": {"A": "b"}},
        "telegram": {"access_token": "1:AB", "verify": "my_bot", "webhook_url": "https://x/y"},
        "slack": {"slack_token": "xoxb-1", "slack_signing_secret": "from-env",
                  "errors_ignore_retry": ["http_timeout"], "use_threads": True}}


def test_a_channel_without_a_key_it_needs_should_be_an_error_at_its_line(tmp_path):
    with pytest.raises(SchemaError, match=r"credentials.yml:2: the 'telegram' channel needs "
                                          r"'verify', 'webhook_url'"):
        read(tmp_path, "rest:\ntelegram:\n  access_token: x\n")
    with pytest.raises(SchemaError, match="'slack' channel needs 'slack_signing_secret'"):
        read(tmp_path, "slack:\n  slack_token: x\n")
    with pytest.raises(SchemaError, match="'callback' channel needs 'url'"):
        read(tmp_path, "callback:\n")
    with pytest.raises(SchemaError, match="'facebook' channel needs 'page-access-token'"):
        read(tmp_path, "facebook:\n  verify: v\n  secret: s\n")


def test_a_value_of_the_wrong_shape_should_be_an_error_at_its_line(tmp_path):
    with pytest.raises(SchemaError, match=r"credentials.yml:3: 'callback: headers' must be a "
                                          "mapping"):
        read(tmp_path, "callback:\n  url: http://x\n  headers: [a]\n")
    with pytest.raises(SchemaError, match=r"credentials.yml:3: 'telegram: verify' must be a "
                                          "single value"):
        read(tmp_path, "telegram:\n  access_token: x\n  verify: {a: 1}\n  webhook_url: u\n")


@pytest.mark.parametrize("path", ["/webhooks/rest", "/", "model", "/conversations/x/"])
def test_a_socketio_path_over_the_servers_own_routes_should_be_an_error_at_its_line(
        tmp_path, path):
    """socket.io would answer there in their place (the REST webhook, the HTTP API…)."""
    with pytest.raises(SchemaError, match=r"credentials.yml:3: 'socketio: socketio_path' .* "
                                          "lies where the server answers itself"):
        read(tmp_path, f"socketio:\n  user_message_evt: user_uttered\n"
                       f"  socketio_path: {path!r}\n")
    assert read(tmp_path, "socketio:\n  socketio_path: /chat/socket.io\n")["socketio"] == {
        "socketio_path": "/chat/socket.io"}


def test_a_key_the_channel_does_not_read_should_be_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="'callback' does not use the key 'uri'"):
        assert read(tmp_path, "callback:\n  url: http://x\n  uri: y\n") == {
            "callback": {"url": "http://x"}}


def test_each_section_should_make_its_channel_against_the_real_platform(tmp_path):
    from parley.serving.http.channels.platforms import platform_channels

    channels = platform_channels(read(tmp_path, (
        "rest:\ncallback:\n  url: http://cb/x\n  token: t\n"
        "telegram:\n  access_token: 1:AB\n  verify: my_bot\n  webhook_url: https://x/y\n"
        "slack:\n  slack_token: xoxb-1\n  slack_signing_secret: s\n"
        "  errors_ignore_retry: [http_timeout, too_many]\n  use_threads: true\n"
        "  conversation_granularity: thread\n  slack_channel: C1\n"
        "facebook:\n  verify: v\n  secret: s\n  page-access-token: p\n"
        "twilio:\n  account_sid: AC1\n  auth_token: t\n  twilio_number: '+1'\n")))
    by_name = {channel.name: channel for channel in channels}
    assert list(by_name) == ["callback", "telegram", "slack", "facebook", "twilio"]
    assert by_name["callback"].url == "http://cb/x?token=t"
    assert by_name["telegram"]._method_url == "https://api.telegram.org/bot1:AB/"
    slack = by_name["slack"]
    assert slack._post_url == "https://www.slack.com/api/chat.postMessage"
    assert slack.errors_ignore_retry == ("http_timeout", "too_many")
    assert slack.use_threads is True and slack.conversation_granularity == "thread"
    assert slack.slack_channel == "C1"
    assert not platform_channels({"slack": {"slack_token": "x", "slack_signing_secret": "s",
                                            "use_threads": "false"}})[0].use_threads
    assert by_name["facebook"]._send_url == "https://graph.facebook.com/v19.0/me/messages"
    assert by_name["twilio"]._messages_url == \
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
