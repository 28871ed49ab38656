"""Reading what Slack sends, as Rasa's ``SlackInput`` reads it: the request signature, the
Events API's messages, interactive components' values, and the message's metadata.

Pure functions over the request's headers and parsed body, so the webhook in
:mod:`.slack` only decides what to answer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any

__all__ = ["MAX_SIGNATURE_AGE", "conversation_id", "event_metadata", "interactive_metadata",
           "interactive_value", "is_authentic", "is_supported_channel", "is_user_message",
           "sanitize"]

logger = logging.getLogger(__name__)

MAX_SIGNATURE_AGE = 5 * 60  # seconds; Slack's advice against replayed requests
_LINK = re.compile(r"<(?:mailto:|https?://)[^|>]*\|([^>]*)>")
# Interactive component → where its value is (Rasa's table).
_INTERACTIVE: dict[str, tuple[str, ...]] = {
    "button": ("value",), "select": ("selected_options", "0", "value"),
    "static_select": ("selected_option", "value"),
    "external_select": ("selected_option", "value"),
    "conversations_select": ("selected_conversation",), "users_select": ("selected_user",),
    "channels_select": ("selected_channel",), "overflow": ("selected_option", "value"),
    "datepicker": ("selected_date",),
}


def is_authentic(secret: str, body: bytes, timestamp: str | None, signature: str | None,
                 now: float) -> bool:
    """Whether ``X-Slack-Signature`` is Slack's HMAC of this body, signed in the last five
    minutes (an older one may be a replay)."""
    try:
        stamp = int(timestamp or "")
    except ValueError:
        return False
    if abs(now - stamp) > MAX_SIGNATURE_AGE:
        logger.warning("slack: a request signed %d s ago was refused (older than %d s).",
                       int(now - stamp), MAX_SIGNATURE_AGE)
        return False
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body,
                      hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}", signature or "")


def _event(payload: dict[str, Any]) -> dict[str, Any]:
    event = payload.get("event")
    return event if isinstance(event, dict) else {}


def is_user_message(payload: dict[str, Any]) -> bool:
    """A person's message or mention with text (a bot's, the assistant's own, is not)."""
    event = _event(payload)
    return (event.get("type") in ("message", "app_mention")
            and isinstance(event.get("text"), str) and bool(event["text"])
            and not event.get("bot_id") and event.get("subtype") != "bot_message")


def is_supported_channel(payload: dict[str, Any], out_channel: Any,
                         slack_channel: str | None) -> bool:
    """Direct messages and mentions anywhere; other messages only in ``slack_channel``."""
    event = _event(payload)
    return (event.get("channel_type") == "im" or event.get("type") == "app_mention"
            or (out_channel is not None and out_channel == slack_channel))


def event_metadata(payload: dict[str, Any]) -> dict[str, Any]:
    """Rasa's metadata of an Events API message: where to answer, the thread, and the
    app's users (their mentions are taken out of the text)."""
    event = _event(payload)
    users: list[Any] = []
    if isinstance(payload.get("authed_users"), list):
        users = list(payload["authed_users"])
    elif isinstance(payload.get("authorizations"), list) and payload["authorizations"] \
            and isinstance(payload["authorizations"][0], dict):
        users = [payload["authorizations"][0].get("user_id")]
    return {"out_channel": event.get("channel"),
            "thread_id": event.get("thread_ts", event.get("ts")), "users": users}


def interactive_metadata(payload: dict[str, Any]) -> dict[str, Any]:
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    return {"out_channel": channel.get("id"),
            "thread_id": message.get("thread_ts", message.get("ts")),
            "users": [user["id"]] if "id" in user else []}


def interactive_value(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    """(component type, its value) of an interactive payload's first action; (None, None)
    when it has none, the value None when the component is not one Rasa reads."""
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return None, None
    kind = actions[0].get("type")
    path = _INTERACTIVE.get(kind) if isinstance(kind, str) else None
    if path is None:
        logger.warning("slack: input from an interactive component of type '%s' is not "
                       "read (Rasa reads: %s).", kind, ", ".join(_INTERACTIVE))
        return kind if isinstance(kind, str) else None, None
    value: Any = actions[0]
    for step in path:
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return kind, None
    return kind, value if isinstance(value, str) else None


def sanitize(text: str, user_ids: list[Any]) -> str:
    """The text without mentions of the app's users and with Slack's ``<url|label>`` links
    as their label, as Rasa cleans it before NLU."""
    for user_id in user_ids:
        mention = re.escape(f"<@{user_id}>")
        for pattern, replacement in ((mention + r"\s", ""), (r"\s" + mention, ""),
                                     (mention, " ")):
            text = re.sub(pattern, replacement, text)
    return _LINK.sub(lambda match: match.group(1), text).strip()


def conversation_id(granularity: str, sender: str, channel: Any, thread: Any) -> str:
    """One conversation per sender, per sender and channel, or per sender and thread."""
    if granularity == "channel" and sender and channel:
        return f"{sender}_{channel}"
    if granularity == "thread" and sender and channel and thread:
        return f"{sender}_{channel}_{thread}"
    return sender
