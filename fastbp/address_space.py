"""Room for the threads and BLAS buffers of a compiled call under a limit on the process's
address space (``RLIMIT_AS``: ``ulimit -v``, as HPC schedulers set it).

Where the limit leaves too little room, nothing fails cleanly below fastbp: OpenBLAS's
buffer allocation (``blas_memory_alloc``) retries forever when ``malloc`` / ``mmap`` fail, so
``fit`` hangs; a thread pool that cannot create its threads ends the process (libgomp:
"Thread creation failed").  So before a compiled call, while the limit is finite, fastbp
reserves the address space the call may still need (and gives it back at once: nothing is
touched) and raises ``MemoryError`` naming the limit if it cannot.  Once a call of a kind
(serial, or with Numba's threads) has had its room under the current limit, the check is not
repeated: the threads and buffers it made stay for the process's life.

What a first call may add, measured on this project's machines with ``/proc/self/maps``:
one OpenBLAS buffer of 32 MiB for each thread that runs a product, and each Numba worker's
stack (``RLIMIT_STACK``); a worker's malloc arena (64 MiB reserved) is left out, since glibc
falls back to a shared arena when it cannot reserve one.  Measured bound (2 threads, W3's
784-256-256-10 float32 fit, 2-core AMD guest, without this check): with 80 MiB of room left
the fit hung in OpenBLAS, with 90 MiB it ran; this check asks for 104 MiB (two buffers, one
worker's stack, the margin).
"""

import mmap
import resource

import numba

from .kernels import blas

__all__ = ["ensure_room"]

_MIB = 1 << 20
_BLAS_BUFFER = 32 * _MIB  # OpenBLAS's BUFFER_SIZE on x86-64: one per thread that runs a product
_DEFAULT_STACK = 32 * _MIB  # a thread's stack where RLIMIT_STACK is unlimited (the larger default)
_MARGIN = 32 * _MIB  # the interpreter's own growth around the call: outputs, temporaries

_proven = {}  # parallel (bool) -> the limit under which a call of that kind had its room


def _limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def _in_use():
    """The process's address space now (``VmSize``), in bytes; None where it cannot be read."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _need(parallel):
    """Bytes a call may still reserve: BLAS buffers for the threads that run products, and
    for a parallel call the stacks of Numba's workers."""
    blas_threads = max(1, blas.thread_count())
    need = _MARGIN + _BLAS_BUFFER * (max(numba.config.NUMBA_NUM_THREADS, blas_threads) if parallel else blas_threads)
    if parallel:  # (whether the pool's workers exist yet no interface tells: libgomp starts them lazily)
        stack, _ = resource.getrlimit(resource.RLIMIT_STACK)
        need += (numba.config.NUMBA_NUM_THREADS - 1) * (_DEFAULT_STACK if stack == resource.RLIM_INFINITY else stack)
    return need


def ensure_room(parallel):
    """Raise ``MemoryError`` (nothing changed) if a limit on the address space leaves a
    compiled call too little room for its threads and BLAS buffers; ``parallel``: whether it
    may run Numba's threads.  Costs one ``getrlimit`` where there is no limit."""
    limit = _limit()
    if limit is None or _proven.get(parallel) == limit:
        return
    used, need = _in_use(), _need(parallel)
    if used is None:
        return  # (no /proc: nothing to measure against)
    try:
        mmap.mmap(-1, need).close()  # reserves address space only: no page is touched
    except (OSError, ValueError, OverflowError, MemoryError):
        threads = (f"{numba.config.NUMBA_NUM_THREADS} threads" if parallel
                   else f"{max(1, blas.thread_count())} BLAS thread(s)")
        raise MemoryError(
            f"the address-space limit (RLIMIT_AS, `ulimit -v`) of {limit / _MIB:,.0f} MiB leaves "
            f"{max(0, limit - used) / _MIB:,.0f} MiB, and this call may need about {need / _MIB:,.0f} MiB more for "
            f"its {threads}' stacks and BLAS buffers (OpenBLAS would hang, not fail, without them): raise the "
            "limit, or use fewer threads (NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS)") from None
    _proven[parallel] = limit
