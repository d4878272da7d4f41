"""The parallel paths of the threading design (README, "Every core busy"): large products
split into ``cfg.blocks`` blocks of single-threaded OpenBLAS calls, elementwise passes split
over Numba's threads.

* Any thread count gives the same bits: with every parallel path forced on (thresholds 0,
  2 and 3 blocks), training under ``numba.set_num_threads(1)`` and under all of Numba's
  threads gives bitwise the same weights, optimizer state, losses, predictions and
  evaluations, for every optimizer, hidden activation, output / loss pair, dropout, batch
  norm, l2 and clipping; so do the default thresholds on a layer large enough to cross them;
  and so does a fresh interpreter started with ``NUMBA_NUM_THREADS=1``.
* The split paths compute the same thing as the serial ones: forced-parallel and serial
  training agree with each other and with ``fastbp.reference`` to rounding (products split
  differently may round differently); splitting only the elementwise passes changes no bit.
* SciPy's OpenBLAS was found, so products really are split on this machine.

(That the split paths allocate nothing: ``tests/test_allocations.py``, "forced-parallel".)
"""

import contextlib
import hashlib
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp import validation as V
from fastbp.kernels import blas
from fastbp.kernels.codes import PAR_ELEMENTS, PAR_PRODUCT, Config

MANY = numba.config.NUMBA_NUM_THREADS
needs_threads = pytest.mark.skipif(MANY < 2, reason="one Numba thread: nothing to compare")

FORCED = dict(par_product=0, par_elements=0)                      # every product and pass split
SERIAL = dict(par_product=1 << 62, par_elements=1 << 62, blocks=1)  # nothing split
ELEMENTWISE = dict(par_product=1 << 62, par_elements=0)            # the elementwise passes only

OPTIMIZERS = {
    "sgd": lambda fb: fb.SGD(0.05),
    "momentum": lambda fb: fb.SGD(0.05, momentum=0.9),
    "nesterov": lambda fb: fb.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda fb: fb.RMSprop(0.005),
    "adam": lambda fb: fb.Adam(0.01),
    "adamw": lambda fb: fb.AdamW(0.01, weight_decay=0.1),
    "adagrad": lambda fb: fb.AdaGrad(0.05),
}
PAIRS = {"softmax-ce": ("softmax", "cross_entropy"), "sigmoid-bce": ("sigmoid", "binary_cross_entropy"),
         "linear-mse": ("linear", "mse")}
FEATURES = {"plain": {}, "dropout": dict(dropout=0.3), "batch_norm": dict(batch_norm=True),
            "l2-clip": dict(l2=1e-2, clip_norm=0.5)}
# Everything at once (the optimizer tests and the subprocess).
ALL_FEATURES = dict(activation=["tanh", "relu"], dropout=0.2, batch_norm=[True, False], l2=1e-3, clip_norm=0.5)


# ------------------------------------------------------------------ helpers
def data(n=150, d=6, k=4, loss="cross_entropy", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if loss == "cross_entropy":
        return X, rng.integers(0, k, n)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (n, k)).astype(float)
    return X, rng.standard_normal((n, k))


def with_cfg(model, **fields):
    """``model`` with some of its ``Config`` fields replaced (thresholds, blocks)."""
    model._cfg = tuple(Config(*model._cfg)._replace(**fields))
    return model


@contextlib.contextmanager
def numba_threads(n):
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def train(cfg, sizes=(6, 16, 8, 4), opt="adam", dtype="float32", n=150, batch_size=16, epochs=3, threads=None,
          keep_thresholds=False, **kw):
    """A seeded fast model with the ``Config`` fields ``cfg``, trained under ``threads`` Numba
    threads (``fit``, then a ``train_step``): ``(model, what it computed)``.  With
    ``keep_thresholds`` every call gets the thresholds, even where nothing can reach them
    (the model would pass None: kernels compiled without parallel loops)."""
    X, y = data(n, sizes[0], sizes[-1], kw.get("loss", "cross_entropy"))
    with numba_threads(threads or numba.get_num_threads()):
        model = with_cfg(fastbp.MLP(list(sizes), optimizer=OPTIMIZERS[opt](fastbp), dtype=dtype, seed=5, **kw), **cfg)
        if keep_thresholds:
            model._call = lambda rows: (model._cfg, contextlib.nullcontext())
        history = model.fit(X, y, epochs=epochs, batch_size=batch_size, shuffle=True)
        step = model.train_step(X[:37], y[:37])
        X_big = np.repeat(X, 8, axis=0)[:1100]  # more rows than one inference chunk (1024)
        outputs = dict(history=list(history), step=step, predict=model.predict(X_big),
                       evaluate=model.evaluate(X, y), grads=model.loss_and_grads(X[:20], y[:20]))
    return model, outputs


def assert_bitwise_equal(a, b, outputs_a=None, outputs_b=None):
    """Weights, every parameter (batch norm's too) and the optimizer state, bit for bit; and
    what the two models computed."""
    for l, ((Wa, ba), (Wb, bb)) in enumerate(zip(a.get_weights(), b.get_weights())):
        assert np.array_equal(Wa, Wb), f"W[{l}] differs"
        assert np.array_equal(ba, bb), f"b[{l}] differs"
    assert np.array_equal(a._params_ext, b._params_ext), "parameters (gamma, beta, running averages) differ"
    assert np.array_equal(a._slots_buf, b._slots_buf), "optimizer state differs"
    if outputs_a is not None:
        assert outputs_a["history"] == outputs_b["history"]
        assert outputs_a["step"] == outputs_b["step"]
        assert np.array_equal(outputs_a["predict"], outputs_b["predict"])
        assert outputs_a["evaluate"] == outputs_b["evaluate"]
        (la, ga), (lb, gb) = outputs_a["grads"], outputs_b["grads"]
        assert la == lb and all(np.array_equal(u, v) for p, q in zip(ga, gb) for u, v in zip(p, q))


def assert_same_bits_for_one_and_many_threads(cfg, **kw):
    one = train(cfg, threads=1, **kw)
    many = train(cfg, threads=MANY, **kw)
    assert_bitwise_equal(one[0], many[0], one[1], many[1])


# ----------------------------------------------- any thread count: the same bits
@needs_threads
@pytest.mark.parametrize("blocks", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_thread_count_does_not_change_the_bits_for_any_optimizer(opt, dtype, blocks):
    assert_same_bits_for_one_and_many_threads(dict(FORCED, blocks=blocks), opt=opt, dtype=dtype, **ALL_FEATURES)


@needs_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("features", list(FEATURES))
@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("activation", list(V.HIDDEN_ACTIVATIONS))
def test_thread_count_does_not_change_the_bits_for_any_layer(activation, pair, features, dtype):
    output, loss = PAIRS[pair]
    assert_same_bits_for_one_and_many_threads(dict(FORCED, blocks=3), dtype=dtype, activation=activation,
                                              output=output, loss=loss, **FEATURES[features])


@needs_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_thread_count_does_not_change_the_bits_with_default_thresholds(dtype):
    """A 300-wide layer at batch 64 crosses the default thresholds: its products are split
    into ``blas.BLOCKS`` blocks, and the 300 x 256 layer's update, gradient check and
    inference passes run over the threads."""
    sizes, batch = (20, 300, 256, 5), 64
    assert batch * sizes[0] * sizes[1] > PAR_PRODUCT and batch * sizes[1] * sizes[2] > PAR_PRODUCT
    assert sizes[1] * sizes[2] >= PAR_ELEMENTS and 1024 * sizes[1] >= PAR_ELEMENTS
    assert_same_bits_for_one_and_many_threads({}, sizes=sizes, n=640, batch_size=batch, epochs=2, dtype=dtype,
                                              l2=1e-4, clip_norm=1.0)


def trained_weights_hash(dtype, blocks):
    """sha256 of every parameter and the optimizer state after forced-parallel training under
    the calling thread's Numba thread count (also run in a fresh interpreter, below)."""
    model, _ = train(dict(FORCED, blocks=blocks), opt="adamw", dtype=dtype, **ALL_FEATURES)
    digest = hashlib.sha256()
    for W, b in model.get_weights():
        digest.update(W.tobytes() + b.tobytes())
    digest.update(model._params_ext.tobytes() + model._slots_buf.tobytes())
    return digest.hexdigest()


@pytest.mark.slow
@needs_threads
@pytest.mark.parametrize("dtype,blocks", [("float32", 3), ("float64", 2)])
def test_a_process_with_one_thread_gets_the_same_bits(dtype, blocks):
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys; sys.path.insert(0, {here!r}); import numba, test_parallel as t; "
            f"print(numba.get_num_threads(), t.trained_weights_hash({dtype!r}, {blocks}))")
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    threads, child = res.stdout.split()[-2:]
    assert threads == "1"
    with numba_threads(MANY):
        assert trained_weights_hash(dtype, blocks) == child


# ------------------------------------------- split and serial paths compute the same
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_split_and_serial_paths_agree_with_the_reference(opt, dtype):
    """A few ``train_step`` calls on the same batches: forced-parallel, serial and the
    reference agree to rounding (losses, parameters, predictions)."""
    X, y = data(n=48)
    kw = dict(dtype=dtype, seed=5, **ALL_FEATURES)
    models = {"parallel": with_cfg(fastbp.MLP([6, 16, 8, 4], optimizer=OPTIMIZERS[opt](fastbp), **kw),
                                   **FORCED, blocks=3),
              "serial": with_cfg(fastbp.MLP([6, 16, 8, 4], optimizer=OPTIMIZERS[opt](fastbp), **kw), **SERIAL),
              "reference": fastbp.reference.MLP([6, 16, 8, 4], optimizer=OPTIMIZERS[opt](fastbp.reference), **kw)}
    for i in range(0, 48, 16):
        losses = {name: model.train_step(X[i:i + 16], y[i:i + 16]) for name, model in models.items()}
        np.testing.assert_allclose(losses["parallel"], losses["serial"], **TOL[dtype])
        np.testing.assert_allclose(losses["parallel"], losses["reference"], **TOL[dtype])
    for name in ("serial", "reference"):
        np.testing.assert_allclose(models["parallel"]._params_ext, models[name]._params_ext, **TOL[dtype],
                                   err_msg=f"parallel vs {name}")
        np.testing.assert_allclose(models["parallel"].predict(X), models[name].predict(X), **TOL[dtype],
                                   err_msg=f"parallel vs {name}")


@needs_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_splitting_only_the_elementwise_passes_changes_no_bit(opt, dtype):
    """Elementwise passes (bias + activation, derivative, update, checks, gather) compute each
    entry alone: split over the threads or not, bitwise the same."""
    serial = train(SERIAL, opt=opt, dtype=dtype, threads=MANY, **ALL_FEATURES)
    split = train(ELEMENTWISE, opt=opt, dtype=dtype, threads=MANY, **ALL_FEATURES)
    assert_bitwise_equal(serial[0], split[0], serial[1], split[1])


# ------------------------------------------------------------------- the BLAS found
def test_scipys_openblas_is_found_and_products_are_blocked():
    assert blas.BLOCKED
    assert blas.LIBRARY is not None and os.path.isfile(blas.LIBRARY)
    assert blas.BLOCKS == max(1, numba.config.NUMBA_DEFAULT_NUM_THREADS)


def test_describe_names_openblas():
    text = blas.describe()
    assert isinstance(text, str) and "OpenBLAS" in text


def test_blas_is_on_one_thread_while_a_split_call_runs_and_restored_after():
    """OpenBLAS's thread count is process-wide (its "per-thread" setting is not, in SciPy's
    build): fastbp sets it to 1 around calls that split products, counting nested and
    concurrent calls, and puts the user's count back when the last one ends."""
    import threading

    get, set_ = blas._threads
    before = get()
    set_(2)
    try:
        seen = []
        with blas.one_blas_thread():
            seen.append(get())
            with blas.one_blas_thread():
                seen.append(get())
            seen.append(get())
        assert seen == [1, 1, 1] and get() == 2

        def churn():
            for _ in range(200):
                with blas.one_blas_thread():
                    assert get() == 1

        threads = [threading.Thread(target=churn) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert get() == 2
        rng = np.random.default_rng(0)
        model = fastbp.MLP([300, 256, 4], seed=0)  # 64 x 300 x 256 multiply-adds: split by default
        model.fit(rng.standard_normal((128, 300)), rng.integers(0, 4, 128), epochs=1, batch_size=64)
        model.predict(rng.standard_normal((64, 300)))
        assert get() == 2
    finally:
        set_(before)


# ------------------------------------- kernels compiled without any parallel loop
def test_the_model_drops_the_thresholds_only_where_no_phase_can_reach_them():
    def thresholds(model, rows):
        cfg = Config(*model._call(rows)[0])
        return cfg.par_product, cfg.par_elements

    small = fastbp.MLP([4, 16, 3])
    assert thresholds(small, 16) == (None, None)
    assert thresholds(small, 1024) == (None, None)  # an inference chunk: 1024 x 64 multiply-adds
    assert thresholds(small, 1 << 15) == (blas.PRODUCT_SPLIT_ABOVE, PAR_ELEMENTS)  # 2^15 x 64 > 2^18
    wide = fastbp.MLP([1, 8192, 1], output="linear", loss="mse")  # 8 rows x 8192 = 2^16 entries: an elementwise pass splits, no product
    assert thresholds(wide, 8) == (blas.PRODUCT_SPLIT_ABOVE, PAR_ELEMENTS)
    assert thresholds(wide, 4) == (None, None)
    many = fastbp.MLP([300, 300, 10])  # 93,310 parameters: the optimizer's pass splits, for any batch
    assert thresholds(many, 1) == (blas.PRODUCT_SPLIT_ABOVE, PAR_ELEMENTS)
    forced = with_cfg(fastbp.MLP([4, 16, 3]), **FORCED)
    assert thresholds(forced, 1) == (0, 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam", "rmsprop", "adagrad"])
def test_kernels_without_thresholds_give_the_same_bits(opt, dtype):
    """The serial-only kernels (thresholds None) and the kernels with thresholds that nothing
    reaches run the same serial code: the same bits."""
    default = dict(par_product=blas.PRODUCT_SPLIT_ABOVE, par_elements=PAR_ELEMENTS)
    whole = train(default, opt=opt, dtype=dtype, **ALL_FEATURES)
    kept = train(default, opt=opt, dtype=dtype, keep_thresholds=True, **ALL_FEATURES)
    assert Config(*whole[0]._call(16)[0]).par_product is None
    assert_bitwise_equal(whole[0], kept[0], whole[1], kept[1])


NO_PARALLEL_LOOP = """
import numpy as np
import fastbp
from fastbp.kernels import dense, network, optim

rng = np.random.default_rng(0)
X, y = rng.standard_normal((150, 4)), rng.integers(0, 3, 150)
model = fastbp.MLP([4, 16, 3], seed=0)
model.fit(X, y, epochs=1, batch_size=16)
model.predict(X[:1])
model.evaluate(X, y)
model.train_step(X[:16], y[:16])
loops = [dense.blocked_product, dense._bias_activation_rows, dense._activation_backward_rows, optim._update_chunks,
         optim._nonfinite_chunks, network._largest_magnitude_chunks, network._gather_blocks]
print(sum(len(f.signatures) for f in loops))
"""


@pytest.mark.slow
def test_a_small_models_first_session_compiles_no_parallel_loop(tmp_path):
    """fit, predict, evaluate and train_step of a small model, compiled from an empty cache,
    compile none of the parallel loops (what that saves: README, "Start-up"), and Numba shows
    no warning while compiling them."""
    out = subprocess.run([sys.executable, "-W", "error::numba.core.errors.NumbaWarning", "-c", NO_PARALLEL_LOOP],
                         env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "0"


# ------------------------------------------------------------------ OpenMP's spin
@pytest.mark.parametrize("env, expected", [
    ({}, "1000"),  # fastbp's setting (README, "Sharing the machine")
    ({"GOMP_SPINCOUNT": "5"}, "5"),  # a user's own is kept
    ({"OMP_WAIT_POLICY": "ACTIVE"}, None),  # as is a user's wait policy: no spin count set
])
def test_openmp_spin_is_set_unless_the_user_chose(env, expected):
    import json
    import subprocess
    import sys
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = "import os, json, fastbp; print(json.dumps(os.environ.get('GOMP_SPINCOUNT')))"
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True, capture_output=True,
                         text=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == expected
