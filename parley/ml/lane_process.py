"""A training step's second lane in a process of its own (Linux).

Two lanes on two threads of one process wait on each other: every torch call from Python
lets go of the interpreter lock and takes it back, and with both threads busy each hand-over
waits for the other thread to be woken. On a 2-core AMX host (2026-12-04), two DIET trainings
of banking77-small at once took 13.3 s of CPU each on two threads of one process against
13.1 s alone, and 17.0 s of wall time against 13.1 — in two processes, 13.1 s each and no
wall time lost. So when a training runs alone in its process, its second lane runs in a
process forked from it: the weights live in memory both share (the parent's optimizer
updates them in place), each step sends the child the lane's shards and the states of their
random generators, and the child writes the lane's summed gradients into a second shared
block and sends back the batch metrics and the generators' new states. No pickling: the
messages are JSON. The child computes exactly what the lane's thread would have, so the
model is bitwise the same either way (tests/ml/test_lane_process.py).

Whatever goes wrong with the child — it dies, hangs, or raises — the parent computes the lane
itself from the generator states it kept, and goes on with threads: the same model, only
slower (and an error in the lane's own computation then raises on the parent, as it would
have on a thread).
"""

from __future__ import annotations

import base64
import logging
import mmap
import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from parley.ml import forking

logger = logging.getLogger(__name__)

# The child's answer to a step is awaited for at least this long, and at least
# TIMEOUT_FACTOR times what the parent's own lane of the same step took: past that the child
# is taken for stuck (a fork can inherit a lock another thread held) and the lane runs here.
TIMEOUT_FLOOR_S = 60.0
TIMEOUT_FACTOR = 20.0

# Closing waits this long for the child's last word (its memory) before it is killed.
CLOSE_WAIT_S = 5.0

# The child reads its private memory every this many jobs, for the peak it reports (and at
# the end): smaps_rollup walks its page tables, 3–5 ms on a banking77-small lane, and read
# every 8 jobs that was 0.13 s of 200 jobs on the step's critical path. Its memory grows
# with the batches, so the last reading is mostly the largest.
MEMORY_EVERY = 64

# The largest private memory (kB) any lane process of this process reached: what it added
# to the parent's own peak (its pages shared with the parent are counted in the parent's).
peak_private_kb = 0

# A lane's batch metrics (one dict a shard) and its gradient sums (None: no gradient).
LaneResult = tuple[list[dict[str, float]], list["torch.Tensor | None"]]
Lane = Callable[[list[np.ndarray], list[torch.Generator], int], LaneResult]


def wanted() -> bool:
    """Whether lanes may run in processes here: Linux (fork, /proc) and not turned off by
    ``PARLEY_LANE_PROCESS=0``."""
    return forking.wanted("PARLEY_LANE_PROCESS")


class LaneProcess:
    """The forked child running one lane of each step, and the parent's side of it."""

    def __init__(self, params: Sequence[torch.nn.Parameter], lane: Lane,
                 after_job: Callable[[], Callable[[], None]] | None = None) -> None:
        """Move ``params`` into shared memory and fork; the child serves :meth:`submit`'s
        jobs with ``lane`` until :meth:`close`, calling what ``after_job()`` gives it (made
        in the child: the training's heap trimmer, say) after each."""
        self.params = list(params)
        numels = [p.numel() for p in self.params]
        total = max(sum(numels), 1)
        self._weights_block = mmap.mmap(-1, 4 * total)
        self._grads_block = mmap.mmap(-1, 4 * total)
        weights = torch.frombuffer(self._weights_block, dtype=torch.float32)
        grads = torch.frombuffer(self._grads_block, dtype=torch.float32)
        self.grads: list[torch.Tensor] = []
        offset = 0
        with torch.no_grad():
            for p, n in zip(self.params, numels, strict=True):
                shared = weights[offset:offset + n].view(p.shape)
                shared.copy_(p)
                p.data = shared
                self.grads.append(grads[offset:offset + n].view(p.shape))
                offset += n
        parent = os.getpid()
        jobs_read, self._jobs = os.pipe()
        self._results, results_write = os.pipe()
        try:
            self.pid = os.fork()
        except OSError:
            for fd in (jobs_read, self._jobs, self._results, results_write):
                os.close(fd)
            self._own_memory_again()
            raise
        if self.pid == 0:  # the child: serve, then leave without running the parent's code
            code = 1
            try:
                forking.die_with_parent(parent)
                os.close(self._jobs)
                os.close(self._results)
                forking.close_sockets()
                code = _serve(jobs_read, results_write, self.params, self.grads, lane,
                              after_job() if after_job is not None else None)
            finally:
                os._exit(code)
        os.close(jobs_read)
        os.close(results_write)
        self._pending: list[torch.Generator] | None = None

    def submit(self, shards: list[np.ndarray], generators: list[torch.Generator],
               total: int) -> bool:
        """Send the child a lane's shards; False if it cannot take them (gone)."""
        job = {"shards": [s.tolist() for s in shards], "total": total,
               "states": [_state(g) for g in generators]}
        try:
            forking.send(self._jobs, job)
        except OSError:
            return False
        self._pending = generators
        return True

    def collect(self, timeout: float) -> LaneResult | None:
        """The submitted lane's metrics and summed gradients (views of the shared block,
        valid until the next :meth:`submit`), and its generators moved on as the child's
        were; None when the child failed, died or took longer than ``timeout`` seconds."""
        generators, self._pending = self._pending, None
        assert generators is not None, "collect() without submit()"
        try:
            reply = forking.receive(self._results, timeout)
        except (OSError, EOFError, TimeoutError, ValueError) as error:
            logger.warning("the training's second process stopped answering (%s): its shards "
                           "run in this process from now on; the model is the same", error)
            return None
        if "error" in reply:
            logger.debug("the training's second process failed; its lane runs here: %s",
                          reply["error"])
            return None
        for generator, state in zip(generators, reply["states"], strict=True):
            generator.set_state(_from_state(state))
        have = set(reply["have"])
        return reply["metrics"], [g if i in have else None for i, g in enumerate(self.grads)]

    def close(self) -> None:
        """Stop the child and give the weights back their own memory."""
        global peak_private_kb
        try:
            os.close(self._jobs)  # the child reads the end of its jobs and leaves
        except OSError:
            pass
        try:
            reply = forking.receive(self._results, CLOSE_WAIT_S)
            peak_private_kb = max(peak_private_kb, int(reply.get("private_kb", 0)))
        except (OSError, EOFError, TimeoutError, ValueError):
            pass
        try:
            os.close(self._results)
        except OSError:
            pass
        try:
            forking.reap(self.pid)
        finally:
            self._own_memory_again()

    def _own_memory_again(self) -> None:
        """The weights copied out of the shared block (unmapped once nothing points into it)."""
        with torch.no_grad():
            for p in self.params:
                p.data = p.data.clone()
        self.grads = []


def _serve(jobs: int, results: int, params: list[torch.nn.Parameter],
           grads: list[torch.Tensor], lane: Lane, after_job: Callable[[], None] | None) -> int:
    """The child's loop: a job in, the lane's gradients into ``grads``, a reply out."""
    # (any other signal ends it as it would any process; the parent then computes the
    # lane itself)
    forking.leave_signals_to_parent()
    most = served = 0
    while True:
        try:
            job = forking.receive(jobs, None)
        except EOFError:
            forking.send(results, {"private_kb": max(most, forking.private_kb())})
            return 0
        if served % MEMORY_EVERY == 0:
            most = max(most, forking.private_kb())
        served += 1
        try:
            # The parent changed the weights in place since the last job: what is kept while
            # they stay the same (dense kernels and the like) must see that they changed.
            torch.autograd.graph.increment_version(params)
            generators = []
            for state in job["states"]:
                generator = torch.Generator()
                generator.set_state(_from_state(state))
                generators.append(generator)
            shards = [np.asarray(s, dtype=np.int64) for s in job["shards"]]
            metrics, summed = lane(shards, generators, int(job["total"]))
            have = []
            for i, grad in enumerate(summed):
                if grad is not None:
                    grads[i].copy_(grad)
                    have.append(i)
            reply: dict[str, Any] = {"metrics": metrics, "have": have,
                                     "states": [_state(g) for g in generators]}
        except Exception:  # noqa: BLE001 - the parent recomputes the lane and raises it there
            reply = {"error": traceback.format_exc(limit=5)}
        forking.send(results, reply)
        if after_job is not None:
            after_job()


def _state(generator: torch.Generator) -> str:
    return base64.b64encode(generator.get_state().numpy().tobytes()).decode()


def _from_state(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
