"""The one decorator every kernel uses, and the integer codes kernels dispatch on.

``cache=True``: compiled code is kept on disk, so only the first process pays for it.
``error_model="numpy"``: divisions do not check for zero, so division loops vectorise.
No ``fastmath``: it bought no speed here and moved float32 results away from the reference.
Activations, losses and optimizers are passed as integer codes (never as functions,
which would defeat the on-disk cache and multiply the compiled specialisations).
"""

import functools
import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic
from numba.core.imputils import impl_ret_borrowed
from numba.np.arrayobj import populate_array

from .._base import (  # noqa: F401  (re-exported codes)
    BINARY_CROSS_ENTROPY,
    CROSS_ENTROPY,
    LEAKY_RELU,
    LINEAR,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
)
from ..optimizers import ADAGRAD_CODE, ADAM_CODE, ADAMW_CODE, RMSPROP_CODE, SGD_CODE  # noqa: F401

jit = functools.partial(njit, cache=True, error_model="numpy", nogil=True)


@intrinsic
def borrowed(typingctx, arr):
    """A view of ``arr`` (same data, shape, strides) that carries no reference count.

    Every view Numba makes of an array (a slice, a reshape, a row) increments and later
    decrements its owner's reference count with an atomic instruction; in the small
    layers' training loop those were ~45 % of the time.  Views of a borrowed array have no
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
    general reshape helper that every such reshape makes (~5 % of the small layers' loop).
    The caller guarantees the range lies inside ``flat`` (the layouts in ``fastbp._base``).
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


# ------------------------------------------------------------ denormals
# MXCSR bits: FTZ (flush results below the smallest normal to zero) and DAZ (read such
# inputs as zero).  Long training drives softmax probabilities, deltas and Adam's first
# moments of dead units into the subnormal range, where every operation on them takes a
# microcode assist: W2's epoch was 2x slower after 2,000 epochs.  The kernels set both
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
