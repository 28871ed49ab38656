"""Parley: train Rasa 3.x assistants fast on a plain CPU.

Importing ``parley`` stays light: no torch, sklearn or server imports happen here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
