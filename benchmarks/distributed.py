"""Data-parallel training (``fastbp.distributed``): compute vs gradient reduction per step,
the Allreduce's bandwidth, whether overlapping it with compute pays, and the projection to
N machines.

    python benchmarks/distributed.py                                   # 1 rank (all cores)
    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        mpiexec -n 2 python benchmarks/distributed.py                  # 2 ranks, a core each
    mpiexec -n 2 python benchmarks/distributed.py --overlap            # + the overlap test

For each workload (``asv_benchmarks/benchmarks/common.py``: W3 784-256-256-10, batch 128;
W4 1024-2048-2048-10, batch 256; float32) the global batch is split over the ranks
(``--steps`` global batches of data, shared out evenly); one warm-up epoch, then ``--rounds``
timed epochs.  Rank 0 prints, per step (the median over the steps of the slowest rank):

- compute: both halves of the step on this rank (gradients of its rows, the update);
- allreduce: the one in-place ``Allreduce`` of the flat gradient buffer inside ``fit``
  (it also absorbs any wait for a slower rank);
- share: allreduce / (compute + allreduce);
- alone: the same ``Allreduce`` timed by itself (ranks lined up by a barrier first, median of
  ``--reps``), and the bandwidth it reaches in the ring-allreduce convention,
  ``2 (P - 1) / P * bytes / time`` ("bus bandwidth"; for one rank there is nothing to send).

``--overlap``: the ranks compute a step's gradients (``kernels.batch_gradients``) while a
non-blocking ``Iallreduce`` of a buffer of the gradient's size is in flight, against the same
two one after the other.  This is an upper bound on what overlapping layer l's reduction with
layer l-1's backward pass could gain (the whole reduction hidden behind the whole backward).

Then the projection (``--project``, rank 0): the ring-allreduce time ``2 (N - 1) / N * bytes /
bandwidth`` for N machines on 10 / 25 / 100 Gb/s, next to the compute of a step at the
measured rate per row of one rank, and the smallest per-machine batch that keeps the
reduction under 20 % of a step (compute per row x b >= 4 x reduction; linear in the rows, an
optimistic bound for small batches, whose products run slower per row).

On one machine the ranks share its cores: set the threads per rank (``NUMBA_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``) so that ranks x threads is the core count, or they fight over them.
"""

import argparse
import os
import sys
from time import perf_counter

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "asv_benchmarks"))
from benchmarks.common import WORKLOADS, cpu_model, make_data, make_model  # noqa: E402

import fastbp  # noqa: E402
import fastbp.distributed as dist  # noqa: E402
from fastbp import kernels  # noqa: E402


def allreduce_alone(comm, buf, reps):
    times = []
    for _ in range(reps):
        comm.Barrier()
        t0 = perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(perf_counter() - t0)
    return float(np.median(times))


def overlap(comm, model, X, T, order, m, row0, scale, reps):
    """Median seconds of (gradients, then Allreduce) and of (Iallreduce, gradients, Wait)."""
    cfg = model._call(m)[0]
    ws = model._train_workspace(m)
    other = np.zeros_like(model._grads)
    seq, ovl = [], []
    for _ in range(reps):
        comm.Barrier()
        t0 = perf_counter()
        kernels.batch_gradients(model._net, model._state, ws, X, T, order, 0, m, row0, scale, cfg)
        comm.Allreduce(MPI.IN_PLACE, other, op=MPI.SUM)
        seq.append(perf_counter() - t0)
        comm.Barrier()
        t0 = perf_counter()
        request = comm.Iallreduce(MPI.IN_PLACE, other, op=MPI.SUM)
        kernels.batch_gradients(model._net, model._state, ws, X, T, order, 0, m, row0, scale, cfg)
        request.Wait()
        ovl.append(perf_counter() - t0)
    return float(np.median(seq)), float(np.median(ovl))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=["W3", "W4"], choices=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=20, help="global batches per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs")
    parser.add_argument("--reps", type=int, default=30, help="repetitions of the Allreduce / overlap timings")
    parser.add_argument("--overlap", action="store_true", help="also time a reduction overlapped with compute")
    parser.add_argument("--project", action="store_true", help="print the N-machine projection (rank 0)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if rank == 0:
        print(f"{cpu_model()}, {os.cpu_count()} cores; {size} rank(s); MPI: {MPI.Get_library_version().splitlines()[0]}; "
              f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', '(default)')}, "
              f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(default)')}")
        print("| workload | ranks | gradient | compute ms/step | allreduce ms/step | share | step ms | "
              "allreduce alone ms | bus bandwidth GB/s |")
        print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.workloads:
        sizes, _, batch, dtype = WORKLOADS[name]
        n = batch * args.steps
        X, y = make_data(sizes, n, dtype)
        lo, hi = n * rank // size, n * (rank + 1) // size
        model = make_model(fastbp, sizes, dtype)
        dist.fit(model, X[lo:hi], y[lo:hi], comm, epochs=1, batch_size=batch)  # compile, warm up
        times = []
        for _ in range(args.rounds):
            dist.fit(model, X[lo:hi], y[lo:hi], comm, epochs=1, batch_size=batch, step_times=times)
        compute, reduce = np.median(np.array(times), axis=0)
        every = comm.gather((compute, reduce, float(np.median(np.sum(times, axis=1)))), root=0)
        nbytes = model._grads.nbytes
        alone = allreduce_alone(comm, np.zeros_like(model._grads), args.reps)
        alone = max(comm.allgather(alone))
        bus = 2 * (size - 1) / size * nbytes / alone / 1e9 if size > 1 else float("nan")
        if rank == 0:
            compute, reduce = max(c for c, _, _ in every), max(r for _, r, _ in every)
            step = max(s for _, _, s in every)
            print(f"| {name} | {size} | {model._grads.size:,} floats ({nbytes / 1e6:.2f} MB) | {compute * 1e3:.2f} | "
                  f"{reduce * 1e3:.3f} | {reduce / (compute + reduce):.1%} | {step * 1e3:.2f} | {alone * 1e3:.3f} | "
                  f"{bus:.2f} |", flush=True)
            rows.append((name, nbytes, compute * size / batch, bus))  # compute s per row on one rank's cores
        if args.overlap:
            m = batch // size
            T = model._check_y(y[lo:lo + m], m)
            order = np.arange(m)
            seq, ovl = overlap(comm, model, X[lo:lo + m], T, order, m, 0, 1.0 / size, args.reps)
            seq, ovl = max(comm.allgather(seq)), max(comm.allgather(ovl))
            if rank == 0:
                print(f"  overlap {name}: gradients then Allreduce {seq * 1e3:.2f} ms, Iallreduce during the "
                      f"gradients {ovl * 1e3:.2f} ms ({1 - ovl / seq:+.1%} saved)", flush=True)
    if args.project and rank == 0:
        project(rows, {name: WORKLOADS[name][2] for name in args.workloads})


def project(rows, batches):
    """Ring allreduce on N machines: 2 (N - 1) / N * bytes / bandwidth per step."""
    print("\nprojection (ring allreduce 2(N-1)/N * bytes / bandwidth; compute per row measured here):")
    print("| workload | network | N | allreduce ms | compute ms at the workload's batch per machine | share | "
          "batch per machine for < 20 % |")
    print("|---|---|---|---|---|---|---|")
    for name, nbytes, per_row, _ in rows:
        b = batches[name]
        for gbits in (10, 25, 100):
            for N in (2, 8, 64):
                t = 2 * (N - 1) / N * nbytes / (gbits * 1e9 / 8)
                compute = per_row * b
                need = int(np.ceil(4 * t / per_row))
                print(f"| {name} | {gbits} Gb/s | {N} | {t * 1e3:.2f} | {compute * 1e3:.2f} | "
                      f"{t / (t + compute):.0%} | {need:,} |")


if __name__ == "__main__":
    main()
