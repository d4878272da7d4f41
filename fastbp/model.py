"""The fast MLP: the shared API of ``fastbp._base`` driving the kernels of ``fastbp.kernels``.

Python here only validates, converts and hands buffers to compiled code:

* parameters, gradients and optimizer state are single flat buffers (``fastbp._base``);
* activations, deltas and the gathered mini-batch live in a workspace allocated once for
  the largest batch seen, then reused (``_train_workspace``);
* ``fit`` makes one compiled call per chunk of epochs (gather, forward, backward, update for
  every mini-batch of every epoch), so nothing is allocated and no Python runs per step.
"""

import numpy as np

from . import kernels
from ._base import HIDDEN_ACTIVATIONS, LOSSES, OUTPUT_ACTIVATIONS, BaseMLP, carve

__all__ = ["MLP", "load"]

# Rows per chunk for inference and evaluation.
_INFERENCE_CHUNK = 1024


class MLP(BaseMLP):
    __doc__ = "The fast (Numba) MLP. " + BaseMLP.__doc__

    def _setup(self):
        L = self.n_layers
        meta = np.full((L, 11), -1, dtype=np.int64)
        ws_off = bn_off = 0
        self._bn_row_offsets = np.full(L, -1, dtype=np.int64)
        for l in range(L):
            n_out = self.sizes[l + 1]
            meta[l, 0], meta[l, 1] = self.sizes[l], n_out
            meta[l, 2], meta[l, 3] = self._w_off[l], self._b_off[l]
            meta[l, 4] = ws_off  # in units of rows; scaled by the capacity below
            ws_off += n_out
            meta[l, 5] = HIDDEN_ACTIVATIONS[self.activations[l]] if l < L - 1 else OUTPUT_ACTIVATIONS[self.output]
            meta[l, 6] = self._g_off[l]
            meta[l, 7] = self._r_off[l]
            if self._g_off[l] >= 0:
                self._bn_row_offsets[l] = bn_off
                bn_off += n_out
            meta[l, 10] = self._end[l]
        self._ws_row_offsets = meta[:, 4].copy()
        self._ws_width = ws_off
        self._bn_width = bn_off
        self._meta = meta
        self._loss_code = LOSSES[self.loss]
        hyper = list(self.optimizer.hyper) + [0.0] * (5 - len(self.optimizer.hyper))
        self._cfg = np.array([self.leaky_slope, self.l2, self.clip_norm or 0.0] + hyper + self.dropout + [0.0],
                             dtype=np.float64)
        self._state = np.zeros(7, dtype=np.int64)
        self._state[5] = self._dropout_key_value
        self._capacity = 0

    # The step count lives in the int64 array the kernels update:
    # [step, status of the last batch, its bad layer, bad batch index, batches skipped, dropout key,
    #  batches done in the current epoch].
    @property
    def _step(self):
        return int(self._state[0])

    @_step.setter
    def _step(self, value):
        if not hasattr(self, "_state"):
            self._state = np.zeros(7, dtype=np.int64)
        self._state[0] = value

    @property
    def _dropout_key(self):
        return int(self._state[5])

    @_dropout_key.setter
    def _dropout_key(self, value):
        self._dropout_key_value = value
        if hasattr(self, "_state"):
            self._state[5] = value

    def _epoch_progress(self):
        return int(self._state[6])

    def _make_workspace(self, rows):
        """A workspace for batches of up to ``rows`` rows: ``(meta, acts, deltas, Xb, Tb)``.

        ``meta`` is the layer table with the workspace offsets for this capacity.
        """
        meta = self._meta.copy()
        meta[:, 4] = self._ws_row_offsets * rows
        # batch norm's xhat (rows x n) and batch statistics (3 n) follow the activations in acts
        bn = self._bn_row_offsets >= 0
        meta[bn, 8] = rows * self._ws_width + rows * self._bn_row_offsets[bn]
        meta[bn, 9] = rows * (self._ws_width + self._bn_width) + 3 * self._bn_row_offsets[bn]
        acts_size = rows * (self._ws_width + self._bn_width) + 3 * self._bn_width
        acts, deltas, Xb, Tb = carve(
            [acts_size, rows * self._ws_width, rows * self.sizes[0], rows * self.sizes[-1]], self.dtype)
        return meta, acts, deltas, Xb, Tb

    def _train_workspace(self, rows):
        """The training workspace, allocated once and reallocated only to grow."""
        if rows > self._capacity:
            self._ws = self._make_workspace(rows)
            self._capacity = rows
        return self._ws

    # ------------------------------------------------------------- hooks
    # Inference gets a private workspace per call, so predict / evaluate may run from several
    # threads at once (the kernels release the GIL); training reuses one workspace.
    def _forward(self, X):
        chunk = min(X.shape[0], _INFERENCE_CHUNK)
        meta, acts, _, _, _ = self._make_workspace(chunk)
        P = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        kernels.predict(self._params_ext, X, meta, self._cfg, acts, chunk, P)
        return P

    def _evaluate(self, X, T):
        chunk = min(X.shape[0], _INFERENCE_CHUNK)
        meta, acts, deltas, _, _ = self._make_workspace(chunk)
        P = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        loss = kernels.evaluate(self._params_ext, X, T, meta, self._loss_code, self._cfg, acts, deltas, chunk, P)
        return loss, P

    def _loss_and_grads(self, X, T):
        meta, acts, deltas, _, _ = self._train_workspace(X.shape[0])
        return kernels.loss_and_grads(self._params_ext, self._grads, X, T, meta, self._loss_code, self._cfg, acts,
                                      deltas, self._state)

    def _train_batch(self, X, T):
        meta, acts, deltas, _, _ = self._train_workspace(X.shape[0])
        loss = kernels.train_step(self._params_ext, self._grads, self._slots_buf, self._state, X, T, meta,
                                  self._loss_code, self.optimizer.code, self._cfg, acts, deltas)
        return loss, int(self._state[1]), int(self._state[2])

    def _run_epochs(self, X, T, perms, batch_size, skip_nonfinite, rates):
        meta, acts, deltas, Xb, Tb = self._train_workspace(batch_size)
        losses = np.empty(perms.shape[0])
        skipped = np.zeros(perms.shape[0], dtype=np.int64)
        done = kernels.train_epochs(self._params_ext, self._grads, self._slots_buf, self._state, X, T, perms,
                                    batch_size, meta, self._loss_code, self.optimizer.code, self._cfg, acts,
                                    deltas, Xb, Tb, skip_nonfinite, rates, losses, skipped)
        s = self._state
        return losses[:done], skipped[:done], int(s[1]), int(s[2]), int(s[3])


def load(path):
    """Load a model saved by ``MLP.save`` (from either implementation) as a fast MLP."""
    return MLP.load(path)
