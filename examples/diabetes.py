"""Regression on scikit-learn's diabetes data (442 patients, 10 features, a disease
progression score a year later; bundled with scikit-learn): a linear output trained with
``mse`` on standardised features and a standardised target, with fastbp, the NumPy
reference and scikit-learn's ``MLPRegressor`` with matched settings.  Prints the test R^2 of
each (on the original scale of the target), ordinary least squares' R^2 on the same split
for scale, and the fit times and speed-ups (compile time excluded), measured in this run.

The data set is small and close to linear: a network does about as well as least squares
here, not better; a weight penalty (``l2``) keeps it from fitting the noise.

Matched settings: one tanh hidden layer of 32, Adam (lr 1e-3, betas 0.9 / 0.999, eps 1e-8),
mini-batches of 32, shuffled, the same epochs (``max_iter``, with ``tol``-based stopping
disabled by ``n_iter_no_change=max_iter``), float32 data, and the same penalty: fastbp
minimises ``mean((y - p)^2) + l2 * sum(W^2) / 2``, scikit-learn
``mean((y - p)^2) / 2 + alpha * sum(W^2) / (2 * batch)``, the same objective up to a factor
(to which Adam's steps are blind) when ``alpha = l2 * batch / 2`` (the last, smaller batch
of an epoch excepted).  The initial weights and the shuffles differ.

    python examples/diabetes.py [--epochs 300] [--repeats 3] [--seed 0] [--quick]
"""

import argparse
import statistics
import time
import warnings

import numpy as np

import fastbp
import fastbp.reference

HIDDEN, ACTIVATION = 32, "tanh"
LR, BATCH, L2 = 1e-3, 32, 0.03


def load(seed):
    try:
        from sklearn.datasets import load_diabetes
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "fastbp[examples]"') from None
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=seed)


def fastbp_model(fb, seed):
    return fb.MLP([10, HIDDEN, 1], activation=ACTIVATION, output="linear", loss="mse", l2=L2,
                  optimizer=fb.Adam(lr=LR), init="xavier", dtype="float32", seed=seed)


def sklearn_model(epochs, seed):
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(hidden_layer_sizes=(HIDDEN,), activation=ACTIVATION, solver="adam", learning_rate_init=LR,
                        beta_1=0.9, beta_2=0.999, epsilon=1e-8, batch_size=BATCH, shuffle=True,
                        alpha=L2 * BATCH / 2, max_iter=epochs, n_iter_no_change=epochs, early_stopping=False,
                        random_state=seed)


def r2(y, p):
    """The coefficient of determination: 1 - residual sum of squares / total sum of squares."""
    return 1.0 - float(np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="fits timed per implementation (median)")
    parser.add_argument("--seed", type=int, default=0, help="the split's and the models' seed")
    parser.add_argument("--quick", action="store_true", help="20 epochs, one timed fit each (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.repeats = 20, 1

    X_train, X_test, y_train, y_test = load(args.seed)
    x_mean, x_std = X_train.mean(axis=0), X_train.std(axis=0)  # the training set's statistics only
    y_mean, y_std = y_train.mean(), y_train.std()
    Xs_train = ((X_train - x_mean) / x_std).astype(np.float32)
    Xs_test = ((X_test - x_mean) / x_std).astype(np.float32)
    ys_train = ((y_train - y_mean) / y_std).astype(np.float32)
    Ys_train = ys_train.reshape(-1, 1)  # one linear output: the target as a column

    def unscale(p):  # predictions of the standardised target, back on the target's scale
        return p.reshape(-1).astype(np.float64) * y_std + y_mean

    print(f"diabetes: {len(X_train)} training / {len(X_test)} test samples, 10 standardised features, "
          f"standardised target; MLP 10-{HIDDEN}-1 {ACTIVATION} / linear, mse + l2 {L2}, Adam({LR:g}), "
          f"batch {BATCH}, {args.epochs} epochs, float32, seed {args.seed}")
    # compile (or load from Numba's cache) fastbp's kernels first; scikit-learn gets the same tiny first fit
    warm_up = fastbp_model(fastbp, args.seed)
    warm_up.fit(Xs_train[:64], Ys_train[:64], epochs=1, batch_size=BATCH)
    warm_up.predict(Xs_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sklearn_model(1, args.seed).fit(Xs_train[:64], ys_train[:64]).predict(Xs_test)

    def fit_fastbp(fb):
        model = fastbp_model(fb, args.seed)
        model.fit(Xs_train, Ys_train, epochs=args.epochs, batch_size=BATCH)
        return model, unscale(model.predict(Xs_test))

    def fit_sklearn():
        from sklearn.exceptions import ConvergenceWarning

        model = sklearn_model(args.epochs, args.seed)
        with warnings.catch_warnings():  # "maximum iterations reached": that is the point here
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(Xs_train, ys_train)
        return model, unscale(model.predict(Xs_test))

    runs = {"fastbp": lambda: fit_fastbp(fastbp), "fastbp.reference": lambda: fit_fastbp(fastbp.reference),
            "scikit-learn": fit_sklearn}
    times, results = {name: [] for name in runs}, {}
    for _ in range(args.repeats):  # the three alternating, fresh models each time
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)

    fast_ms = 1e3 * statistics.median(times["fastbp"])
    scores = {}
    for name, (model, prediction) in results.items():
        scores[name] = r2(y_test, prediction)
        ms = 1e3 * statistics.median(times[name])
        speed = "" if name == "fastbp" else f"   fastbp's speed-up {ms / fast_ms:5.1f}x"
        print(f"{name:17s} test R^2 {scores[name]:.3f}   fit {ms:8.1f} ms{speed}")
    # least squares with an intercept, for scale
    A = np.column_stack([np.ones(len(X_train)), X_train])
    coef = np.linalg.lstsq(A, y_train, rcond=None)[0]
    print(f"least squares    test R^2 {r2(y_test, np.column_stack([np.ones(len(X_test)), X_test]) @ coef):.3f}"
          f"   (the linear model, for scale)")
    print(f"(fit + test prediction, median of {args.repeats}, compile excluded; scikit-learn ran "
          f"{results['scikit-learn'][0].n_iter_} epochs)")
    gap = np.max(np.abs(results["fastbp"][1] - results["fastbp.reference"][1]))
    print(f"fastbp vs reference: max |prediction difference| on the test set {gap:.1e} "
          f"(target range {y_test.min():.0f} to {y_test.max():.0f})")
    if not args.quick and scores["fastbp"] < 0.3:
        raise SystemExit(f"test R^2 {scores['fastbp']:.3f} is below the 0.3 this example expects")


if __name__ == "__main__":
    main()
