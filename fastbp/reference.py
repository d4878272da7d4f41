"""The plain NumPy reference MLP: the textbook model, written to be read.

``Z = A @ W + b``, an activation, a loss, the chain rule backwards, an optimizer
step.  Every step allocates and every operation is a NumPy call: this module is
the oracle every ``fastbp`` kernel is tested against and the baseline every
benchmark is measured against.  It has the same API as ``fastbp``::

    import fastbp.reference as fb     # instead of: import fastbp as fb

Configuration, validation, initialisation, storage and save/load are shared with
``fastbp`` (``fastbp/_base.py``); the arithmetic below is independent of the kernels.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np

from . import schedules
from ._base import BaseMLP
from .kernels.codes import BN_EPS, BN_MOMENTUM, STATUS_GRAD, STATUS_LOSS, STATUS_OK, STATUS_UPDATE
from .gradcheck import gradcheck
from .training import EarlyStopping, History
from .optimizers import SGD, AdaGrad, Adam, AdamW, RMSprop, Optimizer

__all__ = ["MLP", "History", "EarlyStopping", "gradcheck", "schedules", "load", "Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "AdaGrad"]


# --------------------------------------------------------------- activations
def sigmoid(z):
    """Logistic function, computed without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def activation(name, z, slope=0.01):
    if name == "linear":
        return z
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z).astype(z.dtype, copy=False)
    if name == "softmax":
        return softmax(z)
    raise ValueError(f"unknown activation {name!r}")


def activation_derivative(name, z, slope=0.01):
    """d activation / dz, elementwise, from the pre-activation z (0 at relu's kink)."""
    if name == "linear":
        return np.ones_like(z)
    if name == "sigmoid":
        s = sigmoid(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1, slope).astype(z.dtype)
    raise ValueError(f"unknown activation {name!r}")


# ------------------------------------------------------------------- dropout
_MASK64 = (1 << 64) - 1


def _mix(z):
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_mask(key, step, layer, shape, rate):
    """Inverted-dropout multiplier (0 or 1 / (1 - rate)) for a layer's activations at a step.

    Unit ``(i, j)`` is kept when ``u >= rate``, with ``u`` uniform in [0, 1) from the
    counter-based stream (key, step, layer, i * n + j): the same numbers the kernels draw.
    """
    with np.errstate(over="ignore"):
        stream = _mix(np.array([(key + (step << 16) + layer) & _MASK64], dtype=np.uint64))[0]
        index = np.arange(shape[0] * shape[1], dtype=np.uint64).reshape(shape)
        u = (_mix(stream + index * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (u >= rate) / (1.0 - rate)


# -------------------------------------------------------------------- losses
def loss_and_delta(loss, output, Z, P, T):
    """Mean loss and dLoss/dZ for output logits Z, output P = output(Z), targets T.

    The cross-entropies are computed from the logits (log-sum-exp), never log(P).
    """
    n, k = Z.shape
    if loss == "cross_entropy":
        m = Z.max(axis=1, keepdims=True)
        log_p = Z - (m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True)))
        value = -(T * log_p).sum() / n
        delta = (P * T.sum(axis=1, keepdims=True) - T) / n
    elif loss == "binary_cross_entropy":
        value = (np.maximum(Z, 0) - Z * T + np.log1p(np.exp(-np.abs(Z)))).mean()
        delta = (P - T) / (n * k)
    else:  # mse, mean over all n * k elements
        value = ((P - T) ** 2).mean()
        g = 2 * (P - T) / (n * k)
        if output == "linear":
            delta = g
        elif output == "sigmoid":
            delta = g * P * (1 - P)
        else:  # softmax: the Jacobian-vector product
            delta = P * (g - (g * P).sum(axis=1, keepdims=True))
    return value, delta.astype(Z.dtype, copy=False)


# ---------------------------------------------------------------- batch norm
def batchnorm_train(z):
    """``xhat = (z - mean) / sqrt(var + eps)`` with the batch's mean and (biased) variance;
    returns ``xhat, mean, var``."""
    mean, var = z.mean(axis=0), z.var(axis=0)
    return (z - mean) / np.sqrt(var + BN_EPS), mean, var


def batchnorm_backward(delta, xhat, var, gamma):
    """dL/dZ, dL/dgamma and dL/dbeta from ``delta`` = dL/dY of ``Y = gamma * xhat + beta``."""
    dgamma, dbeta = (delta * xhat).sum(axis=0), delta.sum(axis=0)
    dz = gamma / np.sqrt(var + BN_EPS) * (delta - delta.mean(axis=0) - xhat * (delta * xhat).mean(axis=0))
    return dz, dgamma, dbeta


# ---------------------------------------------------------------- optimizers
def clip_by_global_norm(g, max_norm):
    """PyTorch's clip_grad_norm_: scale g by max_norm / (norm + 1e-6) when that is < 1."""
    norm = np.sqrt(np.sum(g.astype(np.float64) ** 2))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        g *= g.dtype.type(coef)


def optimizer_step(opt, p, g, slots, t, lr=None):
    """``opt``'s rule for parameters p with gradient g and state rows ``slots``; t is the
    1-based step.  Returns the new parameters and the new state rows (a list) as new arrays,
    changing nothing: the caller applies them only if they are all finite.

    ``lr`` overrides the optimizer's learning rate (a schedule's rate for this step).
    """
    if lr is not None:
        opt = copy.copy(opt)
        opt.lr = lr
    if isinstance(opt, SGD):
        if opt.momentum > 0:
            v = opt.momentum * slots[0] + g
            d = g + opt.momentum * v if opt.nesterov else v
            return p - opt.lr * d, [v]
        return p - opt.lr * g, []
    if isinstance(opt, RMSprop):
        s = opt.rho * slots[0] + (1 - opt.rho) * g * g
        return p - opt.lr * g / (np.sqrt(s) + opt.eps), [s]
    if isinstance(opt, Adam):  # and AdamW
        if isinstance(opt, AdamW):
            p = p * (1 - opt.lr * opt.weight_decay)
        m = opt.beta1 * slots[0] + (1 - opt.beta1) * g
        v = opt.beta2 * slots[1] + (1 - opt.beta2) * g * g
        step_size = opt.lr / (1 - opt.beta1 ** t)
        denom = np.sqrt(v) / math.sqrt(1 - opt.beta2 ** t) + opt.eps
        return p - step_size * m / denom, [m, v]
    if isinstance(opt, AdaGrad):
        s = slots[0] + g * g
        return p - opt.lr * g / (np.sqrt(s) + opt.eps), [s]
    raise TypeError(f"unsupported optimizer {opt!r}")


def running_averages(run_mean, run_var, mean, var, m):
    """Batch norm's running averages moved towards a batch of ``m`` rows (PyTorch's rule:
    the unbiased variance), as new arrays."""
    return ((1 - BN_MOMENTUM) * run_mean + BN_MOMENTUM * mean,
            (1 - BN_MOMENTUM) * run_var + BN_MOMENTUM * var * (m / (m - 1) if m > 1 else 1))


# --------------------------------------------------------------------- model
class MLP(BaseMLP):
    __doc__ = "The NumPy reference MLP. " + (BaseMLP.__doc__ or "")

    _epochs_per_call = False  # a Python loop gains nothing from chunks; readers wait one epoch at most

    def _forward_cache(self, X, step=None):
        """Pre-activations Z, activations A (A[0] is X) and dropout multipliers of every layer.

        ``step`` given: training mode — hidden outputs are dropped with that step's masks and
        batch-normalised layers use the batch's statistics (kept in ``self._bn_cache``).
        """
        A, Z, masks = [X], [], []
        self._bn_cache = {}
        for l in range(self.n_layers):
            if self._gamma[l] is None:
                z = A[-1] @ self._W[l] + self._b[l]
            else:  # batch norm: no bias; normalise, scale and shift
                z = A[-1] @ self._W[l]
                if step is not None:
                    xhat, mean, var = batchnorm_train(z)
                    self._bn_cache[l] = (xhat, var, mean, len(z))
                else:
                    xhat = (z - self._run_mean[l]) / np.sqrt(self._run_var[l] + BN_EPS)
                z = self._gamma[l] * xhat + self._beta[l]
            Z.append(z)
            name = self.activations[l] if l < self.n_layers - 1 else self.output
            a = activation(name, z, self.leaky_slope)
            mask = None
            if step is not None and l < self.n_layers - 1 and self.dropout[l] > 0:
                mask = dropout_mask(self._dropout_key, step, l, a.shape, self.dropout[l]).astype(a.dtype)
                a = a * mask
            masks.append(mask)
            A.append(a)
        return Z, A, masks

    def _l2_term(self):
        if self.l2 == 0:
            return 0.0
        return 0.5 * self.l2 * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in self._W)

    def _forward(self, X):
        P = self._forward_cache(X)[1][-1]
        return P, int(P.size - np.isfinite(P).sum())

    def _evaluate(self, X, T):
        Z, A, _ = self._forward_cache(X)
        value, _ = loss_and_delta(self.loss, self.output, Z[-1], A[-1], T)
        return float(value) + self._l2_term(), self._accuracy(A[-1], T)

    def _loss_and_grads(self, X, T):
        Z, A, masks = self._forward_cache(X, step=self._step + 1)  # the next step's dropout masks
        value, delta = loss_and_delta(self.loss, self.output, Z[-1], A[-1], T)
        for l in range(self.n_layers - 1, -1, -1):
            if l in self._bn_cache:  # delta is dL/dY: through the normalisation to dL/dZ
                xhat, var, _, _ = self._bn_cache[l]
                delta, dgamma, dbeta = batchnorm_backward(delta, xhat, var, self._gamma[l])
                self._ggamma[l][...], self._gbeta[l][...] = dgamma, dbeta
                self._gb[l][...] = 0  # a normalised layer has no bias
            else:
                self._gb[l][...] = delta.sum(axis=0)
            self._gW[l][...] = A[l].T @ delta + self.l2 * self._W[l]
            if l > 0:
                delta = (delta @ self._W[l].T) * activation_derivative(self.activations[l - 1], Z[l - 1],
                                                                        self.leaky_slope)
                if masks[l - 1] is not None:
                    delta = delta * masks[l - 1]
        return float(value) + self._l2_term()

    def _train_step(self, X, T, lr=None):
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, not as warnings
            value = self._loss_and_grads(X, T)
        if not np.isfinite(value):  # nothing is updated: the weights stay the last finite ones
            return value, STATUS_LOSS, self.n_layers - 1
        for l in range(self.n_layers - 1, -1, -1):
            if not (np.isfinite(self._gW[l]).all() and np.isfinite(self._gb[l]).all()):
                return value, STATUS_GRAD, l
        if self.clip_norm is not None:
            clip_by_global_norm(self._grads, self.clip_norm)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            params, slots = optimizer_step(self.optimizer, self._params, self._grads, self._slots, self._step + 1, lr)
            running = {l: running_averages(self._run_mean[l], self._run_var[l], mean, var, m)
                       for l, (_, var, mean, m) in self._bn_cache.items()}
        # applied only if every new parameter, optimizer state and running average is finite
        for l in range(self.n_layers - 1, -1, -1):
            block = slice(int(self._layers[l]["w"]), int(self._layers[l]["end"]))
            if not all(np.isfinite(a[block]).all() for a in [params, *slots]) or \
                    not all(np.isfinite(a).all() for a in running.get(l, ())):
                return value, STATUS_UPDATE, l
        self._step += 1
        self._params[...] = params
        for row, new in zip(self._slots, slots):
            row[...] = new
        for l, (mean, var) in running.items():
            self._run_mean[l][...] = mean
            self._run_var[l][...] = var
        return value, STATUS_OK, -1

    def _run_epoch(self, X, T, perm, batch_size, skip_nonfinite, rates, interrupts):
        """One epoch over ``X[perm]`` from batch ``batch`` of the state record on (as the kernels'
        ``_train_epoch``): ``(finished, loss, skipped, status, layer, bad_batch)``."""
        fields = self._fields
        status, layer, bad_batch = STATUS_OK, -1, -1
        n_batches = -(-X.shape[0] // batch_size)
        for b in range(self._field("batch"), n_batches):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            value, st, bad_layer = self._train_step(X[idx], T[idx], float(rates[b]) if len(rates) else None)
            if st != STATUS_OK:
                status, layer, bad_batch = st, bad_layer, b
                if not skip_nonfinite:
                    return False, float("nan"), 0, status, layer, bad_batch  # stopped part-way, at batch b
                fields["skipped"][0] += 1
            else:
                fields["loss_sum"][0] += value * len(idx)
                fields["counted"][0] += len(idx)
            # the position moves with the step (progress, read by fit's progress display, too)
            fields["batch"][0] = b + 1
            fields["batches"][0] += 1
            if b + 1 < n_batches:  # (the last batch and the epoch's end go together)
                interrupts.deliver()  # between two batches: the only place Ctrl-C stops the epoch
        counted, skipped = self._field("counted"), self._field("skipped")
        loss = float(fields["loss_sum"][0]) / counted if counted else float("nan")
        fields["epoch"][0] += 1
        for key in ("batch", "skipped", "loss_sum", "counted"):
            fields[key][0] = 0
        interrupts.deliver()
        return True, loss, skipped, status, layer, bad_batch

    def _run_epochs(self, X, T, perms, batch_size, skip_nonfinite, rates, interrupts):
        losses, skipped = [], []
        status, layer, batch = STATUS_OK, -1, -1
        for perm, epoch_rates in zip(perms, rates):
            finished, loss, n_skipped, status, layer, batch = self._run_epoch(X, T, perm, batch_size, skip_nonfinite,
                                                                              epoch_rates, interrupts)
            if not finished:
                break
            losses.append(loss)
            skipped.append(n_skipped)
        return np.array(losses), np.array(skipped, dtype=np.int64), status, layer, batch


def load(path: str | bytes | os.PathLike) -> MLP:
    """Load a model saved by ``MLP.save`` (from either implementation) as a reference MLP."""
    return MLP.load(path)
