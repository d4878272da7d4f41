"""End to end: both implementations actually learn (XOR, an iris-shaped 3-class problem,
a smooth regression), with every optimizer."""

import numpy as np
import pytest

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])

OPTIMIZERS = {
    "sgd": lambda fb: fb.SGD(0.1),
    "momentum": lambda fb: fb.SGD(0.05, momentum=0.9),
    "nesterov": lambda fb: fb.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda fb: fb.RMSprop(0.005),
    "adam": lambda fb: fb.Adam(0.01),
    "adamw": lambda fb: fb.AdamW(0.01, weight_decay=0.01),
    "adagrad": lambda fb: fb.AdaGrad(0.1),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_with_sigmoid_and_binary_cross_entropy(fb, seed):
    model = fb.MLP([2, 8, 1], activation="tanh", output="sigmoid", loss="binary_cross_entropy",
                   optimizer=fb.Adam(0.05), dtype="float32", seed=seed)
    before = model.evaluate(XOR_X, XOR_Y)["loss"]
    history = model.fit(XOR_X, XOR_Y, epochs=300, batch_size=4)
    assert len(history) == 300
    result = model.evaluate(XOR_X, XOR_Y)
    assert before > 0.5  # it did start from chance
    assert result["loss"] < 0.01 and history[-1] < 0.01
    assert result["accuracy"] == 1.0
    assert model.predict_classes(XOR_X).tolist() == XOR_Y.tolist()
    P = model.predict(XOR_X)
    assert P.shape == (4, 1) and np.all((P[:, 0] > 0.5) == XOR_Y.astype(bool))


def test_xor_with_softmax_and_cross_entropy(fb):
    model = fb.MLP([2, 8, 2], activation="relu", output="softmax", loss="cross_entropy",
                   optimizer=fb.SGD(0.1, momentum=0.9), dtype="float64", seed=0)
    model.fit(XOR_X, XOR_Y, epochs=300, batch_size=2)
    assert model.evaluate(XOR_X, XOR_Y)["loss"] < 0.01
    assert model.predict_classes(XOR_X).tolist() == XOR_Y.tolist()
    np.testing.assert_allclose(model.predict(XOR_X).sum(axis=1), 1.0, rtol=1e-12)


# Three Gaussian classes with iris's means (sepal / petal length / width), at 60% of iris's
# spread so the classes are separable enough for a 95% threshold on 50 held-out samples to be
# robust (Bayes accuracy ~99.5%); 30 seeds of the recipe below all gave >= 96%.
IRIS_MEANS = np.array([[5.0, 3.4, 1.5, 0.25], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
IRIS_STDS = 0.6 * np.array([[0.35, 0.38, 0.17, 0.1], [0.5, 0.31, 0.47, 0.2], [0.64, 0.32, 0.55, 0.27]])


def iris_like(seed=0):
    """150 x 4, 50 per class, shuffled, standardised on the training part, split 100 / 50."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([m + s * rng.standard_normal((50, 4)) for m, s in zip(IRIS_MEANS, IRIS_STDS)])
    y = np.repeat(np.arange(3), 50)
    perm = rng.permutation(150)
    X, y = X[perm], y[perm]
    X = (X - X[:100].mean(axis=0)) / X[:100].std(axis=0)
    return X[:100], y[:100], X[100:], y[100:]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_iris_shaped_problem_reaches_95_percent_held_out(fb, dtype):
    X, y, X_test, y_test = iris_like(0)
    assert X.shape == (100, 4) and X_test.shape == (50, 4) and set(y_test) == {0, 1, 2}
    model = fb.MLP([4, 16, 3], activation="relu", optimizer=fb.Adam(0.01), dtype=dtype, seed=0)
    chance = model.evaluate(X_test, y_test)["accuracy"]
    history = model.fit(X, y, epochs=30, batch_size=16)
    assert history[-1] < history[0]
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    assert accuracy >= 0.95, (chance, accuracy)
    assert np.mean(model.predict_classes(X_test) == y_test) == accuracy


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_every_optimizer_reduces_the_loss(fb, opt):
    X, y, _, _ = iris_like(1)
    model = fb.MLP([4, 12, 3], activation="tanh", optimizer=OPTIMIZERS[opt](fb), dtype="float64", seed=1)
    before = model.evaluate(X, y)["loss"]
    model.fit(X, y, epochs=15, batch_size=10)
    after = model.evaluate(X, y)
    assert after["loss"] < 0.1 * before, (before, after)
    assert after["accuracy"] >= 0.9


def test_smooth_regression(fb):
    """mse with a linear output fits sin on [-2, 2] (variance ~0.5) to a small error."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, (128, 1))
    y = np.sin(X[:, 0])
    model = fb.MLP([1, 16, 1], activation="tanh", output="linear", loss="mse", optimizer=fb.Adam(0.02),
                   dtype="float64", seed=0)
    model.fit(X, y, epochs=150, batch_size=16)
    grid = np.linspace(-1.9, 1.9, 50).reshape(-1, 1)
    assert model.evaluate(X, y)["loss"] < 5e-3
    assert np.abs(model.predict(grid)[:, 0] - np.sin(grid[:, 0])).max() < 0.15
