"""Matrix products: small ones through SciPy's OpenBLAS (Numba's ``np.dot``); large ones
through ``fastbp_sgemm`` / ``fastbp_dgemm``, bound at import to OpenBLAS too — or, on
request, to MKL.

``FASTBP_BLAS=mkl`` in the environment (with ``pip install "fastbp[mkl]"``) binds the large
products to MKL's Fortran ``sgemm_`` / ``dgemm_``.  On this project's Intel machine that made
W3's epoch 24 % and W4's 11 % faster: MKL's 2-thread sgemm beats OpenBLAS's on their layers
(``benchmarks/gemm_rates.py``), while OpenBLAS is faster on small products, where MKL's
threading costs more than it saves.  It is not the default because it is not always a gain:
in a process that has imported PyTorch, MKL's products ran at half speed here (PyTorch's own
OpenMP runtime is loaded), and on other CPUs OpenBLAS may be the faster one; measure with
``benchmarks/compare.py`` under both settings.

A product goes to ``fastbp_?gemm`` when it has at least ``LARGE`` multiply-adds and no side
shorter than ``MIN_SIDE`` (skinny products such as an output layer's ran slower on MKL).
Compiled code refers to the symbols by name, so the on-disk cache stays valid whichever
library they are bound to.  Results are deterministic for a fixed BLAS thread count under
either library; the two libraries may round differently in the last bits.
"""

import ctypes
import ctypes.util
import glob
import os
import sys
import warnings

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

LARGE = 1 << 20
"""Products of at least this many multiply-adds (``m * k * n``) go to ``fastbp_?gemm``..."""
MIN_SIDE = 32
"""... if none of ``m``, ``k``, ``n`` is shorter than this."""

_MKL_THREADING_INTEL, _MKL_THREADING_GNU = 0, 3


def _load_mkl():
    """MKL's single dynamic library, or None.  Looked for in this environment's ``lib``
    (where the ``mkl`` wheel puts it), then on the loader's path."""
    candidates = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")), reverse=True)
    found = ctypes.util.find_library("mkl_rt")
    if found:
        candidates.append(found)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            # Intel's OpenMP runtime comes with the wheel; GNU's if it does not load.
            if lib.MKL_Set_Threading_Layer(ctypes.c_int(_MKL_THREADING_INTEL)) < 0:
                lib.MKL_Set_Threading_Layer(ctypes.c_int(_MKL_THREADING_GNU))
            lib.sgemm_, lib.dgemm_  # noqa: B018  (both must be there)
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _scipy_routine(name):
    """Address of SciPy's Fortran-interface BLAS routine ``name`` (OpenBLAS in its wheels)."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def _bind():
    wanted = os.environ.get("FASTBP_BLAS", "openblas").strip().lower() or "openblas"
    if wanted not in ("openblas", "mkl"):
        warnings.warn(f"FASTBP_BLAS={wanted!r} is not 'openblas' or 'mkl'; using OpenBLAS", RuntimeWarning)
    mkl = _load_mkl() if wanted == "mkl" else None
    if wanted == "mkl" and mkl is None:
        warnings.warn("FASTBP_BLAS=mkl but MKL was not found (pip install 'fastbp[mkl]'); using OpenBLAS",
                      RuntimeWarning)
    for name in ("sgemm", "dgemm"):
        if mkl is not None:
            address = ctypes.cast(getattr(mkl, name + "_"), ctypes.c_void_p).value
        else:
            address = _scipy_routine(name)
        llvm.add_symbol("fastbp_" + name, address)
    return "mkl" if mkl is not None else "openblas"


BACKEND = _bind()
"""Which library the large products go to: ``"mkl"`` or ``"openblas"``."""


def _operand(context, builder, aty, value):
    """(data pointer, 'N' or 'T', leading dimension) that make Fortran (column-major) BLAS
    see the TRANSPOSE of a 2-D operand: a C-ordered (r x c) array is, column-major, its own
    transpose with leading dimension c ('N'); an F-ordered one (the ``.T`` of a C-ordered
    array) is itself with leading dimension r, so it needs 'T'."""
    ary = context.make_array(aty)(context, builder, value=value)
    rows, cols = cgutils.unpack_tuple(builder, ary.shape, 2)
    if aty.layout == "C":
        return ary.data, ord("N"), cols
    return ary.data, ord("T"), rows


@intrinsic
def blas_gemm(typingctx, A, B, C):
    """``C <- A @ B`` through ``fastbp_sgemm`` / ``fastbp_dgemm`` (no checks: the caller's
    shapes agree).  ``A`` and ``B`` are C-ordered or transposes of C-ordered arrays (F), ``C``
    is C-ordered; all of one float dtype."""
    ok = (all(isinstance(a, types.Array) and a.ndim == 2 for a in (A, B, C))
          and A.dtype == B.dtype == C.dtype and C.dtype in (types.float32, types.float64)
          and A.layout in "CF" and B.layout in "CF" and C.layout == "C")
    if not ok:
        return None
    name = "fastbp_sgemm" if C.dtype == types.float32 else "fastbp_dgemm"

    def codegen(context, builder, signature, args):
        i8, i32 = ir.IntType(8), ir.IntType(32)
        real = context.get_value_type(C.dtype)
        a_ptr, a_trans, a_ld = _operand(context, builder, A, args[0])
        b_ptr, b_trans, b_ld = _operand(context, builder, B, args[1])
        c = context.make_array(C)(context, builder, value=args[2])
        m, n = cgutils.unpack_tuple(builder, c.shape, 2)
        k = cgutils.unpack_tuple(builder, context.make_array(A)(context, builder, value=args[0]).shape, 2)[1]

        def by_ref(value):
            return cgutils.alloca_once_value(builder, value)

        def int32(v):
            return builder.trunc(v, i32)

        # Row-major C (m x n) = A B  <=>  column-major C^T (n x m) = B^T A^T.
        fnty = ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i8.as_pointer()] + [i32.as_pointer()] * 3
                               + [real.as_pointer()] * 2 + [i32.as_pointer(), real.as_pointer(), i32.as_pointer()]
                               + [real.as_pointer()] * 2 + [i32.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [
            by_ref(ir.Constant(i8, b_trans)), by_ref(ir.Constant(i8, a_trans)),
            by_ref(int32(n)), by_ref(int32(m)), by_ref(int32(k)),
            by_ref(ir.Constant(real, 1.0)), b_ptr, by_ref(int32(b_ld)), a_ptr, by_ref(int32(a_ld)),
            by_ref(ir.Constant(real, 0.0)), c.data, by_ref(int32(n)),
        ])
        return context.get_dummy_value()

    return types.none(A, B, C), codegen


def describe():
    """A one-line description of where fastbp's matrix products go."""
    if BACKEND == "mkl":
        return f"products of >= {LARGE:,} multiply-adds (no side < {MIN_SIDE}): MKL; others: OpenBLAS (SciPy)"
    return "OpenBLAS (SciPy)"


__all__ = ["BACKEND", "LARGE", "MIN_SIDE", "blas_gemm", "describe"]
