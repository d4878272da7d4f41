"""The GEMM routing of ``fastbp.kernels.blas``: large products through ``fastbp_?gemm``
(OpenBLAS, or MKL with ``FASTBP_BLAS=mkl``), small ones through ``np.dot``.

Most tests elsewhere use small layers, which never reach the large-product path; these use
products above ``LARGE`` and run under each backend this environment has (in subprocesses,
since the backend is bound at import).
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from fastbp.kernels.blas import BACKEND, LARGE, MIN_SIDE, blas_gemm
from fastbp.kernels.dense import matmul

MKL_INSTALLED = bool(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
BACKENDS = ["openblas"] + (["mkl"] if MKL_INSTALLED else [])


@njit
def _gemm_nn(A, B, C):
    blas_gemm(A, B, C)


@njit
def _gemm_tn(A, B, C):
    blas_gemm(A.T, B, C)


@njit
def _gemm_nt(A, B, C):
    blas_gemm(A, B.T, C)


@njit
def _matmul(A, B, C):
    matmul(A, B, C)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 7, 9), (3, 1, 4), (130, 97, 33)])
def test_blas_gemm_every_layout(m, k, n, dtype):
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    expected = A.astype(np.float64) @ B.astype(np.float64)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for fn, a, b in ((_gemm_nn, A, B), (_gemm_tn, np.ascontiguousarray(A.T), B),
                     (_gemm_nt, A, np.ascontiguousarray(B.T))):
        C = np.full((m, n), np.nan, dtype=dtype)
        fn(a, b, C)
        np.testing.assert_allclose(C, expected, **tol)


def test_matmul_routes_by_size():
    """Both sides of each threshold give the product."""
    rng = np.random.default_rng(1)
    side = 64
    for m, k, n in ((side, LARGE // side**2 - 1, side), (side, LARGE // side**2 + 1, side),
                    (MIN_SIDE - 1, LARGE, MIN_SIDE), (MIN_SIDE, LARGE // MIN_SIDE**2 + 1, MIN_SIDE)):
        A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        C = np.empty((m, n))
        _matmul(A, B, C)
        np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-9)


def test_backend_follows_the_environment():
    wanted = os.environ.get("FASTBP_BLAS", "openblas").strip().lower()
    assert BACKEND == ("mkl" if wanted == "mkl" and MKL_INSTALLED else "openblas")


def test_asking_for_a_missing_or_unknown_blas_warns_and_uses_openblas():
    for value, installed_ok in (("mkl", MKL_INSTALLED), ("atlas", False)):
        if installed_ok:
            continue
        code = "import warnings; warnings.simplefilter('error'); import fastbp"
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, FASTBP_BLAS=value), timeout=300)
        assert run.returncode != 0 and "RuntimeWarning" in run.stderr and "OpenBLAS" in run.stderr, run.stderr
        run = subprocess.run([sys.executable, "-c", "import fastbp; print(fastbp.blas_backend())"],
                             capture_output=True, text=True, env=dict(os.environ, FASTBP_BLAS=value), timeout=300)
        assert run.stdout.strip() == "openblas"


CHILD = r"""
import json, sys
import numpy as np
import fastbp, fastbp.reference
from fastbp.kernels import blas
rng = np.random.default_rng(0)
X = rng.standard_normal((144, 600))
y = rng.integers(0, 10, 144)
out = {"backend": blas.BACKEND}
for dtype in ("float64", "float32"):
    weights = []
    for fb in (fastbp, fastbp, fastbp.reference):
        model = fb.MLP([600, 256, 10], optimizer=fb.Adam(1e-3), dtype=dtype, seed=3)
        model.fit(X.astype(dtype), y, epochs=3, batch_size=48)  # 48 x 600 x 256 > LARGE
        weights.append(np.concatenate([np.concatenate([W.ravel(), b]) for W, b in model.get_weights()]))
    fast, again, ref = weights
    out[dtype] = {"bitwise_repeat": bool(np.array_equal(fast, again)),
                  "rel": float(np.linalg.norm(fast - ref) / np.linalg.norm(ref))}
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_layers_match_the_reference_under_each_backend(backend):
    env = dict(os.environ, FASTBP_BLAS=backend, MKL_VERBOSE="1")  # MKL logs each call it makes
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["backend"] == backend
    mkl_calls = sum(line.startswith("MKL_VERBOSE") and "GEMM(" in line for line in lines)
    assert (mkl_calls > 0) == (backend == "mkl"), mkl_calls
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):  # norm-wise, after 9 Adam steps
        assert out[dtype]["bitwise_repeat"], (backend, dtype)
        assert out[dtype]["rel"] < tol, (backend, dtype, out[dtype]["rel"])
