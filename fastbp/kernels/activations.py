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
            t = z.dtype.type(exp_shifted(z, add_bias_max(z, b)))
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


# ----------------------------------------------------------------- dropout
# Inverted dropout with a counter-based generator: whether unit j of row i of layer l is
# kept at training step t is a pure function of (key, t, l, i * n + j) — splitmix64 — so
# the backward pass regenerates the mask instead of storing it, any thread count gives the
# same bits, and fastbp.reference draws the identical mask with NumPy.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11, _S16 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11), np.uint64(16)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2 ** -53


@jit
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def dropout_stream(key, step, layer):
    """The per-(step, layer) seed of the keep/drop stream."""
    return _mix(np.uint64(key) + (np.uint64(step) << _S16) + np.uint64(layer))


@jit
def dropout_uniform(stream, index):
    """A uniform number in [0, 1) for element ``index`` of a stream."""
    return np.float64(_mix(stream + np.uint64(index) * _GOLDEN) >> _S11) * _TO_UNIT


@jit
def dropout_forward(A, rate, key, step, layer):
    """``A <- A * keep / (1 - rate)``, keep = uniform >= rate."""
    m, n = A.shape
    stream = dropout_stream(key, step, layer)
    scale = A.dtype.type(1.0 / (1.0 - rate))
    for i in range(m):
        a = A[i]
        for j in range(n):
            if dropout_uniform(stream, i * n + j) >= rate:
                a[j] = a[j] * scale
            else:
                a[j] = 0


@jit
def dropout_backward(D, A, code, slope, rate, key, step, layer):
    """``D <- D * act'(a) * keep / (1 - rate)`` where ``A`` holds the dropped activations
    (so a kept unit's activation is ``A / scale``)."""
    m, n = D.shape
    stream = dropout_stream(key, step, layer)
    scale = D.dtype.type(1.0 / (1.0 - rate))
    s = D.dtype.type(slope)
    one = D.dtype.type(1.0)
    for i in range(m):
        d = D[i]
        a = A[i]
        for j in range(n):
            if dropout_uniform(stream, i * n + j) < rate:
                d[j] = 0
                continue
            x = a[j] / scale
            if code == RELU:
                g = one if x > 0 else 0
            elif code == LEAKY_RELU:
                g = one if x > 0 else s
            elif code == TANH:
                g = one - x * x
            elif code == SIGMOID:
                g = x * (one - x)
            else:
                g = one
            d[j] = d[j] * g * scale
