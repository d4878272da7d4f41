"""Train a 64-128-10 MLP on scikit-learn's handwritten digits (1,797 8x8 images, bundled
with scikit-learn, no download) with fastbp and with the NumPy reference, on the same data
and seed, and print the accuracy and the epoch time of each.

    python examples/digits.py [--epochs 30] [--batch-size 32] [--dtype float32] [--quick]

At least 97 % test accuracy is expected with the defaults (the example exits with an error
if not); ``--quick`` trains 5 epochs, a smoke test (at least 90 %).
"""

import argparse
import time

import numpy as np

import fastbp
import fastbp.reference


def load_digits(seed):
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "fastbp[examples]"') from None
    X, y = sk_load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities 0..16 -> 0..1
    perm = np.random.default_rng(seed).permutation(len(X))
    X, y = X[perm], y[perm]
    n_train = int(0.8 * len(X))
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def train(fb, data, args):
    X_train, y_train, X_test, y_test = data
    model = fb.MLP([64, 128, 10], activation="relu", output="softmax", loss="cross_entropy",
                   optimizer=fb.Adam(lr=1e-3), init="he", dtype=args.dtype, seed=args.seed)
    model.fit(X_train[:64], y_train[:64], epochs=1, batch_size=args.batch_size)  # compile / warm up
    model = fb.MLP([64, 128, 10], activation="relu", output="softmax", loss="cross_entropy",
                   optimizer=fb.Adam(lr=1e-3), init="he", dtype=args.dtype, seed=args.seed)
    start = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    return model, history, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5 epochs (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 5

    data = load_digits(args.seed)
    X_test, y_test = data[2], data[3]
    print(f"digits: {len(data[0])} training / {len(X_test)} test samples, 64 features, 10 classes; "
          f"MLP 64-128-10 relu/softmax, Adam(1e-3), batch {args.batch_size}, {args.dtype}, {args.epochs} epochs")
    results = {}
    for name, fb in (("fastbp", fastbp), ("fastbp.reference", fastbp.reference)):
        model, history, seconds = train(fb, data, args)
        metrics = model.evaluate(X_test, y_test)
        ms = 1e3 * seconds / args.epochs
        results[name] = (model, ms)
        print(f"{name:17s} final train loss {history[-1]:.4f}   test accuracy {metrics['accuracy']:.4f}   "
              f"{ms:8.3f} ms/epoch")
    fast, ref = results["fastbp"], results["fastbp.reference"]
    diff = max(float(np.max(np.abs(a - b))) for (Wa, ba), (Wb, bb) in zip(fast[0].get_weights(), ref[0].get_weights())
               for a, b in ((Wa, Wb), (ba, bb)))
    print(f"speed-up: {ref[1] / fast[1]:.1f}x   max |weight difference| fastbp vs reference: {diff:.2e}")
    accuracy = fast[0].evaluate(X_test, y_test)["accuracy"]
    expected = 0.9 if args.quick else 0.97
    if accuracy < expected:
        raise SystemExit(f"test accuracy {accuracy:.4f} is below the {expected} this example expects")


if __name__ == "__main__":
    main()
