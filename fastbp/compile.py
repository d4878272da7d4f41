"""Compile the kernels a first session needs, ahead of it: ``python -m fastbp.compile``.

``pip install .`` runs this while it builds the wheel (``setup.py``), so the installed
package carries Numba's on-disk cache for this machine and a first ``fit`` loads instead
of compiling.  Run it by hand after installing a wheel built elsewhere (a wheel for many
machines carries no cache, or one for another CPU, which Numba ignores).

What is compiled is what the calls of a first session compile, found by making those calls:
``fit``, ``predict``, ``evaluate``, ``train_step`` and ``loss_and_grads`` of a small model
(kernels without parallel loops) and of a model large enough for the variants with parallel
loops, for each dtype asked for.  The dtypes compile in parallel processes; as two processes
may each rewrite a kernel's cache index at the same moment (Numba does not lock it), a last
pass in this process loads everything once more and compiles whatever an overwritten index
lost.

    python -m fastbp.compile [--dtype float32 --dtype float64] [--quiet]
    python -m fastbp.compile --check     # a first session loads everything? (status 1 if not)
"""

import argparse
import concurrent.futures
import os
import subprocess
import sys
import time

__all__ = ["first_session", "check", "main"]

DTYPES = ("float32", "float64")


def first_session(dtype):
    """Every call of a first session, on a small model and on one whose calls run the
    parallel variants (each kernel is compiled or loaded on its first call)."""
    import numpy as np

    import fastbp

    rng = np.random.default_rng(0)
    # (4, 16, 3) stays below every threshold; (64, 256, 10) in batches of 256 reaches
    # PAR_ELEMENTS (rows x widest layer), so its calls take the parallel variants
    for sizes, rows, batch in (((4, 16, 3), 40, 16), ((64, 256, 10), 512, 256)):
        X = rng.standard_normal((rows, sizes[0])).astype(dtype)
        y = rng.integers(0, sizes[-1], rows)
        model = fastbp.MLP(list(sizes), dtype=dtype, seed=0)
        model.fit(X, y, epochs=1, batch_size=batch)
        model.predict(X)
        model.evaluate(X, y)
        model.train_step(X[:batch], y[:batch])
        model.loss_and_grads(X[:batch], y[:batch])


def _entry_points():
    from . import kernels

    return (kernels.all_finite, kernels.one_hot, kernels.train_epochs, kernels.infer, kernels.loss_and_grads)


def check(dtypes):
    """The entry points a first session of ``dtypes`` had to compile in this process (none
    when the on-disk cache holds them all): ``{name: count}``."""
    for dtype in dtypes:
        first_session(dtype)
    return {d.py_func.__name__: sum(d.stats.cache_misses.values()) for d in _entry_points()
            if sum(d.stats.cache_misses.values())}


def _compile_in_a_process(dtype):
    """``first_session(dtype)`` in a fresh interpreter (returns its exit status, output)."""
    code = f"from fastbp.compile import first_session; first_session({dtype!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastbp.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", action="append", choices=DTYPES, help="a dtype to compile for (default: both)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--check", action="store_true",
                        help="compile nothing ahead: run a first session and fail (status 1) if it had to compile")
    args = parser.parse_args(argv)
    dtypes = args.dtype or list(DTYPES)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    if args.check:
        start = time.perf_counter()
        compiled = check(dtypes)
        if compiled:
            print(f"fastbp: a first session compiled {compiled}: the on-disk cache does not hold them "
                  f"(run python -m fastbp.compile)", file=sys.stderr)
            return 1
        say(f"fastbp: a first session for {' and '.join(dtypes)} loaded every kernel from the on-disk cache "
            f"({time.perf_counter() - start:.2f} s)")
        return 0
    start = time.perf_counter()
    say(f"fastbp: compiling the kernels of a first session for {' and '.join(dtypes)} "
        f"(a minute or two; cached on disk for every later process)")
    with concurrent.futures.ThreadPoolExecutor(len(dtypes)) as pool:
        results = list(pool.map(_compile_in_a_process, dtypes))
    for dtype, (status, output) in zip(dtypes, results):
        if status != 0:
            print(f"fastbp: compiling for {dtype} failed:\n{output}", file=sys.stderr)
            return 1
    import logging

    logging.getLogger("fastbp").setLevel(logging.ERROR)  # (what this pass compiles, if anything, is the point)
    for dtype in dtypes:  # one process: what a lost index entry needs, compiled once more
        first_session(dtype)
    say(f"fastbp: compiled in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
