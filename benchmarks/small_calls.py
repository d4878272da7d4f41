"""Small calls, fastbp vs ``fastbp.reference`` in one process (issue 11's per-call targets).

    python benchmarks/small_calls.py [--calls 2000]

On the W1 and W2 networks: ``predict`` on 1 row, ``evaluate`` on 150 rows, ``train_step`` on
16 rows, and ``fit(epochs=1)`` against ``fit(epochs=E) / E``.  Median microseconds per call,
the two implementations timed in alternating blocks; the ratio is reference / fastbp.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "asv_benchmarks"))
from benchmarks.common import WORKLOADS, make_data, make_model  # noqa: E402

import fastbp  # noqa: E402
import fastbp.reference  # noqa: E402


def per_call_us(fn, calls):
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    print(f"{'':4s} {'call':24s} {'fastbp us':>10s} {'reference us':>13s} {'ratio':>6s}")
    for name in ("W1", "W2"):
        sizes, n, batch, dtype = WORKLOADS[name]
        X, y = make_data(sizes, n, dtype)
        models = {fb: make_model(fb, sizes, dtype) for fb in (fastbp, fastbp.reference)}
        cases = {
            "predict, 1 row": lambda m: m.predict(X[:1]),
            "evaluate, 150 rows": lambda m: m.evaluate(X[:150], y[:150]),
            "train_step, 16 rows": lambda m: m.train_step(X[:16], y[:16]),
            "fit(epochs=1)": lambda m: m.fit(X, y, epochs=1, batch_size=batch),
        }
        for case, fn in cases.items():
            k = max(20, calls // (20 if case.startswith("fit") else 1))
            result = {}
            for fb, model in models.items():
                fn(model)  # compile, allocate
            for block in range(4):  # alternating blocks: a slow spell hits both
                for fb, model in models.items():
                    k_fb = k if fb is fastbp else max(10, k // 10)
                    result.setdefault(fb, []).append(per_call_us(lambda: fn(model), k_fb // 4 + 1))
            fast, ref = (float(np.median(np.concatenate(result[fb]))) * 1e6 for fb in (fastbp, fastbp.reference))
            print(f"{name:4s} {case:24s} {fast:10.1f} {ref:13.1f} {ref / fast:6.2f}", flush=True)
        model = models[fastbp]
        epochs = 20
        start = time.perf_counter()
        model.fit(X, y, epochs=epochs, batch_size=batch)
        per_epoch = (time.perf_counter() - start) / epochs * 1e6
        one = float(np.median(per_call_us(lambda: model.fit(X, y, epochs=1, batch_size=batch), 50))) * 1e6
        print(f"{name:4s} {'fastbp fit(1) / fit(E)/E':24s} {one:10.1f} {per_epoch:13.1f} {one / per_epoch:6.2f}")


if __name__ == "__main__":
    main()
