"""credentials.yml: which channels ``parley run`` opens, with Rasa's keys.

::

    rest:                      # the REST webhook, no options
    socketio:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered
      session_persistence: true
      socketio_path: /socket.io

Parley has these two channels. A channel Rasa has and Parley does not (slack, telegram,
facebook …) is an error at its line, not silently skipped: the user expects it to work.
Rasa X's ``rasa:`` section is ignored with a warning. Without a file, the REST channel is
opened (Rasa would open none, which only surprises).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.data.formats.schema import did_you_mean
from parley.data.formats.yaml_io import LineDict, line_of, plain, read_yaml_file
from parley.errors import SchemaError, warn
from parley.runtime.endpoints import expand_env

__all__ = ["CHANNELS", "REST", "SOCKETIO", "read_credentials"]

REST, SOCKETIO = "rest", "socketio"
CHANNELS = (REST, SOCKETIO)
SOCKETIO_KEYS = ("user_message_evt", "bot_message_evt", "session_persistence",
                 "socketio_path", "jwt_key", "jwt_method", "metadata_key", "namespace")
RASA_CHANNELS = ("facebook", "slack", "telegram", "twilio", "twilio_voice", "mattermost",
                 "rocketchat", "botframework", "callback", "webexteams", "hangouts",
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
        raise SchemaError("credentials.yml must be a mapping of channels (rest:, socketio:).",
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
        allowed = SOCKETIO_KEYS if name == SOCKETIO else ()
        for key in options:
            if key not in allowed:
                warn(f"credentials.yml: '{name}' does not use the key '{key}' (it reads: "
                     f"{', '.join(allowed) or 'nothing'}).", file, key_lines.get(key, line))
        channels[str(name)] = {str(key): expand_env(plain(value), file, key_lines.get(key))
                               for key, value in options.items() if key in allowed}
    return channels
