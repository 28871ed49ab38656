"""Distil a static word-piece embedding table from a BERT sentence encoder (needs torch).

Model2Vec's recipe (Tulkens & van Dongen, 2024), written afresh for Parley's own BERT:

1. every piece of the vocabulary goes through the model alone, ``[CLS] piece [SEP]``, and
   the output is mean-pooled over those three positions (as the sentence encoder pools);
2. PCA (centred on the word pieces, see below) keeps the ``dims`` directions of most
   variance — it also decorrelates them, which suits a linear classifier's L2 penalty;
3. Zipf weighting: BERT's vocabulary lists its words roughly by frequency, so a piece's
   rank stands in for its frequency p ∝ 1/rank and its vector is scaled by
   ``a / (a + p)`` (smooth inverse frequency): "the", "to", "my" weigh little, rare
   words fully.

Special tokens, the ``[unused…]`` slots and pieces the model cannot have been trained on
get zero rows. Deterministic: one torch thread, fixed batches, PCA by numpy's SVD with
each axis's sign fixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from parley.nlu.language_models.model_files import model_identity
from parley.nlu.language_models.wordpiece import CLS, PAD, SEP, UNK

MASK = "[MASK]"

# BERT-base-uncased's vocabulary: ids up to 1995 are specials, [unused] slots and single
# characters; whole words start at 1996 ("the") in order of frequency.
FIRST_WORD_ID = 1996
SIF_COEFFICIENT = 1e-4
RECIPE = "model2vec-style: [CLS] piece [SEP] mean-pooled, PCA, Zipf SIF weights"


def zipf_weights(n_pieces: int, first_word: int = FIRST_WORD_ID,
                 coefficient: float = SIF_COEFFICIENT) -> np.ndarray:
    """``a / (a + p)`` with p the Zipf probability of each id's rank among the words
    (ids before ``first_word`` count as the most frequent rank)."""
    rank = np.maximum(np.arange(n_pieces, dtype=np.float64) - first_word + 1, 1.0)
    probability = (1.0 / rank) / (1.0 / rank).sum()
    return coefficient / (coefficient + probability)


def principal_axes(vectors: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, ``dims × d`` axes) of ``vectors`` by SVD, each axis signed so that its
    largest-magnitude coordinate is positive (SVD's signs are arbitrary)."""
    centre = vectors.mean(axis=0)
    _, _, axes = np.linalg.svd(vectors - centre, full_matrices=False)
    axes = axes[:dims]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return centre, axes * signs[:, None]


def piece_states(directory: Path) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """(the vocabulary's pieces by id, each piece's mean-pooled output, tokenizer options)."""
    import torch

    from parley.nlu.language_models.encoder import load_encoder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order on every machine
    try:
        encoder = load_encoder(directory)
        tokenizer = encoder.tokenizer
        pieces = [""] * (max(tokenizer.vocab.values()) + 1)
        for piece, index in tokenizer.vocab.items():
            pieces[index] = piece
        sequences = [[tokenizer.cls_id, index, tokenizer.sep_id] for index in range(len(pieces))]
        states = encoder.hidden_states(sequences)
    finally:
        torch.set_num_threads(threads)
    pooled = np.stack([s.mean(axis=0) for s in states]).astype(np.float64)
    options = {"lowercase": tokenizer.lowercase, "strip_accents": tokenizer.strip_accents}
    return pieces, pooled, options


def distill(directory: Path, dims: int = 256, coefficient: float = SIF_COEFFICIENT
            ) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """(pieces, ``len(pieces) × dims`` float32 vectors, the table's ``about``) of the model
    in ``directory`` (config.json, vocab.txt, model.safetensors)."""
    pieces, pooled, options = piece_states(directory)
    used = np.array([_is_used(piece, index) for index, piece in enumerate(pieces)])
    if dims > pooled.shape[1]:
        raise ValueError(f"dims {dims} is more than the model's {pooled.shape[1]} dimensions")
    centre, axes = principal_axes(pooled[used], dims)
    vectors = (pooled - centre) @ axes.T
    vectors *= zipf_weights(len(pieces), coefficient=coefficient)[:, None]
    vectors[~used] = 0.0
    about = {
        **options,
        "recipe": RECIPE,
        "dims": dims,
        "sif_coefficient": coefficient,
        "first_word_id": FIRST_WORD_ID,
        "source_model": model_identity(directory),
    }
    return pieces, vectors.astype(np.float32), about


def _is_used(piece: str, index: int) -> bool:
    """Pieces a message can bring: not padding, [CLS]/[SEP]/[MASK]/[UNK] or [unused…]."""
    return piece not in (PAD, UNK, CLS, SEP, MASK) and not piece.startswith("[unused")
