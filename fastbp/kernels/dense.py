"""A dense layer's forward and backward pass; its GEMMs go through ``matmul`` (see ``.blas``).

Forward:  ``A = act(A_prev @ W + b)`` (bias and activation fused into one pass over A).
Backward, given ``D = dLoss/dZ`` of this layer:
    ``gW = A_prev.T @ D + l2 * W``,  ``gb = sum_rows D``,
    ``D_prev = (D @ W.T) * act_prev'(A_prev)``  (skipped for the first layer).
"""

import numpy as np

from .activations import activation_backward, bias_activation
from .blas import LARGE, MIN_SIDE, blas_gemm
from .common import jit


@jit(inline="always")
def matmul(A, B, C):
    """``C <- A @ B``: large products through ``blas_gemm`` (MKL if asked for, see ``.blas``),
    others through ``np.dot`` (OpenBLAS)."""
    m, n, k = C.shape[0], C.shape[1], A.shape[1]
    if m * n * k >= LARGE and min(m, n, k) >= MIN_SIDE:
        blas_gemm(A, B, C)
    else:
        np.dot(A, B, C)


@jit
def dense_forward(A_prev, W, b, A, code, slope):
    """``A <- act(A_prev @ W + b)``."""
    matmul(A_prev, W, A)
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
    matmul(A_prev.T, D, gW)
    if l2 != 0.0:
        add_scaled(gW, l2, W)
    column_sums(D, gb)
    if need_input_grad:
        matmul(D, W.T, D_prev)
        activation_backward(D_prev, A_prev, prev_code, slope)
