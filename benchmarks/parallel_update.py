"""Can the optimizer's pass over all parameters use the second core beside OpenBLAS?

    python benchmarks/parallel_update.py
    python benchmarks/parallel_update.py --mkl    # design (a); in an environment with `pip install mkl tbb`

Adam's update of W3's 269,322 float32 parameters (fastbp's own rule, ``kernels.optim.adam_rule``,
on the buffers of a W3 model after one epoch),
serial and split into fixed chunks of 16,384 over Numba's threads (``prange``): alone, and
right after one of W3's GEMMs (128x784 @ 784x256, OpenBLAS with 2 threads), as in a training
step.  Each environment runs in a fresh process, because both the OpenMP runtime and OpenBLAS
read their settings once, when their thread pools start.  Median microseconds of 200 calls.
"""

import os
import subprocess
import sys
import time

CHILD = r'''
import os
import time
import numba
import numpy as np
from numba import njit, prange
from fastbp.kernels.optim import adam_constants, adam_rule

jit = njit(error_model="numpy", nogil=True)  # fastbp's options but the disk cache (no file here)

CHUNK = 1 << 14


@jit
def adam_range(p, m, v, g, lo, hi, t):
    k = adam_constants(p.dtype.type, t, 1e-9, 0.9, 0.999, 1e-8, 0.0)
    p, m, v, g = p[lo:hi], m[lo:hi], v[lo:hi], g[lo:hi]  # from 0: no negative-index checks
    for i in range(p.size):
        p[i], m[i], v[i] = adam_rule(p[i], m[i], v[i], g[i], k, False)


@jit
def serial(p, m, v, g):
    adam_range(p, m, v, g, 0, p.size, 10)


@njit(error_model="numpy", nogil=True, parallel=True)
def parallel(p, m, v, g):
    n = p.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        adam_range(p, m, v, g, c * CHUNK, min(n, (c + 1) * CHUNK), 10)


if os.environ.get("BENCH_GEMM") == "mkl":  # design (a): MKL's cblas_sgemm, its threads per MKL_THREADING_LAYER
    import ctypes, glob, sys
    _mkl = ctypes.CDLL(sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))[-1])
    _sgemm = _mkl.cblas_sgemm
    _sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                            ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
    _sgemm.restype = None

    @jit
    def gemm(a, b, c):  # row-major, no transposes
        _sgemm(101, 111, 111, a.shape[0], b.shape[1], a.shape[1], 1.0, a.ctypes, a.shape[1], b.ctypes,
               b.shape[1], 0.0, c.ctypes, c.shape[1])
else:
    @jit
    def gemm(a, b, c):
        np.dot(a, b, c)


def median_us(fn, repeat=200):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


import fastbp
rng = np.random.default_rng(0)
model = fastbp.MLP([784, 256, 256, 10], seed=0)  # W3's network, its own buffers after an epoch
model.fit(rng.random((1024, 784), dtype=np.float32), rng.integers(0, 10, 1024), epochs=1, batch_size=128)
p, m, v, g = model._params, model._slots[0], model._slots[1], model._grads.copy()
A, B = rng.random((128, 784), dtype=np.float32), rng.random((784, 256), dtype=np.float32)
C = np.empty((128, 256), np.float32)
gemm(A, B, C)
assert np.allclose(C, A @ B, rtol=1e-4)
parallel(p, m, v, g)
row = [median_us(lambda: serial(p, m, v, g)), median_us(lambda: parallel(p, m, v, g)),
       median_us(lambda: gemm(A, B, C)),
       median_us(lambda: (gemm(A, B, C), serial(p, m, v, g))),
       median_us(lambda: (gemm(A, B, C), parallel(p, m, v, g)))]
print(numba.threading_layer(), numba.get_num_threads(), *("%.0f" % x for x in row))
'''

ENVIRONMENTS = [
    ("defaults", {}),
    ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("PASSIVE + OPENBLAS_THREAD_TIMEOUT=4", {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}),
    ("workqueue layer", {"NUMBA_THREADING_LAYER": "workqueue"}),
    ("workqueue + OPENBLAS_THREAD_TIMEOUT=4", {"NUMBA_THREADING_LAYER": "workqueue", "OPENBLAS_THREAD_TIMEOUT": "4"}),
]


# Design (a): one shared pool.  Needs the ``mkl`` and ``tbb`` wheels in the running Python's
# prefix (``pip install mkl tbb``; Numba's TBB layer finds libtbb there through LD_LIBRARY_PATH,
# which a child process must be given before it starts).
_LIB = os.path.join(sys.prefix, "lib")
MKL_ENVIRONMENTS = [
    ("(a) MKL on TBB + Numba on TBB", {"BENCH_GEMM": "mkl", "MKL_THREADING_LAYER": "TBB",
                                       "NUMBA_THREADING_LAYER": "tbb"}),
    ("MKL on Intel OpenMP + Numba on omp", {"BENCH_GEMM": "mkl", "MKL_THREADING_LAYER": "INTEL",
                                            "NUMBA_THREADING_LAYER": "omp"}),
    ("MKL on GNU OpenMP + Numba on omp", {"BENCH_GEMM": "mkl", "MKL_THREADING_LAYER": "GNU",
                                          "NUMBA_THREADING_LAYER": "omp"}),
]


def main():
    print(f"{'environment':40s} layer thr | Adam serial  parallel | GEMM | GEMM+serial GEMM+parallel (us)")
    environments = ENVIRONMENTS
    if "--mkl" in sys.argv:
        ld = ":".join(x for x in (_LIB, os.environ.get("LD_LIBRARY_PATH")) if x)
        environments = [(n, {**e, "LD_LIBRARY_PATH": ld}) for n, e in MKL_ENVIRONMENTS]
    for name, extra in environments:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD], env={**os.environ, **extra}, capture_output=True,
                             text=True, check=True).stdout.split()
        layer, threads, s, p, gm, gs, gp = out
        print(f"{name:40s} {layer:5s} {threads:>3s} | {s:>11s} {p:>9s} | {gm:>4s} | {gs:>11s} {gp:>13s}"
              f"   ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
