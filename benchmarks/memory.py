"""Peak memory of ``fit`` beyond the data: what training a 784-256-256-10 network adds.

    python benchmarks/memory.py [--dtype float32] [--batch-size 128]

Runs in a fresh interpreter (warm Numba cache): builds the data, records the resident set
size, trains 2 epochs, and reports the growth of the peak resident set size, next to the
budget "parameters x (2 + optimizer slots) + one batch workspace".
"""

import argparse
import subprocess
import sys

CHILD = """
import resource, numpy as np, fastbp as fb
sizes, n, bs, dtype = [784, 256, 256, 10], 10000, {bs}, "{dtype}"
rng = np.random.default_rng(0)
X = rng.standard_normal((n, 784)).astype(dtype)
y = rng.integers(0, 10, n)
small = fb.MLP(sizes, dtype=dtype, seed=0); small.fit(X[:bs], y[:bs], epochs=1, batch_size=bs)  # compile/load
del small
model = fb.MLP(sizes, optimizer=fb.Adam(1e-3), dtype=dtype, seed=0)
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss0 = int(open("/proc/self/statm").read().split()[1]) * 4096 / 1024
model.fit(X, y, epochs=2, batch_size=bs)
peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
item = np.dtype(dtype).itemsize
P = model.n_params
state = P * (2 + model.optimizer.n_slots) * item
ws = sum(a.nbytes for a in model._ws[1:])
targets = n * 10 * item
print(P, state, ws, targets, (max(peak1, rss0) - rss0) * 1024, X.nbytes)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    out = subprocess.run([sys.executable, "-c", CHILD.format(bs=args.batch_size, dtype=args.dtype)],
                         check=True, capture_output=True, text=True).stdout.split()
    P, state, ws, targets, grown, data = (int(float(v)) for v in out)
    mib = 1 / 2**20
    print(f"784-256-256-10, {args.dtype}, batch {args.batch_size}, Adam: {P:,} parameters; data {data * mib:.1f} MiB")
    print(f"  parameters x (2 + 2 Adam slots): {state * mib:6.2f} MiB (allocated with the model)")
    print(f"  one batch workspace:             {ws * mib:6.2f} MiB")
    print(f"  dense targets (n x k):           {targets * mib:6.2f} MiB")
    print(f"  peak RSS growth during fit:      {grown * mib:6.2f} MiB")


if __name__ == "__main__":
    main()
