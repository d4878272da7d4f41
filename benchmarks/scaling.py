"""Thread scaling of a W3 / W4 epoch from 1 to 2 threads, next to its GEMMs' own, and an
Amdahl projection to 8, 16 and 64 cores.

    python benchmarks/scaling.py [--workloads W3 W4] [--rounds 3] [--repeat 5] [--json FILE] [--quick]

``--quick``: one round, one timed call of each, one epoch per call: a smoke test, not a
measurement.

Every measurement runs in a fresh interpreter (``--child``) whose environment fixes the
thread counts before NumPy, SciPy and Numba load: ``OPENBLAS_NUM_THREADS``,
``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` all ``t``, for t = 1 and
t = 2 (a thread pool reads its size once, when it starts).  A child times, on one workload,
alternately: fastbp's epoch (``fit(X, y, epochs=E) / E`` after a warm-up, as
``compare.fit_runner``) and the same epoch's GEMMs alone through the same BLAS on the same
shapes (``compare.gemm_limit_runner``); it reports the median of ``--repeat`` of each and
the thread counts Numba (``numba.get_num_threads()``) and the BLAS libraries
(``threadpoolctl``) actually run with.  The parent runs ``--rounds`` rounds; in each, every
workload's 1-thread and 2-thread children run back to back (1 then 2 in even rounds, 2 then
1 in odd ones), so that a slow spell of this shared machine hits both, and takes per
(workload, threads, kind) the median over the rounds.

Printed per workload, with T_e(t) the epoch's time and T_g(t) its GEMMs' alone at t threads:

* the epoch's speed-up S_e = T_e(1) / T_e(2), the GEMMs' S_g = T_g(1) / T_g(2), and
  S_e / S_g against the target >= 0.95 (the epoch scales nearly as well as its own GEMMs);
* the share of the epoch outside its GEMMs, (T_e(t) - T_g(t)) / T_e(t), at t = 1 and 2;
* the serial fraction from the 2-thread speed-up (Amdahl's law, S(2) = 1 / (f + (1 - f) / 2)):
  f = 2 / S_e - 1, clamped to [0, 1] (likewise f_g = 2 / S_g - 1 for the GEMMs alone).

Then two projections to N = 8, 16, 64 cores -- projections from the 2-core measurement, not
measurements:

* Amdahl:        T_N = T_e(1) * (f + (1 - f) / N),  speed-up 1 / (f + (1 - f) / N);
* GEMMs only:    T_N = (T_e(1) - T_g(1)) + T_g(1) * (f_g + (1 - f_g) / N),
  i.e. everything outside the GEMMs stays serial at its 1-thread time and the GEMMs scale as
  their own 2-thread Amdahl fraction says; speed-up T_e(1) / T_N.

Both extrapolate two points: they know nothing of memory bandwidth, of caches shared or not,
or of GEMMs of W3's size (128-row batches, 256-wide layers) running out of parallel work
long before 64 cores.

Run it on an otherwise idle machine, and not under ``nice``: with 2 threads every GEMM waits
for its slowest thread, so a second core shared with another process (or lowered priority
beside one) makes the 2-thread times, and everything derived from them, meaningless (a
``--quick`` smoke run under ``nice -n 19`` beside another benchmark measured W3 17x slower
with 2 threads than with 1).  The GEMM-only column, measured in the same child, shows such a
run: its speed-up falls far below 2 too.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "asv_benchmarks"))
from benchmarks.common import WORKLOADS, cpu_model  # noqa: E402

THREADS = (1, 2)
CORES = (8, 16, 64)
TARGET = 0.95
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def child(workload, repeat):
    """In a fresh process with its thread counts fixed: fastbp's epoch and its GEMMs alone, alternately."""
    import compare  # imports NumPy, Numba and fastbp: only here, after the environment is set

    import fastbp

    sizes, n, batch_size, dtype = WORKLOADS[workload]
    X, y = compare.make_data(sizes, n, dtype)
    runners = {"epoch": compare.fit_runner(fastbp, sizes, X, y, batch_size, dtype),  # warmed up
               "gemm": compare.gemm_limit_runner(sizes, X, y, batch_size, dtype)}  # compiled, one call
    times = {kind: [] for kind in runners}
    for _ in range(repeat):
        for kind, (fn, epochs) in runners.items():
            start = time.perf_counter()
            fn()
            times[kind].append((time.perf_counter() - start) / epochs)

    import numba
    try:
        from threadpoolctl import threadpool_info
        pools = [{"api": p.get("internal_api"), "threads": p.get("num_threads"), "version": p.get("version"),
                  "library": os.path.basename(p.get("filepath", ""))} for p in threadpool_info()]
    except ImportError:
        pools = None
    result = {kind: float(np.median(t)) for kind, t in times.items()}
    result.update(times=times, epochs_per_call=runners["epoch"][1], numba_threads=numba.get_num_threads(),
                  numba_layer=numba.threading_layer(), pools=pools)
    print(json.dumps(result))


def run_child(workload, threads, repeat, quick):
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    cmd = [sys.executable, os.path.abspath(__file__), "--child", workload, "--repeat", str(repeat)]
    out = subprocess.run(cmd + (["--quick"] if quick else []), env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def amdahl_fraction(speedup, threads=2):
    """Serial fraction f with 1 / (f + (1 - f) / threads) = speedup, clamped to [0, 1]."""
    f = (threads / speedup - 1) / (threads - 1)
    return min(1.0, max(0.0, f))


def analyse(r):
    """Speed-ups, serial fractions and projections from the medians ``r[threads][kind]``."""
    e1, e2, g1, g2 = r[1]["epoch"], r[2]["epoch"], r[1]["gemm"], r[2]["gemm"]
    s_e, s_g = e1 / e2, g1 / g2
    f, f_g = amdahl_fraction(s_e), amdahl_fraction(s_g)
    amdahl = {N: e1 * (f + (1 - f) / N) for N in CORES}
    gemms_only = {N: (e1 - g1) + g1 * (f_g + (1 - f_g) / N) for N in CORES}
    return dict(epoch_speedup=s_e, gemm_speedup=s_g, ratio=s_e / s_g, met=s_e / s_g >= TARGET,
                non_gemm_share={1: (e1 - g1) / e1, 2: (e2 - g2) / e2}, serial_fraction=f,
                gemm_serial_fraction=f_g,
                projection_amdahl={N: dict(seconds=t, speedup=e1 / t) for N, t in amdahl.items()},
                projection_gemms_only={N: dict(seconds=t, speedup=e1 / t) for N, t in gemms_only.items()})


def threads_reported(c):
    pools = c["pools"]
    blas = "n/a" if pools is None else ", ".join(
        f"{p['library']} {p['threads']}" for p in pools if p["api"] in ("openblas", "mkl", "blis"))
    other = "" if pools is None else "".join(
        f"; {p['api']} {p['threads']}" for p in pools if p["api"] not in ("openblas", "mkl", "blis"))
    return f"numba {c['numba_threads']} ({c['numba_layer']}); BLAS: {blas or 'none loaded'}{other}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=["W3", "W4"], choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--quick", action="store_true", help="one round, one short call each (a smoke test)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeat = 1, 1

    if args.child:
        if args.quick:
            import compare
            compare.CALL_SECONDS = 0.02  # one epoch per call
        child(args.child, args.repeat)
        return

    runs = {name: {t: [] for t in THREADS} for name in args.workloads}
    for k in range(args.rounds):
        for name in args.workloads:
            for t in (THREADS if k % 2 == 0 else THREADS[::-1]):
                runs[name][t].append(run_child(name, t, args.repeat, args.quick))
                print(f"round {k + 1}/{args.rounds} {name} {t} thread(s) done", file=sys.stderr, flush=True)

    results = {}
    for name, per_t in runs.items():
        medians = {t: {kind: float(np.median([c[kind] for c in cs])) for kind in ("epoch", "gemm")}
                   for t, cs in per_t.items()}
        per_round = [a["epoch"] / b["epoch"] for a, b in zip(per_t[1], per_t[2])]
        results[name] = dict(medians=medians, analysis=analyse(medians), round_epoch_speedups=per_round,
                             threads_reported={t: threads_reported(cs[0]) for t, cs in per_t.items()},
                             runs={t: cs for t, cs in per_t.items()})

    print(f"CPU: {cpu_model()}; os.cpu_count() = {os.cpu_count()}")
    print(f"threads set per child: {', '.join(THREAD_VARIABLES)} = 1 or 2; "
          f"medians over {args.rounds} round(s) of {args.repeat} call(s); times in ms per epoch")
    for name, r in results.items():
        for t in THREADS:
            print(f"  {name}, {t} thread(s) reported: {r['threads_reported'][t]}")
    print()
    print(f"| workload | epoch 1T | epoch 2T | epoch speed-up S_e | GEMM-only 1T | GEMM-only 2T "
          f"| GEMM speed-up S_g | S_e / S_g (target >= {TARGET}) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        m, a = r["medians"], r["analysis"]
        print(f"| {name} | {m[1]['epoch'] * 1e3:.4g} | {m[2]['epoch'] * 1e3:.4g} | {a['epoch_speedup']:.3f} "
              f"| {m[1]['gemm'] * 1e3:.4g} | {m[2]['gemm'] * 1e3:.4g} | {a['gemm_speedup']:.3f} "
              f"| {a['ratio']:.3f} ({'met' if a['met'] else 'not met'}) |")
    if args.rounds > 1:
        for name, r in results.items():
            s = r["round_epoch_speedups"]
            print(f"  {name}: S_e per round (adjacent pair) {', '.join(f'{x:.3f}' for x in s)}")
    print()
    print("| workload | non-GEMM share 1T | non-GEMM share 2T | serial fraction f = 2/S_e - 1 "
          "| GEMMs' own f_g = 2/S_g - 1 |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        a = r["analysis"]
        print(f"| {name} | {100 * a['non_gemm_share'][1]:.1f} % | {100 * a['non_gemm_share'][2]:.1f} % "
              f"| {a['serial_fraction']:.3f} | {a['gemm_serial_fraction']:.3f} |")
    print()
    print("Amdahl projection from the 2-core measurement, not a measurement: ms per epoch (speed-up over 1 core)")
    print(f"| workload | projection | {' | '.join(f'{N} cores' for N in CORES)} |")
    print("|---|---|" + "---|" * len(CORES))
    for name, r in results.items():
        a = r["analysis"]
        for label, key in (("Amdahl, f from the epoch", "projection_amdahl"),
                           ("only the GEMMs scale (f_g); the rest serial", "projection_gemms_only")):
            cells = [f"{p['seconds'] * 1e3:.4g} ({p['speedup']:.2f}x)" for p in a[key].values()]
            print(f"| {name} | {label} | {' | '.join(cells)} |")
    if args.quick:
        print("\n(--quick: one call each, a smoke test; these numbers are not a measurement)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu_model(), rounds=args.rounds, repeat=args.repeat, quick=args.quick,
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()
