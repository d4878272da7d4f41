"""Iris (150 flowers, 4 measurements, 3 species; bundled with scikit-learn, no download):
a stratified train / test split, features standardised with the training set's mean and
standard deviation, a 4-16-3 network trained with fastbp and with the NumPy reference on
the same data and seed.  Prints the test accuracy of both (at least 95 % expected), the fit
time of both (compile time excluded) and the speed-up measured in this run.

    python examples/iris.py [--epochs 100] [--batch-size 16] [--repeats 5] [--seed 0] [--quick]
"""

import argparse
import statistics
import time

import numpy as np

import fastbp
import fastbp.reference


def load(seed):
    try:
        from sklearn.datasets import load_iris
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "fastbp[examples]"') from None
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)  # the training set's statistics only
    return (X_train - mean) / std, y_train, (X_test - mean) / std, y_test


def build(fb, seed):
    return fb.MLP([4, 16, 3], activation="relu", output="softmax", loss="cross_entropy",
                  optimizer=fb.Adam(lr=1e-2), init="he", dtype="float32", seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="fits timed per implementation (median)")
    parser.add_argument("--seed", type=int, default=0, help="the split's and the model's seed")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and timing repeats (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.repeats = 50, 1

    X_train, y_train, X_test, y_test = load(args.seed)
    print(f"iris: {len(X_train)} training / {len(X_test)} test samples (stratified), 4 standardised features, "
          f"3 classes; MLP 4-16-3 relu / softmax, Adam(1e-2), batch {args.batch_size}, {args.epochs} epochs, "
          f"float32, seed {args.seed}")
    build(fastbp, args.seed).fit(X_train[:32], y_train[:32], epochs=1, batch_size=args.batch_size)  # compile first

    # fresh models with the same seed (the same result every time), the implementations alternating
    times, trained = {fastbp: [], fastbp.reference: []}, {}
    for _ in range(args.repeats):
        for fb in times:
            model = build(fb, args.seed)
            start = time.perf_counter()
            history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size)
            times[fb].append(time.perf_counter() - start)
            trained[fb] = model, history

    accuracy = {}
    for fb, (model, history) in trained.items():
        accuracy[fb] = model.evaluate(X_test, y_test)["accuracy"]
        wrong = int(np.count_nonzero(model.predict_classes(X_test) != y_test))
        print(f"{fb.__name__:17s} final train loss {history[-1]:.4f}   test accuracy {accuracy[fb]:.4f} "
              f"({wrong} of {len(y_test)} wrong)   fit {1e3 * statistics.median(times[fb]):8.1f} ms")
    fast_ms, ref_ms = (1e3 * statistics.median(times[fb]) for fb in (fastbp, fastbp.reference))
    diff = max(float(np.max(np.abs(a - b)))
               for wa, wb in zip(trained[fastbp][0].get_weights(), trained[fastbp.reference][0].get_weights())
               for a, b in zip(wa, wb))
    print(f"speed-up: {ref_ms / fast_ms:.1f}x (fit time, median of {args.repeats}, compile excluded)   "
          f"max |weight difference| fastbp vs reference: {diff:.1e}")
    if not args.quick and accuracy[fastbp] < 0.95:
        raise SystemExit(f"test accuracy {accuracy[fastbp]:.4f} is below the 0.95 this example expects")


if __name__ == "__main__":
    main()
