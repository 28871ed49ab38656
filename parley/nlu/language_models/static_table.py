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
import io
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
    """A loaded table: its int8 rows and their scales, tokenizer, and what it is.

    The rows stay int8 in memory (7.8 MB for 30,522 × 256, not float32's 31 MB): a message
    reads a few of them, made float32 by :meth:`rows`.
    """

    codes: np.ndarray
    scales: np.ndarray
    tokenizer: WordPieceTokenizer
    about: dict[str, Any]
    sha256: str

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    def rows(self, ids: list[int]) -> np.ndarray:
        """The float32 vectors of piece ids ``ids``, one row each."""
        # take(): numpy's fancy indexing costs twice as much for a few rows
        index = np.asarray(ids, dtype=np.intp)
        return self.codes.take(index, axis=0).astype(np.float32) * self.scales.take(index)[:, None]

    @property
    def vectors(self) -> np.ndarray:
        """Every piece's float32 vector (the whole table: for inspection, not parsing)."""
        return self.codes.astype(np.float32) * self.scales[:, None]


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
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            missing = [name for name in TABLE_ARRAYS if name not in data.files]
            if missing:
                raise ModelArchiveError(f"{path} is not a static embedding table: it lacks "
                                        f"{', '.join(missing)}.")
            pieces = [str(p) for p in data["pieces"].tolist()]
            codes = data["vectors"]
            scales = data["scales"].astype(np.float32)
            about = json.loads(str(data["about"]))
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelArchiveError(f"cannot read the static embedding table {path}: {error}") from None
    if codes.dtype != np.int8 or codes.ndim != 2 or len(codes) != len(pieces) \
            or scales.shape != (len(pieces),) or not np.isfinite(scales).all():
        raise ModelArchiveError(f"{path}: the vectors ({codes.dtype}, {codes.shape}) and scales "
                                f"({scales.shape}) do not fit the {len(pieces)} pieces, or "
                                "hold NaN or infinite values.")
    if not isinstance(about, dict):
        raise ModelArchiveError(f"{path}: 'about' is not a JSON object.")
    vocab: dict[str, int] = {}
    for index, piece in enumerate(pieces):
        vocab.setdefault(piece, index)
    if any(token not in vocab for token in (UNK, CLS, SEP, PAD)):
        raise ModelArchiveError(f"{path}: the pieces are not a BERT vocabulary.")
    options = {key: about[key] for key in ("lowercase", "strip_accents") if key in about}
    return StaticTable(codes, scales, WordPieceTokenizer(vocab, **options), about,
                       hashlib.sha256(raw).hexdigest())
