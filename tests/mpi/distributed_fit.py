"""Run by tests/test_distributed.py under ``mpiexec -n P``: data-parallel ``fit`` against one
process's ``model.fit`` with the global batch on the same global order.

argv: shard sizes (one per rank, comma-separated), global batch size, epochs, the reduction,
the case: "adam" (cross-entropy, Adam, l2, clipping, a per-step schedule, early stopping
restoring the best epoch) or "nonfinite" (MSE on linear layers, one
row of rank 1's shard so large that its batch's loss is inf on that rank only: every rank
must skip that step, as one process does) or "fail" (rank 1's third gradient call raises: every
rank must stop, mpiexec exiting non-zero) or "diverge" (rank 1 nudges one weight by an ulp after
its first step: every rank must raise the verification's RuntimeError after the epoch) or "dropout"
(the "adam" network with dropout, unshuffled: each rank's rows are then the global batch's rows in
rank order, so its masks are one process's) or "badshard" (a NaN in rank 1's shard: rank 1 refuses it and the job ends) or "killed" (rank 1 kills itself with SIGKILL at its third step: mpiexec must end the job) or "verbose" (verbose=1 and
``fastbp.distributed.save``: rank 0 alone prints and writes) or "dropout_shuffled" (the same, shuffled: the ranks
must stay bitwise identical; the batches' rows are in rank order, not in one process's order) or
"batchnorm" (one global batch, one SGD step with batch norm: the step must be the shards' one-step
updates weighted by their rows, and the running averages their mean).  Rank 0 prints
one JSON line: the largest difference from the single-process weights and losses, and
whether every rank's parameters and optimizer state are bitwise rank 0's."""

import json
import os
import signal
import sys

import numpy as np

import fastbp
import fastbp.distributed as dist


def make_model(case):
    if case == "batchnorm":
        return fastbp.MLP([6, 16, 12, 3], activation="relu", dtype="float64", seed=3, batch_norm=True,
                          optimizer=fastbp.optimizers.SGD(lr=0.05))
    if case.startswith("dropout"):
        return fastbp.MLP([6, 16, 12, 3], activation="tanh", dtype="float64", seed=3, l2=1e-3, dropout=0.3,
                          optimizer=fastbp.optimizers.Adam(lr=0.01))
    if case == "nonfinite":
        return fastbp.MLP([6, 16, 3], activation="linear", loss="mse", dtype="float64", seed=3,
                          optimizer=fastbp.optimizers.SGD(lr=0.01))
    return fastbp.MLP([6, 16, 12, 3], activation="tanh", dtype="float64", seed=3, l2=1e-3, clip_norm=5.0,
                      optimizer=fastbp.optimizers.Adam(lr=0.01))


def main():
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    sizes = [int(s) for s in sys.argv[1].split(",")]
    batch, epochs = int(sys.argv[2]), int(sys.argv[3])
    reduction = sys.argv[4] if len(sys.argv) > 4 else "allreduce"
    case = sys.argv[5] if len(sys.argv) > 5 else "adam"
    assert len(sizes) == comm.Get_size(), (sizes, comm.Get_size())
    rng = np.random.default_rng(7)
    N = sum(sizes)
    X = rng.standard_normal((N, 6))
    y = rng.integers(0, 3, N)
    # early stopping that stops at epoch 2 (no improvement by 10) and restores epoch 1's weights
    options = {"lr_schedule": fastbp.schedules.Cosine(0.02, 0.001, period=4, unit="step"),
               "early_stopping": fastbp.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0,
                                                      restore_best=True)}
    rank = comm.Get_rank()
    if case in ("fail", "killed") and rank == 1:
        calls = [0]
        batch_gradients = dist.kernels.batch_gradients

        def failing(*args):
            calls[0] += 1
            if calls[0] == 3 and case == "killed":
                os.kill(os.getpid(), signal.SIGKILL)  # no exception, no Abort: the process is gone
            if calls[0] == 3:
                raise RuntimeError("injected failure on rank 1")
            return batch_gradients(*args)
        dist.kernels = type(dist.kernels)("failing_kernels")
        dist.kernels.batch_gradients = failing
        dist.kernels.apply_gradients = fastbp.kernels.apply_gradients
    if case == "diverge" and rank == 1:
        apply_gradients = dist.kernels.apply_gradients

        def nudging(net, *args):
            out = apply_gradients(net, *args)
            if int(args[0][0]["step"]) == 1:
                net[0][0] = np.nextafter(net[0][0], np.inf)
            return out
        dist.kernels = type(dist.kernels)("nudging_kernels")
        dist.kernels.batch_gradients = fastbp.kernels.batch_gradients
        dist.kernels.apply_gradients = nudging
    if case == "diverge":
        try:
            dist.fit(make_model(case), X[:20] if rank == 0 else X[20:40], y[:20] if rank == 0 else y[20:40], comm,
                     epochs=1, batch_size=8)
        except RuntimeError as exc:
            error = str(exc)
        else:
            error = None
        errors = comm.gather({"rank": rank, "error": error}, root=0)
        if rank == 0:
            print("\n".join(json.dumps(e) for e in errors), flush=True)
        return
    if case == "batchnorm":
        return batchnorm_step(comm, X, y, sizes)
    if case == "badshard" and rank == 1:
        X[sizes[0] + 3, 2] = np.nan  # bad input in rank 1's shard only
    if case == "verbose":
        model = make_model("adam")
        lo = sum(sizes[:rank])
        dist.fit(model, X[lo:lo + sizes[rank]], y[lo:lo + sizes[rank]], comm, epochs=epochs, batch_size=batch,
                 verbose=1)
        path = os.environ["FASTBP_TEST_SAVE"]
        dist.save(model, path, comm)
        same = fastbp.load(path)._params_ext.tobytes() == model._params_ext.tobytes()  # read on every rank
        error = None
        try:
            dist.save(model, os.path.join(path, "not-a-directory", "m.npz"), comm)
        except Exception as exc:
            error = type(exc).__name__
        results = comm.gather({"rank": rank, "same": same, "save_error": error}, root=0)
        if rank == 0:  # (one print: lines printed by two ranks at once may interleave)
            print(json.dumps(results), flush=True)
        return
    if case == "dropout":
        options["shuffle"] = False
    if case == "nonfinite":
        y = rng.standard_normal((N, 3))
        X[sizes[0] + 1] = 1e160  # rank 1's second row
        options = {"on_nonfinite": "skip_batch"}
    lo = sum(sizes[:rank])
    model = make_model(case)
    if rank > 0:  # other ranks start elsewhere: the broadcast must make them rank 0's model
        model.set_weights([(W + 1.0, b - 1.0) for W, b in model.get_weights()])
    Xv, yv = rng.standard_normal((13, 6)), (y[:13] if case == "nonfinite" else rng.integers(0, 3, 13))
    v = {0: (0, 4), 1: (4, 13)}.get(rank, (13, 13))  # 4 rows, 9 rows, none
    history_d = dist.fit(model, X[lo:lo + sizes[rank]], y[lo:lo + sizes[rank]], comm, epochs=epochs, batch_size=batch,
                         reduction=reduction, validation_data=(Xv[v[0]:v[1]], yv[v[0]:v[1]]), **options)
    losses = list(history_d)
    mine = np.concatenate([model._params_ext, model._slots_buf.ravel(), model._state.view(np.uint8).astype(float)])
    every = comm.gather(mine, root=0)
    all_losses = comm.gather(losses, root=0)
    if rank == 0:
        single = make_model(case)
        history = single.fit(X, y, epochs=epochs, batch_size=batch, validation_data=(Xv, yv), **options)
        metric_diff = max(abs(a - b) for key in history.history for a, b in
                          zip(history_d.history[key], history.history[key]))
        assert set(history.history) == set(history_d.history), (history.history, history_d.history)
        weights = float(np.max(np.abs(model._params_ext - single._params_ext)))
        slots = float(np.max(np.abs(model._slots_buf - single._slots_buf), initial=0.0))
        print(json.dumps({
            "ranks": comm.Get_size(),
            "weights_diff": weights,
            "slots_diff": slots,
            "metric_diff": metric_diff,
            "loss_diff": max(abs(a - b) for a, b in zip(losses, list(history))),
            "step": int(model._state[0]["step"]), "single_step": int(single._state[0]["step"]),
            "single_skipped": int(sum(history.history.get("skipped_batches", [0]))),
            "ranks_bitwise": all(np.array_equal(e.view(np.uint64), every[0].view(np.uint64)) for e in every),
            "losses_equal": all(l == all_losses[0] for l in all_losses),
            "stopped": [history_d.stopped, history.stopped, history_d.best_epoch, history.best_epoch],
        }), flush=True)


def batchnorm_step(comm, X, y, sizes):
    """One SGD step on one global batch: each rank normalises with its own rows' statistics,
    so the step is sum_r (m_r / N) g_r with g_r the gradient of shard r alone, i.e. the
    shards' one-step SGD updates weighted by their rows; the running averages after the
    epoch are the mean of the shards' one-step running averages."""
    rank = comm.Get_rank()
    lo = sum(sizes[:rank])
    model = make_model("batchnorm")
    dist.fit(model, X[lo:lo + sizes[rank]], y[lo:lo + sizes[rank]], comm, epochs=1, batch_size=sum(sizes),
             shuffle=False)
    every = comm.gather(model._params_ext.copy(), root=0)
    if rank == 0:
        p0 = make_model("batchnorm")._params_ext.copy()
        running = np.zeros(p0.size, dtype=bool)
        for lay in model._layers:
            if lay["running"] >= 0:
                running[lay["running"]:lay["running"] + 2 * lay["n_out"]] = True
        expected = p0.copy()
        expected[running] = 0.0
        for r, m in enumerate(sizes):
            shard = make_model("batchnorm")
            shard.fit(X[sum(sizes[:r]):sum(sizes[:r]) + m], y[sum(sizes[:r]):sum(sizes[:r]) + m], epochs=1,
                      batch_size=m, shuffle=False)
            p = shard._params_ext
            expected[~running] += m / sum(sizes) * (p[~running] - p0[~running])
            expected[running] += p[running] / len(sizes)
        scale = np.maximum(np.abs(expected), 1.0)
        print(json.dumps({
            "ranks": comm.Get_size(),
            "weights_diff": float(np.max(np.abs(model._params_ext - expected)[~running] / scale[~running])),
            "running_diff": float(np.max(np.abs(model._params_ext - expected)[running] / scale[running])),
            "moved": float(np.max(np.abs(model._params_ext - p0))),
            "ranks_bitwise": all(np.array_equal(e.view(np.uint64), every[0].view(np.uint64)) for e in every),
        }), flush=True)


if __name__ == "__main__":
    main()
