"""The math, checked independently of either implementation.

* ``loss_and_grads`` against central finite differences of ``evaluate()["loss"]``, for every
  hidden activation x every allowed output / loss pair, with and without l2, in both
  implementations (float64).
* The forward pass and the loss values against a plain NumPy re-derivation written here
  (so a loss that is consistently defined wrongly, e.g. a sum instead of a mean, is caught
  too — finite differences alone would not see it).
* The finite-difference check has teeth: it rejects a gradient that is off by a factor of 2,
  of k (the classic "mean over rows only" MSE bug), has the wrong sign or lacks the l2 term.
"""

import numpy as np
import pytest

HIDDEN = ["linear", "sigmoid", "tanh", "relu", "leaky_relu"]
LEAKY_SLOPE = 0.2  # not the default, so a kernel that ignores the setting is caught

# (output, loss, number of outputs, kind of targets)
CASES = [
    ("linear", "mse", 3, "real"),
    ("sigmoid", "mse", 3, "real"),
    ("softmax", "mse", 3, "real"),
    ("sigmoid", "binary_cross_entropy", 3, "unit"),
    ("softmax", "cross_entropy", 3, "onehot"),
    ("softmax", "cross_entropy", 3, "labels"),
    ("softmax", "cross_entropy", 3, "soft"),
    ("softmax", "cross_entropy", 3, "nearly_normalised"),
    ("linear", "mse", 1, "real_1d"),
    ("sigmoid", "binary_cross_entropy", 1, "binary_1d"),
]
CASE_IDS = [f"{o}-{l}-k{k}-{t}" for o, l, k, t in CASES]

# Central differences with h = 1e-6 in float64: truncation error ~h^2 and rounding error
# ~1e-16 * |loss| / h ~ 1e-10 per entry.  A genuine bug (factor 2, factor k, sign, missing
# term) is an O(1) relative error.
H = 1e-6
RTOL, ATOL = 1e-6, 1e-8
KINK_MARGIN = 1e-3  # min |pre-activation| of the hidden layers, far beyond any perturbation


# ------------------------------------------------------------------ helpers
def flat(weights):
    return np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in weights])


def unflat(vector, like):
    out, i = [], 0
    for W, b in like:
        W2 = vector[i:i + W.size].reshape(W.shape).copy()
        i += W.size
        b2 = vector[i:i + b.size].copy()
        i += b.size
        out.append((W2, b2))
    assert i == vector.size
    return out


def act(name, z, slope=LEAKY_SLOPE):
    """The activations, written out independently of fastbp."""
    if name == "linear":
        return z
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(name)


def forward(weights, X, hidden, output):
    """Pre-activations of every layer and the network output."""
    A, Zs = X, []
    for l, (W, b) in enumerate(weights):
        Z = A @ W + b
        Zs.append(Z)
        A = act(hidden[l] if l < len(weights) - 1 else output, Z)
    return Zs, A


def loss_value(loss, P, T, weights, l2):
    """PyTorch's definitions (mean reduction) plus l2 * sum ||W||^2 / 2."""
    if loss == "mse":
        value = np.mean((P - T) ** 2)
    elif loss == "binary_cross_entropy":
        value = -np.mean(T * np.log(P) + (1 - T) * np.log(1 - P))
    else:
        value = -np.sum(T * np.log(P)) / P.shape[0]
    return value + 0.5 * l2 * sum(np.sum(W ** 2) for W, _ in weights)


def dense_targets(y, loss, k):
    y = np.asarray(y, dtype=float)
    if loss == "cross_entropy" and y.ndim == 1:
        return np.eye(k)[y.astype(int)]
    return y.reshape(len(y), -1)


def make_targets(rng, kind, n, k):
    if kind == "real":
        return rng.standard_normal((n, k))
    if kind == "real_1d":
        return rng.standard_normal(n)
    if kind == "unit":  # BCE: any target in [0, 1]
        return rng.uniform(size=(n, k))
    if kind in ("soft", "nearly_normalised"):  # CE: probability rows
        p = rng.uniform(0.05, 1.0, size=(n, k))
        # rows summing to 1 +- 5e-4 are accepted (the check allows 1e-3): the gradient must
        # then be P * sum(t) - t, not the textbook P - t
        total = 1.0 if kind == "soft" else 1.0 + 5e-4 * rng.choice([-1, 1], size=(n, 1))
        return p / p.sum(axis=1, keepdims=True) * total
    if kind == "binary_1d":
        return rng.integers(0, 2, n).astype(float)
    labels = rng.integers(0, k, n)
    labels[:k] = np.arange(k)  # every class present
    return labels if kind == "labels" else np.eye(k)[labels]


def make_model(fb, sizes, hidden, output, loss, l2, seed=1):
    return fb.MLP(sizes, activation=hidden, output=output, loss=loss, optimizer=fb.SGD(0.1),
                  init="xavier", dtype="float64", seed=seed, l2=l2, leaky_slope=LEAKY_SLOPE)


def kink_free_inputs(model, hidden, rng, n):
    """Inputs whose hidden pre-activations all stay KINK_MARGIN away from 0 (relu's kink),
    checked with the independent forward pass; drawn deterministically from ``rng``."""
    hidden = [hidden] * (len(model.sizes) - 2) if isinstance(hidden, str) else hidden
    weights = model.get_weights()
    # a bias nudges every unit off zero for the (measure-zero) inputs that would sit on it
    weights = [(W, b + 0.05 * rng.standard_normal(b.shape)) for W, b in weights]
    model.set_weights(weights)
    for _ in range(200):
        X = rng.standard_normal((n, model.sizes[0]))
        Zs, _ = forward(weights, X, hidden, model.output)
        if all(np.abs(Z).min() > KINK_MARGIN for Z in Zs[:-1]):
            return X
    raise AssertionError("could not draw kink-free test inputs")  # pragma: no cover


def numeric_gradient(model, X, y):
    """Central differences of evaluate()["loss"] w.r.t. every parameter, via set_weights."""
    like = model.get_weights()
    w0 = flat(like)
    grad = np.empty_like(w0)
    for i in range(w0.size):
        w = w0.copy()
        w[i] = w0[i] + H
        model.set_weights(unflat(w, like))
        up = model.evaluate(X, y)["loss"]
        w[i] = w0[i] - H
        model.set_weights(unflat(w, like))
        down = model.evaluate(X, y)["loss"]
        grad[i] = (up - down) / (2 * H)
    model.set_weights(like)
    return grad


def assert_gradient_matches(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL)


def check_model(model, hidden, X, y):
    """loss_and_grads against finite differences and against the independent loss."""
    loss, grads = model.loss_and_grads(X, y)
    assert isinstance(loss, float)
    assert [(dW.shape, db.shape) for dW, db in grads] == [(W.shape, b.shape) for W, b in model.get_weights()]
    hidden_list = [hidden] * (len(model.sizes) - 2) if isinstance(hidden, str) else hidden
    weights = model.get_weights()
    _, P = forward(weights, np.asarray(X, float), hidden_list, model.output)
    expected = loss_value(model.loss, P, dense_targets(y, model.loss, model.sizes[-1]), weights, model.l2)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    np.testing.assert_allclose(model.evaluate(X, y)["loss"], loss, rtol=1e-12)
    numeric = numeric_gradient(model, X, y)
    assert_gradient_matches(flat(grads), numeric)
    # the model is left as it was: the same loss and gradient again
    loss2, grads2 = model.loss_and_grads(X, y)
    assert loss2 == loss
    np.testing.assert_array_equal(flat(grads2), flat(grads))
    return flat(grads), numeric


# -------------------------------------------------------------------- tests
@pytest.mark.parametrize("l2", [0.0, 0.3], ids=["l2=0", "l2=0.3"])
@pytest.mark.parametrize("output,loss,k,kind", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradients_match_finite_differences(fb, hidden, output, loss, k, kind, l2, rng):
    model = make_model(fb, [3, 5, 4, k], hidden, output, loss, l2)
    X = kink_free_inputs(model, hidden, rng, 6)
    y = make_targets(rng, kind, 6, k)
    check_model(model, hidden, X, y)


@pytest.mark.parametrize("sizes,hidden", [
    ([2, 3], []),                                       # no hidden layer
    ([3, 1, 3], ["tanh"]),                              # a 1-unit hidden layer
    ([4, 6, 5, 4, 3], ["relu", "sigmoid", "leaky_relu"]),  # one activation per hidden layer
    ([2, 7, 7, 3], ["leaky_relu", "tanh"]),
], ids=["no-hidden", "one-unit", "three-hidden", "mixed"])
@pytest.mark.parametrize("output,loss,k,kind", [CASES[0], CASES[3], CASES[5]], ids=[CASE_IDS[i] for i in (0, 3, 5)])
def test_gradients_of_other_architectures(fb, sizes, hidden, output, loss, k, kind, rng):
    sizes = sizes[:-1] + [k]
    model = make_model(fb, sizes, hidden, output, loss, l2=0.05)
    X = kink_free_inputs(model, hidden, rng, 5)
    y = make_targets(rng, kind, 5, k)
    check_model(model, hidden, X, y)


@pytest.mark.parametrize("output", ["linear", "sigmoid", "softmax"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_predict_matches_independent_forward_pass(fb, hidden, output, rng):
    model = make_model(fb, [3, 5, 4, 3], hidden, output, "mse", 0.0)
    X = 2 * rng.standard_normal((9, 3))
    _, P = forward(model.get_weights(), X, [hidden, hidden], output)
    np.testing.assert_allclose(model.predict(X), P, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("output,loss,k,kind", CASES, ids=CASE_IDS)
def test_loss_matches_independent_definition_for_large_logits(fb, output, loss, k, kind, rng):
    """The cross-entropies are computed from the logits: still right (and finite) when the
    outputs saturate, where the naive formula would be inaccurate."""
    model = make_model(fb, [3, 4, k], "tanh", output, loss, 0.0)
    weights = [(W * 8, b) for W, b in model.get_weights()]
    model.set_weights(weights)
    X = rng.standard_normal((7, 3))
    y = make_targets(rng, kind, 7, k)
    Zs, P = forward(weights, X, ["tanh"], output)
    T = dense_targets(y, loss, k)
    Z = Zs[-1]
    if loss == "binary_cross_entropy":  # log(1 + e^z) - t z, stably
        expected = np.mean(np.logaddexp(0, Z) - T * Z)
    elif loss == "cross_entropy":
        lse = np.logaddexp.reduce(Z, axis=1, keepdims=True)
        expected = -np.sum(T * (Z - lse)) / len(Z)
    else:
        expected = np.mean((P - T) ** 2)
    got = model.evaluate(X, y)["loss"]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(model.loss_and_grads(X, y)[0], expected, rtol=1e-10)


def test_the_check_has_teeth(fb, rng):
    """The tolerance passes the true gradient robustly yet rejects the usual bugs."""
    k, l2 = 3, 0.3
    model = make_model(fb, [3, 5, 4, k], "tanh", "linear", "mse", l2)
    X = kink_free_inputs(model, "tanh", rng, 6)
    y = make_targets(rng, "real", 6, k)
    analytic, numeric = check_model(model, "tanh", X, y)
    weights = model.get_weights()
    l2_part = flat([(l2 * W, np.zeros_like(b)) for W, b in weights])
    data_part = analytic - l2_part
    wrong = {
        "factor 2": analytic * 2,
        "sign": -analytic,
        "mse mean over rows only (factor k)": data_part * k + l2_part,
        "missing l2 term": data_part,
        "l2 term also on biases": analytic + flat([(np.zeros_like(W), l2 * b) for W, b in weights]),
    }
    for name, g in wrong.items():
        with pytest.raises(AssertionError):
            assert_gradient_matches(g, numeric)
