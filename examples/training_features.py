"""Schedules, batch norm, dropout, validation and early stopping together, on scikit-learn's
digits, with fastbp's progress display (``verbose=1``); then the same fit on the NumPy
reference, with the time per epoch of both and the speed-up, measured in this run (compile
time excluded).  Writes the loss / accuracy curves to a PNG with ``History.plot``.

Without matplotlib (an optional extra: ``pip install "fastbp[plot]"``) it says so, trains
and prints all the same, and writes no picture.

    python examples/training_features.py [--out digits_training.png] [--epochs 100] [--quick]

With batch norm, Adam and float32 the two implementations need not stop at the same epoch:
digits has pixels that are 0 in every image, and batch norm makes their gradients rounding
noise that Adam turns into steps (README, "Where the same numbers end").
"""

import argparse
import time

import numpy as np

import fastbp
import fastbp.reference


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401  (History.plot imports it itself)
    except ImportError:
        return False
    return True


def fit(fb, X_train, y_train, epochs, verbose):
    model = fb.MLP([64, 128, 64, 10], activation="relu", batch_norm=True, dropout=[0.2, 0.1],
                   optimizer=fb.Adam(lr=3e-3), dtype="float32", seed=0)
    schedule = fb.schedules.Warmup(fb.schedules.Cosine(max_lr=3e-3, min_lr=1e-4, period=epochs), warmup=5)
    start = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=32, validation_split=0.2,
                        lr_schedule=schedule, early_stopping=fb.EarlyStopping(patience=8), verbose=verbose)
    return model, history, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="digits_training.png", help="where to write the curves (PNG)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="5 epochs (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 5
    plot = have_matplotlib()
    if not plot:
        print('matplotlib is not installed: training without the picture (pip install "fastbp[plot]" to get it)')
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "fastbp[examples]"') from None

    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = (X[perm] / 16.0).astype(np.float32), y[perm]
    X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]
    print(f"digits: {len(X_train)} samples (the last 20 % for validation), {len(X_test)} test; MLP 64-128-64-10 "
          f"relu, batch norm, dropout 0.2 / 0.1, Adam with 5 warm-up epochs then cosine 3e-3 -> 1e-4, "
          f"early stopping (patience 8), at most {args.epochs} epochs, float32")
    fit(fastbp, X_train[:128], y_train[:128], 1, verbose=0)  # compile (or load from Numba's cache) first

    model, history, seconds = fit(fastbp, X_train, y_train, args.epochs, verbose=1)
    print(history.stopped or f"ran all {len(history)} epochs")
    print(f"best epoch {history.best_epoch}: val_loss {history.history['val_loss'][history.best_epoch - 1]:.4f}; "
          f"restored its weights")
    test = model.evaluate(X_test, y_test)
    print(f"fastbp            test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}); "
          f"{len(history)} epochs, {1e3 * seconds / len(history):.1f} ms/epoch")

    ref_model, ref_history, ref_seconds = fit(fastbp.reference, X_train, y_train, args.epochs, verbose=0)
    ref_test = ref_model.evaluate(X_test, y_test)
    print(f"fastbp.reference  test accuracy {ref_test['accuracy']:.4f} (loss {ref_test['loss']:.4f}); "
          f"{len(ref_history)} epochs (best {ref_history.best_epoch}), "
          f"{1e3 * ref_seconds / len(ref_history):.1f} ms/epoch")
    print(f"speed-up per epoch: {(ref_seconds / len(ref_history)) / (seconds / len(history)):.1f}x "
          f"(fastbp with its progress display, the reference silent)")

    if plot:
        history.plot(args.out)
        print(f"curves written to {args.out}")
    else:
        print("no picture written (matplotlib is not installed)")


if __name__ == "__main__":
    main()
