"""``get_state`` / ``set_state``: the whole state that makes a model's predictions (weights,
biases, batch norm's scale, shift and running averages), read as named copies and written
all or nothing.  Both implementations."""

import numpy as np
import pytest

import fastbp
import fastbp.reference

rng = np.random.default_rng(0)
X = rng.standard_normal((40, 4))
Y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)

CONFIGS = {
    "plain": dict(sizes=[4, 8, 3]),
    "batch-norm": dict(sizes=[4, 8, 6, 3], batch_norm=[True, False]),
    "batch-norm-and-dropout": dict(sizes=[4, 8, 6, 3], batch_norm=True, dropout=[0.3, 0.1], activation="tanh"),
    "no-hidden": dict(sizes=[4, 3]),
}


def make(fb, config="batch-norm-and-dropout", seed=0, **kw):
    cfg = dict(CONFIGS[config], **kw)
    return fb.MLP(cfg.pop("sizes"), optimizer=fb.Adam(0.01), seed=seed, **cfg)


def trained(fb, config="batch-norm-and-dropout", dtype="float64"):
    model = make(fb, config, dtype=dtype)
    model.fit(X, Y, epochs=5, batch_size=8)
    return model


def test_the_names_layer_by_layer(fb):
    assert list(make(fb).get_state()) == [
        "W0", "b0", "gamma0", "beta0", "running_mean0", "running_var0",
        "W1", "b1", "gamma1", "beta1", "running_mean1", "running_var1", "W2", "b2"]
    assert list(make(fb, "batch-norm").get_state()) == [
        "W0", "b0", "gamma0", "beta0", "running_mean0", "running_var0", "W1", "b1", "W2", "b2"]
    assert list(make(fb, "plain").get_state()) == ["W0", "b0", "W1", "b1"]


def test_get_state_holds_copies_of_the_weights_and_batch_norm(fb):
    model = trained(fb)
    state = model.get_state()
    for l, (W, b) in enumerate(model.get_weights()):
        assert np.array_equal(state[f"W{l}"], W) and np.array_equal(state[f"b{l}"], b)
    assert np.array_equal(state["gamma0"], model._gamma[0]) and np.array_equal(state["running_var1"], model._run_var[1])
    assert not np.array_equal(state["running_mean0"], 0) and not np.array_equal(state["gamma0"], 1)  # trained
    before = model.predict(X)
    for value in state.values():
        value += 1  # copies: the model does not change
    assert np.array_equal(model.predict(X), before)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_a_state_transferred_to_a_fresh_model_predicts_the_same(fb, config, dtype):
    source = trained(fb, config, dtype)
    target = make(fb, config, seed=99, dtype=dtype)  # other initial weights
    assert not np.array_equal(target.predict(X), source.predict(X))
    target.set_state(source.get_state())
    assert np.array_equal(target.predict(X), source.predict(X))
    assert target.evaluate(X, Y) == source.evaluate(X, Y)
    for name, value in source.get_state().items():
        assert np.array_equal(target.get_state()[name], value) and target.get_state()[name].dtype == np.dtype(dtype)


def test_a_state_moves_between_implementations():
    source = trained(fastbp)
    target = make(fastbp.reference, seed=5, dtype="float64")
    target.set_state(source.get_state())
    np.testing.assert_allclose(target.predict(X), source.predict(X), rtol=1e-12, atol=1e-14)


def test_set_state_takes_array_likes_and_converts_them(fb):
    source, target = trained(fb, dtype="float32"), make(fb, seed=3, dtype="float32")
    target.set_state({name: value.astype(np.float64).tolist() for name, value in source.get_state().items()})
    assert np.array_equal(target.predict(X), source.predict(X))


def bad_states():
    good = make(fastbp.reference).get_state()

    def changed(**entries):
        state = dict(good)
        for name, value in entries.items():
            if value is None:
                del state[name]
            else:
                state[name] = value
        return state

    return {
        "not-a-dict": ([good["W0"], good["b0"]], TypeError, "state must be a dict"),
        "missing": (changed(running_var1=None), ValueError, r"missing 'running_var1'.*it needs exactly W0, b0"),
        "unknown": (dict(good, W3=np.zeros(3)), ValueError, r"unknown 'W3'"),
        "weights-only": ({k: v for k, v in good.items() if k[0] in "Wb"}, ValueError, "missing 'gamma0'"),
        "transposed-W": (changed(W1=good["W1"].T), ValueError, r"state\['W1'\] has shape \(6, 8\); .* \(8, 6\)"),
        "wrong-gamma": (changed(gamma0=np.ones(7)), ValueError, "state\\['gamma0'\\] has shape"),
        "nan": (changed(beta1=np.full(6, np.nan)), ValueError, r"state\['beta1'\] contains NaN or inf"),
        "inf-last": (changed(b2=np.array([0, np.inf, 0])), ValueError, r"state\['b2'\] contains NaN or inf"),
        "negative-variance": (changed(running_var0=-np.ones(8)), ValueError, "negative variance"),
        "strings": (changed(W0=good["W0"].astype(str)), TypeError, "numeric"),
        "too-large-for-float32": (changed(W2=np.full((6, 3), 1e39)), ValueError, "too large for float32"),
    }


@pytest.mark.parametrize("problem", list(bad_states()))
def test_a_bad_state_is_refused_and_changes_nothing(fb, problem):
    state, exc, match = bad_states()[problem]
    model, twin = make(fb, dtype="float32"), make(fb, dtype="float32")
    model.fit(X, Y, epochs=1, batch_size=8)
    twin.fit(X, Y, epochs=1, batch_size=8)
    before = model.get_state()
    with pytest.raises(exc, match=match):
        model.set_state(state)
    after = model.get_state()
    assert all(np.array_equal(after[name], value) for name, value in before.items())
    assert model.fit(X, Y, epochs=2, batch_size=8) == twin.fit(X, Y, epochs=2, batch_size=8)
