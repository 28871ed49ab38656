"""The messaging-platform channels, by their credentials.yml name."""

from __future__ import annotations

from typing import Any

from parley.serving.http.channels.base import PlatformChannel
from parley.serving.http.channels.callback import CallbackChannel
from parley.serving.http.channels.facebook import FacebookChannel
from parley.serving.http.channels.slack import SlackChannel
from parley.serving.http.channels.telegram import TelegramChannel
from parley.serving.http.channels.twilio import TwilioChannel

__all__ = ["PLATFORMS", "platform_channels"]

PLATFORMS: dict[str, type[PlatformChannel]] = {
    channel.name: channel for channel in (CallbackChannel, TelegramChannel, SlackChannel,
                                          FacebookChannel, TwilioChannel)}


def platform_channels(channels: dict[str, dict[str, Any]]) -> list[PlatformChannel]:
    """The platform channels among ``channels`` (name → credentials.yml options)."""
    return [PLATFORMS[name].from_credentials(options)
            for name, options in channels.items() if name in PLATFORMS]
