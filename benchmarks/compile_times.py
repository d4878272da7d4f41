"""Where a first session's compile time goes: per compiled function, from Numba's compile events.

    python benchmarks/compile_times.py [--dtype float32] [--top 15]

Runs a whole first session (``fit``, ``predict``, ``evaluate``, ``train_step`` of W1's
network) against an empty, temporary Numba cache in a fresh process and prints each
function's exclusive compile time (its own, without the functions it compiled on the way).
To measure another commit, put an export of its ``fastbp/`` first on ``PYTHONPATH``.
"""

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import collections, sys, time
from numba.core import event

own = collections.defaultdict(float)
stack = []


class Listener(event.Listener):
    def on_start(self, e):
        d = e.data.get("dispatcher") if e.data else None
        stack.append((getattr(getattr(d, "py_func", None), "__qualname__", "?"), time.perf_counter()))

    def on_end(self, e):
        name, start = stack.pop()
        spent = time.perf_counter() - start
        own[name] += spent
        if stack:
            own[stack[-1][0]] -= spent


event.register("numba:compile", Listener())
import numpy as np
import fastbp as fb

dtype, top = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 4)).astype(dtype)
y = rng.integers(0, 3, 150)
model = fb.MLP([4, 16, 3], dtype=dtype, seed=0)
start = time.perf_counter()
model.fit(X, y, epochs=1, batch_size=16)
model.predict(X)
model.evaluate(X, y)
model.train_step(X[:16], y[:16])
print(f"first session: {time.perf_counter() - start:.1f} s, of which compiling {sum(own.values()):.1f} s")
for name, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{seconds:7.2f} s  {name}")
'''


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        subprocess.run([sys.executable, "-c", CHILD, args.dtype, str(args.top)],
                       env=dict(os.environ, NUMBA_CACHE_DIR=cache), check=True)


if __name__ == "__main__":
    main()
