"""Data-parallel training over MPI: the digits bundled with fastbp, shared out over the ranks.

    pip install "fastbp[mpi]"
    mpiexec -n 2 python examples/distributed_digits.py [--epochs 20] [--batch-size 64] [--quick]
    python examples/distributed_digits.py --quick          # one rank: the same code

Every rank reads the data and keeps its shard of the training rows (rank r of P: the r-th
P-th); ``fastbp.distributed.fit`` trains one model on all of them with ``--batch-size`` as the
global batch (one ``Allreduce`` of the gradient per step).  Rank 0 then prints the test
accuracy, trains the same model in one process with ``model.fit`` on all the rows (the run
the ranks are equivalent to) and prints how far apart the weights are (rounding: the sum
over ranks adds in another order), and saves the model (``fastbp.distributed.save``:
from rank 0 only).  ``--quick``: 5 epochs.
"""

import argparse
import os
import tempfile

import numpy as np

import fastbp
from fastbp.datasets import load_digits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch (all ranks together)")
    parser.add_argument("--quick", action="store_true", help="5 epochs (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 5
    try:
        from mpi4py import MPI
    except ImportError:
        print('this example needs mpi4py: pip install "fastbp[mpi]"')
        return
    import fastbp.distributed

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    X, y = load_digits()
    X = X / 16.0  # pixel intensities 0..16 -> 0..1
    perm = np.random.default_rng(0).permutation(len(X))  # the same on every rank
    X, y = X[perm], y[perm]
    n_train = int(0.8 * len(X))
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    lo, hi = n_train * rank // size, n_train * (rank + 1) // size  # this rank's shard

    def make():
        return fastbp.MLP([64, 128, 10], activation="relu", optimizer=fastbp.Adam(lr=5e-3), dtype="float64", seed=0)

    model = make()
    history = fastbp.distributed.fit(model, X_train[lo:hi], y_train[lo:hi], comm, epochs=args.epochs,
                                     batch_size=args.batch_size, verbose=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits_model.npz")
        fastbp.distributed.save(model, path, comm)  # every rank calls it; rank 0 writes
        if rank == 0:
            saved = fastbp.load(path)
            assert np.array_equal(saved.predict(X_test), model.predict(X_test))
    if rank != 0:
        return
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    print(f"rank 0 of {size}: {n_train} training rows ({hi - lo} on this rank), final loss {history[-1]:.4f}, "
          f"test accuracy {accuracy:.4f}")
    single = make()
    single.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size)
    diff = max(float(np.max(np.abs(a - b))) for pair_a, pair_b in zip(single.get_weights(), model.get_weights())
               for a, b in zip(pair_a, pair_b))
    print(f"one process, model.fit on all {n_train} rows: test accuracy "
          f"{single.evaluate(X_test, y_test)['accuracy']:.4f}; max |weight difference| {diff:.1e}")


if __name__ == "__main__":
    main()
