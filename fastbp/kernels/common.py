"""The one decorator every kernel uses, and the low-level helpers of the entry points:
views without reference counting and the floating-point mode.

``cache=True``: compiled code is kept on disk, so only the first process pays for it.
``error_model="numpy"``: divisions do not check for zero, so division loops vectorise.
``nogil=True``: inference may run from several threads at once.
No ``fastmath``: it moved float32 results away from the reference (and bought no speed).
The integer codes the kernels dispatch on live in :mod:`.codes`.
"""

import hashlib
import inspect
import os
import platform
import warnings

from llvmlite import ir
from numba import njit, types
from numba.core import caching, cgutils
from numba.core.extending import intrinsic, overload
from numba.core.imputils import impl_ret_borrowed
from numba.np.arrayobj import populate_array

_OPTIONS = dict(error_model="numpy", nogil=True)  # and the on-disk cache: ``_KernelCache``


def _sources_digest():
    """A digest of every source file of this package (read once, at import); None where the
    sources cannot be read as files (then Numba's own per-file check is all there is)."""
    digest = hashlib.sha256()
    folder = os.path.dirname(os.path.abspath(__file__))
    try:
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + b"\0" + f.read() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


_SOURCES_DIGEST = _sources_digest()


def _stamp_with_package(dispatcher):
    """Make the on-disk cache of ``dispatcher`` depend on every file of this package.

    Numba checks a cached function against its own source file only: a kernel whose codes,
    constants or callees changed in another file would load stale machine code.  The cache
    index stores the source stamp the dispatcher computed when it was created; adding the
    package's digest to it makes any change to any kernel file a cache miss.
    (``tests/test_codes.py`` checks that this works with the installed Numba.)
    """
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if _SOURCES_DIGEST is not None and cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, _SOURCES_DIGEST)
    return dispatcher


class _ReadOnlyInTreeLocator(caching.InTreeCacheLocator):
    """The package's own ``__pycache__`` when Numba finds no location it can write to (a
    package installed by another user, an unwritable or missing home directory, an unusable
    ``NUMBA_CACHE_DIR``): the kernels cached there still load, and what is not cached is
    compiled in memory (``_KernelCache.save_overload``).  Numba's own locators, which need a
    writable directory, come first; without this last one, ``import fastbp`` would fail
    ("cannot cache function ...: no locator available")."""

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)  # no write check: reading may still work


class _CacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [*caching.CompileResultCacheImpl._locator_classes, _ReadOnlyInTreeLocator]


_UNSAVED = []  # the first cache location a compiled kernel could not be saved to (warned once)


class _KernelCache(caching.FunctionCache):
    """Numba's on-disk cache of a kernel, where a location that cannot be read or written
    (permissions, a full disk) costs a compile instead of failing the call: a kernel that
    cannot be loaded is compiled; one that cannot be saved is kept in memory for this
    process, with one warning per process."""

    _impl_class = _CacheImpl

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except OSError:  # (an unreadable index: as if nothing were cached)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError as exc:
            if not _UNSAVED:
                _UNSAVED.append(self._cache_path)
                warnings.warn(f"fastbp: cannot save compiled kernels to {self._cache_path} ({exc.strerror or exc}): "
                              "they are kept in memory, and each new process compiles them again; set "
                              "NUMBA_CACHE_DIR to a writable directory to keep them", RuntimeWarning, stacklevel=2)


def _cached(dispatcher):
    """``dispatcher`` with fastbp's on-disk cache (what ``cache=True`` does with Numba's),
    keyed on every file of this package."""
    dispatcher._cache = _KernelCache(dispatcher.py_func)
    return _stamp_with_package(dispatcher)


def jit(func=None, **options):
    """``numba.njit`` with the project's options and on-disk cache; ``@jit`` or
    ``@jit(inline="always")``."""
    options = {**_OPTIONS, **options}
    if func is None:
        return lambda f: _cached(njit(**options)(f))
    return _cached(njit(**options)(func))


def by_threshold(stub, whole, split, threshold="par_elements"):
    """Give ``stub`` (a function for compiled code whose argument ``threshold`` is a size
    threshold) two implementations with its arguments: ``split``, which may start parallel loops at or
    above the threshold, where the threshold is an integer; ``whole``, serial only, where it
    is None.  Typing picks one, so a kernel compiled with None thresholds contains no
    parallel loop at all: a model none of whose phases can reach a threshold never compiles
    one (``fastbp.model``; what that saves of a cold start: README, "Start-up").  ``split``
    must compute what ``whole`` does below the threshold, bit for bit."""

    signature = inspect.signature(stub)
    at = list(signature.parameters).index(threshold)

    def typed(*args):
        return whole if isinstance(args[at], types.NoneType) else split

    typed.__signature__ = signature  # Numba checks it against the implementations'
    overload(stub, inline="always", jit_options=dict(error_model=_OPTIONS["error_model"]))(typed)
    return stub


@intrinsic
def borrowed(typingctx, arr):
    """A view of ``arr`` (same data, shape, strides) that carries no reference count.

    Every view Numba makes of an array (a slice, a reshape, a row) increments and later
    decrements its owner's reference count with an atomic instruction, which dominated the
    small networks' training loop (README, Performance).  Views of a borrowed array have no
    owner to count.  Safe only while the caller keeps ``arr`` alive and no view escapes:
    kernels borrow their arguments on entry and return scalars.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(arr)(context, builder, value=args[0])
        out = context.make_array(arr)(context, builder)
        populate_array(out, data=src.data, shape=src.shape, strides=src.strides,
                       itemsize=src.itemsize, meminfo=None)
        return out._getvalue()

    return arr(arr), codegen


@intrinsic
def matrix_view(typingctx, flat, start, m, n):
    """The C-ordered ``(m, n)`` view of ``flat[start:start + m * n]`` (a 1-D contiguous array).

    What ``flat[start:start + m * n].reshape((m, n))`` gives, without the call into Numba's
    general reshape helper that every such reshape makes (measurable in the small networks'
    loop).  The caller guarantees the range lies inside ``flat`` (``fastbp.layout``).
    """
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"):
        return None
    mat = flat.copy(ndim=2, layout="C")

    def codegen(context, builder, signature, args):
        src = context.make_array(flat)(context, builder, value=args[0])
        start_, m_, n_ = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:]))
        item = src.itemsize
        data = builder.gep(src.data, [start_], inbounds=True)
        out = context.make_array(mat)(context, builder)
        populate_array(out, data=data, shape=[m_, n_], strides=[builder.mul(n_, item), item],
                       itemsize=item, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, mat, out._getvalue())

    return mat(flat, start, m, n), codegen


@intrinsic
def float_from_bits(typingctx, bits, like):
    """The float of ``like``'s type (float32 / float64) whose bit pattern is ``bits`` (an
    integer; its low 32 bits for float32)."""
    if not (isinstance(bits, types.Integer) and like in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        width = 32 if like == types.float32 else 64
        value = context.cast(builder, args[0], bits, types.int64)
        if width == 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, context.get_value_type(like))

    return like(bits, like), codegen


# ------------------------------------------------------------ denormals
# MXCSR bits: FTZ (flush results below the smallest normal to zero) and DAZ (read such
# inputs as zero).  Long training drives softmax probabilities, deltas and Adam's first
# moments of dead units into the subnormal range, where every operation on them takes a
# microcode assist (README, "Long training: subnormal numbers").  The kernels set both
# bits for their own duration on the calling thread and restore the caller's word.
_FTZ_DAZ = 0x8040
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _mxcsr(builder, instruction, slot):
    """``stmxcsr`` / ``ldmxcsr`` (``instruction``) on the 32-bit stack ``slot``."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]),
                                        "llvm.x86.sse." + instruction)
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def flush_denormals(typingctx):
    """Set FTZ and DAZ on this thread (x86; elsewhere a no-op); returns the previous
    control word for ``restore_fp_control``, which the kernel calls before it returns
    (kernels do not raise, so the caller's word always comes back)."""

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr(builder, "stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, _FTZ_DAZ)), slot)
        _mxcsr(builder, "ldmxcsr", slot)
        return old

    return types.uint32(), codegen


@intrinsic
def restore_fp_control(typingctx, word):
    """Put back the control word ``flush_denormals`` returned."""
    if word != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        if _X86:
            _mxcsr(builder, "ldmxcsr", cgutils.alloca_once_value(builder, args[0]))
        return context.get_dummy_value()

    return types.none(word), codegen
