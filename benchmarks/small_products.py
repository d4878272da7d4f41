"""Tiny matrix products: OpenBLAS (through Numba's ``np.dot``) against plain Numba loops.

    python benchmarks/small_products.py

The shapes of W1's and W2's layers at batch 16 / 32 and inference on 150 rows, each product
repeated 2,000 times inside one compiled call (no Python per product), best of 5.  It asks
whether small calls lose time to BLAS's per-call overhead (README, "Small calls"): they do
not — OpenBLAS takes 0.25–0.4 µs for the smallest, and loops over 3 or 16 output columns
vectorise poorly.
"""
import numpy as np, timeit
from numba import njit
@njit
def blas_nn(C, A, B, reps):
    for _ in range(reps): np.dot(A, B, C)
@njit
def blas_tn(C, A, B, reps):
    for _ in range(reps): np.dot(A.T, B, C)
@njit
def blas_nt(C, A, B, reps):
    for _ in range(reps): np.dot(A, B.T, C)
@njit(inline="always")
def nn(C, A, B):
    M, K = A.shape; N = B.shape[1]
    for i in range(M):
        c = C[i]; a = A[i]
        for j in range(N): c[j] = 0
        for p in range(K):
            s = a[p]; b = B[p]
            for j in range(N): c[j] += s * b[j]
@njit(inline="always")
def tn(C, A, B):  # C = A.T @ B, A (R,M), B (R,N)
    R, M = A.shape; N = B.shape[1]
    for i in range(M):
        c = C[i]
        for j in range(N): c[j] = 0
    for r in range(R):
        a = A[r]; b = B[r]
        for i in range(M):
            s = a[i]; c = C[i]
            for j in range(N): c[j] += s * b[j]
@njit(inline="always")
def nt(C, A, B):  # C = A @ B.T, A (M,K), B (N,K)
    M, K = A.shape; N = B.shape[0]
    for i in range(M):
        a = A[i]; c = C[i]
        for j in range(N):
            b = B[j]; s = 0.0
            for p in range(K): s += a[p] * b[p]
            c[j] = s
@njit
def loop_nn(C, A, B, reps):
    for _ in range(reps): nn(C, A, B)
@njit
def loop_tn(C, A, B, reps):
    for _ in range(reps): tn(C, A, B)
@njit
def loop_nt(C, A, B, reps):
    for _ in range(reps): nt(C, A, B)
rng = np.random.default_rng(0)
REPS = 2000
def run(kind, M, N, K, dt):
    if kind == "nn": A = rng.random((M, K)); B = rng.random((K, N)); fb, fl = blas_nn, loop_nn
    if kind == "tn": A = rng.random((K, M)); B = rng.random((K, N)); fb, fl = blas_tn, loop_tn
    if kind == "nt": A = rng.random((M, K)); B = rng.random((N, K)); fb, fl = blas_nt, loop_nt
    A = A.astype(dt); B = B.astype(dt); C1 = np.empty((M, N), dt); C2 = np.empty((M, N), dt)
    fb(C1, A, B, 1); fl(C2, A, B, 1)
    assert np.allclose(C1, C2, rtol=1e-4)
    tb = min(timeit.repeat(lambda: fb(C1, A, B, REPS), number=1, repeat=5)) / REPS * 1e6
    tl = min(timeit.repeat(lambda: fl(C2, A, B, REPS), number=1, repeat=5)) / REPS * 1e6
    print(f"{kind} M={M:4d} N={N:4d} K={K:4d} {np.dtype(dt).name}: blas {tb:7.3f} us  loop {tl:7.3f} us  MACs {M*N*K}")
for dt in (np.float64, np.float32):
    for kind, M, N, K in [("nn",16,16,4),("nn",16,3,16),("tn",4,16,16),("tn",16,3,16),("nt",16,16,3),
                          ("nn",150,16,4),("nn",150,3,16),("nn",32,128,64),("nn",32,10,128),("tn",64,128,32),("tn",128,10,32),("nt",32,128,10),
                          ("nn",64,64,64),("nn",16,128,64)]:
        run(kind, M, N, K, dt)
