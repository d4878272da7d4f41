"""Run by tests/test_distributed.py under ``mpiexec -n 2``: ``fastbp.distributed.fit`` called
with a setting that differs between the ranks, one case after the other in one job.

Every case must raise on every rank (no rank returning while another waits in a collective),
naming the setting, and leave every rank's model as it was.  After each case rank 0 prints one
JSON line ``{"case": name, "ranks": [per rank: error type, message, unchanged]}``, so a job that
hangs in a later case still reports the earlier ones."""

import json

import numpy as np

import fastbp
import fastbp.distributed as dist


def stopping(patience=1, restore_best=True):
    # stops at epoch 2 with patience 1 (no improvement by 10), as the "adam" case of distributed_fit.py
    return fastbp.EarlyStopping(monitor="val_loss", patience=patience, min_delta=10.0, restore_best=restore_best)


def model(**options):
    return fastbp.MLP([4, 8, 3], dtype="float64", seed=0, **options)


def schedule(rank):
    return fastbp.schedules.StepDecay(0.01 * (1 + rank), 0.5, step_size=2, unit="step")


# name -> (the model of rank r, fit's keyword arguments on rank r), built in a function of the rank
CASES = {
    "sizes": lambda r: (fastbp.MLP([4, 8 + r, 3], seed=0), {}),
    "dtype": lambda r: (fastbp.MLP([4, 8, 3], dtype=("float64", "float32")[r], seed=0), {}),
    "seed": lambda r: (fastbp.MLP([4, 8, 3], seed=r), {}),
    "optimizer": lambda r: (model(optimizer=fastbp.optimizers.Adam(lr=0.01 * (1 + r))), {}),
    "epochs": lambda r: (model(), {"epochs": 2 + r}),
    "batch_size": lambda r: (model(), {"batch_size": 8 + r}),
    "shuffle": lambda r: (model(), {"shuffle": r == 0}),
    "on_nonfinite": lambda r: (model(), {"on_nonfinite": ("raise", "skip_batch")[r]}),
    "validation_data": lambda r: (model(), {"validation": r == 0}),
    "reduction": lambda r: (model(), {"reduction": ("allreduce", "reduce_bcast")[r]}),
    "verify": lambda r: (model(), {"verify": r == 0}),
    "early_stopping_presence": lambda r: (model(), {"validation": True, "early_stopping": stopping() if r else None}),
    "early_stopping_patience": lambda r: (model(), {"validation": True, "early_stopping": stopping(1 + 49 * r)}),
    "early_stopping_restore_best": lambda r: (model(), {"validation": True,
                                                         "early_stopping": stopping(restore_best=r == 0)}),
    "lr_schedule_presence": lambda r: (model(), {"lr_schedule": schedule(r) if r else None}),
    "lr_schedule_rates": lambda r: (model(), {"lr_schedule": schedule(r)}),
    "lr_schedule_rates_unverified": lambda r: (model(), {"lr_schedule": schedule(r), "verify": False}),
    "epochs_refused_on_one_rank": lambda r: (model(), {"epochs": (3, -1)[r]}),
}


def main():
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    Xv, yv = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    mine = slice(20 * rank, 20 * rank + 20)
    for name, case in CASES.items():
        net, options = case(rank)
        if options.pop("validation", False):
            options["validation_data"] = (Xv[5 * rank:5 * rank + 5], yv[5 * rank:5 * rank + 5])
        options = {"epochs": 3, "batch_size": 8, **options}
        before = (net._params_ext.tobytes(), net._slots_buf.tobytes(), net._state.tobytes(),
                  net._rng.bit_generator.state)
        try:
            dist.fit(net, X[mine], y[mine], comm, **options)
        except Exception as exc:
            error, message = type(exc).__name__, str(exc)
        else:
            error, message = None, None
        after = (net._params_ext.tobytes(), net._slots_buf.tobytes(), net._state.tobytes(),
                 net._rng.bit_generator.state)
        ranks = comm.gather({"error": error, "message": message, "unchanged": before == after}, root=0)
        if rank == 0:
            print(json.dumps({"case": name, "ranks": ranks}), flush=True)


if __name__ == "__main__":
    main()
