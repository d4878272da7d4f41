"""``fastbp.sklearn.MLPClassifier`` on digits, against ``fastbp.MLP`` and scikit-learn's own.

    python benchmarks/sklearn_digits.py [--epochs 100] [--rounds 3] [--dtype float64] [--batch-size 200]

The same network and settings in all three (scikit-learn's defaults: one hidden layer of
100 ReLU units, Adam at 1e-3, mini-batches of 200 (``--batch-size``), alpha 1e-4; ``n_iter_no_change`` =
``epochs`` so that every fit runs exactly ``epochs`` epochs; ``fastbp.MLP`` with the
estimator's documented mapping, ``l2 = alpha / batch``). Digits (1,797 8x8 images,
scikit-learn's copy), pixels / 16, a stratified 75 / 25 split. The three fits alternate in
each round, in an order rotated from round to round (after an untimed one-epoch fit of each on
the same data: compiling); the table gives the median seconds per fit, the ratios, the test
accuracy per seed (random_state = round), and the epochs' matrix products alone as fastbp
computes them (``compare.gemm_limit_runner``), a floor for any implementation of these epochs.

The targets: the estimator within 10 % of ``fastbp.MLP.fit``; at least 10x faster
than scikit-learn's ``MLPClassifier``; test accuracy within 1 percentage point of it.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

import fastbp
from fastbp.sklearn import MLPClassifier

HIDDEN, LR, ALPHA = 100, 1e-3, 1e-4


def fits(epochs, dtype, batch):
    """name -> fit(seed, X, y) returning a predict function."""
    common = dict(hidden_layer_sizes=(HIDDEN,), learning_rate_init=LR, batch_size=batch, alpha=ALPHA,
                  max_iter=epochs, n_iter_no_change=epochs)

    def estimator(seed, X, y):
        est = MLPClassifier(random_state=seed, dtype=dtype, **common).fit(X, y)
        return est.predict

    def scikit_learn(seed, X, y):
        est = SkMLPClassifier(random_state=seed, **common).fit(X.astype(dtype), y)
        return lambda Z: est.predict(Z.astype(dtype))

    def mlp(seed, X, y):
        s = int(np.random.RandomState(seed).randint(0, 2**31 - 1))  # as the estimator draws it
        model = fastbp.MLP([X.shape[1], HIDDEN, 10], activation="relu", output="softmax", loss="cross_entropy",
                           optimizer=fastbp.Adam(LR), init="xavier", dtype=dtype, seed=s, l2=ALPHA / batch)
        model.fit(X, y, epochs=epochs, batch_size=batch)
        return lambda Z: model.predict(Z).argmax(axis=1)

    return {"fastbp.MLP.fit": mlp, "fastbp.sklearn.MLPClassifier": estimator, "sklearn MLPClassifier": scikit_learn}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=0)
    runs = fits(args.epochs, args.dtype, args.batch_size)
    for fit in fits(1, args.dtype, args.batch_size).values():  # compile / warm up: one epoch on the same data
        fit(0, X_train, y_train)
    seconds = {name: [] for name in runs}
    accuracy = {name: [] for name in runs}
    names = list(runs)
    for seed in range(args.rounds):
        for name in names[seed % 3:] + names[:seed % 3]:  # rotated: none always follows scikit-learn's threads
            fit = runs[name]
            start = time.perf_counter()
            predict = fit(seed, X_train, y_train)
            seconds[name].append(time.perf_counter() - start)
            accuracy[name].append(float(np.mean(predict(X_test) == y_test)))
    median = {name: float(np.median(t)) for name, t in seconds.items()}
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import compare
    gemm, _ = compare.gemm_limit_runner([64, HIDDEN, 10], X_train.astype(args.dtype), y_train, args.batch_size,
                                        args.dtype)
    def gemm_epochs():
        for _ in range(args.epochs):
            gemm()

    gemm_seconds = compare.median_time(gemm_epochs, 3)  # (one epoch's few ms is too short to time alone)
    print(f"digits, {args.epochs} epochs, {args.dtype}, batch {args.batch_size}, {args.rounds} rounds "
          "(median s per fit; test accuracy per seed)")
    print(f"{'':32s} {'s/fit':>8s} {'accuracy':>28s}")
    for name in runs:
        acc = " ".join(f"{a:.4f}" for a in accuracy[name])
        print(f"{name:32s} {median[name]:8.3f} {acc:>28s}  mean {np.mean(accuracy[name]):.4f}")
    print(f"{'GEMM-only limit':32s} {gemm_seconds:8.3f}")
    est, mlp, sk = (median[k] for k in ("fastbp.sklearn.MLPClassifier", "fastbp.MLP.fit", "sklearn MLPClassifier"))
    gap = 100 * (np.mean(accuracy["fastbp.sklearn.MLPClassifier"]) - np.mean(accuracy["sklearn MLPClassifier"]))
    print(f"estimator / fastbp.MLP.fit: {est / mlp:.3f} (target <= 1.10)")
    print(f"scikit-learn / estimator:   {sk / est:.1f}x (target >= 10x)")
    print(f"accuracy, estimator - scikit-learn: {gap:+.2f} percentage points (target within 1)")


if __name__ == "__main__":
    main()
