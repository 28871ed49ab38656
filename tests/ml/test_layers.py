"""Dropout as the layers use it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_drops_the_rate_and_keeps_the_mean(dtype):
    from parley.ml.layers import dropout

    torch.manual_seed(0)
    x = torch.ones(400, 1000, dtype=dtype)
    y = dropout(x, 0.2, training=True)
    assert y.dtype == dtype
    assert abs((y == 0).float().mean().item() - 0.2) < 0.005
    assert abs(y.float().mean().item() - 1.0) < 0.01
    assert dropout(x, 0.2, training=False) is x
