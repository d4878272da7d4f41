"""Epoch time of fastbp vs the NumPy reference on the four standard workloads, in one process.

    python benchmarks/compare.py [--workloads W1 W3] [--epochs 5]

Every workload: ReLU hidden layers, softmax + cross-entropy, Adam(lr=1e-3), He init,
shuffled mini-batches; the time is the median over ``--epochs`` epochs after one warm-up epoch.
"""

import argparse
import time

import numpy as np

import fastbp
import fastbp.reference

WORKLOADS = {
    "W1": ([4, 16, 3], 150, 16, "float64"),
    "W2": ([64, 128, 10], 1797, 32, "float32"),
    "W3": ([784, 256, 256, 10], 10_000, 128, "float32"),
    "W4": ([1024, 2048, 2048, 10], 4_096, 256, "float32"),
}


def make_data(sizes, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    return X, y


def epoch_times(fb, sizes, X, y, batch_size, dtype, epochs):
    """Median seconds per epoch of ``fb.MLP`` (one warm-up epoch first)."""
    model = fb.MLP(sizes, activation="relu", output="softmax", loss="cross_entropy",
                   optimizer=fb.Adam(lr=1e-3), init="he", dtype=dtype, seed=0)
    model.fit(X, y, epochs=1, batch_size=batch_size)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=batch_size)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'workload':8s} {'shape':22s} {'fastbp ms':>10s} {'reference ms':>13s} {'speed-up':>9s}")
    for name in args.workloads:
        sizes, n, batch_size, dtype = WORKLOADS[name]
        X, y = make_data(sizes, n, dtype)
        fast = epoch_times(fastbp, sizes, X, y, batch_size, dtype, args.epochs)
        ref = epoch_times(fastbp.reference, sizes, X, y, batch_size, dtype, max(3, args.epochs // 2))
        shape = "-".join(map(str, sizes))
        print(f"{name:8s} {shape:22s} {fast * 1e3:10.2f} {ref * 1e3:13.2f} {ref / fast:8.1f}x", flush=True)


if __name__ == "__main__":
    main()
