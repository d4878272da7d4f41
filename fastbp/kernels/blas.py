"""Matrix products that share the machine with fastbp's own parallel loops.

Numba's ``np.dot`` calls SciPy's OpenBLAS, which runs large products on threads of its own
and keeps them spinning for a while after each product: a Numba parallel loop started right
after one found the other core busy (README, "Performance", the threading design).  So
fastbp owns the threads: a large product is split into blocks of the output's rows or
columns over Numba's threads (``dense.matmul``), each block one call of ``fastbp_sgemm`` /
``fastbp_dgemm`` (OpenBLAS's CBLAS ``?gemm``), and while a compiled call that may split a
product runs, SciPy's OpenBLAS is set to one thread (``one_blas_thread``, process-wide:
OpenBLAS's "per-thread" setting ``openblas_set_num_threads_local`` turned out to change the
count every thread sees, in this build) and put back when the last such call returns.

The blocks split independent outputs, never a sum, but OpenBLAS's result for an entry still
depends on the shape of the call it is computed in (measured: splitting a product anywhere
changed some entries in the last bit, even with an inner dimension of 10).  So the split is
fixed by the product's shape and the machine: ``BLOCKS`` blocks, the number of cores Numba
sees on this machine by default (``numba.config.NUMBA_DEFAULT_NUM_THREADS``), never the
thread count in use: any ``NUMBA_NUM_THREADS`` or ``numba.set_num_threads`` gives bitwise the
same weights (``tests/test_parallel.py``); a machine with another core count, like one with
another CPU (whose BLAS kernels differ), may round differently.  With fewer threads than
blocks, a thread runs several blocks one after the other.

The symbols are bound by name when this module is imported (``llvmlite.binding.add_symbol``):
compiled code refers to them by name, so Numba's on-disk cache stays valid.  Where SciPy's
BLAS is not an OpenBLAS with CBLAS and a settable thread count (``BLOCKED`` is False, see
``describe()``), the symbols are bound to stubs that are never called: the product threshold is
then out of reach and products go through ``np.dot`` with BLAS's own threads, as before.
"""

import contextlib
import ctypes
import glob
import os
import threading

import llvmlite.binding as llvm
import numba
from numba import cfunc, types
from numba.extending import register_jitable
from numba.np.ufunc.parallel import _launch_threads

from . import codes

# CBLAS's enumerations
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

_GEMM_SIGNATURE = [types.int32] * 6 + [None, types.intp, types.int32, types.intp, types.int32, None, types.intp,
                                       types.int32]


def _gemm_signature(real):
    """``void ?gemm(layout, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)``,
    pointers passed as integers (the same register in the x86-64 / AArch64 calling convention)."""
    return types.void(*[real if t is None else t for t in _GEMM_SIGNATURE])


sgemm = types.ExternalFunction("fastbp_sgemm", _gemm_signature(types.float32))
dgemm = types.ExternalFunction("fastbp_dgemm", _gemm_signature(types.float64))

# Numba's own ``get_num_threads`` reads the count through a ctypes pointer, which Numba will
# not cache; its threading layer's C function, called by name, is the same count (this
# thread's, as ``numba.set_num_threads`` set it).  Starting the layer binds the name.  Numba's
# parallel loops declare the same symbol as returning intp; a module must declare it one way.
_launch_threads()
_get_num_threads = types.ExternalFunction("get_num_threads", types.intp())


@register_jitable
def num_threads():
    """Numba's thread count for the calling thread (the C ``int`` in the low 32 bits)."""
    return _get_num_threads() & 0x7FFFFFFF


@register_jitable
def chunks_for(n, par_elements):
    """How many chunks an elementwise pass over ``n`` entries takes: one per thread from
    ``par_elements`` entries on, else 1 (serial).  Elementwise passes give the same result
    for any split, so this may follow the thread count."""
    return max(1, min(num_threads(), n)) if n >= par_elements else 1

_NAMES = {  # fastbp's symbol: the library's, SciPy's wheels (prefixed), then plain OpenBLAS
    "fastbp_sgemm": ("scipy_cblas_sgemm", "cblas_sgemm"),
    "fastbp_dgemm": ("scipy_cblas_dgemm", "cblas_dgemm"),
}
_THREAD_FUNCTIONS = (("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                     ("openblas_get_num_threads", "openblas_set_num_threads"))


def _wheel_libraries():
    """The OpenBLAS that SciPy's wheels ship (found without importing ``scipy.linalg``, which
    takes 0.3 s and which Numba imports anyway when a product first runs)."""
    import scipy

    folder = os.path.join(os.path.dirname(scipy.__file__), "..", "scipy.libs")
    return sorted(glob.glob(os.path.join(folder, "*openblas*.so*")))


def _loaded_libraries():
    """Shared libraries with "blas" in their name loaded once SciPy's BLAS is (other builds)."""
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)

    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if "blas" in line.lower() and ".so" in line})
    except OSError:
        return []


def _candidates():
    """Libraries to look in, in order; the second list only if the first has no match."""
    yield from _wheel_libraries()
    yield from _loaded_libraries()


def _thread_functions(lib):
    """OpenBLAS's ``(get, set)`` of its thread count in ``lib``, or None."""
    for get, set_ in _THREAD_FUNCTIONS:
        g, s = getattr(lib, get, None), getattr(lib, set_, None)
        if g is not None and s is not None:
            g.restype, g.argtypes, s.restype, s.argtypes = ctypes.c_int, [], None, [ctypes.c_int]
            return g, s
    return None


_threads = None  # (get, set) of the bound library's thread count


def _bind():
    """Bind the symbols; returns the library's path, or None (stubs bound)."""
    global _threads, _STUBS
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        addresses = {}
        for ours, theirs in _NAMES.items():
            for name in theirs:
                fn = getattr(lib, name, None)
                if fn is not None:
                    addresses[ours] = ctypes.cast(fn, ctypes.c_void_p).value
                    break
        threads = _thread_functions(lib)
        if len(addresses) == len(_NAMES) and threads is not None:
            _threads = threads
            for ours, address in addresses.items():
                llvm.add_symbol(ours, address)
            return os.path.realpath(path)
    _STUBS = _stubs()  # kept alive: the symbols point into them
    for ours, stub in _STUBS.items():
        llvm.add_symbol(ours, stub.address)
    return None


def _stubs():
    """C functions with ``?gemm``'s signature that do nothing, for symbols no library gave
    (never called: products then stay whole).  Compiled only on that path (a ``cfunc``
    compiles when it is defined, and is not cached)."""
    @cfunc(_gemm_signature(types.float32))
    def sgemm_stub(layout, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        pass

    @cfunc(_gemm_signature(types.float64))
    def dgemm_stub(layout, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        pass

    return {"fastbp_sgemm": sgemm_stub, "fastbp_dgemm": dgemm_stub}


_STUBS = None
BLOCKS = max(1, int(numba.config.NUMBA_DEFAULT_NUM_THREADS))
"""Blocks per parallel product (see above)."""

LIBRARY = _bind()
BLOCKED = LIBRARY is not None
"""Whether products can be split over fastbp's threads (an OpenBLAS with CBLAS and a
settable thread count was found beside SciPy)."""

PRODUCT_SPLIT_ABOVE = codes.PAR_PRODUCT if BLOCKED else 1 << 62
"""The ``Config.par_product`` a model gets: ``codes.PAR_PRODUCT``, or never without ``BLOCKED``."""


_lock = threading.Lock()
_active = 0  # compiled calls now running under one_blas_thread
_saved = 0  # OpenBLAS's thread count before the first of them


@contextlib.contextmanager
def one_blas_thread():
    """SciPy's OpenBLAS on one thread for the duration (nested and concurrent uses count: the
    count comes back when the last one ends).  Around every compiled call that may split a
    product: a split product's blocks must each run on their own thread, and the result of a
    block depends on how many threads OpenBLAS would give it."""
    global _active, _saved
    if _threads is None:
        yield
        return
    get, set_ = _threads
    with _lock:
        if _active == 0:
            _saved = get()
            if _saved != 1:
                set_(1)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved != 1:
                set_(_saved)


def thread_count():
    """OpenBLAS's thread count for products that are not split (1 where it cannot be read)."""
    return _threads[0]() if _threads is not None else 1


def describe():
    """One line: where fastbp's matrix products go."""
    if BLOCKED:
        return f"single-threaded OpenBLAS calls, large products split over Numba's threads ({LIBRARY})"
    return "np.dot with BLAS's own threads (no OpenBLAS with per-thread settings found beside SciPy)"
