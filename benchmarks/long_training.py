"""Epoch time over a long training run: does it stay flat?

    python benchmarks/long_training.py [--workload W2] [--epochs 4000] [--blocks 5]

Trains one model of the workload (fastbp and the NumPy reference, each from the same seed)
for ``--epochs`` epochs in ``--blocks`` equal blocks and prints the mean epoch time of each
block, with the number of subnormal values (below the smallest normal float) in the
predictions after it.  Fitting random labels for thousands of epochs drives the softmax
probabilities, the output deltas and Adam's moments of dead units into the subnormal range,
where each operation on them costs a microcode assist on x86; fastbp's kernels flush them to
zero (FTZ/DAZ, for their own duration), the reference keeps them.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W2", choices=list(WORKLOADS))
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()

    sizes, n, batch_size, dtype = WORKLOADS[args.workload]
    X, y = make_data(sizes, n, dtype)
    tiny = np.finfo(dtype).tiny
    impls = [fastbp] if args.no_reference else [fastbp, fastbp.reference]
    per_block = max(1, args.epochs // args.blocks)
    print(f"{args.workload}: ms per epoch in blocks of {per_block} epochs (subnormal predictions after the block)")
    for fb in impls:
        model = make_model(fb, sizes, dtype)
        model.fit(X, y, epochs=1, batch_size=batch_size)  # warm-up (compiles fastbp)
        cells = []
        for _ in range(args.blocks):
            start = time.perf_counter()
            model.fit(X, y, epochs=per_block, batch_size=batch_size)
            ms = (time.perf_counter() - start) / per_block * 1e3
            P = model.predict(X)
            subnormal = int(np.count_nonzero((P != 0) & (np.abs(P) < tiny)))
            cells.append(f"{ms:.3g} ({subnormal})")
        print(f"{fb.__name__:18s} " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
