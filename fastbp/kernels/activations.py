"""Elementwise activation kernels, in place.

Hidden-layer derivatives are computed from the activation's OUTPUT ``A`` (not from the
pre-activation), so the forward pass stores one matrix per layer:
``sigmoid' = A (1 - A)``, ``tanh' = 1 - A^2``, ``relu' = [A > 0]``,
``leaky_relu' = 1 if A > 0 else slope`` (slope >= 0, so sign(A) = sign(Z)).
``activation_grad`` is the one place these derivatives are written; ``activation_backward``
here and ``dropout.dropout_backward`` use it.
"""

import numpy as np

from .codes import LEAKY_RELU, LINEAR, PRODUCT_ONLY, RELU, SIGMOID, SOFTMAX, TANH
from .common import jit


@jit
def sigmoid_scalar(z):
    """Logistic function without overflow: exp of a non-positive number only."""
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit
def add_bias_max(z, b):
    """``z <- z + b`` for one row; returns the row's maximum."""
    mx = z[0] + b[0]
    for j in range(z.size):
        z[j] = z[j] + b[j]
        mx = max(mx, z[j])
    return mx


@jit
def exp_shifted(z, mx):
    """``z <- exp(z - mx)`` for one row; returns the sum (float64): softmax's denominator."""
    total = 0.0
    for j in range(z.size):
        e = np.exp(z[j] - mx)
        z[j] = e
        total += e
    return total


@jit
def bias_activation(Z, b, code, slope):
    """``Z <- act(Z + b)`` row by row; ``code`` is a hidden or output activation code
    (``PRODUCT_ONLY``: nothing to do)."""
    m, n = Z.shape
    s = Z.dtype.type(slope)
    if code == PRODUCT_ONLY:
        return
    for i in range(m):
        z = Z[i]
        if code == LINEAR:
            for j in range(n):
                z[j] = z[j] + b[j]
        elif code == RELU:
            for j in range(n):
                v = z[j] + b[j]
                z[j] = 0 if v <= 0 else v  # NaN stays NaN, as in np.maximum(z, 0)
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
            t = z.dtype.type(exp_shifted(z, add_bias_max(z, b)))
            for j in range(n):
                z[j] = z[j] / t


@jit
def activation_grad(a, code, slope, one):
    """``act'(.)`` at one element, from the activation's output ``a`` (``slope`` and ``one`` in
    the element's dtype; the result too)."""
    if code == RELU:
        return one if a > 0 else one - one
    if code == LEAKY_RELU:
        return one if a > 0 else slope
    if code == TANH:
        return one - a * a
    if code == SIGMOID:
        return a * (one - a)
    return one


# Typed int64 scalars, not literals: a literal argument would compile its own specialisation.
_RELU, _LEAKY_RELU, _TANH, _SIGMOID = np.int64(RELU), np.int64(LEAKY_RELU), np.int64(TANH), np.int64(SIGMOID)


@jit
def activation_backward(D, A, code, slope):
    """``D <- D * act'(.)`` elementwise, with the derivative taken from the output ``A``."""
    m, n = D.shape
    s = D.dtype.type(slope)
    one = D.dtype.type(1.0)
    # One loop per code, the code a constant inside it (LLVM inlines activation_grad and
    # folds its branches), so that each loop vectorises.
    for i in range(m):
        d = D[i]
        a = A[i]
        if code == RELU:
            for j in range(n):
                d[j] = d[j] * activation_grad(a[j], _RELU, s, one)
        elif code == LEAKY_RELU:
            for j in range(n):
                d[j] = d[j] * activation_grad(a[j], _LEAKY_RELU, s, one)
        elif code == TANH:
            for j in range(n):
                d[j] = d[j] * activation_grad(a[j], _TANH, s, one)
        elif code == SIGMOID:
            for j in range(n):
                d[j] = d[j] * activation_grad(a[j], _SIGMOID, s, one)
