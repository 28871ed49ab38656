"""What the runtime needs of a trained model: its domain, NLU, and the next action.

The processor takes any object with these members, never the serving layer's Agent (the
runtime sits below serving); :class:`parley.serving.agent.Agent` is one.
"""

from __future__ import annotations

from typing import Any, Protocol

from parley.data.domain import Domain
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.policies.prediction import PolicyPrediction

__all__ = ["ConversationModel"]


class ConversationModel(Protocol):
    domain: Domain | None

    @property
    def model_id(self) -> str | None:
        """The trained model's id (the archive's ``model_id``); events name it."""
        ...

    @property
    def assistant_id(self) -> str | None:
        """config.yml's ``assistant_id`` the model was trained with; events name it."""
        ...

    @property
    def has_nlu(self) -> bool:
        """Whether the model parses text (an NLU part was trained)."""
        ...

    @property
    def has_core(self) -> bool:
        """Whether the model predicts actions (a dialogue part was trained)."""
        ...

    def parse(self, text: str) -> dict[str, Any]:
        """Rasa's parse result for ``text`` (``/intent{...}`` gives the intent directly)."""
        ...

    def predict_next_action(self, tracker: DialogueStateTracker) -> PolicyPrediction:
        """The policies' combined prediction for the conversation as it stands."""
        ...
