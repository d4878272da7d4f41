"""Binary classification on scikit-learn's breast cancer data (569 tumours, 30 features,
malignant or benign; bundled with scikit-learn): one sigmoid output trained with
``binary_cross_entropy`` (targets as a column of 0 / 1), next to scikit-learn's
``MLPClassifier`` with matched settings and the NumPy reference.  Prints the test accuracy
and the fit time of each (compile time excluded) and the speed-ups, measured in this run.

Matched settings: hidden layers (32, 16) with ReLU, Adam (lr 1e-3, betas 0.9 / 0.999,
eps 1e-8), mini-batches of 32, shuffled every epoch, the same number of epochs (scikit-learn:
``max_iter`` with its ``tol``-based stopping disabled by ``n_iter_no_change=max_iter``), no
weight penalty (``alpha=0``), float32 data for both.  What is not matched: the initial
weights (Glorot's variance in both, but scikit-learn draws them uniform and its biases too,
fastbp's ``init="xavier"`` draws a normal and starts the biases at zero) and the shuffles.

    python examples/breast_cancer.py [--epochs 100] [--repeats 3] [--seed 0] [--quick]
"""

import argparse
import statistics
import time
import warnings

import numpy as np

import fastbp
import fastbp.reference

HIDDEN = (32, 16)
LR, BATCH = 1e-3, 32


def load(seed):
    try:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "fastbp[examples]"') from None
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)  # the training set's statistics only
    X_train, X_test = ((X_train - mean) / std).astype(np.float32), ((X_test - mean) / std).astype(np.float32)
    return X_train, y_train, X_test, y_test


def fastbp_model(fb, seed):
    return fb.MLP([30, *HIDDEN, 1], activation="relu", output="sigmoid", loss="binary_cross_entropy",
                  optimizer=fb.Adam(lr=LR), init="xavier", dtype="float32", seed=seed)


def sklearn_model(epochs, seed):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam", learning_rate_init=LR,
                         beta_1=0.9, beta_2=0.999, epsilon=1e-8, batch_size=BATCH, shuffle=True, alpha=0.0,
                         max_iter=epochs, n_iter_no_change=epochs, early_stopping=False, random_state=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="fits timed per implementation (median)")
    parser.add_argument("--seed", type=int, default=0, help="the split's and the models' seed")
    parser.add_argument("--quick", action="store_true", help="20 epochs, one timed fit each (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.repeats = 20, 1

    X_train, y_train, X_test, y_test = load(args.seed)
    Y_train, Y_test = y_train.reshape(-1, 1), y_test.reshape(-1, 1)  # one sigmoid output: a column of 0 / 1
    print(f"breast cancer: {len(X_train)} training / {len(X_test)} test samples (stratified), 30 standardised "
          f"features, 2 classes; MLP 30-{'-'.join(map(str, HIDDEN))}-1 relu / sigmoid, binary cross-entropy, "
          f"Adam({LR:g}), batch {BATCH}, {args.epochs} epochs, float32, seed {args.seed}")
    # compile (or load from Numba's cache) fastbp's training and inference kernels first, and
    # give scikit-learn the same tiny first fit (its first call imports what it needs)
    warm_up = fastbp_model(fastbp, args.seed)
    warm_up.fit(X_train[:64], Y_train[:64], epochs=1, batch_size=BATCH)
    warm_up.evaluate(X_test, Y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sklearn_model(1, args.seed).fit(X_train[:64], y_train[:64]).score(X_test, y_test)

    def fit_fastbp(fb):
        model = fastbp_model(fb, args.seed)
        model.fit(X_train, Y_train, epochs=args.epochs, batch_size=BATCH)
        return model, model.evaluate(X_test, Y_test)["accuracy"]

    def fit_sklearn():
        model = sklearn_model(args.epochs, args.seed)
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # "maximum iterations reached": that is the point here
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(X_train, y_train)
        return model, model.score(X_test, y_test)

    runs = {"fastbp": lambda: fit_fastbp(fastbp), "fastbp.reference": lambda: fit_fastbp(fastbp.reference),
            "scikit-learn": fit_sklearn}
    times, results = {name: [] for name in runs}, {}
    for _ in range(args.repeats):  # the three alternating, fresh models each time
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    fast_ms = 1e3 * statistics.median(times["fastbp"])
    for name, (model, accuracy) in results.items():
        ms = 1e3 * statistics.median(times[name])
        speed = "" if name == "fastbp" else f"   fastbp's speed-up {ms / fast_ms:5.1f}x"
        print(f"{name:17s} test accuracy {accuracy:.4f}   fit {ms:8.1f} ms{speed}")
    print(f"(fit + test evaluation, median of {args.repeats}, compile excluded; scikit-learn ran "
          f"{results['scikit-learn'][0].n_iter_} epochs)")
    fast_model, ref_model = results["fastbp"][0], results["fastbp.reference"][0]
    print(f"fastbp vs reference: max |p difference| on the test set "
          f"{np.max(np.abs(fast_model.predict(X_test) - ref_model.predict(X_test))):.1e}")
    if not args.quick and results["fastbp"][1] < 0.95:
        raise SystemExit(f"test accuracy {results['fastbp'][1]:.4f} is below the 0.95 this example expects")


if __name__ == "__main__":
    main()
