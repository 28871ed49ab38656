"""The channels users talk through, chosen by credentials.yml: REST and socket.io, and the
messaging platforms of :mod:`.platforms` (callback, Telegram, Slack, Facebook, Twilio)."""
