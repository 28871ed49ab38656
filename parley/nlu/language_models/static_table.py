"""A static embedding table: one vector per word piece, read with numpy alone.

A table is an ``.npz`` file (read with ``allow_pickle=False``: it holds plain arrays only):

    pieces    the word-piece vocabulary, row i the piece of id i (a unicode array)
    vectors   one row per piece, int8 (a piece with an all-zero row is not used)
    scales    float32, one per row: a row's vector is ``vectors[i] * scales[i]`` (int8 with
              a scale per row keeps every vector to 0.4% of its largest coordinate, at a
              quarter of float32's size)
    about     a JSON object (a 0-d unicode array): the tokenizer's options (``lowercase``,
              ``strip_accents``), where the vectors come from and how they were made

It is what :mod:`parley.nlu.language_models.distill` makes from a BERT model, and what
``StaticEmbeddingFeaturizer`` looks messages up in: no torch, no model files.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parley.errors import ConfigError, ModelArchiveError
from parley.nlu.language_models.wordpiece import CLS, PAD, SEP, UNK, WordPieceTokenizer

# Tables shipped inside Parley: name → file beside this module (tables/NAME.npz).
PACKAGED_TABLES = ("minilm-l6-v2-static",)
DEFAULT_TABLE = PACKAGED_TABLES[0]
TABLES_DIR = Path(__file__).parent / "tables"
TABLE_ARRAYS = ("pieces", "vectors", "scales", "about")


@dataclass(frozen=True)
class StaticTable:
    """A loaded table: its vectors (float32, pieces' rows), tokenizer, and what it is."""

    vectors: np.ndarray
    tokenizer: WordPieceTokenizer
    about: dict[str, Any]
    sha256: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def table_path(embeddings: str) -> Path:
    """The file of a packaged table's name, or ``embeddings`` itself as a path."""
    if embeddings in PACKAGED_TABLES:
        return TABLES_DIR / f"{embeddings}.npz"
    path = Path(embeddings).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"embeddings '{embeddings}' is neither a table Parley ships "
            f"({', '.join(PACKAGED_TABLES)}) nor an .npz file; make one with "
            "scripts/distill_static_embeddings.py.")
    return path


def write_table(path: Path, pieces: list[str], vectors: np.ndarray, about: dict[str, Any]) -> None:
    """Write a table (compressed .npz; the same inputs give the same bytes)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(vectors).max(axis=1) / 127.0
    safe = np.where(scales > 0, scales, 1.0)
    arrays = {"pieces": np.array(pieces, dtype=str),
              "vectors": np.rint(vectors / safe[:, None]).astype(np.int8),
              "scales": scales.astype(np.float32),
              "about": np.array(json.dumps(about, sort_keys=True))}
    path.parent.mkdir(parents=True, exist_ok=True)
    # np.savez_compressed stamps the current time into the zip; fixed dates keep the file
    # reproducible byte for byte.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in TABLE_ARRAYS:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as handle:
                np.lib.format.write_array(handle, arrays[name], allow_pickle=False)


def read_table(path: Path) -> StaticTable:
    """Read and check a table; a ModelArchiveError says what is wrong with the file."""
    try:
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in TABLE_ARRAYS if name not in data.files]
            if missing:
                raise ModelArchiveError(f"{path} is not a static embedding table: it lacks "
                                        f"{', '.join(missing)}.")
            pieces = [str(p) for p in data["pieces"].tolist()]
            vectors = data["vectors"].astype(np.float32) * data["scales"].astype(np.float32)[:, None]
            about = json.loads(str(data["about"]))
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelArchiveError(f"cannot read the static embedding table {path}: {error}") from None
    if vectors.ndim != 2 or len(vectors) != len(pieces) or not np.isfinite(vectors).all():
        raise ModelArchiveError(f"{path}: the vectors ({vectors.shape}) do not fit the "
                                f"{len(pieces)} pieces, or hold NaN or infinite values.")
    if not isinstance(about, dict):
        raise ModelArchiveError(f"{path}: 'about' is not a JSON object.")
    vocab: dict[str, int] = {}
    for index, piece in enumerate(pieces):
        vocab.setdefault(piece, index)
    if any(token not in vocab for token in (UNK, CLS, SEP, PAD)):
        raise ModelArchiveError(f"{path}: the pieces are not a BERT vocabulary.")
    options = {key: about[key] for key in ("lowercase", "strip_accents") if key in about}
    return StaticTable(vectors, WordPieceTokenizer(vocab, **options), about,
                       hashlib.sha256(raw).hexdigest())
