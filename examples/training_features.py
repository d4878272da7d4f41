"""Schedules, batch norm, dropout, validation and early stopping together, on scikit-learn's
digits; writes the loss / accuracy curves to a PNG.

    python examples/training_features.py [--out digits_training.png] [--reference]
"""

import argparse

import numpy as np

import fastbp
import fastbp.reference


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="digits_training.png", help="where to write the curves")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--reference", action="store_true", help="use the NumPy reference implementation")
    args = parser.parse_args()
    fb = fastbp.reference if args.reference else fastbp
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("this example needs scikit-learn: pip install 'fastbp[examples]'") from None

    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(X))
    X, y = X[perm] / 16.0, y[perm]
    X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]

    model = fb.MLP([64, 128, 64, 10], activation="relu", batch_norm=True, dropout=[0.2, 0.1],
                   optimizer=fb.Adam(lr=3e-3), dtype="float32", seed=0)
    schedule = fb.schedules.Warmup(fb.schedules.Cosine(max_lr=3e-3, min_lr=1e-4, period=args.epochs), warmup=5)
    history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.2,
                        lr_schedule=schedule, early_stopping=fb.EarlyStopping(patience=8), verbose=1)
    print(history.stopped or "ran all epochs")
    print(f"best epoch {history.best_epoch}: val_loss {history.history['val_loss'][history.best_epoch - 1]:.4f}; "
          f"restored its weights")
    print("test:", model.evaluate(X_test, y_test))
    history.plot(args.out)
    print(f"curves written to {args.out}")


if __name__ == "__main__":
    main()
