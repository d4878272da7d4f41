"""Elementwise activation kernels, in place.

Hidden-layer derivatives are computed from the activation's OUTPUT ``A`` (not from the
pre-activation), so the forward pass stores one matrix per layer:
``sigmoid' = A (1 - A)``, ``tanh' = 1 - A^2``, ``relu' = [A > 0]``,
``leaky_relu' = 1 if A > 0 else slope`` (slope >= 0, so sign(A) = sign(Z)).
``backprop_activation`` is the one place these derivatives are written; the loops that
use it (``activation_backward`` here, ``dropout_backward``) branch on the code once per
call, outside their inner loops.
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
            t = z.dtype.type(exp_shifted(z, add_bias_max(z, b)))
            for j in range(n):
                z[j] = z[j] / t


@jit(inline="always")
def backprop_activation(d, a, code, slope, one):
    """``d * act'(.)`` for one element, the derivative taken from the activation's output
    ``a`` (``slope`` and ``one`` in the element's dtype).

    The derivative is computed in the element's dtype and the product in float64, rounded
    once when the caller stores it: for float32 that is the float32 product, and a caller
    that scales it further (dropout) rounds only once.
    """
    if code == RELU:
        return d if a > 0 else 0
    if code == LEAKY_RELU:
        return d if a > 0 else np.float64(d) * slope
    if code == TANH:
        return np.float64(d) * (one - a * a)
    if code == SIGMOID:
        return np.float64(d) * (a * (one - a))
    return d


@jit
def activation_backward(D, A, code, slope):
    """``D <- D * act'(.)`` elementwise, with the derivative taken from the output ``A``."""
    m, n = D.shape
    s = D.dtype.type(slope)
    one = D.dtype.type(1.0)
    # One loop per code with the code fixed inside it, so each loop vectorises.
    if code == RELU:
        _backprop_rows(D, A, RELU, s, one)
    elif code == LEAKY_RELU:
        _backprop_rows(D, A, LEAKY_RELU, s, one)
    elif code == TANH:
        _backprop_rows(D, A, TANH, s, one)
    elif code == SIGMOID:
        _backprop_rows(D, A, SIGMOID, s, one)


@jit(inline="always")
def _backprop_rows(D, A, code, s, one):
    m, n = D.shape
    for i in range(m):
        d = D[i]
        a = A[i]
        for j in range(n):
            d[j] = backprop_activation(d[j], a[j], code, s, one)
