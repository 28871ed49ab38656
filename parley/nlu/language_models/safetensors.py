"""Read ``.safetensors`` weight files with numpy alone (no ``safetensors`` package).

The format: an 8-byte little-endian header length ``n``, ``n`` bytes of a JSON object
mapping tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into
the data that follows the header; an optional ``"__metadata__"`` holds strings), then the
raw little-endian tensor bytes. Nothing in it can run code.

Every size in the header is checked against the file before anything is read, so a
corrupt or hostile file gives a :class:`~parley.errors.ModelArchiveError` naming the
problem, never a crash or an allocation larger than the file.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from parley.errors import ModelArchiveError

# The safetensors library refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000

# File dtype → (numpy dtype as stored, numpy dtype returned).
_DTYPES: dict[str, tuple[str, str]] = {
    "F64": ("<f8", "<f8"), "F32": ("<f4", "<f4"), "F16": ("<f2", "<f2"),
    "BF16": ("<u2", "<f4"),  # numpy has no bfloat16: widened to float32 on reading
    "I64": ("<i8", "<i8"), "I32": ("<i4", "<i4"), "I16": ("<i2", "<i2"), "I8": ("i1", "i1"),
    "U64": ("<u8", "<u8"), "U32": ("<u4", "<u4"), "U16": ("<u2", "<u2"), "U8": ("u1", "u1"),
    "BOOL": ("?", "?"),
}


_Entry = tuple[str, str, tuple[int, ...], int, int]


def _entries(path: Path, header: dict[str, Any], data_size: int) -> list[_Entry]:
    """``(name, dtype, shape, begin, end)`` of each tensor, after checking every field."""
    def bad(what: str) -> ModelArchiveError:
        return ModelArchiveError(f"{path} is not a valid safetensors file: {what}.")

    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in info.items()):
                raise bad("'__metadata__' must map strings to strings")
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor '{name}' needs exactly 'dtype', 'shape' and 'data_offsets'")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPES:
            raise bad(f"tensor '{name}' has dtype {dtype!r}; readable: {', '.join(_DTYPES)}")
        if not (isinstance(shape, list) and all(
                type(d) is int and d >= 0 for d in shape)):
            raise bad(f"tensor '{name}' has shape {shape!r}, not a list of sizes >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                type(o) is int for o in offsets)):
            raise bad(f"tensor '{name}' has data_offsets {offsets!r}, not [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise bad(f"tensor '{name}' spans bytes {begin}-{end}, outside the "
                      f"{data_size} data bytes of the file")
        expected = math.prod(shape) * np.dtype(_DTYPES[dtype][0]).itemsize
        if end - begin != expected:
            raise bad(f"tensor '{name}' of shape {shape} and dtype {dtype} needs {expected} "
                      f"bytes, its offsets give {end - begin}")
        entries.append((name, dtype, tuple(shape), begin, end))
    spans = sorted((begin, end, name) for name, _, _, begin, end in entries)
    for (_, end_a, name_a), (begin_b, _, name_b) in zip(spans, spans[1:], strict=False):
        if begin_b < end_a:
            raise bad(f"tensors '{name_a}' and '{name_b}' overlap")
    return entries


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of the file as numpy arrays (BF16 widened to float32)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except OSError as error:
        raise ModelArchiveError(f"cannot read the weights file {path}: {error}") from None
    with handle:
        if size < 8:
            raise ModelArchiveError(f"{path} is not a valid safetensors file: it is only "
                                    f"{size} bytes long.")
        (header_size,) = struct.unpack("<Q", handle.read(8))
        if not 2 <= header_size <= min(size - 8, MAX_HEADER_BYTES):
            raise ModelArchiveError(
                f"{path} is not a valid safetensors file: its header claims {header_size} "
                f"bytes but the file has {size - 8} after the length field "
                f"(and headers are at most {MAX_HEADER_BYTES})."
            )
        try:
            header = json.loads(handle.read(header_size).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise ModelArchiveError(f"{path} is not a valid safetensors file: its header "
                                    f"is not JSON ({error}).") from None
        if not isinstance(header, dict):
            raise ModelArchiveError(f"{path} is not a valid safetensors file: its header "
                                    "is not a JSON object.")
        data_start = 8 + header_size
        tensors: dict[str, np.ndarray] = {}
        for name, dtype, shape, begin, end in _entries(path, header, size - data_start):
            stored, returned = _DTYPES[dtype]
            handle.seek(data_start + begin)
            raw = handle.read(end - begin)
            if len(raw) != end - begin:  # the file shrank while we read it
                raise ModelArchiveError(f"{path}: tensor '{name}' is cut short.")
            array = np.frombuffer(raw, dtype=stored).reshape(shape)
            if dtype == "BF16":
                array = (array.astype("<u4") << 16).view("<f4")
            tensors[name] = array.astype(np.dtype(returned).newbyteorder("="), copy=True)
    return tensors
