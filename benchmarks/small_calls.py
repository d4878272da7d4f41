"""Small calls, fastbp vs ``fastbp.reference`` in one process (the per-call targets).

    python benchmarks/small_calls.py [--calls 2000]

On the W1 and W2 networks: ``predict`` on 1 row, ``evaluate`` on 150 rows, ``train_step`` on
16 rows, and ``fit(epochs=1)``.  Median microseconds per call, the two implementations timed
in alternating blocks; the ratio is reference / fastbp.  The last row of each workload is
fastbp alone: ``fit(epochs=1)`` called in a loop (first column) against
``fit(epochs=E) / E`` (second column), the ratio first / second.

The targets: ratio >= 3 (predict), >= 5 (evaluate; set on W1, the same call on W2),
>= 10 (train_step); the fit loop within 2x of ``fit(E)/E`` on W1 and 1.1x on W2.
``compare.py`` prints the same rows (``small_call_rows``, ``print_rows``) after its epoch table.
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

CALL_WORKLOADS = ("W1", "W2")  # the networks the small-call targets are set on
BLOCKS = 4  # alternating blocks per measurement
QUICK_CALLS, QUICK_EPOCHS = 80, 5  # ``quick``: 20 fastbp calls per block
MIN_RATIO = {"predict, 1 row": 3, "evaluate, 150 rows": 5, "train_step, 16 rows": 10}
FIT_LOOP = "fastbp fit(1) loop / fit(E)/E"
MAX_FIT_LOOP_RATIO = {"W1": 2, "W2": 1.1}


def alternating_us(fns, calls):
    """Median µs per call of each ``fns[name]``: one untimed call each, then ``BLOCKS`` rounds
    of ``calls[name]`` timed calls of each in turn, so that a slow spell of the machine hits all."""
    for fn in fns.values():
        fn()  # compile, allocate
    times = {name: [] for name in fns}
    for _ in range(BLOCKS):
        for name, fn in fns.items():
            for _ in range(calls[name]):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1e6 for name, t in times.items()}


def row(workload, call, first_us, second_us, ratio, target=None):
    """``target``: None, ``(">=", x)`` or ``("<=", x)`` on the ratio."""
    met = None
    if target is not None:
        op, x = target
        met = ratio >= x if op == ">=" else ratio <= x
    return dict(workload=workload, call=call, fastbp_us=first_us, reference_us=second_us, ratio=ratio,
                target=None if target is None else f"{target[0]} {target[1]}", met=met)


def small_call_rows(workloads=CALL_WORKLOADS, calls=2000, quick=False):
    """The small calls on ``workloads`` as dict rows (see ``row``).

    ``calls``: timed fastbp calls per small call (a tenth of that for the reference, a
    twentieth for the fits); ``quick``: a few calls each (a smoke test, not a measurement).
    """
    calls, epochs = (QUICK_CALLS, QUICK_EPOCHS) if quick else (calls, 20)
    per_block = lambda k: max(2, k // BLOCKS)  # noqa: E731
    rows = []
    for name in workloads:
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
            k = calls // 20 if case.startswith("fit") else calls
            us = alternating_us({fb: (lambda fn=fn, m=m: fn(m)) for fb, m in models.items()},
                                {fastbp: per_block(k), fastbp.reference: per_block(k // 10)})
            fast, ref = us[fastbp], us[fastbp.reference]
            target = (">=", MIN_RATIO[case]) if case in MIN_RATIO else None
            rows.append(row(name, case, fast, ref, ref / fast, target))
        model = models[fastbp]
        us = alternating_us({1: lambda: model.fit(X, y, epochs=1, batch_size=batch),
                             epochs: lambda: model.fit(X, y, epochs=epochs, batch_size=batch)},
                            {1: per_block(calls // 20), epochs: per_block(calls // 20 // epochs)})
        one, per_epoch = us[1], us[epochs] / epochs
        rows.append(row(name, FIT_LOOP, one, per_epoch, one / per_epoch, ("<=", MAX_FIT_LOOP_RATIO[name])))
    return rows


def print_rows(rows):
    print(f"{'':4s} {'call':30s} {'fastbp us':>10s} {'reference us':>13s} {'ratio':>6s}  target")
    for r in rows:
        target = "" if r["target"] is None else f"{r['target']:7s} {'met' if r['met'] else 'not met'}"
        print(f"{r['workload']:4s} {r['call']:30s} {r['fastbp_us']:10.1f} {r['reference_us']:13.1f} "
              f"{r['ratio']:6.2f}  {target}".rstrip(), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    print_rows(small_call_rows(calls=parser.parse_args().calls))


if __name__ == "__main__":
    main()
