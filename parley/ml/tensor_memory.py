"""A torch tensor's memory as a numpy array, for Parley's C kernels (which take buffers)."""

from __future__ import annotations

import numpy as np
import torch


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 or bfloat16 tensor's memory as a numpy array, no copy
    (bfloat16, which numpy lacks, seen as 16-bit integers). As few torch calls as may be:
    a kernel's call on a small activation costs a few dozen microseconds, each torch call
    one or two (a DIET step makes ~100 of these)."""
    assert tensor.dtype in (torch.float32, torch.bfloat16) and tensor.is_contiguous()
    if tensor.requires_grad:
        tensor = tensor.detach()
    return (tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy()
