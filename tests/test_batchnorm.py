"""Batch normalisation: kernels agree with the reference, gradients with finite differences,
inference uses the running averages, which move only with applied steps."""

import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp import kernels
from fastbp.kernels import codes

IMPLS = [fastbp, fastbp.reference]
IDS = ["fastbp", "reference"]


def data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)) * 3 + 1
    return X, (X[:, 0] + X[:, 1] > 2).astype(int) + (X[:, 2] > 2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid", "leaky_relu", "linear"])
@pytest.mark.parametrize("opt", ["adam", "sgd", "rmsprop"])
def test_batch_norm_training_matches_reference(hidden, dtype, opt):
    X, y = data()
    # A linear layer feeding a normalised one: the first layer's beta would have a gradient of
    # exactly zero in exact arithmetic, and adaptive optimizers turn its rounding noise
    # (the same in both only where batch norm's inputs agree bitwise) into steps of size lr.
    # Not a meaningful comparison (README, "Where the same numbers end").
    bn = [True, hidden != "linear"]
    models = [fb.MLP([5, 12, 9, 3], activation=hidden, batch_norm=bn, dropout=[0.0, 0.3],
                     optimizer=opt, dtype=dtype, seed=4, l2=1e-3) for fb in IMPLS]
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    h = [m.fit(X, y, epochs=3, batch_size=16) for m in models]
    np.testing.assert_allclose(h[0], h[1], rtol=tol["rtol"])
    np.testing.assert_allclose(models[0]._params_ext, models[1]._params_ext, **tol)  # incl. running stats
    np.testing.assert_allclose(models[0].predict(X), models[1].predict(X), **tol)
    assert models[0].evaluate(X, y)["accuracy"] == models[1].evaluate(X, y)["accuracy"]


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "linear", "relu"])
def test_batch_norm_gradients_match_finite_differences(fb, hidden):
    X, y = data(10)
    # (linear into a normalised layer would make layer 0's beta irrelevant: zero gradient)
    model = fb.MLP([5, 7, 6, 3], activation=hidden, batch_norm=[True, hidden != "linear"], dtype="float64",
                   seed=1)
    model._gamma[0][...] = np.linspace(0.5, 1.5, 7)  # not all ones, not symmetric
    if hidden != "linear":
        model._beta[1][...] = np.linspace(-0.3, 0.3, 6)
    report = fb.gradcheck(model, X, y)
    assert set(report[0]) == {"W", "b", "gamma", "beta"} and set(report[2]) == {"W", "b"}
    worst = max(max(r.values()) for r in report)
    assert worst < (1e-5 if hidden == "relu" else 1e-6)
    assert report[0]["b"] == 0.0  # a normalised layer's bias has no effect and no gradient


def bn_case(rng, m, n, dtype):
    """Pre-activations of ``n`` units (own scales and offsets), a delta and a gamma."""
    Z = rng.standard_normal((m, n)) * rng.uniform(0.01, 10, n) + rng.uniform(-5, 5, n)
    D = rng.standard_normal((m, n)) * rng.uniform(0.01, 1, n)
    return Z.astype(dtype), D.astype(dtype), rng.uniform(0.5, 1.5, n).astype(dtype)


def bn_kernels(Z, D, gamma):
    """The training kernels on copies: ``(gamma * xhat, xhat, mean, var), (dZ, dgamma, dbeta)``."""
    m, n = Z.shape
    Y, xhat, stats = Z.copy(), np.empty_like(Z), np.empty(codes.BN_STATS * n, Z.dtype)
    kernels.batchnorm_forward_train(Y, xhat, stats, gamma)
    dZ, dgamma, dbeta = D.copy(), np.empty(n, Z.dtype), np.empty(n, Z.dtype)
    kernels.batchnorm_backward(dZ, dgamma, dbeta, xhat, stats, gamma)
    return (Y, xhat, stats[:n], stats[n:2 * n]), (dZ, dgamma, dbeta)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batch_norm_kernels_compute_the_reference_bit_for_bit(dtype):
    """Same inputs, same bits: the training kernels do the reference's operations in its order
    (``fastbp.reference.batchnorm_train`` / ``batchnorm_backward``), so that gradients which are
    zero in exact arithmetic come out as the same rounding noise in both (README, "Where the
    same numbers end")."""
    rng = np.random.default_rng(0)
    shapes = [(1, 3), (2, 5), (3, 2)] + [(int(rng.integers(1, 70)), int(rng.integers(2, 14))) for _ in range(300)]
    for m, n in shapes:
        Z, D, gamma = bn_case(rng, m, n, dtype)
        if m > 2:
            Z[:, 0] = Z[0, 0]  # a unit constant over the batch (variance 0)
        xhat, mean, var = fastbp.reference.batchnorm_train(Z)
        dZ, dgamma, dbeta = fastbp.reference.batchnorm_backward(D, xhat, var, gamma)
        forward, backward = bn_kernels(Z, D, gamma)
        for got, want in zip(forward + backward, (gamma * xhat, xhat, mean, var, dZ, dgamma, dbeta)):
            np.testing.assert_array_equal(got, want, err_msg=f"{m} x {n}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batch_norm_kernels_on_one_unit_agree_to_rounding(dtype):
    """The exception: NumPy sums a single column (a normalised layer of width 1) pairwise, the
    kernels row after row, so from 8 rows on the two round differently."""
    rng = np.random.default_rng(1)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    for m in [1, 2, 9, 40, 200]:
        Z, D, gamma = bn_case(rng, m, 1, dtype)
        xhat, mean, var = fastbp.reference.batchnorm_train(Z)
        (_, xk, mk, vk), (dk, _, _) = bn_kernels(Z, D, gamma)
        for got, want in [(xk, xhat), (mk, mean), (vk, var)]:
            np.testing.assert_allclose(got, want, **tol)
        # dZ sums to zero over the batch: compare it on the scale of its terms
        dZ, _, _ = fastbp.reference.batchnorm_backward(D, xhat, var, gamma)
        scale = float(np.abs(gamma * D / np.sqrt(var + codes.BN_EPS)).max())
        np.testing.assert_allclose(dk, dZ, rtol=0, atol=tol["rtol"] * scale)


def structural_zero_batches(n_batches, width=6):
    """Random batches whose first input column is constant over the batch: the weight-gradient
    row of that column is ``c * sum_i dL/dZ_i``, zero in exact arithmetic under batch norm."""
    rng = np.random.default_rng(10)
    for s in range(n_batches):
        m = int(rng.integers(3, 40))
        X = rng.standard_normal((m, width))
        X[:, 0] = rng.choice([1.0, -2.5, 0.3])
        yield s, X, rng.integers(0, 3, m)


def structural_zeros(model, hidden):
    """A mask over the trainable parameters of ``model`` (a ``[6, 8, ...]`` network with
    batch norm on its first hidden layer) whose gradient is zero in exact arithmetic: the
    constant input column's row of ``W1``, and, with a linear first layer feeding a
    normalised second one, also the first layer's beta."""
    mask = np.zeros(model.n_params, dtype=bool)
    w = model._layers[0]["w"]
    mask[w:w + 8] = True  # the constant column's row: the first of layer 0's W (row-major)
    if hidden == "linear" and len(model.sizes) > 3 and model.batch_norm[1]:
        beta = int(model._layers[0]["gamma"]) + 8  # (gamma, then beta: the layer table)
        mask[beta:beta + 8] = True
    return mask


@pytest.mark.parametrize("dtype, hidden", [("float32", "relu"), ("float32", "tanh"), ("float32", "sigmoid"),
                                           ("float64", "relu"), ("float64", "leaky_relu"),
                                           ("float64", "linear"), ("float64", "sigmoid"),
                                           ("float64", "tanh")])
def test_structural_zeros_are_noise_of_a_few_ulps_in_both(dtype, hidden):
    """The drop-in promise for gradients that are zero in exact arithmetic (README, "Where
    the same numbers end"): in each implementation such a gradient is rounding noise, of
    either sign, at most a few ulps of the terms that cancel in it; every other entry agrees
    to the dtype's tolerance (relative to the gradient's scale).  The noise itself is not
    compared: it depends on the BLAS build and the CPU's vector width (fastbp's products go
    through SciPy's OpenBLAS, the reference's through NumPy's), and only the bound holds on
    every machine."""
    u = np.finfo(dtype).eps
    tol = 1e-5 if dtype == "float32" else 1e-10
    for s, X, y in structural_zero_batches(40):
        models = [fb.MLP([6, 8, 3], activation=hidden, batch_norm=True, dtype=dtype, seed=s) for fb in IMPLS]
        for m in models:
            m.loss_and_grads(X, y)
        # the terms that cancel in the constant column's row: c * gamma / sd * (d - mean d - xhat mean(d xhat))
        ref = models[1]
        Xd, T = ref._check_data(X, y)
        Z, A, _ = ref._forward_cache(Xd, step=1)
        _, delta = fastbp.reference.loss_and_delta(ref.loss, ref.output, Z[-1], A[-1], T)
        d = (delta @ ref._W[1].T) * fastbp.reference.activation_derivative(hidden, Z[0])
        xhat, var, _, _ = ref._bn_cache[0]
        terms = np.abs(Xd[:, :1] * ref._gamma[0] / np.sqrt(var + codes.BN_EPS)) * (
            np.abs(d) + np.abs(d.mean(axis=0)) + np.abs(xhat * (d * xhat).mean(axis=0)))
        for m in models:
            assert (np.abs(m._gW[0][0]) <= 16 * u * terms.sum(axis=0)).all()
        rest = ~structural_zeros(ref, hidden)
        g0, g1 = models[0]._grads[rest], ref._grads[rest]
        np.testing.assert_allclose(g0, g1, rtol=tol, atol=tol * np.abs(g1).max())


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu", "linear", "sigmoid", "tanh"])
def test_rmsprop_on_float64_noise_takes_steps_far_below_lr(hidden):
    """``RMSprop(lr=1)`` turns a gradient ``g`` into a step ``lr * g / (sqrt(0.1) |g| + eps)``:
    about +-3.2 lr wherever ``|g|`` is well above ``eps``, whatever its size.  Structural
    zeros in float64 are noise far below ``eps = 1e-8`` in both implementations, so their
    steps stay below ``lr * |g| / eps`` (tiny), and one step leaves the two models as close
    as their gradients are: every other parameter agrees to 1e-10 relative.  (Two hidden
    layers, both normalised: with ``linear`` the first layer's beta is a structural zero too.)"""
    lr, eps = 1.0, 1e-8
    for s, X, y in structural_zero_batches(25):
        models = [fb.MLP([6, 8, 7, 3], activation=hidden, batch_norm=True, optimizer=fb.RMSprop(lr=lr, eps=eps),
                         dtype="float64", seed=s) for fb in IMPLS]
        n = models[1].n_params
        zeros = structural_zeros(models[1], hidden)
        before = models[1]._params_ext[:n].copy()
        for m in models:
            m.loss_and_grads(X, y)
            g = m._grads[:n][zeros].copy()
            assert np.abs(g).max() < 1e-12 * np.abs(m._grads).max()  # noise, in each implementation
            m.train_step(X, y)
            step = np.abs(m._params_ext[:n][zeros] - before[zeros])  # (to an ulp of the parameter)
            assert (step <= lr * np.abs(g) / eps + 2 * np.spacing(np.abs(before[zeros]))).all()
            assert step.max() < 1e-3 * lr
        p0, p1 = (m._params_ext for m in models)
        rest = np.ones(p1.size, dtype=bool)
        rest[:n] = ~zeros  # (and batch norm's running averages, after the trainable block)
        np.testing.assert_allclose(p0[rest], p1[rest], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_inference_uses_running_averages(fb):
    X, y = data()
    model = fb.MLP([5, 8, 3], activation="linear", batch_norm=True, dtype="float64", seed=2)
    model.fit(X, y, epochs=2, batch_size=30)
    W, _ = model.get_weights()[0]
    z = X[:1] @ W
    h = model._gamma[0] * (z - model._run_mean[0]) / np.sqrt(model._run_var[0] + codes.BN_EPS) + model._beta[0]
    W2, b2 = model.get_weights()[1]
    logits = h @ W2 + b2
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(model.predict(X[:1]), expected, rtol=1e-12)
    # one sample in inference is fine, and independent of the other rows
    np.testing.assert_allclose(model.predict(X[:5])[:1], model.predict(X[:1]), rtol=1e-12)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_running_averages_follow_pytorch_and_only_applied_steps(fb):
    X, y = data(40)
    model = fb.MLP([5, 6, 3], batch_norm=True, dtype="float64", seed=0)
    np.testing.assert_array_equal(model._run_mean[0], 0)
    np.testing.assert_array_equal(model._run_var[0], 1)
    W, _ = model.get_weights()[0]
    model.loss_and_grads(X, y)  # a query: nothing moves
    np.testing.assert_array_equal(model._run_mean[0], 0)
    model.train_step(X, y)
    z = X @ W
    np.testing.assert_allclose(model._run_mean[0], 0.1 * z.mean(0), rtol=1e-12)
    np.testing.assert_allclose(model._run_var[0], 0.9 + 0.1 * z.var(0, ddof=1), rtol=1e-12)


def test_batch_norm_state_survives_save_load_and_early_stopping(tmp_path):
    X, y = data(200)
    model = fastbp.MLP([5, 16, 3], batch_norm=True, optimizer=fastbp.SGD(0.5, momentum=0.9), dtype="float64",
                       seed=3)
    h = model.fit(X, y, epochs=30, batch_size=16, validation_split=0.3,
                  early_stopping=fastbp.EarlyStopping(patience=2))
    assert h.stopped
    model.save(tmp_path / "bn.npz")
    for fb in IMPLS:
        loaded = fb.load(tmp_path / "bn.npz")
        np.testing.assert_array_equal(loaded._params_ext, model._params_ext)
        np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-12)
    # the restored best epoch came with its running averages: the recorded val_loss is reproduced
    assert model.evaluate(X[140:], y[140:])["loss"] == pytest.approx(h.history["val_loss"][h.best_epoch - 1],
                                                                     rel=1e-12)


def test_bad_batch_norm_settings():
    with pytest.raises(ValueError, match="batch_norm"):
        fastbp.MLP([5, 4, 3], batch_norm=[True, False])
    with pytest.raises(ValueError, match="batch_norm"):
        fastbp.MLP([5, 4, 3], batch_norm="yes")
