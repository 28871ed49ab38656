"""The numpy attention in chunks of queries: the same result as all the scores at once,
and memory bounded whatever the message's length (issue 22: a 200,000-token message asked
for 596 GiB)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from parley.ml import numpy_net
from parley.ml.numpy_net import Attention, TransformerEncoder, softmax

UNITS, HEADS, SPAN = 16, 4, 3


def _arrays(prefix: str, units: int, relative: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in ((f"{prefix}.query_key_value", (3 * units, units)),
                        (f"{prefix}.out", (units, units))):
        arrays[f"{name}.weight"] = rng.standard_normal(shape).astype(np.float32) / math.sqrt(units)
        arrays[f"{name}.mask"] = np.ones(shape, dtype=np.float32)
    arrays[f"{prefix}.out.bias"] = rng.standard_normal(units).astype(np.float32) * 0.1
    if relative:
        for name in ("key_relative", "value_relative"):
            arrays[f"{prefix}.{name}"] = rng.standard_normal(
                (2 * SPAN + 1, units // HEADS)).astype(np.float32)
    return arrays


def _attention(relative: bool, unidirectional: bool) -> Attention:
    return Attention(_arrays("a", UNITS, relative), "a", UNITS, HEADS, 1.0, relative, relative,
                     SPAN, unidirectional, numpy_net.MaskedDense)


def _reference(layer: Attention, x: np.ndarray) -> np.ndarray:
    """All of the scores at once, relative attention from T × T × depth tables: the
    formula of parley.ml.layers.MultiHeadAttention, written out in float64."""
    b, t, _ = x.shape
    h, d = layer.heads, layer.depth
    qkv = (x.reshape(b * t, -1).astype(np.float64) @ layer.query_key_value.kernel.astype(np.float64))
    q, k, v = (qkv.reshape(b, t, 3, h, d)[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    scale = 1 / math.sqrt(d)
    scores = q @ k.transpose(0, 1, 3, 2) * scale
    bucket = np.clip(np.arange(t)[None, :] - np.arange(t)[:, None], -SPAN, SPAN) + SPAN
    if layer.key_relative is not None:
        scores += np.einsum("bhid,ijd->bhij", q, layer.key_relative[bucket].astype(np.float64)) * scale
    if layer.unidirectional:
        scores[..., np.arange(t)[None, :] > np.arange(t)[:, None]] = -np.inf
    weights = softmax(scores)
    out = weights @ v
    if layer.value_relative is not None:
        out += np.einsum("bhij,ijd->bhid", weights, layer.value_relative[bucket].astype(np.float64))
    rows = out.transpose(0, 2, 1, 3).reshape(b * t, -1)
    return (rows @ layer.out.kernel + layer.out.bias).reshape(b, t, -1)


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("unidirectional", [False, True])
def test_chunks_should_give_what_all_scores_at_once_give(relative, unidirectional, monkeypatch):
    layer = _attention(relative, unidirectional)
    x = np.random.default_rng(1).standard_normal((2, 300, UNITS)).astype(np.float32)
    whole = layer(x)  # 2 × 4 × 300² scores: one chunk
    np.testing.assert_allclose(whole, _reference(layer, x), atol=2e-5)
    monkeypatch.setattr(numpy_net, "ATTENTION_ENTRIES", 2 * HEADS * 300 * 7)  # chunks of 7
    chunked = layer(x)
    np.testing.assert_allclose(chunked, whole, atol=2e-6)
    assert not np.array_equal(chunked, np.zeros_like(chunked))
    # one row alone (TED's last turn), in chunks or not
    np.testing.assert_allclose(layer(x, row=-1), whole[:, -1:], atol=2e-6)


def test_a_chunked_encoder_should_give_the_encoders_result(monkeypatch):
    arrays: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(2)
    for name, shape in (("e.project", (UNITS, 8)), ("e.blocks.0.ffn_in", (4 * UNITS, UNITS)),
                        ("e.blocks.0.ffn_out", (UNITS, 4 * UNITS))):
        arrays[f"{name}.weight"] = rng.standard_normal(shape).astype(np.float32) / math.sqrt(shape[1])
        arrays[f"{name}.mask"] = np.ones(shape, dtype=np.float32)
        arrays[f"{name}.bias"] = np.zeros(shape[0], dtype=np.float32)
    arrays.update(_arrays("e.blocks.0.attention", UNITS, True, seed=3))
    for norm in ("e.blocks.0.norm_attention", "e.blocks.0.norm_ffn", "e.norm"):
        arrays[f"{norm}.weight"] = np.ones(UNITS, dtype=np.float32)
        arrays[f"{norm}.bias"] = np.zeros(UNITS, dtype=np.float32)
    encoder = TransformerEncoder(arrays, "e", 8, 1, UNITS, HEADS, 1.0, True, True, SPAN, False,
                                 numpy_net.MaskedDense)
    x = rng.standard_normal((1, 500, 8)).astype(np.float32)
    whole = encoder(x)
    monkeypatch.setattr(numpy_net, "ATTENTION_ENTRIES", HEADS * 500 * 64)
    np.testing.assert_allclose(encoder(x), whole, atol=1e-5)


def test_a_long_message_should_attend_in_bounded_memory():
    # 8,000 rows, 4 heads: all scores at once would be 1 GB (and as much again for the
    # softmax); in chunks the peak stays near ATTENTION_ENTRIES' 16 MB per array
    layer = _attention(relative=False, unidirectional=False)
    t = 8_000
    x = np.random.default_rng(4).standard_normal((1, t, UNITS)).astype(np.float32)
    tracemalloc.start()
    try:
        out = layer(x, row=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (1, t, UNITS) and np.isfinite(out).all()
    assert peak < 120 * 2**20, f"peak {peak / 2**20:.0f} MB"
    # a few rows of it against the formula on those rows alone
    for row in (0, 3_000, t - 1):
        np.testing.assert_allclose(out[:, row], layer(x, row=row)[:, 0], atol=2e-6)
