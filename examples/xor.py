"""XOR, the classic problem no linear model can solve, learned by a 2-4-1 network (tanh
hidden layer, one sigmoid output, binary cross-entropy, full-batch Adam) with fastbp and
with the NumPy reference: prints the learned truth table, the loss curve's start and end,
and the fit time of both implementations (compile time excluded, measured in this run).

    python examples/xor.py [--epochs 500] [--repeats 5] [--seed 0] [--quick]
"""

import argparse
import statistics
import time

import numpy as np

import fastbp
import fastbp.reference

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]])  # one sigmoid output: targets as a column of 0 / 1


def build(fb, seed):
    return fb.MLP([2, 4, 1], activation="tanh", output="sigmoid", loss="binary_cross_entropy",
                  optimizer=fb.Adam(lr=0.05), init="xavier", dtype="float32", seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5, help="fits timed per implementation (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and timing repeats (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.repeats = 300, 2

    print(f"XOR: 4 samples; MLP 2-4-1 tanh / sigmoid, binary cross-entropy, Adam(0.05), "
          f"full batch, {args.epochs} epochs, float32, seed {args.seed}")
    build(fastbp, args.seed).fit(X, Y, epochs=1, batch_size=4)  # compile (or load the cached kernels) first

    # Each repeat trains a fresh model with the same seed (the same result every time), the two
    # implementations alternating, so both see the same moments of a noisy machine.
    times, trained = {fastbp: [], fastbp.reference: []}, {}
    for _ in range(args.repeats):
        for fb in times:
            model = build(fb, args.seed)
            start = time.perf_counter()
            history = model.fit(X, Y, epochs=args.epochs, batch_size=4)
            times[fb].append(time.perf_counter() - start)
            trained[fb] = model, history
    (fast_model, fast_history), (ref_model, ref_history) = trained[fastbp], trained[fastbp.reference]

    p = fast_model.predict(X)[:, 0]
    labels = fast_model.predict_classes(X)
    print("learned truth table (fastbp):")
    print("  x1 x2 | xor | p(1)    class")
    for (x1, x2), target, prob, label in zip(X.astype(int), Y[:, 0], p, labels):
        print(f"   {x1}  {x2} |  {target}  | {prob:.4f}    {label}  {'ok' if label == target else 'WRONG'}")
    marks = sorted({1, len(fast_history) // 10, len(fast_history) // 2, len(fast_history)} - {0})
    print("loss curve (fastbp): " + " -> ".join(f"epoch {e}: {fast_history[e - 1]:.4f}" for e in marks))
    accuracy = fast_model.evaluate(X, Y)["accuracy"]
    print(f"truth table accuracy: fastbp {accuracy:.2f}, fastbp.reference {ref_model.evaluate(X, Y)['accuracy']:.2f}")
    print(f"same numbers: final loss fastbp {fast_history[-1]:.6f}, reference {ref_history[-1]:.6f}; "
          f"max |p(1) difference| {np.max(np.abs(p - ref_model.predict(X)[:, 0])):.1e}")

    fast_ms, ref_ms = (1e3 * statistics.median(times[fb]) for fb in (fastbp, fastbp.reference))
    print(f"fit time, {args.epochs} epochs (median of {args.repeats}, compile excluded): "
          f"fastbp {fast_ms:.2f} ms, fastbp.reference {ref_ms:.1f} ms; speed-up {ref_ms / fast_ms:.1f}x")
    if accuracy < 1.0:
        raise SystemExit(f"XOR not learned in {args.epochs} epochs with seed {args.seed}")


if __name__ == "__main__":
    main()
