"""Loading Parley's optional C kernels (``parley/ml/_*.c``, compiled by ``pip install``
where a C compiler is there; see setup.py).

A kernel that is missing, built from another version of its source, or turned off with
``PARLEY_NO_C_KERNEL=1`` (to compare with the numpy code, or to rule the kernels out) is
None: its callers then run their numpy code, which computes the same results.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["load_kernel"]


def load_kernel(name: str, version: int) -> ModuleType | None:
    """The compiled module ``parley.ml.<name>`` if it speaks interface ``version``."""
    if os.environ.get("PARLEY_NO_C_KERNEL", "") not in ("", "0"):
        return None
    try:
        module = importlib.import_module(f"parley.ml.{name}")
    except ImportError:
        return None
    return module if getattr(module, "VERSION", None) == version else None
