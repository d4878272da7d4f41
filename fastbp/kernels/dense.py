"""A dense layer's forward and backward pass, and the matrix products they are made of.

Forward:  ``A = act(A_prev @ W + b)`` (bias and activation fused into one pass over A).
Backward, given ``D = dLoss/dZ`` of this layer:
    ``gW = A_prev.T @ D``,  ``gb = sum_rows D``,
    ``D_prev = (D @ W.T) * act_prev'(A_prev)``  (skipped for the first layer).
The L2 penalty's share of ``gW`` is added by the network (``network.add_l2_gradient``), next
to the penalty itself.

Products of more than ``par`` multiply-adds are split over Numba's threads (``matmul``: blocks
of the output, each one single-threaded BLAS call, see ``.blas``); smaller ones go to BLAS
whole through Numba's ``np.dot``.  Elementwise passes over at least ``par_elements`` entries
run over row blocks on all threads (``row_blocks``).
"""

import numpy as np
from numba import prange
from numba.core import types
from numba.core.extending import overload

from .activations import activation_backward, bias_activation
from .blas import NO_TRANS, ROW_MAJOR, TRANS, chunks_for, dgemm, sgemm
from .common import by_threshold, flush_denormals, jit, restore_fp_control

# Whether an operand is transposed, as typed values: a literal ``True`` / ``False`` would
# compile every product function once per combination.
NO, YES = np.bool_(False), np.bool_(True)


def _xgemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, zero):
    """``?gemm`` for the dtype of ``zero`` (compiled code only)."""


@overload(_xgemm)
def _xgemm_typed(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, zero):
    fn = sgemm if zero == types.float32 else dgemm

    def impl(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, zero):
        fn(ROW_MAJOR, ta, tb, m, n, k, zero + 1, a, lda, b, ldb, zero, c, ldc)
    return impl


@jit
def gemm_block(C, A, ta, B, tb, r0, r1, c0, c1):
    """``C[r0:r1, c0:c1] <- op(A)[r0:r1, :] @ op(B)[:, c0:c1]`` in one BLAS call (``op``:
    transposed when ``ta`` / ``tb``).  ``A``, ``B``, ``C`` C-ordered.  Single-threaded when
    called under ``blas.one_blas_thread``, as the model's calls are."""
    K = A.shape[0] if ta else A.shape[1]
    lda, ldb, ldc = A.shape[1], B.shape[1], C.shape[1]
    item = C.itemsize
    a = A.ctypes.data + item * (r0 if ta else r0 * lda)
    b = B.ctypes.data + item * (c0 * ldb if tb else c0)
    c = C.ctypes.data + item * (r0 * ldc + c0)
    _xgemm(TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, r1 - r0, c1 - c0, K, a, lda, b, ldb, c, ldc,
           C.dtype.type(0))


@jit(parallel=True)
def blocked_product(C, A, ta, B, tb, blocks):
    """``C <- op(A) @ op(B)`` in ``blocks`` blocks over Numba's threads: of the output's rows
    when it has at least as many rows as columns (each block reads all of ``op(B)``), else
    of its columns.  The split depends on the shapes and ``blocks`` only (see ``.blas``)."""
    M, N = C.shape
    by_rows = M >= N
    blocks = max(1, min(blocks, M if by_rows else N))
    zero = M - M  # not a literal 0: that would compile gemm_block for it
    for k in prange(blocks):
        fp = flush_denormals()  # each thread: the kernels' floating-point mode
        lo, hi = (M if by_rows else N) * k // blocks, (M if by_rows else N) * (k + 1) // blocks
        if by_rows:
            gemm_block(C, A, ta, B, tb, lo, hi, zero, N)
        else:
            gemm_block(C, A, ta, B, tb, zero, M, lo, hi)
        restore_fp_control(fp)


@jit(inline="always")
def whole_product(C, A, ta, B, tb):
    """``C <- op(A) @ op(B)`` in one call of Numba's ``np.dot`` (BLAS)."""
    if ta:
        np.dot(A.T, B, C)
    elif tb:
        np.dot(A, B.T, C)
    else:
        np.dot(A, B, C)


@jit  # (not inlined into the overload: Numba's IR inliner mishandles the conditional's phi)
def multiply_adds(C, A, ta):
    """The size of the product ``C <- op(A) @ op(B)`` in multiply-adds."""
    return C.shape[0] * C.shape[1] * A.shape[0] if ta else C.shape[0] * C.shape[1] * A.shape[1]


def matmul(C, A, ta, B, tb, par, blocks):
    """``C <- op(A) @ op(B)``: in ``blocks`` blocks over the threads above ``par`` multiply-adds;
    whole where ``par`` is None (compiled code only; ``common.by_threshold``)."""


def _matmul_split(C, A, ta, B, tb, par, blocks):
    if multiply_adds(C, A, ta) > par:
        blocked_product(C, A, ta, B, tb, blocks)
    else:
        whole_product(C, A, ta, B, tb)


def _matmul_whole(C, A, ta, B, tb, par, blocks):
    whole_product(C, A, ta, B, tb)


by_threshold(matmul, _matmul_whole, _matmul_split, "par")


@jit(parallel=True)
def _bias_activation_rows(Z, b, code, slope, blocks):
    m = Z.shape[0]
    for k in prange(blocks):
        fp = flush_denormals()
        bias_activation(Z[m * k // blocks:m * (k + 1) // blocks], b, code, slope)
        restore_fp_control(fp)


@jit(parallel=True)
def _activation_backward_rows(D, A, code, slope, blocks):
    m = D.shape[0]
    for k in prange(blocks):
        fp = flush_denormals()
        lo, hi = m * k // blocks, m * (k + 1) // blocks
        activation_backward(D[lo:hi], A[lo:hi], code, slope)
        restore_fp_control(fp)


@jit(inline="always")
def row_blocks(Z, par_elements):
    """How many row blocks an elementwise pass over ``Z`` takes (1: serial, in the caller)."""
    return min(chunks_for(Z.size, par_elements), Z.shape[0])


def bias_activation_split(Z, b, code, slope, par_elements):
    """``activations.bias_activation`` over row blocks on all threads from ``par_elements``
    entries on (compiled code only; ``common.by_threshold``)."""


def _bias_activation_split(Z, b, code, slope, par_elements):
    blocks = row_blocks(Z, par_elements)
    if blocks > 1:
        _bias_activation_rows(Z, b, code, slope, blocks)
    else:
        bias_activation(Z, b, code, slope)


def _bias_activation_whole(Z, b, code, slope, par_elements):
    bias_activation(Z, b, code, slope)


by_threshold(bias_activation_split, _bias_activation_whole, _bias_activation_split)


def activation_backward_split(D, A, code, slope, par_elements):
    """``activations.activation_backward`` over row blocks on all threads from ``par_elements``
    entries on (compiled code only; ``common.by_threshold``)."""


def _activation_backward_split(D, A, code, slope, par_elements):
    blocks = row_blocks(D, par_elements)
    if blocks > 1:
        _activation_backward_rows(D, A, code, slope, blocks)
    else:
        activation_backward(D, A, code, slope)


def _activation_backward_whole(D, A, code, slope, par_elements):
    activation_backward(D, A, code, slope)


by_threshold(activation_backward_split, _activation_backward_whole, _activation_backward_split)


@jit
def dense_forward(A, A_prev, W, b, code, slope, par, par_elements, blocks):
    """``A <- act(A_prev @ W + b)``; with ``code == PRODUCT_ONLY``, ``A <- A_prev @ W``.
    ``par`` / ``par_elements``: thresholds for splitting (None: never; see ``codes.Config``)."""
    matmul(A, A_prev, NO, W, NO, par, blocks)
    bias_activation_split(A, b, code, slope, par_elements)


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
def dense_backward(D_prev, gW, gb, D, A_prev, W, prev_code, slope, need_input_grad, par, par_elements, blocks):
    """Gradients of one layer; writes ``gW``, ``gb`` and (if asked) ``D_prev``."""
    matmul(gW, A_prev, YES, D, NO, par, blocks)
    column_sums(gb, D)
    if need_input_grad:
        matmul(D_prev, D, NO, W, YES, par, blocks)
        activation_backward_split(D_prev, A_prev, prev_code, slope, par_elements)
