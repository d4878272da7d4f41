"""The fast MLP: the shared API of ``fastbp._base`` driving the kernels of ``fastbp.kernels``.

Python here only hands buffers to compiled code:

* parameters, gradients and optimizer state are single flat buffers, described by the
  layer table (``fastbp.layout``), handed to the kernels as one ``codes.Network``;
* the structures cross into compiled code as plain tuples, their fields in order (Numba
  types a plain tuple on its fast path; the kernels name the fields again on entry);
* activations, deltas and the gathered mini-batch live in a ``codes.Workspace`` allocated
  once for the largest batch seen, then reused (``_train_workspace``);
* ``fit`` makes one compiled call per chunk of epochs (gather, forward, backward, update for
  every mini-batch of every epoch), so nothing is allocated and no Python runs per step.
"""

from __future__ import annotations

import os

import numpy as np

from . import compile_notice, kernels
from ._base import BaseMLP
from .address_space import ensure_room
import contextlib

from .kernels.blas import BLOCKS, PRODUCT_SPLIT_ABOVE, one_blas_thread
from .kernels.codes import PAR_ELEMENTS, Config, Network
from .layout import make_workspace, workspace_widths
from .validation import LOSSES, as_float_array, check_X, check_y

__all__ = ["MLP", "load"]

_PAR_PRODUCT = Config._fields.index("par_product")
_PAR_ELEMENTS = Config._fields.index("par_elements")
_NO_GUARD = contextlib.nullcontext()
# Rows per chunk for inference and evaluation.
_INFERENCE_CHUNK = 1024
# Inference workspaces up to this many rows are kept for reuse (W4's largest: 4 MB in float32).
_POOLED_ROWS = 256

# A cold compile of an entry point is announced (logger "fastbp", WARNING), with its time on
# this project's 2-core machine (README, "Start-up").  The data checks come first in every
# call that takes data, and compile for several seconds too.
compile_notice.watch(kernels.all_finite, "the data checks", "~5 s")
compile_notice.watch(kernels.one_hot, "the label encoder", "~1 s", array="T")
compile_notice.watch(kernels.train_epochs, "the training kernels", "~30 s")
compile_notice.watch(kernels.infer, "the inference kernel", "~5 s")
compile_notice.watch(kernels.loss_and_grads, "the gradient kernel", "~20 s")
# ``fit``'s epoch kernel is made ready for the call's argument types before the first epoch is
# timed: the types of the per-chunk arrays (losses, skipped-batch counts, orders, rates), as
# ``_run_epochs`` and ``training.epoch_orders`` / ``epoch_rates`` make them.
_CHUNK_TYPES = (np.empty(1), np.zeros(1, dtype=np.int64), np.empty((1, 1), dtype=np.int64), np.empty((1, 0)))


def _ready(dispatcher, args):
    """Load ``dispatcher``'s machine code for the types of ``args`` (from the on-disk cache,
    or compile it: announced) without calling it; nothing to do if this process has it."""
    signature = tuple(dispatcher.typeof_pyval(a) for a in args)
    if signature not in dispatcher.overloads:
        dispatcher.compile(signature)


class MLP(BaseMLP):
    __doc__ = "The fast (Numba) MLP. " + (BaseMLP.__doc__ or "")

    def _setup(self):
        self._net = tuple(Network(self._params_ext, self._grads, self._slots_buf, self._layers))
        self._cfg = tuple(Config(loss=LOSSES[self.loss], slope=self.leaky_slope, l2=self.l2,
                                 clip_norm=self.clip_norm or 0.0, par_elements=PAR_ELEMENTS,
                                 par_product=PRODUCT_SPLIT_ABOVE, blocks=BLOCKS))
        hyper = self.optimizer.hyper
        self._hyper = tuple(hyper)
        self._ws, self._ws_rows = None, 0
        self._widths = workspace_widths(self._layers)
        self._widest = max(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))  # multiply-adds per row
        self._widest_layer = max(self.sizes)  # entries per row of the widest elementwise pass
        self._cfg_split, self._cfg_whole = None, None
        # ``train_step`` runs as a one-step "epoch" (``kernels.train_epochs``): its order (the
        # rows as given), loss and count slots, kept for the next call.
        self._step_orders, self._step_loss, self._step_skipped = {}, np.empty(1), np.zeros(1, dtype=np.int64)
        # ``infer`` without targets (``predict``) or without an output array (``evaluate``).
        self._no_rates, self._empty = np.empty((1, 0)), np.empty((0, 0), dtype=self.dtype)
        self._free_workspaces = {1 << k: [] for k in range(_POOLED_ROWS.bit_length())}
        self._one_hot_labels = self.loss == "cross_entropy"  # labels (n,) are one-hot encoded
        self._ready_for = set()  # what fit has had the epoch kernel ready for (_prepare_training)

    def _optimizer_changed(self):
        self._hyper = tuple(self.optimizer.hyper)

    def _call(self, rows):
        """``(cfg, guard)`` for a compiled call on batches of ``rows`` rows.

        ``cfg``: the model's ``Config``, or, where no phase of such a call can reach a size
        threshold (every product and pass would run serially anyway), the same without
        thresholds, which selects kernels compiled without any parallel loop (a small
        model's first session compiles no parallel code; see ``kernels.common.by_threshold``).
        ``guard``: ``blas.one_blas_thread()`` if the call may split a product, else a no-op."""
        cfg = self._cfg
        if cfg is not self._cfg_split:  # (tests replace the Config)
            self._cfg_split, self._cfg_whole = cfg, cfg[:_PAR_PRODUCT] + (None, None) + cfg[_PAR_ELEMENTS + 1:]
        splits_product = rows * self._widest > cfg[_PAR_PRODUCT]
        parallel = splits_product or max(rows * self._widest_layer, self._grads.size) >= cfg[_PAR_ELEMENTS]
        ensure_room(parallel)  # under `ulimit -v`: MemoryError here, not a hang in OpenBLAS
        if parallel:
            return cfg, (one_blas_thread() if splits_product else _NO_GUARD)
        return self._cfg_whole, _NO_GUARD

    # The data checks of ``fastbp.validation`` with their NumPy passes compiled
    # (``kernels.data``): the same arrays are accepted and returned; anything else goes to
    # ``validation``, which raises its usual error (or converts what it alone handles).
    def _check_X(self, X):
        A = as_float_array(X, "X", self.dtype)
        if A.ndim == 2 and A.shape[0] and A.shape[1] == self.sizes[0] and kernels.all_finite(A):
            return A
        return check_X(A, self.sizes[0], self.dtype)

    def _check_y(self, y, n):
        k = self.sizes[-1]
        if (self._one_hot_labels and type(y) is np.ndarray and y.dtype == np.int64
                and (y.shape == (n,) or y.shape == (n, 1)) and y.flags.c_contiguous):  # labels, or a column of them
            T = np.empty((n, k), dtype=self.dtype)
            if kernels.one_hot(T, y if y.ndim == 1 else y.reshape(n)) < 0:
                return T
        return check_y(y, n, k, self.loss, self.dtype)

    def _check_data(self, X, y):
        X = self._check_X(X)
        return X, self._check_y(y, X.shape[0])

    def _workspace(self, rows):
        return tuple(make_workspace(self._widths, self.sizes, rows, self.dtype))

    def _prepare_training(self, X, T, batch_size):
        ws = self._train_workspace(batch_size)
        cfg = self._call(batch_size)[0]
        # Typing every argument costs ~0.2 ms (twice what a small fit(epochs=1) costs else), so
        # only once per model for each combination of what can change an argument's type.
        key = (X.flags.writeable, X.flags.c_contiguous, T.flags.writeable, T.flags.c_contiguous, T.ndim,
               cfg is self._cfg, len(self._hyper))
        if key not in self._ready_for:
            losses, skipped, orders, rates = _CHUNK_TYPES
            _ready(kernels.train_epochs, (losses, skipped, self._net, self._state, ws, X, T, orders, rates,
                                          batch_size, False, False, cfg, self._hyper))
            self._ready_for.add(key)

    def _train_workspace(self, rows):
        """The training workspace, allocated once and reallocated only to grow."""
        if rows > self._ws_rows:
            self._ws, self._ws_rows = self._workspace(rows), rows
        return self._ws

    # Inference may run from several threads at once (the kernels release the GIL), so each
    # call takes a workspace of its own: for up to ``_POOLED_ROWS`` rows from a pool of free
    # ones (per power-of-two row count; ``list.pop`` / ``append`` are atomic), which saves
    # small calls building one (15 µs of a 1-row predict); larger calls make their own.
    def _inference_workspace(self, n):
        """``(pool, ws)``: a workspace for ``min(n, _INFERENCE_CHUNK)`` rows and the free list
        to give it back to (None: not pooled)."""
        rows = min(n, _INFERENCE_CHUNK)
        if rows > _POOLED_ROWS:
            return None, self._workspace(rows)
        rows = 1 << (rows - 1).bit_length()
        pool = self._free_workspaces[rows]
        try:
            return pool, pool.pop()
        except IndexError:
            return pool, self._workspace(rows)

    def _forward(self, X):
        P = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        pool, ws = self._inference_workspace(X.shape[0])
        try:
            cfg, guard = self._call(min(X.shape[0], _INFERENCE_CHUNK))
            with guard:
                _, bad, _ = kernels.infer(P, self._net, ws, X, self._empty, cfg)
        finally:
            if pool is not None:
                pool.append(ws)
        return P, bad

    def _evaluate(self, X, T):
        pool, ws = self._inference_workspace(X.shape[0])
        try:
            cfg, guard = self._call(min(X.shape[0], _INFERENCE_CHUNK))
            with guard:  # the accuracy is counted in the kernel: no output array
                loss, _, correct = kernels.infer(self._empty, self._net, ws, X, T, cfg)
        finally:
            if pool is not None:
                pool.append(ws)
        return loss, self._accuracy_from_count(correct, T)

    def _loss_and_grads(self, X, T):
        cfg, guard = self._call(X.shape[0])
        with guard:
            return kernels.loss_and_grads(self._net, self._state, self._train_workspace(X.shape[0]), X, T, cfg)

    def _train_step(self, X, T):
        m = X.shape[0]
        ws = self._train_workspace(m)
        order = self._step_orders.get(m)
        if order is None:
            order = self._step_orders.setdefault(m, np.arange(m, dtype=np.int64).reshape(1, m))
        cfg, guard = self._call(m)
        with guard:
            kernels.train_epochs(self._step_loss, self._step_skipped, self._net, self._state, ws, X, T, order,
                                 self._no_rates, m, False, True, cfg, self._hyper)
        return self._step_loss[0], self._field("status"), self._field("bad_layer")

    def _run_epochs(self, X, T, perms, batch_size, skip_nonfinite, rates, interrupts):
        ws = self._train_workspace(batch_size)
        losses = np.empty(perms.shape[0])
        skipped = np.zeros(perms.shape[0], dtype=np.int64)
        cfg, guard = self._call(batch_size)
        with interrupts.passing(), guard:  # Ctrl-C lands before or after compiled code
            done = kernels.train_epochs(losses, skipped, self._net, self._state, ws, X, T, perms, rates, batch_size,
                                        skip_nonfinite, False, cfg, self._hyper)
        return losses[:done], skipped[:done], self._field("status"), self._field("bad_layer"), self._field("bad_batch")


def load(path: str | bytes | os.PathLike) -> MLP:
    """Load a model saved by ``MLP.save`` (from either implementation) as a fast MLP."""
    return MLP.load(path)
