"""Batch normalisation: kernels agree with the reference, gradients with finite differences,
inference uses the running averages, which move only with applied steps."""

import numpy as np
import pytest

import fastbp
import fastbp.reference
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
    # (different in each implementation) into steps of size lr. Not a meaningful comparison.
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
