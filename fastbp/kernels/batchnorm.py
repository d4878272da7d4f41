"""Batch normalisation of a hidden layer's pre-activations (before the activation).

Training: ``xhat = (Z - mean) / sqrt(var + eps)`` with the batch's mean and (biased)
variance per unit, ``Y = gamma * xhat + beta``.  Inference: the running averages instead.
The running averages follow PyTorch: ``r <- (1 - momentum) r + momentum * batch`` with the
unbiased variance; they move only when a training step is applied.

``Z <- gamma * xhat`` here; ``beta`` is added by the activation kernel's fused bias add.
``stats`` holds ``[mean, var, 1/sqrt(var + eps)]`` of the batch (3 n entries), kept for the
backward pass and the running-average update.
"""

import numpy as np

from .codes import BN_EPS, BN_MOMENTUM
from .common import jit


@jit
def batchnorm_forward_train(Z, xhat, stats, gamma):
    """``Z <- gamma * xhat``; writes ``xhat`` and the batch's ``stats``."""
    m, n = Z.shape
    mean, var, istd = stats[:n], stats[n:2 * n], stats[2 * n:3 * n]
    inv_m = Z.dtype.type(1.0 / m)
    for j in range(n):
        mean[j] = 0
        var[j] = 0
    for i in range(m):
        z = Z[i]
        for j in range(n):
            mean[j] += z[j]
    for j in range(n):
        mean[j] *= inv_m
    for i in range(m):
        z = Z[i]
        for j in range(n):
            c = z[j] - mean[j]
            var[j] += c * c
    eps = Z.dtype.type(BN_EPS)
    for j in range(n):
        var[j] *= inv_m
        istd[j] = 1 / np.sqrt(var[j] + eps)
    for i in range(m):
        z, x = Z[i], xhat[i]
        for j in range(n):
            x[j] = (z[j] - mean[j]) * istd[j]
            z[j] = gamma[j] * x[j]


@jit
def batchnorm_forward_infer(Z, gamma, run_mean, run_var):
    """``Z <- gamma * (Z - running mean) / sqrt(running var + eps)``."""
    m, n = Z.shape
    eps = Z.dtype.type(BN_EPS)
    for i in range(m):
        z = Z[i]
        for j in range(n):
            z[j] = gamma[j] * ((z[j] - run_mean[j]) / np.sqrt(run_var[j] + eps))


@jit
def batchnorm_backward(D, dgamma, dbeta, xhat, stats, gamma):
    """``D``: dL/dY in, dL/dZ out; writes dL/dgamma and dL/dbeta."""
    m, n = D.shape
    istd = stats[2 * n:3 * n]
    for j in range(n):
        dgamma[j] = 0
        dbeta[j] = 0
    for i in range(m):
        d, x = D[i], xhat[i]
        for j in range(n):
            dbeta[j] += d[j]
            dgamma[j] += d[j] * x[j]
    inv_m = D.dtype.type(1.0 / m)
    for i in range(m):
        d, x = D[i], xhat[i]
        for j in range(n):
            d[j] = gamma[j] * istd[j] * (d[j] - dbeta[j] * inv_m - x[j] * (dgamma[j] * inv_m))


@jit
def running_constants(dt, m):
    """The running averages' factors in the dtype ``dt``: ``(momentum, 1 - momentum, m / (m - 1))``
    (the last turns the batch's biased variance of ``m`` rows into the unbiased one)."""
    return dt(BN_MOMENTUM), dt(1.0 - BN_MOMENTUM), dt(m / (m - 1.0) if m > 1 else 1.0)


@jit
def batchnorm_update_running(run_mean, run_var, stats, m):
    """Move the running averages towards the batch's ``stats`` of ``m`` rows."""
    n = run_mean.size
    mom, keep, unbias = running_constants(run_mean.dtype.type, m)
    for j in range(n):
        run_mean[j] = keep * run_mean[j] + mom * stats[j]
        run_var[j] = keep * run_var[j] + mom * stats[n + j] * unbias


@jit
def running_nonfinite(run_mean, run_var, stats, m):
    """Whether ``batchnorm_update_running`` would make a running average NaN or inf (the
    same arithmetic; writes nothing)."""
    n = run_mean.size
    mom, keep, unbias = running_constants(run_mean.dtype.type, m)
    bad = np.int32(0)
    for j in range(n):
        a = keep * run_mean[j] + mom * stats[j]
        b = keep * run_var[j] + mom * stats[n + j] * unbias
        d = (a - a) + (b - b)  # NaN if either is NaN or inf (optim.nonfinite)
        bad |= np.int32(d != d)
    return bad != 0
