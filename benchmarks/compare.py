"""Epoch time of fastbp vs the NumPy reference and, when installed, PyTorch, JAX and
scikit-learn, on the four standard workloads, all in one run; plus the share of the
sgemm-bound limit fastbp reaches.

    python benchmarks/compare.py [--workloads W1 W3] [--repeat 5] [--no-peers] [--no-calls] [--quick]
                                 [--json FILE]

``--quick`` (what CI runs, so that the script cannot rot): one timed call per implementation,
each about 20 ms long, and a few of each small call; its numbers are only a smoke test.

After the epoch table, for the chosen workloads among W1 and W2 (unless ``--no-calls``), a
second table: the small calls, fastbp vs the reference in microseconds per call, with
each target and whether this run met it (measured by ``small_calls.small_call_rows``; see
``small_calls.py``).  ``--json`` writes the epoch times per workload and, under
``"small_calls"``, these rows.

Every workload: ReLU hidden layers, softmax + cross-entropy, Adam(lr=1e-3), He init,
shuffled mini-batches (the last one smaller when the batch size does not divide n).
Times are medians over ``--repeat`` measurements after a warm-up epoch; the implementations
are measured in alternating blocks (see ``interleaved``) so that a slow spell of the shared
machine hits them all.  This machine is a VM whose second core is at times contended: then
every multithreaded GEMM waits for it, and W3 runs up to 2x slower for every implementation
that uses BLAS threads (single-threaded OpenBLAS was faster in such a spell).  The GEMM-only
limit is measured in the same run, so such a run shows itself: its limit rises from ~72 ms
to ~100 ms on W3.

* fastbp / reference: ``fit(X, y, epochs=E) / E``, E chosen so one measurement takes ~0.3 s.
  "reference (tuned malloc)" runs the reference in a child process (right after the others) with
  ``MALLOC_MMAP_THRESHOLD_`` raised, so glibc keeps its large temporaries instead of
  returning them to the OS every step (the plain reference is page-fault bound on W3/W4).
* PyTorch: eager ``nn.Sequential`` + ``torch.optim.Adam`` (best of ``foreach`` and ``fused``),
  ``torch.set_num_threads`` = this machine's cores.  Each peer runs in a process of its own.
* JAX: one ``jax.jit``-compiled epoch: ``lax.scan`` over the full batches, then the remainder.
* scikit-learn: ``MLPClassifier(solver="adam").partial_fit`` (one epoch per call).
* sgemm-bound limit: the same epoch's GEMMs alone (forward ``2nP``, backward ``4nP`` minus the
  first layer's input gradient), computed as fastbp computes them (``dense.matmul``: whole
  through BLAS, or split into blocks over Numba's threads, by the same size rule and with
  OpenBLAS on one thread while they run); the share is ``limit time / fastbp time``.
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
from benchmarks.common import WORKLOADS, make_data, make_model  # noqa: E402
from small_calls import CALL_WORKLOADS, print_rows, small_call_rows  # noqa: E402

import fastbp  # noqa: E402
import fastbp.reference  # noqa: E402


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


CALL_SECONDS = 0.3  # the length of one timed call (``--quick``: 0.02)
ROUNDS = 2  # blocks per implementation (``--quick``: 1)


def interleaved(runners, repeat, rounds=None, pause=0.0):
    """Median seconds per epoch of each runner ``(fn, epochs per call)``.

    The runners are measured in blocks (one untimed call, then ``repeat / rounds`` timed
    ones), block after block, ``rounds`` times over, so that a slow spell of this shared
    machine hits all of them; ``pause`` seconds of idleness before each block, if wanted.
    """
    rounds = ROUNDS if rounds is None else rounds
    times = {name: [] for name in runners}
    per_round = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        for name, (fn, epochs) in runners.items():
            time.sleep(pause)
            fn()
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) / epochs)
    return {name: float(np.median(t)) for name, t in times.items()}


def fit_runner(fb, sizes, X, y, batch_size, dtype):
    """``fb.MLP.fit`` over E epochs per call (E making one call ~``CALL_SECONDS``), after a warm-up."""
    model = make_model(fb, sizes, dtype)
    start = time.perf_counter()
    model.fit(X, y, epochs=1, batch_size=batch_size)  # warm-up (compiles fastbp)
    one = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(X, y, epochs=1, batch_size=batch_size)
    one = min(one, time.perf_counter() - start)
    epochs = max(1, int(CALL_SECONDS / max(one, 1e-6)))
    return (lambda: model.fit(X, y, epochs=epochs, batch_size=batch_size)), epochs


def time_fit(fb, sizes, X, y, batch_size, dtype, repeat):
    fn, epochs = fit_runner(fb, sizes, X, y, batch_size, dtype)
    return median_time(fn, repeat) / epochs


def in_child(kind, workload, repeat, env=None):
    """Seconds per epoch measured by a fresh interpreter (``--child KIND``), or None."""
    quick = ["--quick"] if CALL_SECONDS < 0.3 else []
    out = subprocess.run([sys.executable, __file__, "--child", kind, workload, "--repeat", str(repeat)] + quick,
                         env=dict(os.environ, **(env or {})), check=True, capture_output=True, text=True).stdout
    value = out.strip().splitlines()[-1]
    return None if value == "None" else float(value)


def time_reference_tuned(workload, repeat):
    return in_child("reference", workload, repeat,
                    env=dict(MALLOC_MMAP_THRESHOLD_=str(1 << 30), MALLOC_TRIM_THRESHOLD_=str(1 << 31)))


def torch_runner(sizes, X, y, batch_size, dtype, repeat):
    """PyTorch eager, the faster of foreach / fused Adam (chosen on ``repeat`` epochs each)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    n = len(X)
    best = None
    for flavour in ("foreach", "fused"):
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers[:-1]).to(tdtype)
        try:
            opt = torch.optim.Adam(net.parameters(), lr=1e-3, **{flavour: True})
        except (RuntimeError, TypeError, ValueError):
            continue
        loss_fn = torch.nn.CrossEntropyLoss()

        def epoch(net=net, opt=opt):  # bind this flavour's network and optimizer
            perm = torch.randperm(n)
            for s in range(0, n, batch_size):
                idx = perm[s:s + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

        try:
            epoch()
        except RuntimeError:  # e.g. fused Adam unsupported for this dtype/device
            continue
        t = median_time(epoch, max(1, repeat // 2))
        if best is None or t < best[0]:
            best = (t, epoch)
    return None if best is None else (best[1], 1)


def jax_runner(sizes, X, y, batch_size, dtype):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    n = len(X)
    nb, rem = divmod(n, batch_size)
    key = jax.random.PRNGKey(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (a, b), dtype=dtype) * np.sqrt(2.0 / a), jnp.zeros(b, dtype=dtype)))
    b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8

    def loss_fn(p, x, t):
        for W, b in p[:-1]:
            x = jax.nn.relu(x @ W + b)
        W, b = p[-1]
        logp = jax.nn.log_softmax(x @ W + b)
        return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

    def step(carry, batch):
        p, m, v, t = carry
        loss, g = jax.value_and_grad(loss_fn)(p, *batch)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree_util.tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        p = jax.tree_util.tree_map(lambda p_, m_, v_: p_ - lr / bc1 * m_ / (jnp.sqrt(v_) / jnp.sqrt(bc2) + eps),
                                   p, m, v)
        return (p, m, v, t), loss

    @jax.jit
    def epoch(carry, X, Y, perm):
        idx = perm[:nb * batch_size].reshape(nb, batch_size)
        carry, losses = jax.lax.scan(step, carry, (X[idx], Y[idx]))
        if rem:
            r = perm[nb * batch_size:]
            carry, _ = step(carry, (X[r], Y[r]))
        return carry, losses

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = [(params, zeros, zeros, jnp.asarray(0.0, dtype=dtype))]
    Xj, Yj = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    rng = np.random.default_rng(0)

    def run():
        carry, losses = epoch(state[0], Xj, Yj, jnp.asarray(rng.permutation(n)))
        jax.block_until_ready(losses)
        state[0] = carry

    run()
    return run, 1


def sklearn_runner(sizes, X, y, batch_size, dtype):
    try:
        import warnings

        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam",
                        learning_rate_init=1e-3, batch_size=batch_size, shuffle=True, random_state=0)
    classes = np.arange(sizes[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(X, y, classes=classes)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y)

    return run, 1


def gemm_limit_runner(sizes, X, y, batch_size, dtype):
    """Seconds per epoch of the epoch's GEMMs alone, computed as fastbp computes them (its
    ``dense.matmul``: whole through BLAS, or split over the threads, by the same rule)."""
    from numba import njit

    from fastbp.kernels.codes import Config, Network, Workspace
    from fastbp.kernels.dense import matmul
    from fastbp.kernels.network import layer_rows, layer_weights

    @njit
    def gemm_epoch(net, ws, X, bs, par, blocks):
        n = X.shape[0]
        L = net.layers.shape[0]
        for start in range(0, n, bs):
            m = min(bs, n - start)
            A_prev = X[start:start + m]
            for l in range(L):
                W, _ = layer_weights(net.params, net.layers[l])
                A = layer_rows(ws.acts, ws, net.layers[l], m)
                matmul(A, A_prev, False, W, False, par, blocks)
                A_prev = A
            for l in range(L - 1, -1, -1):
                lay = net.layers[l]
                W, _ = layer_weights(net.params, lay)
                gW, _ = layer_weights(net.grads, lay)
                D = layer_rows(ws.deltas, ws, lay, m)
                Ap = X[start:start + m] if l == 0 else layer_rows(ws.acts, ws, net.layers[l - 1], m)
                matmul(gW, Ap, True, D, False, par, blocks)
                if l > 0:
                    matmul(layer_rows(ws.deltas, ws, net.layers[l - 1], m), D, False, W, True, par, blocks)

    model = make_model(fastbp, sizes, dtype)
    model.fit(X[:batch_size], y[:batch_size], epochs=1, batch_size=batch_size)
    ws = Workspace(*model._train_workspace(batch_size))
    ws.deltas[:] = 0.01
    cfg = Config(*model._call(batch_size)[0])  # as fit calls it (no thresholds where nothing splits)
    args = (Network(*model._net), ws, X, batch_size, cfg.par_product, cfg.blocks)

    def run():
        with model._call(batch_size)[1]:  # as fit does: OpenBLAS on one thread if products split
            gemm_epoch(*args)

    run()
    return run, 1


def gemm_flops(sizes, n):
    P = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 6 * n * P - 2 * n * sizes[0] * sizes[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="only fastbp and the reference")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--no-calls", action="store_true", help="skip the small-calls table (W1, W2)")
    parser.add_argument("--quick", action="store_true", help="one short timed call each (a smoke test)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        global CALL_SECONDS, ROUNDS
        CALL_SECONDS, ROUNDS, args.repeat = 0.02, 1, 1

    if args.child:  # one implementation alone in this fresh process
        kind, workload = args.child
        sizes, n, batch_size, dtype = WORKLOADS[workload]
        X, y = make_data(sizes, n, dtype)
        if kind == "reference":
            print(time_fit(fastbp.reference, sizes, X, y, batch_size, dtype, args.repeat))
            return
        make = {"PyTorch eager": lambda: torch_runner(sizes, X, y, batch_size, dtype, args.repeat),
                "JAX epoch jit": lambda: jax_runner(sizes, X, y, batch_size, dtype),
                "scikit-learn": lambda: sklearn_runner(sizes, X, y, batch_size, dtype)}[kind]
        runner = make()
        print(None if runner is None else interleaved({kind: runner}, args.repeat)[kind])
        return

    columns = ["fastbp", "reference", "reference (tuned malloc)"]
    if not args.no_peers:
        columns += ["PyTorch eager", "JAX epoch jit", "scikit-learn"]
    results = {}
    for name in args.workloads:
        sizes, n, batch_size, dtype = WORKLOADS[name]
        X, y = make_data(sizes, n, dtype)
        runners = {
            "fastbp": fit_runner(fastbp, sizes, X, y, batch_size, dtype),
            "reference": fit_runner(fastbp.reference, sizes, X, y, batch_size, dtype),
            "gemm limit": gemm_limit_runner(sizes, X, y, batch_size, dtype),
        }
        r = interleaved(runners, args.repeat)
        # Each of these in a process of its own, measured right after: the malloc setting is
        # fixed at start-up, and the peers' thread pools must not compete with anything else.
        r["reference (tuned malloc)"] = time_reference_tuned(name, args.repeat)
        if not args.no_peers:
            for peer in ("PyTorch eager", "JAX epoch jit", "scikit-learn"):
                r[peer] = in_child(peer, name, args.repeat)
        results[name] = r
        print(f"{name} done", file=sys.stderr, flush=True)

    print(f"machine: {os.cpu_count()} cores; times in ms per epoch (median of {args.repeat}); "
          "speed-up = peer time / fastbp time, same run")
    header = f"| workload | {' | '.join(columns)} | GEMM-only limit | share of limit |"
    print(header)
    print("|" + "---|" * (len(columns) + 3))
    for name, r in results.items():
        fast = r["fastbp"]
        cells = [f"{fast * 1e3:.3g}"]
        for col in columns[1:]:
            t = r.get(col)
            cells.append("n/a" if t is None else f"{t * 1e3:.3g} ({t / fast:.1f}x)")
        sizes, n, _, _ = WORKLOADS[name]
        limit = r["gemm limit"]
        gflops = gemm_flops(sizes, n) / limit / 1e9
        print(f"| {name} | {' | '.join(cells)} | {limit * 1e3:.3g} ({gflops:.0f} GFLOP/s) | {100 * limit / fast:.0f} % |")
    call_workloads = [] if args.no_calls else [w for w in args.workloads if w in CALL_WORKLOADS]
    if call_workloads:
        note = " (quick: a smoke test, not a measurement)" if args.quick else ""
        print(f"\nSmall calls (µs per call, median){note}")
        results["small_calls"] = small_call_rows(call_workloads, quick=args.quick)
        print_rows(results["small_calls"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
