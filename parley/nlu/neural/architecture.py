"""What fixes DIET's network: its shape and its losses, from the component's parameters.

Apart from :mod:`parley.nlu.neural.model` (which re-exports it) because it imports no
PyTorch: a loaded model reads it to run its weights in numpy
(:mod:`parley.nlu.neural.predictor`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Architecture:
    """Everything that fixes the network's shape and its losses (from the component's params)."""

    layout: list[list[Any]]  # [origin, is_sparse, dim] per feature block
    n_labels: int
    label_features: int  # width of the label input (n_labels for one-hot labels)
    tag_sets: dict[str, int] = field(default_factory=dict)  # entity/role/group → number of tags
    dense_dimension: int = 128
    label_dense_dimension: int = 20
    concat_dimension: int = 128
    hidden_layers_text: list[int] = field(default_factory=list)
    hidden_layers_label: list[int] = field(default_factory=list)
    transformer_layers: int = 2
    transformer_size: int = 256
    attention_heads: int = 4
    key_relative_attention: bool = False
    value_relative_attention: bool = False
    max_relative_position: int = 5
    unidirectional_encoder: bool = False
    embedding_dimension: int = 20
    drop_rate: float = 0.2
    drop_rate_attention: float = 0.0
    sparse_input_dropout: bool = True
    dense_input_dropout: bool = False
    connection_density: float = 0.2
    similarity_type: str = "inner"  # inner | cosine
    loss_type: str = "cross_entropy"  # cross_entropy | margin
    negative_examples: int = 20
    maximum_positive_similarity: float = 0.8
    maximum_negative_similarity: float = -0.4
    use_maximum_negative_similarity: bool = True
    negative_margin_scale: float = 0.8
    scale_loss: bool = False
    constrain_similarities: bool = False
    masked_language_model: bool = False
    intent_classification: bool = True
