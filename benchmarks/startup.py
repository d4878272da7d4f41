"""Cold and warm start-up of fastbp: a whole first session (import, ``fit``, ``predict``,
``evaluate``, ``train_step``) in a fresh Python process.

Cold: an empty Numba cache directory, so everything ``fit`` needs is compiled.
Warm: the same cache directory again, now populated by the cold run.
Numba's floor: the warm process of a one-line ``@njit(cache=True)`` function (import numba,
one cached call: the first call of any Numba function sets up Numba's typing and imports
SciPy's BLAS), the least a warm start of any Numba program costs on this machine.

    python benchmarks/startup.py [--repeat 3] [--dtype float32]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import time
t0 = time.perf_counter()
import numpy as np
import fastbp as fb
t1 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 4)).astype("{dtype}")
y = rng.integers(0, 3, 150)
model = fb.MLP([4, 16, 3], optimizer=fb.Adam(1e-3), dtype="{dtype}", seed=0)
model.fit(X, y, epochs=1, batch_size=16)
t2 = time.perf_counter()
model.predict(X)
t3 = time.perf_counter()
model.evaluate(X, y)
t4 = time.perf_counter()
model.train_step(X[:16], y[:16])
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
"""


FLOOR = """
import time
t0 = time.perf_counter()
import numba
import numpy as np


@numba.njit(cache=True)
def total(x):
    return x.sum()


t1 = time.perf_counter()
total(np.ones(3))
print(t1 - t0, time.perf_counter() - t1)
"""


def floor(folder):
    """(process, import numba, first cached call) of ``FLOOR``, warm (run once before)."""
    path = os.path.join(folder, "floor.py")
    with open(path, "w") as f:
        f.write(FLOOR)
    subprocess.run([sys.executable, path], check=True, capture_output=True)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, path], check=True, capture_output=True, text=True).stdout
    return (time.perf_counter() - start, *map(float, out.split()))


def run(cache_dir, dtype):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD.format(dtype=dtype)], env=env, check=True,
                         capture_output=True, text=True).stdout
    total = time.perf_counter() - start
    return (total, *map(float, out.split()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    cold, warm, floors = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run(cache, args.dtype))
            warm.append(run(cache, args.dtype))
        with tempfile.TemporaryDirectory() as folder:
            floors.append(floor(folder))
    for name, runs in (("cold (empty cache)", cold), ("warm (cache populated)", warm)):
        total, imp, fit, predict, evaluate, step = (statistics.median(col) for col in zip(*runs))
        print(f"{name:24s} process {total:6.2f} s   import fastbp {imp:5.2f} s   first fit {fit:6.2f} s   "
              f"first predict {predict:5.2f} s   first evaluate {evaluate:5.2f} s   first train_step {step:5.2f} s")
    total, imp, call = (statistics.median(col) for col in zip(*floors))
    print(f"{'Numba floor (warm)':24s} process {total:6.2f} s   import numba  {imp:5.2f} s   first cached call {call:5.2f} s")


if __name__ == "__main__":
    main()
