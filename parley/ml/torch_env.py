"""Importing PyTorch on demand (with an error that says how to get it), seeding, threads."""

from __future__ import annotations

import gc
import os
import platform
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from contextlib import AbstractContextManager, contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from parley.errors import ConfigError


def import_torch(component: str) -> ModuleType:
    """PyTorch, imported on first use (see :func:`_first_import`)."""
    if "torch" not in sys.modules:
        _first_import()
    try:
        import torch
    except ImportError:
        raise ConfigError(
            f"{component} needs PyTorch, which is not installed. Install it with "
            "pip install 'parley[torch]' (it pins torch==2.13.0, the CPU build)."
        ) from None
    return torch


def _first_import() -> None:
    """Import PyTorch without the garbage collector, then set what it made aside.

    ``import torch`` makes ~150,000 objects that live as long as the process; each full
    collection walks them all again (~0.1 s each): three ran during the import, and two
    more while training began, ~0.4 s of CPU time of a 13 s training (moodbot). Frozen
    (:func:`gc.freeze`), they are left out of every later collection; they are freed as
    ever when nothing refers to them, only cycles among them would stay. What the import
    threw away is collected first, so none of it is frozen.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        import torch  # noqa: F401
    except ImportError:
        return  # import_torch says what to do
    finally:
        if enabled:
            gc.enable()
    gc.collect()
    gc.freeze()


def float32_certain() -> bool:
    """Whether the grouped layers' products are surely float32 here, known without importing
    PyTorch (``matmul_dtype`` in :mod:`parley.ml.grouped` asks oneDNN, which offers
    bfloat16 only on x86 CPUs with AVX-512 or AVX-NE-CONVERT): ``PARLEY_BF16=0``, or a
    Linux x86 CPU without either. False means "ask PyTorch", not "bfloat16"."""
    if os.environ.get("PARLEY_BF16", "1") == "0":
        return True
    flags = _cpu_flags()
    return flags is not None and not any(f.startswith("avx512") or f == "avx_ne_convert"
                                         for f in flags)


# oneDNN's "avx512_core", the least it offers bfloat16 on (its ``has_data_type_support``;
# it also does on AVX2-VNNI-2 CPUs, which are left to PyTorch here).
_AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})
# Settings that make oneDNN use less than the CPU has.
_ONEDNN_ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def bfloat16_certain() -> bool:
    """Whether the grouped layers' products are surely bfloat16 here, known without
    importing PyTorch: a Linux x86 CPU with oneDNN's ``avx512_core`` (the kernel lists
    AVX-512 flags only when it saves their registers), no ``PARLEY_BF16=0``, no setting
    that caps oneDNN's instruction set, and a PyTorch built with oneDNN (its headers come
    with it). Importing PyTorch to ask costs ~0.8 s: most of an unchanged retrain of a
    project with DIET. False means "ask PyTorch", not "float32"."""
    if os.environ.get("PARLEY_BF16", "1") == "0" or any(
            os.environ.get(name) for name in _ONEDNN_ISA_LIMITS):
        return False
    flags = _cpu_flags()
    return flags is not None and _AVX512_CORE <= flags and _torch_has_onednn()


def _torch_has_onednn() -> bool:
    """Whether the installed PyTorch was built with oneDNN (``torch.backends.mkldnn``),
    told by the headers such a build installs, without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(folder) / "include" / "dnnl.h").is_file()
               for folder in spec.submodule_search_locations)


def known_matmul_dtype() -> str | None:
    """The grouped layers' product dtype by PyTorch's name for it (``torch.float32`` or
    ``torch.bfloat16``) when the CPU and the settings decide it without importing PyTorch
    (see :func:`float32_certain`, :func:`bfloat16_certain`); None: ask PyTorch."""
    if float32_certain():
        return "torch.float32"
    if bfloat16_certain():
        return "torch.bfloat16"
    return None


def dense_grouped_products() -> bool:
    """Whether the grouped layers' bfloat16 training products run as one dense product each
    (oneDNN's AMX kernels, multiplying by the zeros too): where the CPU has AMX tiles and
    Parley's C kernel does not run them on the tiles (:func:`grouped_kernel_amx_products`)
    — nor at all where the products are not surely bfloat16 (:func:`bfloat16_certain`,
    which :func:`grouped_kernel_bf16_products` asks: the layers would run batched, slower
    than dense on AMX); ``PARLEY_GROUPED_DENSE`` ``0``/``1`` overrides. Where bfloat16 dot
    products come from AVX-512 alone they are ~2× float32's, not 5×: 1/density times the
    arithmetic would cost more than the gathers it saves."""
    wanted = os.environ.get("PARLEY_GROUPED_DENSE", "")
    if wanted in ("0", "1"):
        return wanted == "1"
    flags = _cpu_flags()
    return (flags is not None and "amx_bf16" in flags
            and not (grouped_kernel_amx_products() and bfloat16_certain()))


def grouped_kernel_amx_products() -> bool:
    """Whether the C kernel's bfloat16 products (:func:`grouped_kernel_bf16_products`) run on
    AMX tiles (parley/ml/_grouped_amx.c: only the groups' blocks, where the dense product
    multiplies 1/density times as much): a CPU with AMX-BF16 whose OS lends the process
    the tiles, the kernel built, ``PARLEY_GROUPED_KERNEL`` not ``0`` and
    ``PARLEY_GROUPED_DENSE`` not ``1``. Decided without PyTorch: the model's fingerprint
    names it."""
    if (os.environ.get("PARLEY_GROUPED_KERNEL", "1") == "0"
            or os.environ.get("PARLEY_GROUPED_DENSE", "") == "1"):
        return False
    flags = _cpu_flags()
    if flags is None or "amx_bf16" not in flags or "avx512_bf16" not in flags:
        return False
    from parley.ml.c_kernels import load_kernel

    kernel = load_kernel("_grouped", version=GROUPED_KERNEL_VERSION)
    return kernel is not None and bool(kernel.supported_amx())


def grouped_kernel_products() -> bool:
    """Whether the grouped layers' float32 training products run through Parley's C kernel
    (parley/ml/_grouped.c: every group of a layer in one call, ~1.5–2× MKL's small
    products): an x86 CPU with AVX2 and FMA and no AVX-512 (where MKL's products are twice
    as wide, and bfloat16 is taken anyway), the kernel built, ``PARLEY_GROUPED_KERNEL`` not
    ``0``. Decided without PyTorch, like :func:`dense_grouped_products`: it changes the
    model's last bits, so the model's fingerprint names it."""
    if os.environ.get("PARLEY_GROUPED_KERNEL", "1") == "0":
        return False
    flags = _cpu_flags()
    if flags is None or not {"avx2", "fma"} <= flags or any(f.startswith("avx512") for f in flags):
        return False
    from parley.ml.c_kernels import load_kernel

    kernel = load_kernel("_grouped", version=GROUPED_KERNEL_VERSION)
    return kernel is not None and bool(kernel.supported())


def grouped_kernel_bf16_products() -> bool:
    """Whether the grouped layers' bfloat16 training products run through Parley's C kernel
    (parley/ml/_grouped_bf16.c: every group of a layer in one call, ``vdpbf16ps`` on a
    register tile, or on AMX tiles where :func:`grouped_kernel_amx_products`): an x86 CPU
    with AVX512_BF16 and oneDNN's ``avx512_core`` where the products are surely bfloat16
    (:func:`bfloat16_certain`), not run dense (:func:`dense_grouped_products`), the kernel built,
    ``PARLEY_GROUPED_KERNEL`` not ``0``. Decided without PyTorch: the model's fingerprint
    names it."""
    if os.environ.get("PARLEY_GROUPED_KERNEL", "1") == "0" or dense_grouped_products():
        return False
    flags = _cpu_flags()
    if flags is None or "avx512_bf16" not in flags or not bfloat16_certain():
        return False
    from parley.ml.c_kernels import load_kernel

    kernel = load_kernel("_grouped", version=GROUPED_KERNEL_VERSION)
    return kernel is not None and bool(kernel.supported_bf16())


GROUPED_KERNEL_VERSION = 3  # ``GROUPED_KERNEL_VERSION`` in _grouped.c
ATTENTION_KERNEL_VERSION = 1  # ``ATTENTION_KERNEL_VERSION`` in _attention.c
SPARSE_KERNEL_VERSION = 1  # ``SPARSE_KERNEL_VERSION`` in _sparse.c


def training_kernels() -> dict[str, str]:
    """Which of Parley's C kernels training takes here beside the grouped products' (each
    sums in another order than torch: other last bits) — attention message by message
    (parley/ml/_attention.c), the sparse layers' weight gradient (parley/ml/_sparse.c).
    Decided without PyTorch: the model's fingerprint names them."""
    from parley.ml.c_kernels import load_kernel

    found = {}
    if load_kernel("_attention", version=ATTENTION_KERNEL_VERSION) is not None:
        found["attention"] = "c-runs"
    if load_kernel("_sparse", version=SPARSE_KERNEL_VERSION) is not None:
        found["sparse_gradient"] = "c"
    return found


def _cpu_flags() -> set[str] | None:
    """The x86 CPU's feature flags from /proc/cpuinfo; None elsewhere."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def seed_everything(seed: int) -> None:
    """Seed every generator training touches (weights, dropout, sampling, batching)."""
    torch = import_torch("training")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


_SEEDING = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed every generator (:func:`seed_everything`) and hold them while a model is built.

    Building a model draws its initial weights and masks from torch's global generator, and
    the training engine builds and trains independent models (DIET, TED) on threads at once:
    without holding it, one model's draws could land between another's seeding and its
    draws, and the same seed would give another model depending on the scheduling. Training
    itself draws from generators of its own (:class:`~parley.ml.training.Trainer`).
    """
    with _SEEDING:
        seed_everything(seed)
        yield


@contextmanager
def no_seeding() -> Iterator[None]:
    """No other thread seeds or builds a model (:func:`seeded`) while the ``with`` block runs:
    for a fork, which would copy the locks torch takes on the way held."""
    with _SEEDING:
        yield


_draws = threading.local()


def generator() -> Any:
    """The ``torch.Generator`` this thread's training draws from (dropout masks, sampled
    negatives, hidden tokens); None, torch's global one, unless :func:`drawing_from` set it.

    Training runs a batch as shards on threads at once; a generator per shard keeps each
    shard's draws the same whichever thread gets there first.
    """
    return getattr(_draws, "generator", None)


@contextmanager
def drawing_from(source: Any) -> Iterator[None]:
    """Make ``source`` (a ``torch.Generator``) this thread's :func:`generator` for a while."""
    before = generator()
    _draws.generator = source
    try:
        yield
    finally:
        _draws.generator = before


def configured_threads() -> int:
    """The torch threads a training runs with: ``PARLEY_TORCH_THREADS``, else one per
    available core, at most :data:`MAX_THREADS`."""
    wanted = os.environ.get("PARLEY_TORCH_THREADS", "")
    return max(1, int(wanted)) if wanted else min(available_cores(), MAX_THREADS)


@contextmanager
def torch_threads(count: int | None = None) -> Iterator[None]:
    """Run with ``count`` threads, else ``PARLEY_TORCH_THREADS``; by default one per available
    core, at most :data:`MAX_THREADS`.

    Training shares them out among a batch's shards (see ``training.Trainer.step``): on
    this project's 2-core machines one shard per core; and they are what all the trainings
    running at once in the process keep busy together (:mod:`parley.ml.cores`). When
    something else keeps a core busy the shards wait on each other and one thread may be
    faster — set ``PARLEY_TORCH_THREADS=1`` (``--num-threads 1``) then; the model is the
    same.
    """
    threads = count or configured_threads()
    torch = import_torch("training")
    before = torch.get_num_threads()
    if before == threads:  # the usual case when predicting: nothing to switch
        yield
        return
    torch.set_num_threads(max(1, threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Below this many rows (tokens and sentences) a forward pass is a few hundred small
# operations of microseconds each: a second thread only adds a hand-over per operation, and
# when another process keeps the other core busy each hand-over waits for a time slice
# (DIET's parse p50 went from 10 ms to 80-300 ms on a busy machine with two threads).
SINGLE_THREAD_ROWS = 1024


def prediction_threads(rows: int) -> AbstractContextManager[None]:
    """Threads for a prediction over ``rows`` rows: one for small inputs (a single message),
    else as :func:`torch_threads`. Switching the count costs well under a microsecond;
    OpenMP keeps its pool, so nothing is spun up per call."""
    return torch_threads(1 if rows < SINGLE_THREAD_ROWS else None)


MAX_THREADS = 4  # DIET's matrices are small: more threads mostly wait on each other


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def roomy_heap() -> Iterator[None]:
    """While training: large blocks from glibc's heap, kept when freed (elsewhere nothing).

    By default glibc serves every block over 128 KiB–32 MiB by a fresh ``mmap`` and unmaps
    it on free, so each of a step's activations faults its pages in again (~5,000 faults a
    step on banking77-small): 8–10% of the step time, measured over alternating runs. Here
    blocks come from the heap and stay there; :func:`release_free_memory` every few
    seconds hands what is free back, and so does the end of each training. When the last of
    the trainings running at once ends, glibc's default thresholds are set again.
    """
    libc = _glibc()
    if not libc:
        yield
        return
    with _HEAP_LOCK:
        _HEAP_USERS[0] += 1
        if _HEAP_USERS[0] == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        with _HEAP_LOCK:
            _HEAP_USERS[0] -= 1
            if _HEAP_USERS[0] == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
            # Also while other trainings go on: what this one freed (its threads' arenas
            # among it) would otherwise stay until their next trim, on top of their growth.
            libc.malloc_trim(0)


_HEAP_LOCK = threading.Lock()
_HEAP_USERS = [0]  # trainings inside roomy_heap now
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_DEFAULT_THRESHOLD = 128 * 1024


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's other threads: a lock one of them held at
    the fork would stay held, and their trainings are not the child's."""
    global _SEEDING, _HEAP_LOCK
    _SEEDING, _HEAP_LOCK = threading.RLock(), threading.Lock()
    _HEAP_USERS[0] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

    Batches of ever-changing shapes fragment glibc's heap: without this, training DIET on
    hwu64-small peaked at 5.1 GB; trimming whenever the resident memory has grown by a few
    hundred MB keeps it flat (a trim takes ~10 ms, and the pages it frees fault back in, so
    trimming more often costs system time: see ``TRIM_GROWTH`` in :mod:`parley.ml.training`).
    """
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)


def resident_bytes() -> int:
    """This process's resident memory now (Linux ``/proc/self/statm``; 0 elsewhere): a read
    costs a few microseconds, so training can look after every step."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class HeapTrimmer:
    """Hands freed heap memory back (:func:`release_free_memory`) when the resident memory
    has grown by ``growth`` bytes since the last trim, or ``every_s`` seconds have passed.

    Batches of changing shapes leave freed blocks the allocator does not reuse (the shard
    threads each allocate from their own arena): on financial-demo TED's resident memory
    swung between 530 and 1,100 MB within one 5-second period. Trimming on growth bounds
    the swing; a trim costs ~10 ms, so it runs only when there is something to hand back.
    """

    def __init__(self, growth: int, every_s: float,
                 trim: Callable[[], None] | None = None) -> None:
        self.growth = growth
        self.every_s = every_s
        self.trim = trim or release_free_memory
        self._reset()

    def _reset(self) -> None:
        self.floor = resident_bytes()
        self.due = time.monotonic() + self.every_s

    def check(self) -> None:
        if resident_bytes() - self.floor >= self.growth or time.monotonic() >= self.due:
            self.trim()
            self._reset()


def _glibc() -> Any:
    """glibc through ctypes, or False when the C library is another one."""
    global _libc
    if _libc is None:
        try:
            import ctypes
            import ctypes.util

            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim  # noqa: B018 - probe: not glibc → AttributeError
            _libc.mallopt  # noqa: B018
        except (OSError, AttributeError):
            _libc = False
    return _libc


_libc: Any = None
