"""GFLOP/s of each GEMM of a W3 / W4 training step: fastbp's BLAS vs PyTorch's.

    python benchmarks/gemm_rates.py [--workloads W3 W4] [--repeat 20]

fastbp multiplies through Numba's ``np.dot`` into SciPy's OpenBLAS, with weights stored
``(n_in, n_out)``: forward ``A @ W``, weight gradient ``A.T @ D``, input gradient ``D @ W.T``.
PyTorch (if installed; ``set_num_threads`` = this machine's cores) multiplies through the
BLAS it was built with (MKL in the x86 wheels), weights stored ``(n_out, n_in)``: forward
``A @ W.T``, ``D.T @ A``, ``D @ W``.  Both are timed on the same shapes in this process, so
the table says how much of a gap between the two libraries' epochs is their BLAS.
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "asv_benchmarks"))
from benchmarks.common import WORKLOADS  # noqa: E402


@njit
def _nn(a, b, c, reps):
    for _ in range(reps):
        np.dot(a, b, c)


@njit
def _tn(a, b, c, reps):
    for _ in range(reps):
        np.dot(a.T, b, c)


@njit
def _nt(a, b, c, reps):
    for _ in range(reps):
        np.dot(a, b.T, c)


def rate(fn, flops, repeat):
    fn(1)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn(repeat)
        times.append((time.perf_counter() - start) / repeat)
    return flops / min(times) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=["W3", "W4"], choices=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print("| workload | layer | GEMM | m x k x n | fastbp (OpenBLAS) GFLOP/s | PyTorch GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for name in args.workloads:
        sizes, _, m, dtype = WORKLOADS[name]
        for l, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
            A = rng.standard_normal((m, k)).astype(dtype)
            W = rng.standard_normal((k, n)).astype(dtype)
            D = rng.standard_normal((m, n)).astype(dtype)
            Z, G, Dp = np.empty((m, n), dtype), np.empty((k, n), dtype), np.empty((m, k), dtype)
            flops = 2.0 * m * k * n
            ours = {"forward": lambda r: _nn(A, W, Z, r), "weight grad": lambda r: _tn(A, D, G, r),
                    "input grad": lambda r: _nt(D, W, Dp, r)}
            theirs = {}
            if torch is not None:
                tA, tD, tWt = torch.from_numpy(A), torch.from_numpy(D), torch.from_numpy(np.ascontiguousarray(W.T))
                tZ, tGt, tDp = torch.empty(m, n), torch.empty(n, k), torch.empty(m, k)
                theirs = {"forward": lambda r: [torch.mm(tA, tWt.T, out=tZ) for _ in range(r)],
                          "weight grad": lambda r: [torch.mm(tD.T, tA, out=tGt) for _ in range(r)],
                          "input grad": lambda r: [torch.mm(tD, tWt, out=tDp) for _ in range(r)]}
            for gemm, fn in ours.items():
                if gemm == "input grad" and l == 0:
                    continue  # nobody computes the input's gradient
                mine = rate(fn, flops, args.repeat)
                other = f"{rate(theirs[gemm], flops, args.repeat):.0f}" if theirs else "n/a"
                print(f"| {name} | {l} | {gemm} | {m} x {k} x {n} | {mine:.0f} | {other} |", flush=True)


if __name__ == "__main__":
    main()
