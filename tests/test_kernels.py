"""Every kernel against its NumPy reference (fastbp.reference), on awkward shapes.

float64 must agree to ~1e-10 relative, float32 to ~1e-5.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from fastbp import validation as V
from fastbp.kernels import codes
from fastbp import kernels as K
from fastbp import reference as R
from fastbp import optimizers as O
from fastbp.kernels.common import _X86, borrowed, matrix_view

SHAPES = [(1, 1), (1, 7), (5, 1), (13, 17), (64, 33)]
DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


def product_tol(dtype, expected):
    """A product's entries may cancel (sums of terms much larger than the result), and BLAS
    sums in an order that depends on how the product is split: relative to the largest entry."""
    tol = TOL[dtype]
    return dict(rtol=tol["rtol"], atol=max(tol["atol"], tol["rtol"] * float(np.abs(expected).max(initial=0))))
HIDDEN = list(V.HIDDEN_ACTIVATIONS)


def rand(rng, shape, dtype, scale=2.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", HIDDEN + ["softmax"])
def test_bias_activation(name, shape, dtype):
    rng = np.random.default_rng(0)
    Z, b = rand(rng, shape, dtype), rand(rng, shape[1], dtype)
    expected = R.activation(name, Z + b, 0.05)
    code = {**V.HIDDEN_ACTIVATIONS, **V.OUTPUT_ACTIVATIONS}[name]
    out = Z.copy()
    K.bias_activation(out, b, code, 0.05)
    np.testing.assert_allclose(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", HIDDEN)
def test_activation_backward(name, shape, dtype):
    rng = np.random.default_rng(1)
    Z, D = rand(rng, shape, dtype), rand(rng, shape, dtype)
    A = R.activation(name, Z, 0.05)
    expected = D * R.activation_derivative(name, Z, 0.05)
    out = D.copy()
    K.activation_backward(out, A, V.HIDDEN_ACTIVATIONS[name], 0.05)
    np.testing.assert_allclose(out, expected, **TOL[dtype])


def test_sigmoid_does_not_overflow():
    Z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    out = Z.copy()
    K.bias_activation(out, np.zeros(5), codes.SIGMOID, 0.0)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, R.sigmoid(Z), rtol=1e-12)


PAIRS = [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
         ("linear", "mse"), ("sigmoid", "mse"), ("softmax", "mse")]


def targets(rng, loss, shape, dtype):
    n, k = shape
    if loss == "cross_entropy":
        T = np.zeros(shape, dtype)
        T[np.arange(n), rng.integers(0, k, n)] = 1
        return T
    return rng.random(shape).astype(dtype)


OUTPUT_CASES = [(out, loss, shape) for out, loss in PAIRS
                for shape in [(1, 2), (7, 2), (13, 17), (64, 10), (5, 1)]
                if not (loss == "cross_entropy" and shape[1] == 1)]  # softmax needs 2 classes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_name,loss,shape", OUTPUT_CASES)
def test_output_loss(out_name, loss, shape, dtype):
    rng = np.random.default_rng(2)
    Zraw, b = rand(rng, shape, dtype, 3.0), rand(rng, shape[1], dtype)
    T = targets(rng, loss, shape, dtype)
    Z = Zraw + b
    P = R.activation(out_name, Z)
    ref_loss, ref_delta = R.loss_and_delta(loss, out_name, Z, P, T)
    Zk, D = Zraw.copy(), np.empty_like(Zraw)
    value = K.output_loss(Zk, D, b, T, V.OUTPUT_ACTIVATIONS[out_name], V.LOSSES[loss])
    np.testing.assert_allclose(value, ref_loss, **TOL[dtype])
    np.testing.assert_allclose(Zk, P, **TOL[dtype])
    np.testing.assert_allclose(D, ref_delta, **TOL[dtype])


def test_cross_entropy_is_stable_for_huge_logits():
    Z = np.array([[1000.0, -1000.0, 0.0], [-800.0, 800.0, 1.0]])
    T = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    D = np.empty_like(Z)
    value = K.output_loss(Z.copy(), D, np.zeros(3), T, codes.SOFTMAX, codes.CROSS_ENTROPY)
    assert np.isfinite(value) and np.all(np.isfinite(D))
    np.testing.assert_allclose(value, (2000.0 + 0.0) / 2, rtol=1e-12)


# (par_product, par_elements, blocks): serial, and every product and pass split (3 blocks:
# more than this machine's threads, so that a thread runs several).
SPLITS = [(1 << 62, 1 << 62, 1), (0, 0, 3)]


@pytest.mark.parametrize("split", SPLITS, ids=["serial", "split"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n_in,n_out", [(1, 1, 1), (1, 5, 3), (7, 1, 4), (13, 17, 1), (64, 33, 20)])
@pytest.mark.parametrize("name", HIDDEN)
def test_dense_forward_backward(name, m, n_in, n_out, dtype, split):
    rng = np.random.default_rng(3)
    A_prev, W, b = rand(rng, (m, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    code = V.HIDDEN_ACTIVATIONS[name]
    A = np.empty((m, n_out), dtype)
    K.dense_forward(A, A_prev, W, b, code, 0.01, *split)
    expected = R.activation(name, A_prev @ W + b)
    np.testing.assert_allclose(A, expected, **product_tol(dtype, expected))

    # Backward through this layer into a previous layer whose activation is `name`.
    Z_prev = rand(rng, (m, n_in), dtype)
    A_prev = R.activation(name, Z_prev)
    D = rand(rng, (m, n_out), dtype)
    gW, gb, D_prev = np.empty_like(W), np.empty_like(b), np.empty_like(A_prev)
    K.dense_backward(D_prev, gW, gb, D, A_prev, W, code, 0.01, True, *split)
    K.add_l2_gradient(gW, W, 0.1)  # the L2 penalty's share, added by the network
    expected = A_prev.T @ D + dtype(0.1) * W
    np.testing.assert_allclose(gW, expected, **product_tol(dtype, expected))
    np.testing.assert_allclose(gb, D.sum(axis=0), **TOL[dtype])
    expected = (D @ W.T) * R.activation_derivative(name, Z_prev)
    np.testing.assert_allclose(D_prev, expected, **product_tol(dtype, expected))


@pytest.mark.parametrize("split", SPLITS, ids=["serial", "split"])
def test_dense_backward_skips_input_gradient(split):
    rng = np.random.default_rng(4)
    A_prev, W, D = rng.random((3, 4)), rng.random((4, 2)), rng.random((3, 2))
    sentinel = np.full((3, 4), 7.0)
    K.dense_backward(sentinel, np.empty((4, 2)), np.empty(2), D, A_prev, W, codes.RELU, 0.0, False, *split)
    assert np.all(sentinel == 7.0)


OPTIMIZERS = [
    O.SGD(0.1), O.SGD(0.1, momentum=0.9), O.SGD(0.1, momentum=0.9, nesterov=True),
    O.RMSprop(0.01), O.Adam(0.01), O.AdamW(0.01, weight_decay=0.1), O.AdaGrad(0.1),
]


@pytest.mark.parametrize("par_elements", [1 << 62, 0], ids=["serial", "split"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_optimizer_update(opt, dtype, par_elements):
    rng = np.random.default_rng(5)
    n = 1001
    p_ref = rand(rng, n, dtype)
    slots_ref = np.zeros((opt.n_slots, n), dtype)
    p, slots = p_ref.copy(), slots_ref.copy()
    for t in range(1, 6):
        g = rand(rng, n, dtype)
        p_ref, new_slots = R.optimizer_step(opt, p_ref, g.copy(), slots_ref, t)
        slots_ref = np.array(new_slots, dtype).reshape(opt.n_slots, n)
        K.optimizer_step(p, slots, g.copy(), t, opt.lr, opt.hyper, par_elements)
        np.testing.assert_allclose(p, p_ref, **TOL[dtype])
        np.testing.assert_allclose(slots, slots_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e6])
def test_clip_global_norm(max_norm, dtype):
    rng = np.random.default_rng(6)
    g = rand(rng, 777, dtype)
    expected = g.copy()
    R.clip_by_global_norm(expected, max_norm)
    got = g.copy()
    norm = K.clip_global_norm(got, max_norm)
    np.testing.assert_allclose(norm, np.linalg.norm(g.astype(np.float64)), rtol=1e-10)
    np.testing.assert_allclose(got, expected, **TOL[dtype])
    if max_norm < norm:
        np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64)), max_norm, rtol=1e-4)
    else:
        assert np.array_equal(got, g)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), scale=st.sampled_from([1e-3, 1.0, 30.0]),
       name=st.sampled_from(HIDDEN + ["softmax"]))
def test_bias_activation_property(m, n, scale, name):
    rng = np.random.default_rng(m * 100 + n)
    Z, b = rng.standard_normal((m, n)) * scale, rng.standard_normal(n) * scale
    out = Z.copy()
    K.bias_activation(out, b, {**V.HIDDEN_ACTIVATIONS, **V.OUTPUT_ACTIVATIONS}[name], 0.01)
    np.testing.assert_allclose(out, R.activation(name, Z + b), rtol=1e-10, atol=1e-300)


@njit
def _views(flat, start, m, n):
    v = matrix_view(borrowed(flat), start, m, n)
    v[m - 1, n - 1] += 1.0  # writes through to flat
    return v.sum(), v.shape[0], v.shape[1], v.strides[0], v.strides[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("start,m,n", [(0, 1, 1), (3, 4, 5), (7, 1, 9), (0, 6, 1)])
def test_matrix_view_of_borrowed_buffer(start, m, n, dtype):
    """The view helpers the network kernels use: same data, shape and strides as
    ``flat[start:start + m*n].reshape(m, n)``, writable through to the buffer."""
    flat = np.arange(40, dtype=dtype)
    expected = flat[start:start + m * n].reshape(m, n).copy()
    expected[-1, -1] += 1
    total, rows, cols, s0, s1 = _views(flat, start, m, n)
    assert (rows, cols) == (m, n)
    assert (s0, s1) == expected.strides
    assert total == expected.sum()
    np.testing.assert_array_equal(flat[start:start + m * n].reshape(m, n), expected)


def _float32_product(a, b):
    return np.float32(a) * np.float32(b)  # on this thread, under its floating-point control word


def test_kernels_restore_the_callers_floating_point_mode():
    """The kernels flush subnormals to zero for their own duration only."""
    import fastbp

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)).astype(np.float32), rng.integers(0, 2, 12)
    model = fastbp.MLP([3, 4, 2], dtype="float32", seed=0)
    model.fit(X, y, epochs=2, batch_size=4)
    model.train_step(X, y)
    model.loss_and_grads(X, y)
    model.predict(X)
    model.evaluate(X, y)
    assert _float32_product(1e-30, 1e-10) != 0  # a subnormal, not flushed


EVERY_THREADS_MODE = """
import numba, numpy as np, fastbp
from numba import njit, prange
from fastbp.kernels import codes

@njit(parallel=True)
def products(a, b, out):
    for i in prange(out.size):  # static chunks: every one of Numba's threads takes some
        out[i] = a[i] * b[i]

n = 64 * numba.get_num_threads()
a, b = np.full(n, 1e-30, np.float32), np.full(n, 1e-10, np.float32)
out = np.zeros(n, dtype=np.float32)
products(a, b, out)  # Numba's threads start here, outside any kernel
assert np.all(out != 0)
rng = np.random.default_rng(0)
X, y = rng.standard_normal((12, 3)).astype(np.float32), rng.integers(0, 2, 12)
# RMSprop with an eps near the dtype's smallest normal: the cheap bound fails, the exact update
# check runs (split too), and the update is finite: applied.
for opt in (fastbp.SGD(0.1), fastbp.Adam(0.01), fastbp.RMSprop(100.0, eps=1.2e-38)):
    model = fastbp.MLP([3, 4, 2], dtype="float32", seed=0, optimizer=opt)
    model._cfg = tuple(codes.Config(*model._cfg)._replace(par_product=0, par_elements=0))  # every pass split
    model.fit(X, y, epochs=2, batch_size=4)
    model.train_step(X, y)
    assert model._step == 7, model._step  # every step applied
out[:] = 0
products(a, b, out)
print(int(np.count_nonzero(out == 0)), np.float32(1e-30) * b[0] != 0)
"""


@pytest.mark.skipif(not _X86, reason="subnormals are flushed on x86 only")
def test_parallel_kernels_restore_every_threads_floating_point_mode():
    """The parallel chunks (optimizer update, update check, products, elementwise passes) flush
    subnormals on each of Numba's threads for the chunk's duration only: afterwards Numba's
    threads run other parallel code under their own mode (a fresh interpreter: its threads
    started outside any kernel)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", EVERY_THREADS_MODE], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True"]  # no product flushed, on any thread


@pytest.mark.skipif(not _X86, reason="subnormals are flushed on x86 only")
def test_subnormal_outputs_are_flushed_to_zero():
    """A result below the smallest normal number is 0 in fastbp (the reference keeps the
    subnormal): the only place the two differ by design, by less than 1.2e-38 (float32)."""
    import fastbp
    import fastbp.reference

    X = np.full((2, 1), 1e-20, dtype=np.float32)
    weights = [(np.full((1, 1), 1e-20, dtype=np.float32), np.zeros(1, dtype=np.float32))]
    out = {}
    for fb in (fastbp, fastbp.reference):
        model = fb.MLP([1, 1], output="linear", loss="mse", dtype="float32")
        model.set_weights(weights)
        out[fb.__name__] = model.predict(X)
    assert np.all(out["fastbp"] == 0)
    assert np.all((out["fastbp.reference"] > 0) & (out["fastbp.reference"] < np.finfo(np.float32).tiny))


# ------------------------------------------------- the check that an update stays finite
def extreme_values(dtype):
    """Values that make updates overflow or divide 0 by 0: zeros, huge, tiny, mixed signs."""
    big = np.finfo(dtype).max
    return st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-3, 3.0, big / 4, -big / 2, big, float(np.finfo(dtype).tiny)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_update_nonfinite_counts_what_the_update_would_write(opt, dtype, data):
    """``update_nonfinite`` is the update's own arithmetic: it is True exactly when the update
    makes an entry of the slice NaN or inf (parameter or optimizer state), and writes nothing."""
    n = data.draw(st.integers(1, 12))
    values = extreme_values(dtype)
    draw = lambda: np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype)  # noqa: E731
    p, g = draw(), draw()
    slots = np.abs(np.array([draw() for _ in range(opt.n_slots)], dtype).reshape(opt.n_slots, n))  # v, s >= 0
    t = data.draw(st.integers(1, 3))
    lr = data.draw(st.sampled_from([opt.lr, 1e30, float(np.finfo(dtype).max)]))
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    before = (p.copy(), slots.copy(), g.copy())
    bad = K.update_nonfinite(p, slots, g, lo, hi, t, lr, opt.hyper)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, (p, slots, g)))  # nothing written
    with np.errstate(all="ignore"):
        K.optimizer_step(p, slots, g, t, lr, opt.hyper, 1 << 62)
    rows = [p] + [slots[i] for i in range(opt.n_slots)]
    assert bad == (not all(np.isfinite(r[lo:hi]).all() for r in rows))


@pytest.mark.parametrize("dtype", DTYPES)
def test_running_nonfinite_counts_what_the_running_update_would_write(dtype):
    big = float(np.finfo(dtype).max)
    run_mean = np.array([0.0, big * 0.99, 1.0, -big * 0.99], dtype)
    run_var = np.array([1.0, 1.0, big * 0.99, 2.0], dtype)
    stats = np.array([0.0, big * 0.99, 1.0, -big * 0.99,  # means
                      1.0, 1.0, big * 0.99, 2.0,  # variances
                      1.0, 1.0, 1.0, 1.0], dtype)
    for m in (1, 2, 64):
        bad = K.running_nonfinite(run_mean, run_var, stats, m)
        mean, var = run_mean.copy(), run_var.copy()
        with np.errstate(all="ignore"):
            K.batchnorm_update_running(mean, var, stats, m)
        assert bad == (not (np.isfinite(mean).all() and np.isfinite(var).all()))
        assert bad == (m == 2)  # m / (m - 1) = 2 inflates the third variance past the largest number
    for j in range(4):  # and each entry alone
        one = [run_mean[j:j + 1], run_var[j:j + 1], stats[j::4].copy()]
        assert K.running_nonfinite(*one, 2) == (j == 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_relu_propagates_nan_as_numpy_does(name, dtype):
    """A NaN pre-activation stays NaN (``np.maximum(z, 0)``), so a non-finite network cannot
    hide behind finite-looking outputs; -0.0 and negative numbers still give 0 (relu)."""
    Z = np.array([[np.nan, -1.0, -0.0, 0.0, 2.0, np.inf, -np.inf]], dtype)
    b = np.zeros(Z.shape[1], dtype)
    out = Z.copy()
    K.bias_activation(out, b, V.HIDDEN_ACTIVATIONS[name], 0.05)
    with np.errstate(invalid="ignore"):
        expected = R.activation(name, Z, 0.05)
    np.testing.assert_array_equal(out, expected)
    assert np.isnan(out[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_update_bound_is_sound(opt, dtype, data):
    """The cheap bound that spares ``update_nonfinite`` the rule's square roots and divisions
    never calls an update finite that is not (near the largest number, at tiny eps, with
    negative state read from a file), and it does call ordinary updates finite."""
    n = data.draw(st.integers(1, 12))
    values = extreme_values(dtype)
    draw = lambda: np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype)  # noqa: E731
    p, g = draw(), draw()
    slots = np.array([draw() for _ in range(opt.n_slots)], dtype).reshape(opt.n_slots, n)  # any sign
    lr = data.draw(st.sampled_from([opt.lr, 1e30, float(np.finfo(dtype).max)]))
    if K.update_bounded(p, slots, g, 0, n, 2, lr, opt.hyper):
        with np.errstate(all="ignore"):
            K.optimizer_step(p, slots, g, 2, lr, opt.hyper, 1 << 62)
        assert np.isfinite(p).all() and np.isfinite(slots).all()


@pytest.mark.parametrize("opt", OPTIMIZERS[3:], ids=repr)  # the rules that divide
def test_update_bound_passes_ordinary_steps(opt):
    rng = np.random.default_rng(7)
    p, g = rand(rng, 1000, np.float32), rand(rng, 1000, np.float32, 1e3)
    slots = np.abs(rand(rng, (opt.n_slots, 1000), np.float32))
    assert K.update_bounded(p, slots, g, 0, 1000, 1, opt.lr, opt.hyper)


# ------------------------------------------------------- accuracy counted in the kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_correct_outputs_counts_as_numpy_does(loss, dtype):
    """The inference kernel's accuracy count against ``BaseMLP._accuracy`` (NumPy's argmax
    and comparisons), with ties, NaN and inf outputs, and probability targets."""
    from fastbp.kernels.network import correct_outputs
    rng = np.random.default_rng(7)
    P = rng.integers(0, 3, (200, 5)).astype(dtype) / 2  # many ties, values on 0.5 itself
    P[rng.random(P.shape) < 0.05] = np.nan
    P[rng.random(P.shape) < 0.05] = np.inf
    T = rng.dirichlet(np.ones(5), 200).astype(dtype)
    T[::3] = np.eye(5, dtype=dtype)[rng.integers(0, 5, T[::3].shape[0])]
    if loss == "binary_cross_entropy":
        T = (rng.random(P.shape) < 0.5).astype(dtype)
    count = correct_outputs(P, T, V.LOSSES[loss])
    if loss == "cross_entropy":
        assert count == np.count_nonzero(P.argmax(axis=1) == T.argmax(axis=1))
    elif loss == "binary_cross_entropy":
        assert count == np.count_nonzero((P > 0.5) == (T > 0.5))
    else:
        assert count == 0
    model = R.MLP([5, 5], output={"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                                  "mse": "linear"}[loss], loss=loss)
    assert model._accuracy(P, T) == model._accuracy_from_count(count, T)


# ------------------------------------------------- the update check's carried bounds
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-3, 1.0, 1e3, 1e15, 1e30]),
       dtype=st.sampled_from(["float32", "float64"]), steps=st.integers(1, 4))
@pytest.mark.parametrize("opt", [O.SGD(0.1), O.SGD(0.1, momentum=0.9), O.SGD(0.1, momentum=0.9, nesterov=True),
                                 O.RMSprop(1e-2), O.Adam(1e-3), O.AdamW(1e-3, weight_decay=0.1), O.AdaGrad(0.1)],
                         ids=["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad"])
def test_carried_bounds_bound_the_update(opt, seed, scale, dtype, steps):
    """``optim.state_bounds`` / ``bounds_after``: over several steps, every parameter and state
    entry after the real update (in the dtype) stays within the carried bounds, and where
    they are called safe the update is finite; with huge gradients they are not called safe
    when the update would overflow (the exact check's verdict)."""
    from fastbp.kernels import optim as KO
    rng = np.random.default_rng(seed)
    n = 257
    p = (rng.standard_normal(n) * scale).astype(dtype)
    slots = np.zeros((opt.n_slots, n), dtype=dtype)
    bounds = KO.state_bounds(p, slots, n, opt.hyper)
    assert bounds[3] == KO.MEASURED
    limit = np.finfo(dtype).max / 2
    for t in range(1, steps + 1):
        g = (rng.standard_normal(n) * scale).astype(dtype)
        gmax = float(np.abs(g).max())
        after, safe = KO.bounds_after(bounds, gmax, t, opt.lr, opt.hyper, limit)
        exact_bad = KO.update_nonfinite(p, slots, g, 0, n, t, opt.lr, opt.hyper)
        if safe:
            assert not exact_bad
        if exact_bad:
            assert not safe
            return
        with np.errstate(all="ignore"):
            K.optimizer_step(p, slots, g, t, opt.lr, opt.hyper, 1 << 62)
        if not safe:
            return
        assert np.isfinite(p).all() and np.isfinite(slots).all()
        assert np.abs(p).max() <= after[0]
        for row in range(slots.shape[0]):
            assert np.abs(slots[row]).max() <= after[1 + row]
        bounds = after
