"""A dense layer's forward and backward pass.  GEMMs go to BLAS via Numba's ``np.dot(a, b, out)``.

Forward:  ``A = act(A_prev @ W + b)`` (bias and activation fused into one pass over A).
Backward, given ``D = dLoss/dZ`` of this layer:
    ``gW = A_prev.T @ D``,  ``gb = sum_rows D``,
    ``D_prev = (D @ W.T) * act_prev'(A_prev)``  (skipped for the first layer).
The L2 penalty's share of ``gW`` is added by the network (``network.add_l2_gradient``), next
to the penalty itself.
"""

import numpy as np

from .activations import activation_backward, bias_activation
from .common import jit


@jit
def dense_forward(A, A_prev, W, b, code, slope):
    """``A <- act(A_prev @ W + b)``; with ``code == PRODUCT_ONLY``, ``A <- A_prev @ W``."""
    np.dot(A_prev, W, A)
    bias_activation(A, b, code, slope)


@jit
def column_sums(out, D):
    """``out <- D.sum(axis=0)``, rows added in order (vectorised over columns)."""
    m, n = D.shape
    for j in range(n):
        out[j] = 0
    for i in range(m):
        d = D[i]
        for j in range(n):
            out[j] += d[j]


@jit
def dense_backward(D_prev, gW, gb, D, A_prev, W, prev_code, slope, need_input_grad):
    """Gradients of one layer; writes ``gW``, ``gb`` and (if asked) ``D_prev``."""
    np.dot(A_prev.T, D, gW)
    column_sums(gb, D)
    if need_input_grad:
        np.dot(D, W.T, D_prev)
        activation_backward(D_prev, A_prev, prev_code, slope)
