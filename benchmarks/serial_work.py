"""What a W3 / W4 step spends outside its GEMMs, and why it stays on one core.

    python benchmarks/serial_work.py [--workloads W3 W4]

1. The serial work of one training step, each kernel timed alone on the model's own
   buffers (median of 20), next to the epoch time: Adam's update over all parameters, the
   non-finite check of the gradient, gathering one shuffled batch.  While it runs, the
   other core (OpenBLAS's second thread) has nothing to do.
2. Why that work is not split over both cores: Adam's update over all parameters, serial vs
   in two threads (the caller and a Python thread, both in nogil compiled code), right after
   a multithreaded GEMM (OpenBLAS's worker then spins on the second core for a while) and
   after a second of idleness.
"""

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "asv_benchmarks"))
from benchmarks.common import WORKLOADS, make_data, make_model  # noqa: E402

import fastbp  # noqa: E402
from fastbp.kernels.common import jit  # noqa: E402
from fastbp.kernels.network import count_nonfinite  # noqa: E402
from fastbp.kernels.optim import adam_update  # noqa: E402


@jit
def gather(X, rows, out):
    for i in range(rows.size):
        out[i] = X[rows[i]]


@jit
def product(a, b, c):
    np.dot(a, b, c)


def median_ms(fn, repeat=20):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=["W3", "W4"], choices=list(WORKLOADS))
    args = parser.parse_args()
    for name in args.workloads:
        sizes, n, bs, dtype = WORKLOADS[name]
        X, y = make_data(sizes, n, dtype)
        model = make_model(fastbp, sizes, dtype)
        model.fit(X, y, epochs=1, batch_size=bs)
        epoch = median_ms(lambda: model.fit(X, y, epochs=1, batch_size=bs), repeat=5)
        steps = -(-n // bs)
        g, h, P = model._grads, model.optimizer.hyper, model._grads.size
        p, m1, m2 = model._params_ext[:P], model._slots_buf[0][:P], model._slots_buf[1][:P]
        rows = np.random.default_rng(0).permutation(n)[:bs]
        Xb = np.empty((bs, X.shape[1]), dtype=X.dtype)
        def adam(lo, hi):
            adam_update(p[lo:hi], m1[lo:hi], m2[lo:hi], g[lo:hi], 1, h.lr, h.beta1, h.beta2, h.eps, h.weight_decay)

        parts = {"Adam update": median_ms(lambda: adam(0, P)),
                 "non-finite check": median_ms(lambda: count_nonfinite(g)),
                 "gather a batch": median_ms(lambda: gather(X, rows, Xb))}
        print(f"{name}: {P:,} parameters, epoch {epoch:.1f} ms = {steps} steps")
        for part, ms in parts.items():
            print(f"  {part:18s} {ms * 1e3:8.1f} us per step  = {100 * ms * steps / epoch:4.1f} % of the epoch")

        half = (P // 2) // 16 * 16

        def two_threads():
            t = threading.Thread(target=adam, args=(half, P))
            t.start()
            adam(0, half)
            t.join()

        m, k = bs, sizes[1]
        A, B, C = (np.ones(s, dtype=dtype) for s in ((m, sizes[0]), (sizes[0], k), (m, k)))
        product(A, B, C)
        for label, idle in (("right after a GEMM", 0.0), ("after 1 s idle", 1.0)):
            res = []
            for fn in (lambda: adam(0, P), two_threads):
                best = []
                for _ in range(5):
                    product(A, B, C)
                    time.sleep(idle)
                    start = time.perf_counter()
                    fn()
                    best.append(time.perf_counter() - start)
                res.append(np.median(best) * 1e3)
            print(f"  Adam {label:20s} serial {res[0]:.2f} ms, two threads {res[1]:.2f} ms")


if __name__ == "__main__":
    main()
