"""Bot messages as channels send them, dispatched as Rasa's ``OutputChannel`` does.

A :class:`BotUttered` event may hold text, buttons or quick replies, an image, an
attachment, elements and a custom payload at once. :func:`bot_message` gives it whole, as
Rasa hands it to a channel; :meth:`OutputChannel.render` then takes its parts in Rasa's
order — quick replies (with the text), else buttons (with the text), else the text; then
custom, image, attachment, elements — and asks the channel for what each part becomes.
A channel overrides what its platform can show; the rest falls back as in Rasa: quick
replies become buttons, buttons become numbered lines of text (``1: great
(/mood_great)``), an element becomes ``title : subtitle`` with its buttons, an image
``Image: <url>``, an attachment ``Attachment: …``, a custom payload its JSON as text.

:class:`CollectingOutput` is Rasa's collecting channel, which the REST and callback
channels and the HTTP API answer with: ``{"recipient_id", "text"}``, ``{"recipient_id",
"text", "buttons"}``, ``{"recipient_id", "image"}``, ``{"recipient_id", "attachment"}``,
``{"recipient_id", "custom"}`` (a text is split at blank lines). As in Rasa, quick replies
come out there as ``buttons`` and elements as ``title : subtitle`` texts with their buttons.
Rendering sends nothing: it is pure, and the channel sends what it gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from parley.data.events import BotUttered

__all__ = ["CollectingOutput", "OutputChannel", "bot_message", "button_text",
           "channel_messages", "collect", "text_parts"]

T = TypeVar("T")
Options = Mapping[str, Any]


def bot_message(event: BotUttered) -> dict[str, Any]:
    """The message a channel is given for ``event``: its data, its text and its metadata
    (``utter_action``, a response's extra keys such as Telegram's ``button_type``) in one
    mapping, as Rasa's ``BotUttered.message()``. The attachment Rasa copies from the image
    for old clients is left out when it is that image, so the image goes out once."""
    message = {**event.data, "text": event.text, **event.metadata}
    if message.get("attachment") == message.get("image"):
        message["attachment"] = None
    return message


def text_parts(text: str) -> list[str]:
    """A text as Rasa's channels send it: one message per paragraph (split at blank lines)."""
    return text.strip().split("\n\n")


def button_text(button: Mapping[str, Any], index: int) -> str:
    """A button as a line of text, as Rasa's channels without buttons show it:
    ``2: title (payload) - {other keys as JSON}``."""
    rest = dict(button)
    title = rest.pop("title", "")
    payload = f" ({rest.pop('payload')})" if "payload" in rest else ""
    details = f" - {json.dumps(rest, sort_keys=True, default=str)}" if rest else ""
    return f"{index + 1}: {title}{payload}{details}"


def _dicts(value: Any) -> list[dict[str, Any]]:
    # Custom actions can send anything; what is not a mapping cannot be a button.
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


class OutputChannel(Generic[T]):
    """What one channel sends for a bot message: override the parts the platform shows.

    Each method returns the channel's outgoing items (API calls, payloads …) for one part of
    the message; ``options`` are the message's other keys, as Rasa passes them along. Only
    :meth:`text` must be given; the others fall back as Rasa's base channel does.
    """

    def render(self, recipient_id: str, message: Mapping[str, Any]) -> list[T]:
        """Everything ``message`` (see :func:`bot_message`) becomes, in Rasa's order."""
        rest = dict(message)
        out: list[T] = []
        quick_replies, buttons = rest.pop("quick_replies", None), rest.pop("buttons", None)
        text = _text(rest.pop("text", None))
        if quick_replies:
            out += self.quick_replies(recipient_id, text, _dicts(quick_replies), rest)
        elif buttons:
            out += self.text_with_buttons(recipient_id, text, _dicts(buttons), rest)
        elif text:
            out += self.text(recipient_id, text, rest)
        custom, image = rest.pop("custom", None), rest.pop("image", None)
        attachment, elements = rest.pop("attachment", None), rest.pop("elements", None)
        if custom:
            out += self.custom(recipient_id, custom, rest)
        if image:
            out += self.image(recipient_id, str(image), rest)
        if attachment:
            out += self.attachment(recipient_id, attachment, rest)
        if elements:
            out += self.elements(recipient_id, _dicts(elements), rest)
        return out

    def text(self, recipient_id: str, text: str, options: Options) -> list[T]:
        raise NotImplementedError(f"{type(self).__name__} must say how it sends a text.")

    def text_with_buttons(self, recipient_id: str, text: str | None,
                          buttons: list[dict[str, Any]], options: Options) -> list[T]:
        out = self.text(recipient_id, text or "", options)
        for index, button in enumerate(buttons):
            out += self.text(recipient_id, button_text(button, index), options)
        return out

    def quick_replies(self, recipient_id: str, text: str | None,
                      quick_replies: list[dict[str, Any]], options: Options) -> list[T]:
        # Rasa's base channel passes no options on here (Telegram's button_type …).
        return self.text_with_buttons(recipient_id, text, quick_replies, {})

    def image(self, recipient_id: str, image: str, options: Options) -> list[T]:
        return self.text(recipient_id, f"Image: {image}", options)

    def attachment(self, recipient_id: str, attachment: Any, options: Options) -> list[T]:
        return self.text(recipient_id, f"Attachment: {attachment}", options)

    def elements(self, recipient_id: str, elements: list[dict[str, Any]],
                 options: Options) -> list[T]:
        out: list[T] = []
        for element in elements:
            title = f"{element.get('title', '')} : {element.get('subtitle', '')}"
            out += self.text_with_buttons(recipient_id, title,
                                          _dicts(element.get("buttons", [])), {})
        return out

    def custom(self, recipient_id: str, custom: Any, options: Options) -> list[T]:
        return self.text(recipient_id, json.dumps(custom, default=str), options)


class CollectingOutput(OutputChannel[dict[str, Any]]):
    """Rasa's ``CollectingOutputChannel``: the messages the REST channel answers with."""

    @staticmethod
    def _message(recipient_id: str, **parts: Any) -> dict[str, Any]:
        return {"recipient_id": recipient_id,
                **{key: value for key, value in parts.items() if value is not None}}

    def text(self, recipient_id: str, text: str, options: Options) -> list[dict[str, Any]]:
        return [self._message(recipient_id, text=part) for part in text_parts(text)]

    def text_with_buttons(self, recipient_id: str, text: str | None,
                          buttons: list[dict[str, Any]], options: Options
                          ) -> list[dict[str, Any]]:
        return [self._message(recipient_id, text=text, buttons=buttons)]

    def image(self, recipient_id: str, image: str, options: Options) -> list[dict[str, Any]]:
        return [self._message(recipient_id, image=image)]

    def attachment(self, recipient_id: str, attachment: Any, options: Options
                   ) -> list[dict[str, Any]]:
        return [self._message(recipient_id, attachment=attachment)]

    def custom(self, recipient_id: str, custom: Any, options: Options) -> list[dict[str, Any]]:
        return [self._message(recipient_id, custom=custom)]


def collect(recipient_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Whole bot messages (:func:`bot_message`) as Rasa's collecting channel gives them."""
    collector = CollectingOutput()
    return [out for message in messages for out in collector.render(recipient_id, message)]


def channel_messages(recipient_id: str, event: BotUttered) -> list[dict[str, Any]]:
    """One bot event as Rasa's collecting channel gives it (the REST channel's answer)."""
    return CollectingOutput().render(recipient_id, bot_message(event))
