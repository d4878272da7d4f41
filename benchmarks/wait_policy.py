"""How long Numba's OpenMP workers spin between parallel regions, on an idle machine and on
one where another process keeps a core busy.

    python benchmarks/wait_policy.py [--rounds 2] [--repeat 3] [--workloads W3 W4 H]

fastbp's parallel phases (split products and elementwise passes, design (c)) run on Numba's
``omp`` threading layer, i.e. GNU OpenMP, whose idle workers spin for ``GOMP_SPINCOUNT``
iterations (300,000 by default; ``OMP_WAIT_POLICY=PASSIVE``: 0) before they sleep. On an idle
machine spinning saves a wake-up per region; when another process holds a core, a spinning
worker burns the time slice the descheduled one needs, and every region waits for it.

Each (variant, scenario, workload) runs in a fresh interpreter with the variant's
environment set before Numba loads; the epoch is ``fit(epochs=E) / E`` after a warm-up
(``compare.fit_runner``), the median of ``--repeat``. Scenario "loaded": one extra
process spinning in pure Python for the child's lifetime. Variants and scenarios alternate
within each round; printed: the median over rounds, ms per epoch.

H is [64, 256, 10] float32, 1,344 rows, batch 32: the smallest network whose products split
(above ``blas.PRODUCT_SPLIT_ABOVE`` multiply-adds), where a stall costs most relative to the
work.
"""

import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "asv_benchmarks"))

VARIANTS = {
    "default (spin 300k)": {},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
EXTRA = {"H": ([64, 256, 10], 1344, 32, "float32")}
CHILD = """
import sys
sys.path.insert(0, {asv!r}); sys.path.insert(0, {here!r})
from benchmarks.common import WORKLOADS, make_data
import compare, fastbp
shapes = dict(WORKLOADS, H=([64, 256, 10], 1344, 32, "float32"))
sizes, n, batch, dtype = shapes[{workload!r}]
X, y = make_data(sizes, n, dtype)
print(compare.time_fit(fastbp, sizes, X, y, batch, dtype, {repeat}))
"""


def child(workload, env, repeat, loaded):
    code = CHILD.format(asv=os.path.join(HERE, "..", "asv_benchmarks"), here=HERE, workload=workload, repeat=repeat)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
    try:
        out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), check=True,
                             capture_output=True, text=True, timeout=900).stdout
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return float(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", default=["H", "W3", "W4"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    times = {}
    for r in range(args.rounds):
        order = args.variants if r % 2 == 0 else args.variants[::-1]
        for loaded in (False, True):
            for workload in args.workloads:
                for name in order:
                    t = child(workload, VARIANTS[name], args.repeat, loaded)
                    times.setdefault((workload, loaded, name), []).append(t)
                    print(f"round {r + 1} {workload} {'loaded' if loaded else 'idle  '} {name:26s} {t * 1e3:9.2f} ms",
                          file=sys.stderr, flush=True)
    print(f"{'workload':8s} {'scenario':8s} " + " ".join(f"{v:>26s}" for v in args.variants))
    for workload in args.workloads:
        for loaded in (False, True):
            row = [float(np.median(times[(workload, loaded, v)])) * 1e3 for v in args.variants]
            print(f"{workload:8s} {'loaded' if loaded else 'idle':8s} " + " ".join(f"{x:26.2f}" for x in row))


if __name__ == "__main__":
    main()
