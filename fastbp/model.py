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

import numpy as np

from . import kernels
from ._base import BaseMLP
import contextlib

from .kernels.blas import BLOCKS, PRODUCT_SPLIT_ABOVE, one_blas_thread
from .kernels.codes import PAR_ELEMENTS, Config, Network
from .layout import make_workspace, workspace_widths
from .validation import LOSSES

__all__ = ["MLP", "load"]

_PAR_PRODUCT = Config._fields.index("par_product")
_NO_GUARD = contextlib.nullcontext()
# Rows per chunk for inference and evaluation.
_INFERENCE_CHUNK = 1024
# Inference workspaces up to this many rows are kept for reuse (W4's largest: 4 MB in float32).
_POOLED_ROWS = 256


class MLP(BaseMLP):
    __doc__ = "The fast (Numba) MLP. " + BaseMLP.__doc__

    def _setup(self):
        self._net = tuple(Network(self._params_ext, self._grads, self._slots_buf, self._layers))
        self._cfg = tuple(Config(loss=LOSSES[self.loss], slope=self.leaky_slope, l2=self.l2,
                                 clip_norm=self.clip_norm or 0.0, par_elements=PAR_ELEMENTS,
                                 par_product=PRODUCT_SPLIT_ABOVE, blocks=BLOCKS))
        hyper = self.optimizer.hyper
        self._lr, self._hyper = hyper.lr, tuple(hyper)
        self._ws, self._ws_rows = None, 0
        self._widths = workspace_widths(self._layers)
        self._widest = max(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))  # multiply-adds per row
        self._free_workspaces = {1 << k: [] for k in range(_POOLED_ROWS.bit_length())}

    def _blas_threads(self, rows):
        """``blas.one_blas_thread()`` if a call on ``rows`` rows may split a product, else a no-op."""
        return one_blas_thread() if rows * self._widest > self._cfg[_PAR_PRODUCT] else _NO_GUARD

    def _workspace(self, rows):
        return tuple(make_workspace(self._widths, self.sizes, rows, self.dtype))

    def _prepare_training(self, batch_size):
        self._train_workspace(batch_size)

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
            with self._blas_threads(min(X.shape[0], _INFERENCE_CHUNK)):
                bad = kernels.predict(P, self._net, ws, X, self._cfg)
        finally:
            if pool is not None:
                pool.append(ws)
        return P, bad

    def _evaluate(self, X, T):
        P = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        pool, ws = self._inference_workspace(X.shape[0])
        try:
            with self._blas_threads(min(X.shape[0], _INFERENCE_CHUNK)):
                loss = kernels.evaluate(P, self._net, ws, X, T, self._cfg)
        finally:
            if pool is not None:
                pool.append(ws)
        return loss, P

    def _loss_and_grads(self, X, T):
        with self._blas_threads(X.shape[0]):
            return kernels.loss_and_grads(self._net, self._state, self._train_workspace(X.shape[0]), X, T, self._cfg)

    def _train_step(self, X, T):
        ws = self._train_workspace(X.shape[0])
        with self._blas_threads(X.shape[0]):
            loss = kernels.train_step(self._net, self._state, ws, X, T, self._lr, self._cfg, self._hyper)
        return loss, self._field("status"), self._field("bad_layer")

    def _run_epochs(self, X, T, perms, batch_size, skip_nonfinite, rates, interrupts):
        ws = self._train_workspace(batch_size)
        losses = np.empty(perms.shape[0])
        skipped = np.zeros(perms.shape[0], dtype=np.int64)
        with interrupts.passing(), self._blas_threads(batch_size):  # Ctrl-C lands before or after compiled code
            done = kernels.train_epochs(losses, skipped, self._net, self._state, ws, X, T, perms, rates, batch_size,
                                        skip_nonfinite, self._cfg, self._hyper)
        return losses[:done], skipped[:done], self._field("status"), self._field("bad_layer"), self._field("bad_batch")


def load(path):
    """Load a model saved by ``MLP.save`` (from either implementation) as a fast MLP."""
    return MLP.load(path)
