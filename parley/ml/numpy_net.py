"""The transformer's blocks in numpy, for prediction: a trained network runs without PyTorch.

Training builds the network in PyTorch (:mod:`parley.ml.layers`, :mod:`parley.ml.grouped`)
and saves its ``state_dict`` as plain arrays; these classes read the same arrays and compute
the same forward pass in evaluation mode (no dropout) in float32. Why not torch: importing
it is ~1.2 s of a model's load, and one message through a torch module is a few hundred
operator calls of several microseconds each, each of which may hand work to a second thread —
on a busy machine every hand-over waits for a time slice. A numpy call costs about a
microsecond, and numpy's BLAS is held to one thread for small inputs (:func:`blas_threads`).

The grouped layers (Rasa's ``connection_density``) run as one batched product over the
groups, their input shuffle folded into a gather; :func:`gelu` is the exact GELU, with erf
from a float32 rational approximation (|error| < 5e-7), as numpy has no erf. The results
agree with torch's to ~1e-6 (tests compare both on trained models).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

F32 = np.float32
LAYER_NORM_EPS = 1e-6  # parley.ml.layers' LayerNorms
# From this many rows a grouped layer multiplies by its dense equivalent (see GroupedDense).
DENSE_ROWS = 256
# Gather indices of a grouped layer kept for inputs of up to this many rows (a message's
# tokens; at most groups × rows × fan_in int64 each: ~0.5 MB for 64 rows of a 1024-wide
# input in 5 groups).
KEPT_FLAT_ROWS = 64
# From this many entries sparse rows are multiplied by scipy (see sparse_dense).
SPARSE_PRODUCT_ENTRIES = 4096
# Attention scores (float32) computed at once: a longer message's queries go in chunks.
# 16 MB: one message of up to 1,024 rows with 4 heads (a batch of rows × length up to 1M)
# is one chunk.
ATTENTION_ENTRIES = 1 << 22


# --- elementwise ----------------------------------------------------------------------------
# erf(x) ≈ x · P(x²) / Q(x²) on [-4, 4] (±1 in float32 beyond): the minimax rational
# approximation that Eigen (and so TensorFlow) uses for float32 erf.
_ERF_P = [F32(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                           -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                           -1.60960333262415e-02)]
_ERF_Q = [F32(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                           -7.37332916720468e-03, -1.42647390514189e-02)]
_SQRT_HALF = F32(math.sqrt(0.5))


def erf(x: np.ndarray) -> np.ndarray:
    """erf of a float32 array (|error| < 5e-7)."""
    # (the ufuncs themselves: np.clip's Python wrapper costs more than the clamp)
    x = np.maximum(x, F32(-4))
    np.minimum(x, F32(4), out=x)
    x2 = x * x
    p = x2 * _ERF_P[0]
    for c in _ERF_P[1:-1]:
        p += c
        p *= x2
    p += _ERF_P[-1]
    p *= x
    q = x2 * _ERF_Q[0]
    for c in _ERF_Q[1:-1]:
        q += c
        q *= x2
    q += _ERF_Q[-1]
    p /= q
    return p


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, x · Φ(x) (torch's default ``gelu``), in place of a new array."""
    out = erf(x * _SQRT_HALF)
    out += F32(1)
    out *= x
    out *= F32(0.5)
    return out


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
               eps: float = LAYER_NORM_EPS) -> np.ndarray:
    # sums times 1/n: ndarray.mean's Python wrapper costs more than the sum on a few rows
    inverse = F32(1 / x.shape[-1])
    centred = x - np.add.reduce(x, axis=-1, keepdims=True) * inverse
    scale = np.add.reduce(centred * centred, axis=-1, keepdims=True)
    scale *= inverse
    scale += F32(eps)
    np.sqrt(scale, out=scale)
    centred /= scale
    centred *= weight
    centred += bias
    return centred


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    # the ufuncs' reduce: ndarray.max / .sum go through Python wrappers that cost more
    # than the reduction on an attention's few hundred scores (10 -> ~5 us a call)
    out = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    np.exp(out, out=out)
    out /= np.add.reduce(out, axis=axis, keepdims=True)
    return out


def log_sum_exp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    return np.squeeze(top, axis) + np.log(np.exp(x - top).sum(axis=axis))


# --- layers -----------------------------------------------------------------------------------
def array(arrays: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...] | None = None,
          dtype: Any = F32) -> np.ndarray:
    """``arrays[key]`` as ``dtype``, checked to have ``shape`` (a KeyError names a missing one)."""
    value = np.asarray(arrays[key], dtype=dtype)
    if shape is not None and value.shape != shape:
        raise ValueError(f"{key} has shape {value.shape}, the network needs {shape}")
    return value


class Dense:
    """``torch.nn.Linear``'s forward: ``x @ weight.T + bias``."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, in_features: int,
                 out_features: int) -> None:
        self.kernel = np.ascontiguousarray(
            array(arrays, f"{prefix}.weight", (out_features, in_features)).T)
        self.bias = array(arrays, f"{prefix}.bias", (out_features,))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x @ self.kernel
        out += self.bias
        return out


def group_bounds(size: int, groups: int) -> list[tuple[int, int]]:
    """``groups`` contiguous ranges covering ``range(size)`` (as :class:`GroupedLinear`'s)."""
    edges = [round(k * size / groups) for k in range(groups + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def shifted_bounds(size: int, groups: int) -> list[list[tuple[int, int]]]:
    """The groups shifted by half a group, the last wrapping around (``shuffle=False``)."""
    shift = size // (2 * groups)
    ranges = []
    for a, b in group_bounds(size, groups):
        a, b = a + shift, b + shift
        ranges.append([(a, b)] if b <= size else [(a, size), (0, b - size)])
    return ranges


class GroupedDense:
    """:class:`parley.ml.grouped.GroupedLinear`'s forward from its saved ``kernel``, ``bias``
    and ``order``: each output group sees one input group. The groups run as one batched
    product: inputs gathered as ``(rows, groups, fan_in)`` (the shuffle is in the gather),
    kernels zero-padded to one shape where group sizes differ by one."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, in_features: int,
                 out_features: int, density: float, shuffle: bool = True,
                 bias: bool = True) -> None:
        groups = max(1, min(round(1.0 / density), in_features, out_features))
        shuffle = shuffle and groups > 1
        slices = (shifted_bounds(in_features, groups) if not shuffle and groups > 1
                  else [[pair] for pair in group_bounds(in_features, groups)])
        outputs = group_bounds(out_features, groups)
        shapes = [(sum(b - a for a, b in s), o1 - o0) for s, (o0, o1) in zip(slices, outputs,
                                                                             strict=True)]
        sizes = [fan_in * width for fan_in, width in shapes]
        kernel = array(arrays, f"{prefix}.kernel", (sum(sizes),))
        order = array(arrays, f"{prefix}.order", (in_features,), np.int64)
        self.bias = array(arrays, f"{prefix}.bias", (out_features,)) if bias else None
        kernels = [k.reshape(shape) for k, shape in
                   zip(np.split(kernel, np.cumsum(sizes)[:-1]), shapes, strict=True)]
        columns = [order[np.concatenate([np.arange(a, b) for a, b in s])] for s in slices]
        self.out_features = out_features
        # The dense equivalent: zeros where connections are missing. Past a few hundred rows
        # one product over it (g× the multiplications) beats the batched products, whose
        # gathers and small per-group calls cost more than the arithmetic.
        self.dense = np.zeros((in_features, out_features), dtype=F32)
        for cols, k, (o0, o1) in zip(columns, kernels, outputs, strict=True):
            self.dense[cols[:, None], np.arange(o0, o1)[None, :]] = k
        self.grouped = groups > 1
        if not self.grouped:
            return
        fan_in = max(f for f, _ in shapes)
        width = max(w for _, w in shapes)
        self.index = np.zeros((groups, fan_in), dtype=np.int64)  # padding: column 0 × 0
        self.flat_index: dict[int, np.ndarray] = {}
        self.kernels = np.zeros((groups, fan_in, width), dtype=F32)
        for g, (cols, k) in enumerate(zip(columns, kernels, strict=True)):
            self.index[g, :len(cols)] = cols
            self.kernels[g, :k.shape[0], :k.shape[1]] = k
        even = all(w == width for _, w in shapes)
        self.take = None if even else np.concatenate(
            [g * width + np.arange(w) for g, (_, w) in enumerate(shapes)])

    def _flat_index(self, rows: int) -> np.ndarray:
        """Where each entry of the groups' inputs (groups × rows × fan_in) is in the
        flattened input (rows × in_features): one gather makes them contiguous, where a
        gather by columns, a transpose and a copy took two passes (~4 µs a layer of a
        message). Kept per number of rows up to :data:`KEPT_FLAT_ROWS`."""
        index = self.flat_index.get(rows)
        if index is None:
            in_features = self.dense.shape[0]
            index = self.flat_index[rows] = (np.arange(rows)[None, :, None] * in_features
                                             + self.index[:, None, :])
        return index

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.grouped or len(x) >= DENSE_ROWS:
            out = x @ self.dense
        else:
            # groups × rows × fan_in, contiguous: numpy's stacked product then calls BLAS
            if len(x) <= KEPT_FLAT_ROWS:
                parts = x.reshape(-1).take(self._flat_index(len(x)))
            else:  # a batch: making its index would cost a pass more than it saves
                parts = np.ascontiguousarray(x.take(self.index, axis=1).transpose(1, 0, 2))
            groups, _, width = self.kernels.shape
            products = np.empty((len(x), groups, width), dtype=F32)
            # each group's product written straight into its columns
            np.matmul(parts, self.kernels, out=products.transpose(1, 0, 2))
            out = products.reshape(len(x), -1)
            if self.take is not None:
                out = out[:, self.take]
        if self.bias is not None:
            out += self.bias
        return out


class MaskedDense:
    """:class:`parley.ml.grouped.RandomlyConnectedLinear`'s forward (Rasa's random mask,
    TED's layers): ``x @ (weight · mask).T + bias``, the mask folded into the kernel once.
    Takes :class:`GroupedDense`'s arguments, so that the blocks can build either."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, in_features: int,
                 out_features: int, density: float = 1.0, shuffle: bool = True,
                 bias: bool = True) -> None:
        shape = (out_features, in_features)
        self.kernel = np.ascontiguousarray(
            (array(arrays, f"{prefix}.weight", shape) * array(arrays, f"{prefix}.mask", shape)).T)
        self.bias = array(arrays, f"{prefix}.bias", (out_features,)) if bias else None
        self.out_features = out_features

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x @ self.kernel
        if self.bias is not None:
            out += self.bias
        return out


# GroupedDense or MaskedDense: the layer class a torch network was built with
Linear = Any


class FeedForward:
    """:class:`parley.ml.layers.FeedForward`: grouped (or ``linear``) layers, each followed
    by GELU."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, in_features: int,
                 sizes: list[int], density: float, linear: Linear = None) -> None:
        linear = linear or GroupedDense
        self.layers = []
        for i, size in enumerate(sizes):
            # each layer is (linear, GELU, Dropout) in the torch Sequential
            self.layers.append(linear(arrays, f"{prefix}.layers.{3 * i}", in_features,
                                      size, density))
            in_features = size
        self.out_features = in_features

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = gelu(layer(x))
        return x


def sparse_dense(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                 weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """:class:`parley.ml.layers.SparseDense`: each CSR row times ``weight``, plus ``bias``
    (the weight rows its columns name, summed with their values)."""
    rows, nnz = len(indptr) - 1, len(indices)
    if nnz >= SPARSE_PRODUCT_ENTRIES:  # many messages: scipy's product, nothing gathered
        from scipy.sparse import csr_matrix

        matrix = csr_matrix((data.astype(F32, copy=False), indices, indptr),
                            shape=(rows, weight.shape[0]))
        product = np.asarray(matrix @ weight, dtype=F32)
        product += bias
        return product
    out = np.empty((rows, weight.shape[1]), dtype=F32)
    if nnz == 0 or rows == 0:
        out[:] = bias
        return out
    # One spare zero row at the end: an empty row's start may then be nnz.
    gathered = np.empty((nnz + 1, weight.shape[1]), dtype=F32)
    weight.take(indices, axis=0, out=gathered[:nnz])
    gathered[:nnz] *= data.astype(F32, copy=False)[:, None]
    gathered[nnz] = 0
    np.add.reduceat(gathered, indptr[:-1], axis=0, out=out)
    empty = indptr[1:] == indptr[:-1]
    if empty.any():  # reduceat gives an empty row the row at its start
        out[empty] = 0
    out += bias
    return out


# --- the transformer --------------------------------------------------------------------------
def position_table(length: int, units: int) -> np.ndarray:
    """The sinusoidal position code (as :func:`parley.ml.layers.positional_encoding`)."""
    steps = np.arange(length, dtype=F32)
    dims = np.arange(units)
    rates = np.power(F32(10000.0), (2 * (dims // 2)).astype(F32) / F32(units))
    angles = steps[:, None] / rates
    return np.where(dims % 2 == 0, np.sin(angles), np.cos(angles)).astype(F32)


class Attention:
    """:class:`parley.ml.layers.MultiHeadAttention` over messages of equal length.

    The queries are taken in chunks, so that the scores in memory at once stay under
    :data:`ATTENTION_ENTRIES` whatever the length: all of a message's scores would be
    heads × T² floats (a 6,000-token message 576 MB, 200,000 tokens 596 GiB). A message of
    up to ~1,000 rows is one chunk, computed as before; a longer one gives the same result
    to float rounding, in time still quadratic in its length (a server bounds that by the
    length of the text it accepts: ``parley run --max-message-length``). Relative
    attention is read from the ``2·max_relative_position + 1`` distances, never from a
    T × T × depth table of them.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, units: int, heads: int,
                 density: float, key_relative: bool, value_relative: bool,
                 max_relative_position: int, unidirectional: bool,
                 linear: Linear = None) -> None:
        if units % heads:
            raise ValueError(f"{prefix}: {units} units do not split into {heads} heads")
        linear = linear or GroupedDense
        self.units, self.heads, self.depth = units, heads, units // heads
        self.query_key_value = linear(arrays, f"{prefix}.query_key_value", units, 3 * units,
                                      density, bias=False)
        self.out = linear(arrays, f"{prefix}.out", units, units, density)
        span = (2 * max_relative_position + 1, self.depth)
        self.key_relative = array(arrays, f"{prefix}.key_relative", span) if key_relative else None
        self.value_relative = (array(arrays, f"{prefix}.value_relative", span)
                               if value_relative else None)
        self.max_relative_position = max_relative_position
        self.unidirectional = unidirectional
        self.scale = F32(1 / math.sqrt(self.depth))

    def __call__(self, x: np.ndarray, last_only: bool = False,
                 row: int | None = None) -> np.ndarray:
        """``x``: messages × rows × units. Each row attends to its own message's rows; with
        ``last_only`` only each message's last row (its sentence) is computed, with ``row``
        only that row (TED reads a dialogue at its first or last): messages × 1 × units."""
        b, t, _ = x.shape
        heads, depth = self.heads, self.depth
        projected = self.query_key_value(x.reshape(b * t, self.units)).reshape(b, t, 3, heads, depth)
        q, k, v = (projected[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # b h t d
        if last_only:
            row = -1
        queries = np.arange(t)
        if row is not None:
            row %= t
            q = q[:, :, row:row + 1]
            queries = queries[row:row + 1]
        per_chunk = max(1, ATTENTION_ENTRIES // (b * heads * t))
        if len(queries) <= per_chunk:
            out = self._attend(q, k, v, queries)
        else:
            out = np.concatenate([self._attend(q[:, :, s:s + per_chunk], k, v,
                                               queries[s:s + per_chunk])
                                  for s in range(0, len(queries), per_chunk)], axis=2)
        rows = out.transpose(0, 2, 1, 3).reshape(b * len(queries), self.units)
        return self.out(rows).reshape(b, len(queries), self.units)

    def _attend(self, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                queries: np.ndarray) -> np.ndarray:
        """The attention of the ``queries`` (their rows in ``q``: b × h × queries × d) over
        all rows of ``k`` and ``v``: b × h × queries × d."""
        t = k.shape[2]
        scores = np.matmul(q, k.transpose(0, 1, 3, 2))
        scores *= self.scale
        bucket = None
        if self.key_relative is not None or self.value_relative is not None:
            distance = np.arange(t)[None, :] - queries[:, None]
            bucket = np.clip(distance, -self.max_relative_position, self.max_relative_position)
            bucket = bucket + self.max_relative_position
        if self.key_relative is not None and bucket is not None:
            # q · key_relative[bucket[i, j]]: each query's products with the few distances,
            # then picked per key
            by_distance = np.matmul(q, self.key_relative.T)  # b h queries span
            picked = np.take_along_axis(
                by_distance, np.broadcast_to(bucket, (*q.shape[:2], *bucket.shape)), axis=3)
            picked *= self.scale
            scores += picked
        if self.unidirectional:  # no later rows
            later = np.arange(t)[None, :] > queries[:, None]
            scores[..., later] = -np.inf
        weights = softmax(scores)
        out = np.matmul(weights, v)
        if self.value_relative is not None and bucket is not None:
            # Σ_j weights[i, j] · value_relative[bucket[i, j]]: the weights summed per
            # distance, times the distances' rows
            span = len(self.value_relative)
            per_distance = np.empty((*weights.shape[:3], span), dtype=F32)
            for d in range(span):
                np.add.reduce(np.where(bucket == d, weights, F32(0)), axis=3,
                              out=per_distance[..., d])
            out += np.matmul(per_distance, self.value_relative)
        return out


class TransformerEncoder:
    """:class:`parley.ml.layers.TransformerEncoder` (pre-norm blocks, final layer norm) over
    messages of equal length: messages × rows × features in."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, in_features: int,
                 layers: int, units: int, heads: int, density: float, key_relative: bool,
                 value_relative: bool, max_relative_position: int,
                 unidirectional: bool, linear: Linear = None) -> None:
        """``linear``: the layers' class, as the torch encoder's (:class:`GroupedDense` for
        DIET's grouped layers, :class:`MaskedDense` for TED's randomly connected ones)."""
        linear = linear or GroupedDense
        self.units = units
        self.project = linear(arrays, f"{prefix}.project", in_features, units, density)
        self.blocks = []
        for i in range(layers):
            block = f"{prefix}.blocks.{i}"
            self.blocks.append((
                (array(arrays, f"{block}.norm_attention.weight", (units,)),
                 array(arrays, f"{block}.norm_attention.bias", (units,))),
                Attention(arrays, f"{block}.attention", units, heads, density, key_relative,
                          value_relative, max_relative_position, unidirectional, linear),
                (array(arrays, f"{block}.norm_ffn.weight", (units,)),
                 array(arrays, f"{block}.norm_ffn.bias", (units,))),
                linear(arrays, f"{block}.ffn_in", units, 4 * units, density),
                linear(arrays, f"{block}.ffn_out", 4 * units, units, density, shuffle=False),
            ))
        self.norm = (array(arrays, f"{prefix}.norm.weight", (units,)),
                     array(arrays, f"{prefix}.norm.bias", (units,)))
        self.positions = position_table(64, units)
        self.root_units = F32(math.sqrt(units))

    def __call__(self, x: np.ndarray, last_only: bool = False,
                 row: int | None = None) -> np.ndarray:
        """messages × rows × units; with ``last_only`` messages × 1 × units (each message's
        last row: the last block then projects and feeds forward that row alone), with
        ``row`` that row alone (−1: the last)."""
        if last_only:
            row = -1
        b, t, width = x.shape
        if row is not None:
            row %= t
        if len(self.positions) < t:
            self.positions = position_table(max(t, 2 * len(self.positions)), self.units)
        x = self.project(x.reshape(b * t, width)).reshape(b, t, self.units)
        x *= self.root_units
        x += self.positions[:t]
        for depth, (norm_a, attention, norm_f, ffn_in, ffn_out) in enumerate(self.blocks):
            last = row is not None and depth == len(self.blocks) - 1
            attended = attention(layer_norm(x, *norm_a), row=row if last else None)
            x = (x[:, row:row + 1] if last else x) + attended
            rows = x.reshape(-1, self.units)
            rows = rows + ffn_out(gelu(ffn_in(layer_norm(rows, *norm_f))))
            x = rows.reshape(x.shape)
        if row is not None and not self.blocks:
            x = x[:, row:row + 1]
        return layer_norm(x, *self.norm)


# --- BLAS threads -----------------------------------------------------------------------------
_blas: list[Any] | None = None


def _blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries loaded (numpy's), found once."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # without it BLAS keeps its own thread count
            _blas = []
        else:
            _blas = [lib for lib in ThreadpoolController().lib_controllers
                     if lib.user_api == "blas"]
    return _blas


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Run numpy's products on ``count`` threads for a while. One message's products are
    too small to share: a second thread only adds hand-overs (and a wait for a time slice
    each when another process keeps the other core busy). Setting the count is one C call."""
    libraries = _blas_libraries()
    before = [lib.num_threads for lib in libraries]
    changed = [lib for lib, n in zip(libraries, before, strict=True) if n != count]
    for lib in changed:
        lib.set_num_threads(count)
    try:
        yield
    finally:
        for lib, n in zip(libraries, before, strict=True):
            if lib in changed:
                lib.set_num_threads(n)
