"""Elementwise activation kernels, in place, one branch per code outside the hot loop.

Hidden-layer derivatives are computed from the activation's OUTPUT ``A`` (not from the
pre-activation), so the forward pass stores one matrix per layer:
``sigmoid' = A (1 - A)``, ``tanh' = 1 - A^2``, ``relu' = [A > 0]``,
``leaky_relu' = 1 if A > 0 else slope`` (slope >= 0, so sign(A) = sign(Z)).
"""

import numpy as np

from .common import LEAKY_RELU, LINEAR, RELU, SIGMOID, SOFTMAX, TANH, jit


@jit
def sigmoid_scalar(z):
    """Logistic function without overflow: exp of a non-positive number only."""
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit
def bias_activation(Z, b, code, slope):
    """``Z <- act(Z + b)`` row by row; ``code`` is a hidden or output activation code."""
    m, n = Z.shape
    s = Z.dtype.type(slope)
    for i in range(m):
        z = Z[i]
        if code == LINEAR:
            for j in range(n):
                z[j] = z[j] + b[j]
        elif code == RELU:
            for j in range(n):
                v = z[j] + b[j]
                z[j] = v if v > 0 else 0
        elif code == LEAKY_RELU:
            for j in range(n):
                v = z[j] + b[j]
                z[j] = v if v > 0 else s * v
        elif code == TANH:
            for j in range(n):
                z[j] = np.tanh(z[j] + b[j])
        elif code == SIGMOID:
            for j in range(n):
                z[j] = sigmoid_scalar(z[j] + b[j])
        elif code == SOFTMAX:
            mx = z[0] + b[0]
            for j in range(n):
                z[j] = z[j] + b[j]
                mx = max(mx, z[j])
            total = 0.0
            for j in range(n):
                e = np.exp(z[j] - mx)
                z[j] = e
                total += e
            t = z.dtype.type(total)
            for j in range(n):
                z[j] = z[j] / t


@jit
def activation_backward(D, A, code, slope):
    """``D <- D * act'(.)`` elementwise, with the derivative taken from the output ``A``."""
    m, n = D.shape
    s = D.dtype.type(slope)
    one = D.dtype.type(1.0)
    if code == LINEAR:
        return
    for i in range(m):
        d = D[i]
        a = A[i]
        if code == RELU:
            for j in range(n):
                d[j] = d[j] if a[j] > 0 else 0
        elif code == LEAKY_RELU:
            for j in range(n):
                d[j] = d[j] if a[j] > 0 else d[j] * s
        elif code == TANH:
            for j in range(n):
                d[j] = d[j] * (one - a[j] * a[j])
        elif code == SIGMOID:
            for j in range(n):
                d[j] = d[j] * (a[j] * (one - a[j]))
