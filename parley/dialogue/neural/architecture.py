"""What fixes TED's network: its :class:`Architecture` (from the policy's parameters, saved
with the model) and how a state's attributes lie side by side. Free of PyTorch: the numpy
predictor (:mod:`parley.dialogue.neural.predictor`) reads it when a model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Attributes whose dense vectors are encoded into encoding_dimension (Rasa's
# SENTENCE_FEATURES_TO_ENCODE): each pair shares one position of the state.
ENCODED = {"intent": "user", "text": "user", "action_name": "action", "action_text": "action"}
# The attributes in the order a state's row lays them out (saved widths come back from JSON
# with their keys sorted: the order must not depend on them).
ORDER = ("intent", "text", "entities", "action_name", "action_text", "slots", "active_loop")


@dataclass
class EntityShape:
    """What fixes TED's entity head's shape (``Architecture.entities``, as a dict)."""

    tags: list[str]  # NO_ENTITY first
    token_width: int  # width of a token's features
    dense_dimension: int = 128
    hidden_layers: list[int] | None = None
    transformer_layers: int = 1
    transformer_size: int = 128
    bilou: bool = True


@dataclass
class Architecture:
    """What fixes TED's shape and loss (from the policy's parameters)."""

    widths: dict[str, int]  # attribute → input width (0: absent)
    causal: bool  # whole dialogues, each row seeing those before it (max_history null)
    label_widths: dict[str, int]
    n_labels: int
    dense_dimension: dict[str, int] = field(default_factory=dict)
    encoding_dimension: int = 50
    hidden_layers: dict[str, list[int]] = field(default_factory=dict)
    transformer_layers: int = 1
    transformer_size: int = 128
    attention_heads: int = 4
    key_relative_attention: bool = False
    value_relative_attention: bool = False
    max_relative_position: int = 5
    embedding_dimension: int = 20
    drop_rate: float = 0.0
    drop_rate_dialogue: float = 0.1
    drop_rate_label: float = 0.0
    drop_rate_attention: float = 0.0
    input_dropout: bool = True
    connection_density: float = 0.2
    similarity_type: str = "inner"
    loss_type: str = "cross_entropy"
    negative_examples: int = 20
    maximum_positive_similarity: float = 0.8
    maximum_negative_similarity: float = -0.2
    use_maximum_negative_similarity: bool = True
    negative_margin_scale: float = 0.8
    scale_loss: bool = True
    constrain_similarities: bool = False
    # The entity head's shape (``EntityShape`` as a dict); None: no entity recognition.
    entities: dict[str, Any] | None = None
    unidirectional_encoder: bool = False  # the text transformer's (entity head)
