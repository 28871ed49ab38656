"""Bot messages as channels send them.

A :class:`BotUttered` event may hold text, buttons, an image, an attachment and a custom
payload at once; channels send them as separate messages, in Rasa's order (text with its
buttons or quick replies, then custom, image, attachment, elements). :func:`channel_messages`
gives them in the shape of Rasa's collecting channel, which the REST webhook returns:
``{"recipient_id", "text"}``, ``{"recipient_id", "image"}``, ``{"recipient_id", "text",
"buttons"}`` … (a text is split at blank lines, as Rasa splits it).
"""

from __future__ import annotations

from typing import Any

from parley.data.events import BotUttered

__all__ = ["channel_messages"]


def _message(recipient_id: str, **parts: Any) -> dict[str, Any]:
    return {"recipient_id": recipient_id,
            **{key: value for key, value in parts.items() if value is not None}}


def channel_messages(recipient_id: str, event: BotUttered) -> list[dict[str, Any]]:
    data = dict(event.data)
    text = event.text
    out: list[dict[str, Any]] = []
    buttons = data.get("quick_replies") or data.get("buttons")
    if buttons:
        out.append(_message(recipient_id, text=text, buttons=buttons))
    elif text:
        out += [_message(recipient_id, text=part) for part in text.strip().split("\n\n")]
    if data.get("custom"):
        out.append(_message(recipient_id, custom=data["custom"]))
    image = data.get("image")
    if image:
        out.append(_message(recipient_id, image=image))
    attachment = data.get("attachment")
    # Rasa copies an image into the attachment for old clients; it is sent once.
    if attachment and attachment != image:
        out.append(_message(recipient_id, attachment=attachment))
    for element in data.get("elements") or []:
        title = f"{element.get('title', '')} : {element.get('subtitle', '')}"
        out.append(_message(recipient_id, text=title, buttons=element.get("buttons") or []))
    return out
