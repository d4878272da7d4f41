"""Shared workloads: the exact shapes used in asv, benchmarks/compare.py and README."""

import platform

import numpy as np

# name: (layer sizes, samples, batch size, dtype)
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


def make_model(fb, sizes, dtype):
    return fb.MLP(sizes, activation="relu", output="softmax", loss="cross_entropy",
                  optimizer=fb.Adam(lr=1e-3), init="he", dtype=dtype, seed=0)


def implementation(name):
    import fastbp
    import fastbp.reference
    return {"fastbp": fastbp, "reference": fastbp.reference}[name]


def cpu_model():
    """The CPU's model name (the first "model name" of /proc/cpuinfo), for benchmark headers."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
