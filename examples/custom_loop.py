"""Your own training loop around ``model.train_step(X_batch, y_batch)``, on scikit-learn's
digits: your own shuffling, your own learning-rate drop when the validation loss stops
improving, ``evaluate`` on held-out data after every epoch, an early exit, and the best
epoch's weights kept.  The same loop runs on fastbp and on the NumPy reference; prints each
epoch's metrics for both, and the time of one ``train_step`` call in each, with the speed-up
per step, measured in this run (compile time excluded).

    python examples/custom_loop.py [--max-epochs 40] [--batch-size 32] [--lr 0.1] [--seed 0] [--quick]

The learning rate drops by setting ``model.optimizer.lr`` between steps: the one setting
of an optimizer that may change after it is made (checked when set, and by the model before
its next step), in both implementations.
"""

import argparse
import statistics
import time

import numpy as np

import fastbp
import fastbp.reference

SIZES = [64, 64, 10]
PATIENCE = 2  # epochs without a 1 % better validation loss before the learning rate drops


def load(seed):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install "fastbp[examples]"') from None
    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(X))
    X, y = (X[perm] / 16.0).astype(np.float32), y[perm]
    return (X[:1200], y[:1200]), (X[1200:1500], y[1200:1500]), (X[1500:], y[1500:])


def build(fb, lr, seed):
    return fb.MLP(SIZES, activation="relu", output="softmax", loss="cross_entropy",
                  optimizer=fb.SGD(lr=lr), init="he", dtype="float32", seed=seed)


def train(fb, data, args):
    """The loop.  Returns the model (with the best epoch's weights), the per-epoch log, the best
    epoch, why it stopped, and the time of every ``train_step`` call."""
    (X, y), (X_val, y_val), _ = data
    lr, min_lr = args.lr, args.lr / 20
    model = build(fb, lr, args.seed)
    rng = np.random.default_rng(args.seed)  # our own shuffling
    step_times, log = [], []
    best_loss, best_weights, best_epoch = np.inf, None, 0
    plateau_loss, stalled = np.inf, 0
    stopped = f"ran all {args.max_epochs} epochs"
    for epoch in range(1, args.max_epochs + 1):
        order = rng.permutation(len(X))
        losses = []
        for start in range(0, len(X), args.batch_size):
            rows = order[start:start + args.batch_size]
            X_batch, y_batch = X[rows], y[rows]
            t0 = time.perf_counter()
            losses.append(model.train_step(X_batch, y_batch))
            step_times.append(time.perf_counter() - t0)
        val = model.evaluate(X_val, y_val)
        log.append((lr, float(np.mean(losses)), val["loss"], val["accuracy"]))

        if val["loss"] < best_loss:  # the best so far: keep its weights
            best_loss, best_weights, best_epoch = val["loss"], model.get_weights(), epoch
        if val["loss"] < 0.99 * plateau_loss:  # still improving by more than 1 %
            plateau_loss, stalled = val["loss"], 0
            continue
        stalled += 1
        if stalled == PATIENCE:  # a plateau: a quarter of the learning rate, or stop
            if lr / 4 < min_lr:
                stopped = (f"stopped after epoch {epoch}: {PATIENCE} epochs without a 1 % better "
                           f"validation loss at lr {lr:g}")
                break
            lr, stalled = lr / 4, 0
            model.optimizer.lr = lr
    model.set_weights(best_weights)
    return model, log, best_epoch, stopped, step_times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1, help="SGD's first learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="at most 3 epochs (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.max_epochs = 3

    data = load(args.seed)
    (X, y), (X_val, y_val), (X_test, y_test) = data
    print(f"digits: {len(X)} training / {len(X_val)} validation / {len(X_test)} test samples; MLP "
          f"{'-'.join(map(str, SIZES))} relu / softmax, SGD({args.lr:g}), batch {args.batch_size}, float32, "
          f"at most {args.max_epochs} epochs; learning rate / 4 after {PATIENCE} epochs without a 1 % better "
          f"validation loss")
    warm_up = build(fastbp, args.lr, args.seed)  # compile (or load from Numba's cache) the kernels first
    warm_up.train_step(X[:args.batch_size], y[:args.batch_size])
    warm_up.evaluate(X_val, y_val)

    results = {fb: train(fb, data, args) for fb in (fastbp, fastbp.reference)}
    fast, ref = results[fastbp], results[fastbp.reference]
    print(f"epoch  lr      |" + " |".join(f"{name + ': train loss':>22s} {'val loss':>9s} {'val accuracy':>13s}"
                                          for name in ("fastbp", "reference")))
    for epoch in range(max(len(fast[1]), len(ref[1]))):
        row = []
        for log in (fast[1], ref[1]):
            if epoch < len(log):
                lr, train_loss, val_loss, val_accuracy = log[epoch]
                row.append(f"{train_loss:22.4f} {val_loss:9.4f} {val_accuracy:13.4f}")
            else:
                row.append(" " * 46)
        lr = (fast[1] if epoch < len(fast[1]) else ref[1])[epoch][0]
        print(f"{epoch + 1:5d}  {lr:.4f} |" + " |".join(row))
    for fb, (model, log, best_epoch, stopped, step_times) in results.items():
        print(f"{fb.__name__:17s} {stopped}; best epoch {best_epoch} (weights kept): test accuracy "
              f"{model.evaluate(X_test, y_test)['accuracy']:.4f}")
        print(f"{'':17s} train_step ({args.batch_size} rows): {1e6 * statistics.median(step_times):.1f} us "
              f"(median of {len(step_times)} calls, each timed alone)")
    print(f"speed-up per step: {statistics.median(ref[4]) / statistics.median(fast[4]):.1f}x")
    diff = max(float(np.max(np.abs(a - b)))
               for wa, wb in zip(fast[0].get_weights(), ref[0].get_weights()) for a, b in zip(wa, wb))
    print(f"same loop, same numbers: max |weight difference| fastbp vs reference {diff:.1e}")


if __name__ == "__main__":
    main()
