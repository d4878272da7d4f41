"""Training and validation curves: a 64-128-10 network on scikit-learn's digits, trained
with ``validation_split`` (the last quarter of the shuffled data held out, scored after every
epoch), with fastbp and with the NumPy reference.  Prints the curves at a few epochs, the
best validation epoch, and the fit time of both with the speed-up (compile time excluded),
measured in this run; writes the loss / accuracy picture with ``History.plot(path)``.

Without matplotlib (an optional extra: ``pip install "fastbp[plot]"``) it says so, trains
and prints all the same, and writes no picture.

    python examples/loss_curve.py [--out loss_curve.png] [--epochs 60] [--seed 0] [--quick]
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


def load(seed):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "fastbp[examples]"') from None
    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(X))  # validation_split takes the last rows: shuffle first
    return (X[perm] / 16.0).astype(np.float32), y[perm]


def build(fb, seed):
    return fb.MLP([64, 128, 10], activation="relu", output="softmax", loss="cross_entropy",
                  optimizer=fb.Adam(lr=3e-3), init="he", dtype="float32", seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="loss_curve.png", help="where to write the picture (PNG)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--validation-split", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5 epochs (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 5
    plot = have_matplotlib()
    if not plot:
        print('matplotlib is not installed: training without the picture (pip install "fastbp[plot]" to get it)')

    X, y = load(args.seed)
    n_val = int(len(X) * args.validation_split)
    print(f"digits: {len(X) - n_val} training / {n_val} validation samples (validation_split={args.validation_split}); "
          f"MLP 64-128-10 relu / softmax, Adam(3e-3), batch {args.batch_size}, {args.epochs} epochs, float32")
    warm_up = build(fastbp, args.seed)  # compile (or load from Numba's cache) the kernels first
    warm_up.fit(X[:128], y[:128], epochs=1, batch_size=args.batch_size, validation_split=0.5)

    histories, seconds = {}, {}
    for fb in (fastbp, fastbp.reference):
        model = build(fb, args.seed)
        start = time.perf_counter()
        histories[fb] = model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                                  validation_split=args.validation_split)
        seconds[fb] = time.perf_counter() - start

    history = histories[fastbp]
    h = history.history
    print("epoch   loss      val_loss  val_accuracy   (fastbp)")
    for epoch in sorted({1, 2, 5, *range(10, args.epochs + 1, 10), args.epochs} & set(range(1, args.epochs + 1))):
        print(f"{epoch:5d}   {h['loss'][epoch - 1]:.5f}   {h['val_loss'][epoch - 1]:.5f}   "
              f"{h['val_accuracy'][epoch - 1]:.4f}")
    best = int(np.argmin(h["val_loss"]))
    print(f"best validation loss {h['val_loss'][best]:.5f} at epoch {best + 1} "
          f"(validation accuracy {h['val_accuracy'][best]:.4f}); last epoch {h['val_loss'][-1]:.5f}")
    ref = histories[fastbp.reference].history
    gap = max(abs(a - b) for key in ("loss", "val_loss") for a, b in zip(h[key], ref[key]))
    print(f"fastbp.reference, same fit: max |loss difference| over the {args.epochs} epochs {gap:.1e}")
    fast_ms, ref_ms = 1e3 * seconds[fastbp], 1e3 * seconds[fastbp.reference]
    print(f"fit time with validation every epoch: fastbp {fast_ms:.0f} ms, fastbp.reference {ref_ms:.0f} ms; "
          f"speed-up {ref_ms / fast_ms:.1f}x (one fit each, compile excluded)")

    if plot:
        history.plot(args.out)
        print(f"curves written to {args.out}")
    else:
        print("no picture written (matplotlib is not installed)")


if __name__ == "__main__":
    main()
