"""Epoch time of fastbp (or of its reference) at two commits, in ONE process, alternating.

On a shared machine two runs an hour apart differ by more than most changes do; timing both
commits in the same process, one fit after the other, cancels the drift.  Each commit's
``fastbp/`` is exported with ``git archive`` into a temporary folder as a package of its own
name (``fastbp_<rev>``; the package uses relative imports only), so both load side by side.

    python benchmarks/compare_commits.py 16b14d3 HEAD [--reference] [--workloads W1 W3] [--rounds 20]
    python benchmarks/compare_commits.py 16b14d3 HEAD --calls

Prints, per workload, each commit's minimum and median ms per epoch and the median of the
paired ratios (B / A, each pair measured back to back, in alternating order).  ``--calls``
times single API calls on a tiny model instead (4-16-3, float64, 16 rows): what a call costs
beyond its arithmetic, best of 9 x 4,000 calls, the commits alternating.
"""

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "asv_benchmarks"))
from benchmarks.common import WORKLOADS, make_data, make_model  # noqa: E402

# (epochs per fit, default rounds): each fit long enough to time, short enough to alternate often
PLAN = {"W1": (500, 40), "W2": (10, 30), "W3": (1, 20), "W4": (1, 6)}


def export(rev, folder):
    """``fastbp/`` of commit ``rev`` as the package ``fastbp_<rev>`` in ``folder``; its name."""
    name = "fastbp_" + "".join(c if c.isalnum() else "_" for c in rev)
    target = os.path.join(folder, name)
    os.makedirs(target)
    archive = subprocess.run(["git", "archive", rev, "fastbp"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", target, "--strip-components=1"], input=archive, check=True)
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--reference", action="store_true", help="time fastbp.reference instead of fastbp")
    parser.add_argument("--workloads", nargs="*", default=list(PLAN), choices=list(PLAN))
    parser.add_argument("--rounds", type=int, help="pairs of fits per workload")
    parser.add_argument("--calls", action="store_true", help="time single API calls on a tiny model")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="fastbp-commits-")
    sys.path.insert(0, folder)
    impls = []
    for rev in (args.a, args.b):
        package = importlib.import_module(export(rev, folder))
        impls.append(importlib.import_module(package.__name__ + ".reference") if args.reference else package)
    if args.calls:
        return time_calls(args, impls)
    print(f"A = {args.a}, B = {args.b}: {'fastbp.reference' if args.reference else 'fastbp'}, ms per epoch")
    for name in args.workloads:
        epochs, rounds = PLAN[name]
        if args.reference:
            epochs = max(1, epochs // 20)
        sizes, n, batch_size, dtype = WORKLOADS[name]
        X, y = make_data(sizes, n, dtype)
        models = [make_model(impl, sizes, dtype) for impl in impls]
        for model in models:  # compile, size the workspace
            model.fit(X, y, epochs=1, batch_size=batch_size)
        times = [[], []]
        for r in range(args.rounds or rounds):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                models[i].fit(X, y, epochs=epochs, batch_size=batch_size)
                times[i].append((time.perf_counter() - start) / epochs * 1e3)
        ratio = statistics.median(b / a for a, b in zip(*times))
        print(f"{name}: A min {min(times[0]):.4g} median {statistics.median(times[0]):.4g} | "
              f"B min {min(times[1]):.4g} median {statistics.median(times[1]):.4g} | B / A {ratio:.3f}", flush=True)


def time_calls(args, impls, reps=4000):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    models = [impl.MLP([4, 16, 3], dtype="float64", seed=0) for impl in impls]
    calls = {"train_step": lambda m: m.train_step(X, y), "predict": lambda m: m.predict(X),
             "evaluate": lambda m: m.evaluate(X, y), "loss_and_grads": lambda m: m.loss_and_grads(X, y),
             "get_weights": lambda m: m.get_weights()}
    print(f"A = {args.a}, B = {args.b}: microseconds per call, best of 9 x {reps}")
    for name, call in calls.items():
        best = [float("inf"), float("inf")]
        for r in range(9):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                call(models[i])
                start = time.perf_counter()
                for _ in range(reps):
                    call(models[i])
                best[i] = min(best[i], (time.perf_counter() - start) / reps * 1e6)
        print(f"{name:15s} A {best[0]:7.2f}   B {best[1]:7.2f}", flush=True)


if __name__ == "__main__":
    main()
