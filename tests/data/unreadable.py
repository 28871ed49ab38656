"""chmod 000 for tests: tests run as root, who reads anything, so the OS refusal is
simulated (on ``os.open`` for a file, ``os.scandir`` for a folder) for that path only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def make_unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path.chmod(0)
    if os.geteuid() != 0:
        return
    target = os.path.abspath(path)
    real_open, real_scandir = os.open, os.scandir

    def refuse(name: Any) -> None:
        if isinstance(name, (str, os.PathLike)) and os.path.abspath(os.fspath(name)) == target:
            raise PermissionError(13, "Permission denied", os.fspath(name))

    def fake_open(name: Any, *args: Any, **kwargs: Any) -> int:
        refuse(name)
        return real_open(name, *args, **kwargs)

    def fake_scandir(name: Any = ".") -> Any:
        refuse(name)
        return real_scandir(name)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "scandir", fake_scandir)
