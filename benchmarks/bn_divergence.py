"""Where fastbp and its reference part with batch norm: one ``RMSprop(lr=1)`` step from the
same model and batch in both, on batches with a gradient that is zero in exact arithmetic.

    python benchmarks/bn_divergence.py [--batches 400]

Prints, per case, how many batches end with parameters more than 1e-3 apart and the largest
gap (README, "Where the same numbers end").  To measure another commit, put an export of its
``fastbp/`` first on ``PYTHONPATH``.
"""

import argparse
import itertools

import numpy as np

import fastbp
import fastbp.reference

CASES = {
    # an input column constant over the batch: its weight-gradient row is sum_i c * dZ_i = 0 exactly
    "constant column [6, 8, 3]": dict(sizes=[6, 8, 3], batch_norm=True, constant=True),
    # a linear layer feeding a normalised one: its bias gradient is 0 exactly
    "linear -> BN beta [6, 8, 8, 3]": dict(sizes=[6, 8, 8, 3], batch_norm=[True, True], constant=False,
                                           activation="linear"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400)
    n = parser.parse_args().batches
    runs = [(case, c, dtype, act) for (case, c), dtype in itertools.product(CASES.items(), ["float32", "float64"])
            for act in ([c["activation"]] if "activation" in c else ["relu", "tanh"])]
    for case, c, dtype, act in runs:
        apart, worst = 0, 0.0
        for s in range(n):
            rng = np.random.default_rng(1000 + s)
            m = int(rng.integers(3, 33))
            X = rng.standard_normal((m, c["sizes"][0]))
            if c["constant"]:
                X[:, 0] = 1.0
            y = rng.integers(0, 3, m)
            models = [fb.MLP(c["sizes"], activation=act, batch_norm=c["batch_norm"], optimizer=fb.RMSprop(lr=1),
                             dtype=dtype, seed=s) for fb in (fastbp, fastbp.reference)]
            for model in models:
                model.train_step(X, y)
            gap = float(np.abs(models[0]._params - models[1]._params).max())
            apart += gap > 1e-3
            worst = max(worst, gap)
        print(f"{case:31s} {dtype} {act:6s}: {apart:3d}/{n} batches > 1e-3 apart, largest gap {worst:.2g}",
              flush=True)


if __name__ == "__main__":
    main()
