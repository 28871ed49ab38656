"""credentials.yml: which channels ``parley run`` opens, with Rasa's keys.

::

    rest:                      # the REST webhook, no options
    socketio:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered
      session_persistence: true
      socketio_path: /socket.io
    callback:
      url: "http://localhost:5034/bot"
    telegram:
      access_token: "123:ABC…"
      verify: "my_bot"
      webhook_url: "https://example.com/webhooks/telegram/webhook"
    slack:
      slack_token: "xoxb-…"
      slack_signing_secret: "…"
    facebook:
      verify: "…"
      secret: "…"
      page-access-token: "…"
    twilio:
      account_sid: "AC…"
      auth_token: "…"
      twilio_number: "+15550001111"

Each section is read with Rasa's keys (:data:`CHANNEL_KEYS`; the channel's module says what
they do); a key the channel does not read is a warning, a key it cannot do without
(:data:`REQUIRED_KEYS`) an error at the section's line. A channel Rasa has and Parley does
not (mattermost, botframework …) is an error at its line, not silently skipped: the user expects it
to work. Rasa X's ``rasa:`` section is ignored with a warning. Without a file, the REST
channel is opened (Rasa would open none, which only surprises).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.data.formats.schema import did_you_mean
from parley.data.formats.yaml_io import LineDict, line_of, plain, read_yaml_file
from parley.errors import SchemaError, warn
from parley.runtime.endpoints import expand_env

__all__ = ["CHANNELS", "CHANNEL_KEYS", "REQUIRED_KEYS", "REST", "SOCKETIO",
           "read_credentials"]

REST, SOCKETIO = "rest", "socketio"
CHANNEL_KEYS: dict[str, tuple[str, ...]] = {
    REST: (),
    SOCKETIO: ("user_message_evt", "bot_message_evt", "session_persistence", "socketio_path",
               "jwt_key", "jwt_method", "metadata_key", "namespace"),
    "callback": ("url", "headers", "basic_auth", "token", "token_name", "params"),
    "telegram": ("access_token", "verify", "webhook_url"),
    "slack": ("slack_token", "slack_signing_secret", "slack_channel", "proxy",
              "slack_retry_reason_header", "slack_retry_number_header",
              "errors_ignore_retry", "use_threads", "conversation_granularity"),
    "facebook": ("verify", "secret", "page-access-token"),
    "twilio": ("account_sid", "auth_token", "twilio_number"),
}
CHANNELS = tuple(CHANNEL_KEYS)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "callback": ("url",),
    # Rasa checks the bot's username against `verify` on every update.
    "telegram": ("access_token", "verify", "webhook_url"),
    # Without the signing secret no request can be told from a forgery (Rasa 3 refuses all).
    "slack": ("slack_token", "slack_signing_secret"),
    "facebook": ("verify", "secret", "page-access-token"),
    "twilio": ("account_sid", "auth_token", "twilio_number"),
}
# Keys whose value is a mapping or a list; any other value is a scalar.
MAPPING_KEYS = ("headers", "basic_auth", "params")
LIST_KEYS = ("errors_ignore_retry",)
RASA_CHANNELS = ("twilio_voice", "mattermost",
                 "rocketchat", "botframework", "webexteams", "hangouts",
                 "microsoft_bot", "cisco_webex", "audiocodes")


def read_credentials(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Channel name → its options. ``None``: the REST channel alone."""
    if path is None:
        return {REST: {}}
    data = read_yaml_file(path)
    file = str(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SchemaError("credentials.yml must be a mapping of channels (rest:, slack: …).",
                          file, line_of(data))
    channels: dict[str, dict[str, Any]] = {}
    for name, options in data.items():
        line = line_of(data, name)
        if name == "rasa":
            warn("credentials.yml: the 'rasa' section (Rasa X / Enterprise) is not used by "
                 "Parley and is ignored.", file, line)
            continue
        if name not in CHANNELS:
            known = f"Parley has the channels: {', '.join(CHANNELS)}."
            if name in RASA_CHANNELS:
                raise SchemaError(f"the '{name}' channel is not implemented in Parley.", file,
                                  line, hint=f"{known} Remove the '{name}' section.")
            raise SchemaError(f"unknown channel '{name}'.{did_you_mean(str(name), CHANNELS)}",
                              file, line, hint=known)
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise SchemaError(f"'{name}' must be a mapping of options, found "
                              f"{type(options).__name__}.", file, line)
        key_lines = options.key_lines if isinstance(options, LineDict) else {}
        allowed = CHANNEL_KEYS[name]
        for key in options:
            if key not in allowed:
                warn(f"credentials.yml: '{name}' does not use the key '{key}' (it reads: "
                     f"{', '.join(allowed) or 'nothing'}).", file, key_lines.get(key, line))
        read = {str(key): expand_env(plain(value), file, key_lines.get(key))
                for key, value in options.items() if key in allowed}
        _check_values(str(name), read, file, line, key_lines)
        channels[str(name)] = read
    return channels


# The first path segments of the server's own routes: a socket.io endpoint there would
# answer in their place (the webhooks, the HTTP API, the health check at "/").
SERVER_PATHS = ("", "webhooks", "model", "conversations", "status", "version", "domain")


def _check_values(name: str, options: dict[str, Any], file: str, line: int | None,
                  key_lines: dict[str, int]) -> None:
    missing = [key for key in REQUIRED_KEYS.get(name, ()) if options.get(key) in (None, "")]
    if missing:
        raise SchemaError(f"the '{name}' channel needs {', '.join(map(repr, missing))}.",
                          file, line, hint=f"Give {missing[0]}: under '{name}:'.")
    path = options.get("socketio_path") if name == SOCKETIO else None
    if path is not None and not isinstance(path, (dict, list)):
        first = str(path).strip("/").split("/")[0]
        if first in SERVER_PATHS:
            raise SchemaError(f"'{name}: socketio_path' {str(path)!r} lies where the server "
                              f"answers itself (/{first}…): the socket.io endpoint would take "
                              "those requests.", file, key_lines.get("socketio_path", line),
                              hint="Use a path of its own, e.g. /socket.io (Rasa's default).")
    for key, value in options.items():
        wanted = dict if key in MAPPING_KEYS else list if key in LIST_KEYS else None
        if value is None:
            continue
        if wanted is None and isinstance(value, (dict, list)):
            raise SchemaError(f"'{name}: {key}' must be a single value, found "
                              f"{type(value).__name__}.", file, key_lines.get(key, line))
        if wanted is not None and not isinstance(value, wanted):
            raise SchemaError(f"'{name}: {key}' must be a {'mapping' if wanted is dict else 'list'}"
                              f", found {type(value).__name__}.", file,
                              key_lines.get(key, line))
