"""A BERT encoder in PyTorch, built from a model's ``config.json`` and its weights.

Embeddings (word + position + token type, then LayerNorm) feed ``num_hidden_layers``
post-norm encoder layers of multi-head self-attention and a GELU feed-forward block. The
parameter names follow the checkpoints' own (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight`` …), so weights load with one renaming:
``attention.self`` (an awkward attribute name in Python) → ``attention.heads``.

Inference only: the model is put in eval mode and has no dropout at all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

from parley.errors import ConfigError, ModelArchiveError

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}
BERT_MODEL_TYPES = ("bert",)
# Checkpoint entries a feature extractor does not use (pre-training heads included).
_UNUSED = ("embeddings.position_ids", "pooler.", "cls.")


@dataclass(frozen=True)
class BertConfig:
    """The part of a Hugging Face ``config.json`` that shapes a BERT encoder."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_dict(cls, data: Any, where: str) -> BertConfig:
        if not isinstance(data, dict):
            raise ModelArchiveError(f"{where} is not a JSON object.")
        model_type = data.get("model_type", "bert")
        if model_type not in BERT_MODEL_TYPES:
            raise ConfigError(
                f"{where} describes a '{model_type}' model; Parley's LanguageModelFeaturizer "
                "runs BERT-architecture models only (model_type 'bert')."
            )
        if data.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"{where}: only absolute position embeddings are supported.")
        values: dict[str, Any] = {}
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            default = cls.__dataclass_fields__[name].default
            if name not in data and default is dataclasses.MISSING:
                raise ModelArchiveError(f"{where} lacks '{name}'.")
            value = data.get(name, default)
            if type(value) is not int or value < 1:
                raise ModelArchiveError(f"{where}: '{name}' must be a whole number >= 1, "
                                        f"not {value!r}.")
            values[name] = value
        if values["hidden_size"] % values["num_attention_heads"]:
            raise ModelArchiveError(f"{where}: hidden_size {values['hidden_size']} is not a "
                                    f"multiple of num_attention_heads {values['num_attention_heads']}.")
        act = data.get("hidden_act", "gelu")
        if act not in _ACTIVATIONS:
            raise ConfigError(f"{where}: hidden_act {act!r} is not supported; "
                              f"supported: {', '.join(_ACTIVATIONS)}.")
        eps = data.get("layer_norm_eps", 1e-12)
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
            raise ModelArchiveError(f"{where}: layer_norm_eps must be a small positive number.")
        return cls(**values, hidden_act=act, layer_norm_eps=float(eps))


# Parameters are made without values (on the meta device, so no memory) and the
# checkpoint's tensors assigned to them; torch's own layers would first initialise them
# randomly, which on the meta device imports all of torch's compiler (seconds).
def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape, device="meta"), requires_grad=False)


class _Linear(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = _param(n_out, n_in)
        self.bias = _param(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _Embedding(nn.Module):
    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.weight = _param(n, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class _LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = _param(dim)
        self.bias = _param(dim)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class _Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = _Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = _Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = _Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = _LayerNorm(config.hidden_size, config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # Single sentences only: every token has type 0.
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings.weight[0])
        out: torch.Tensor = self.LayerNorm(x)
        return out


class _Heads(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.query = _Linear(config.hidden_size, config.hidden_size)
        self.key = _Linear(config.hidden_size, config.hidden_size)
        self.value = _Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.n_heads, hidden // self.n_heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=mask)
        return attended.transpose(1, 2).reshape(batch, length, hidden)


class _AddNorm(nn.Module):
    """``LayerNorm(residual + dense(x))``, BERT's post-norm sub-layer output."""

    def __init__(self, inner: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = _Linear(inner, hidden)
        self.LayerNorm = _LayerNorm(hidden, eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.LayerNorm(residual + self.dense(x))
        return out


class _Attention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.heads = _Heads(config)
        self.output = _AddNorm(config.hidden_size, config.hidden_size, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.output(self.heads(x, mask), x)
        return out


class _Intermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.intermediate_size)
        self.act = _ACTIVATIONS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.dense(x))
        return out


class _Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(config)
        self.intermediate = _Intermediate(config)
        self.output = _AddNorm(config.intermediate_size, config.hidden_size, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask)
        out: torch.Tensor = self.output(self.intermediate(x), x)
        return out


class _Encoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))


class BertModel(nn.Module):
    """The BERT encoder: ids and attention mask in, last hidden states out."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``batch × length`` ids and 0/1 mask → ``batch × length × hidden`` states."""
        # True where a key may be attended to; broadcast over heads and queries.
        mask = attention_mask.bool()[:, None, None, :]
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x

    @classmethod
    def from_weights(cls, config: BertConfig, tensors: dict[str, np.ndarray],
                     where: str) -> BertModel:
        """Build the model around ``tensors`` (checkpoint names), checking every shape.

        The modules hold no memory until the weights are assigned, so nothing is allocated
        from the config's sizes: a config that disagrees with the weights is an error, not a
        huge allocation.
        """
        state: dict[str, torch.Tensor] = {}
        for name, array in tensors.items():
            key = name.removeprefix("bert.")
            if key.startswith(_UNUSED):
                continue
            if array.dtype.kind != "f":
                raise ModelArchiveError(f"{where}: weight '{name}' is not floating point.")
            state[key.replace(".attention.self.", ".attention.heads.")] = torch.from_numpy(
                np.ascontiguousarray(array, dtype=np.float32))
        model = cls(config)
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as error:
            detail = str(error).replace("attention.heads.", "attention.self.")
            if len(detail) > 600:
                detail = detail[:600] + " …"
            raise ModelArchiveError(
                f"{where} does not hold the weights its config.json describes: {detail}"
            ) from None
        return model.eval().requires_grad_(False)
