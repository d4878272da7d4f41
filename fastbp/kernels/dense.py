"""A dense layer's forward and backward pass. GEMMs go to BLAS via Numba's ``np.dot(a, b, out)``.

Forward:  ``A = act(A_prev @ W + b)`` (bias and activation fused into one pass over A).
Backward, given ``D = dLoss/dZ`` of this layer:
    ``gW = A_prev.T @ D + l2 * W``,  ``gb = sum_rows D``,
    ``D_prev = (D @ W.T) * act_prev'(A_prev)``  (skipped for the first layer).
"""

import numpy as np

from .activations import activation_backward, bias_activation
from .common import jit


@jit
def dense_forward(A_prev, W, b, A, code, slope):
    """``A <- act(A_prev @ W + b)``."""
    np.dot(A_prev, W, A)
    bias_activation(A, b, code, slope)


@jit
def column_sums(D, out):
    """``out <- D.sum(axis=0)``, rows added in order (vectorised over columns)."""
    m, n = D.shape
    for j in range(n):
        out[j] = 0
    for i in range(m):
        d = D[i]
        for j in range(n):
            out[j] += d[j]


@jit
def add_scaled(out, a, x):
    """``out <- out + a * x`` elementwise over 2-D arrays of one shape."""
    m, n = out.shape
    s = out.dtype.type(a)
    for i in range(m):
        o = out[i]
        xi = x[i]
        for j in range(n):
            o[j] += s * xi[j]


@jit
def dense_backward(A_prev, W, D, gW, gb, D_prev, prev_code, slope, l2, need_input_grad):
    """Gradients of one layer; writes ``gW``, ``gb`` and (if asked) ``D_prev``."""
    np.dot(A_prev.T, D, gW)
    if l2 != 0.0:
        add_scaled(gW, l2, W)
    column_sums(D, gb)
    if need_input_grad:
        np.dot(D, W.T, D_prev)
        activation_backward(D_prev, A_prev, prev_code, slope)
