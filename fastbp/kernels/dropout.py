"""Inverted dropout with a counter-based generator.

Whether unit ``j`` of row ``i`` of layer ``l`` is kept at training step ``t`` is a pure
function of ``(key, t, l, i * n + j)`` — splitmix64 — so the backward pass regenerates the
mask instead of storing it, any thread count gives the same bits, and ``fastbp.reference``
draws the identical mask with NumPy.  ``row0`` (0 but in data-parallel training) is the
position of the block's first row in its batch: a rank holding rows ``row0 ..`` of a global
batch draws those rows' masks, as one process training on the whole batch would.
"""

import numpy as np

from .activations import activation_grad
from .common import jit

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
def dropout_forward(A, rate, key, step, layer, row0=0):
    """``A <- A * keep / (1 - rate)``, keep = uniform >= rate (row ``i`` of ``A`` is row
    ``row0 + i`` of the batch)."""
    m, n = A.shape
    stream = dropout_stream(key, step, layer) + np.uint64(row0 * n) * _GOLDEN
    scale = A.dtype.type(1.0 / (1.0 - rate))
    for i in range(m):
        a = A[i]
        for j in range(n):
            if dropout_uniform(stream, i * n + j) >= rate:
                a[j] = a[j] * scale
            else:
                a[j] = 0


@jit
def dropout_backward(D, A, code, slope, rate, key, step, layer, row0=0):
    """``D <- D * act'(a) * keep / (1 - rate)`` where ``A`` holds the dropped activations
    (so a kept unit's activation is ``A / scale``); rows as ``dropout_forward``'s."""
    m, n = D.shape
    stream = dropout_stream(key, step, layer) + np.uint64(row0 * n) * _GOLDEN
    scale = D.dtype.type(1.0 / (1.0 - rate))
    s = D.dtype.type(slope)
    one = D.dtype.type(1.0)
    for i in range(m):
        d = D[i]
        a = A[i]
        for j in range(n):
            if dropout_uniform(stream, i * n + j) < rate:
                d[j] = 0
            else:  # the product in float64, rounded once when stored
                d[j] = np.float64(d[j]) * activation_grad(a[j] / scale, code, s, one) * scale
