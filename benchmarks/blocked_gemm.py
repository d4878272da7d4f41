"""The threading design's option (c): can Numba's threads own the GEMMs?

    python benchmarks/blocked_gemm.py [--repeat 300]

Every matrix product of one W3 and one W4 training step (forward ``A @ W``, backward
``A_prev.T @ D`` and ``D @ W.T``), timed three ways in one process, alternating:

* ``whole``: one call of OpenBLAS with its own 2 threads (what fastbp does today);
* ``rows``: a ``prange`` over fixed blocks of the output's rows, each block one call of
  single-threaded OpenBLAS (each block packs the whole right operand again);
* ``cols``: the same over blocks of the output's columns (each block packs the whole left
  operand again);
* ``fastbp``: what ``fastbp.kernels.dense.matmul`` chooses: rows when the output has at least
  as many rows as columns, else columns.

Blocks are fixed (``--blocks``, default 2) and never depend on the thread count, so each output
entry is computed by the same single-threaded call whatever thread runs it: bitwise the same
result for any thread count.  OpenBLAS is SciPy's (``scipy_cblas_sgemm``; the one Numba's
``np.dot`` uses); its thread count is switched with ``scipy_openblas_set_num_threads`` between
the variants.  Median microseconds per product; ``x`` is whole / blocked (> 1: blocked faster).
"""

import argparse
import ctypes
import glob
import os
import time

import numba
import numpy as np
import scipy
import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS)
from numba import njit, prange

_LIB = ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(scipy.__file__), "..", "scipy.libs",
                                          "libscipy_openblas*.so"))[0])
_set_threads = _LIB.scipy_openblas_set_num_threads
_set_threads.argtypes = [ctypes.c_int]
_sgemm = _LIB.scipy_cblas_sgemm
# pointers as size_t: the same register as a pointer in the x86-64 ABI, and plain integers in Numba
_sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_size_t, ctypes.c_int, ctypes.c_size_t,
                                        ctypes.c_int, ctypes.c_float, ctypes.c_size_t, ctypes.c_int]
_sgemm.restype = None
ROW, NO, TRANS = 101, 111, 112


@njit(nogil=True)
def gemm(C, A, ta, B, tb, r0, r1, c0, c1):
    """C[r0:r1, c0:c1] = op(A)[r0:r1, :] @ op(B)[:, c0:c1]; op = transpose when ta / tb."""
    K = A.shape[0] if ta else A.shape[1]
    lda, ldb, ldc = A.shape[1], B.shape[1], C.shape[1]
    a = A.ctypes.data + 4 * (r0 if ta else r0 * lda)
    b = B.ctypes.data + 4 * (c0 * ldb if tb else c0)
    c = C.ctypes.data + 4 * (r0 * ldc + c0)
    _sgemm(ROW, TRANS if ta else NO, TRANS if tb else NO, r1 - r0, c1 - c0, K, 1.0, a, lda, b, ldb, 0.0, c, ldc)


@njit(nogil=True, parallel=True)
def blocked(C, A, ta, B, tb, blocks, by_rows):
    M, N = C.shape
    for k in prange(blocks):
        if by_rows:
            gemm(C, A, ta, B, tb, M * k // blocks, M * (k + 1) // blocks, 0, N)
        else:
            gemm(C, A, ta, B, tb, 0, M, N * k // blocks, N * (k + 1) // blocks)


def step_products(sizes, batch, rng):
    """(name, C, A, ta, B, tb) for every GEMM of one training step of an MLP."""
    out = []
    for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
        A = rng.random((batch, i), dtype=np.float32)
        W = rng.random((i, o), dtype=np.float32)
        D = rng.random((batch, o), dtype=np.float32)
        out.append((f"fwd{l} {batch}x{i}@{i}x{o}", np.empty((batch, o), np.float32), A, False, W, False))
        out.append((f"gW{l} {i}x{batch}@{batch}x{o}", np.empty((i, o), np.float32), A, True, D, False))
        if l > 1:
            out.append((f"gX{l} {batch}x{o}@{o}x{i}", np.empty((batch, i), np.float32), D, False, W, True))
    return out


def median_us(fn, repeat):
    fn()
    t = np.empty(repeat)
    for r in range(repeat):
        start = time.perf_counter()
        fn()
        t[r] = time.perf_counter() - start
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--blocks", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"Numba: {numba.get_num_threads()} threads; blocks {args.blocks}")
    print(f"{'product':28s} {'whole':>7s} {'rows':>7s} {'cols':>7s} {'x rows':>7s} {'x cols':>7s} {'x fastbp':>8s}")
    for name, sizes, batch in (("W3", (784, 256, 256, 10), 128), ("W4", (1024, 2048, 2048, 10), 256)):
        sums = np.zeros(4)
        for label, C, A, ta, B, tb in step_products(sizes, batch, rng):
            ref = (A.T if ta else A) @ (B.T if tb else B)

            def whole():
                _set_threads(2)
                gemm(C, A, ta, B, tb, 0, C.shape[0], 0, C.shape[1])

            def rows():
                _set_threads(1)
                blocked(C, A, ta, B, tb, args.blocks, True)

            def cols():
                _set_threads(1)
                blocked(C, A, ta, B, tb, args.blocks, False)

            for fn in (whole, rows, cols):
                fn()
                assert np.allclose(C, ref, rtol=1e-4), (label, fn.__name__)
            samples = [[], [], []]
            for _ in range(6):  # alternating blocks of calls
                for j, fn in enumerate((whole, rows, cols)):
                    samples[j].append(median_us(fn, args.repeat // 6 + 1))
            us = [float(np.median(np.concatenate(s))) * 1e6 for s in samples]
            us.append(us[1] if C.shape[0] >= C.shape[1] else us[2])
            sums += us
            print(f"{name} {label:25s} {us[0]:7.0f} {us[1]:7.0f} {us[2]:7.0f} {us[0] / us[1]:7.2f} {us[0] / us[2]:7.2f}"
                  f" {us[0] / us[3]:8.2f}", flush=True)
        print(f"{name} {'step total':25s} {sums[0]:7.0f} {sums[1]:7.0f} {sums[2]:7.0f} "
              f"{sums[0] / sums[1]:7.2f} {sums[0] / sums[2]:7.2f} {sums[0] / sums[3]:8.2f}")


if __name__ == "__main__":
    main()
