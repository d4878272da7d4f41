"""Data-parallel training (``fastbp.distributed``): compute vs gradient reduction per step.

    python benchmarks/distributed.py [--workloads W3 W4] [--steps 20]              # 1 rank
    mpiexec -n 2 python benchmarks/distributed.py [--workloads W3 W4] [--steps 20]  # 2 ranks

Each workload's global batch (``asv_benchmarks/benchmarks/common.py``) is split over the
ranks (``--steps`` global batches of data, shared out evenly), one warm-up epoch, then one
timed epoch; rank 0 prints the median per step of the compute (both halves of the step:
gradients of the local rows, the update) and of the reduction (the one ``Allreduce`` of the
flat gradient buffer, which also absorbs any wait for a slower rank), in ms.  On one machine
the ranks share its cores: set the threads per rank (``NUMBA_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``) so that ranks x threads is the core count, or the ranks fight over
them.  Prototype: not yet measured for README (issue 13).
"""

import argparse
import os
import sys

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "asv_benchmarks"))
from benchmarks.common import WORKLOADS, make_data, make_model  # noqa: E402

import fastbp  # noqa: E402
import fastbp.distributed as dist  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=["W3", "W4"], choices=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=20, help="global batches per epoch")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if rank == 0:
        print(f"{size} rank(s); NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', '(default)')}, "
              f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(default)')}")
        print("| workload | ranks | gradient floats | compute ms/step | allreduce ms/step | allreduce share |")
        print("|---|---|---|---|---|---|")
    for name in args.workloads:
        sizes, _, batch, dtype = WORKLOADS[name]
        n = batch * args.steps
        X, y = make_data(sizes, n, dtype)
        lo, hi = n * rank // size, n * (rank + 1) // size
        model = make_model(fastbp, sizes, dtype)
        dist.fit(model, X[lo:hi], y[lo:hi], comm, epochs=1, batch_size=batch)  # compile, warm up
        times = []
        dist.fit(model, X[lo:hi], y[lo:hi], comm, epochs=1, batch_size=batch, step_times=times)
        compute, reduce = np.median(np.array(times), axis=0) * 1e3
        every = comm.gather((compute, reduce), root=0)
        if rank == 0:
            compute, reduce = max(c for c, _ in every), max(r for _, r in every)
            print(f"| {name} | {size} | {model._grads.size:,} | {compute:.2f} | {reduce:.3f} | "
                  f"{reduce / (compute + reduce):.1%} |")


if __name__ == "__main__":
    main()
