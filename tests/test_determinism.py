"""Same seed -> the same bits, whatever else happens: repeated runs, Numba's thread count,
splitting fit into several calls, other models trained in between, inference in between.
Different seeds -> different weights."""

import numba
import numpy as np
import pytest

import fastbp

OPTIMIZERS = {
    "sgd": lambda fb: fb.SGD(0.05),
    "nesterov": lambda fb: fb.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda fb: fb.RMSprop(0.005),
    "adamw": lambda fb: fb.AdamW(0.01),
    "adagrad": lambda fb: fb.AdaGrad(0.05),
}


def data(n=150, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def assert_bitwise_equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for l, ((Wa, ba), (Wb, bb)) in enumerate(zip(wa, wb)):
        assert Wa.dtype == Wb.dtype
        assert np.array_equal(Wa, Wb), f"W[{l}] differs"
        assert np.array_equal(ba, bb), f"b[{l}] differs"


def assert_differ(a, b):
    assert not all(np.array_equal(Wa, Wb) for (Wa, _), (Wb, _) in zip(a.get_weights(), b.get_weights()))


def make(fb, seed=5, opt="adamw", dtype="float32", **kw):
    kw.setdefault("activation", "relu")
    return fb.MLP([6, 16, 8, 4], optimizer=OPTIMIZERS[opt](fb), dtype=dtype, seed=seed, **kw)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_two_runs_with_the_same_seed_are_bitwise_identical(fb, opt, dtype):
    X, y = data()
    a, b = make(fb, opt=opt, dtype=dtype, l2=1e-3, clip_norm=1.0), make(fb, opt=opt, dtype=dtype, l2=1e-3, clip_norm=1.0)
    assert_bitwise_equal(a, b)
    ha = a.fit(X, y, epochs=3, batch_size=16, shuffle=True)
    hb = b.fit(X, y, epochs=3, batch_size=16, shuffle=True)
    assert list(ha) == list(hb)
    assert_bitwise_equal(a, b)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert a.evaluate(X, y) == b.evaluate(X, y)
    la, ga = a.loss_and_grads(X[:9], y[:9])
    lb, gb = b.loss_and_grads(X[:9], y[:9])
    assert la == lb and all(np.array_equal(u, v) for p, q in zip(ga, gb) for u, v in zip(p, q))
    assert a.train_step(X[:7], y[:7]) == b.train_step(X[:7], y[:7])
    assert_bitwise_equal(a, b)


def test_thread_count_does_not_change_the_bits():
    """fastbp under numba.set_num_threads(1) == under all of Numba's threads, bit for bit:
    training, and inference on more rows than one inference chunk."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((700, 20)).astype(np.float32)
    y = rng.integers(0, 5, 700)
    X_big = rng.standard_normal((2500, 20)).astype(np.float32)

    def run(threads):
        numba.set_num_threads(threads)
        model = fastbp.MLP([20, 64, 32, 5], optimizer=fastbp.Adam(1e-3), dtype="float32", seed=9, l2=1e-4)
        history = model.fit(X, y, epochs=3, batch_size=64)
        return model, list(history), model.predict(X_big), model.evaluate(X, y)

    previous = numba.get_num_threads()
    try:
        one = run(1)
        many = run(numba.config.NUMBA_NUM_THREADS)
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(previous)
    assert numba.get_num_threads() == previous
    assert_bitwise_equal(one[0], many[0])
    assert one[1] == many[1]
    assert np.array_equal(one[2], many[2])
    assert one[3] == many[3]


def test_different_seeds_give_different_weights(fb):
    X, y = data()
    a, b = make(fb, seed=1), make(fb, seed=2)
    assert_differ(a, b)
    a.fit(X, y, epochs=2, batch_size=16)
    b.fit(X, y, epochs=2, batch_size=16)
    assert_differ(a, b)
    # unseeded models are (with overwhelming probability) all different
    c, d = make(fb, seed=None), make(fb, seed=None)
    assert_differ(c, d)


def test_seed_only_changes_the_shuffle_order_after_initialisation(fb):
    """Same weights, different seeds -> different shuffle orders -> different results; with
    shuffle=False the seed no longer matters."""
    X, y = data()
    a, b = make(fb, seed=1, opt="sgd"), make(fb, seed=2, opt="sgd")
    b.set_weights(a.get_weights())
    c, d = make(fb, seed=1, opt="sgd"), make(fb, seed=2, opt="sgd")
    d.set_weights(c.get_weights())
    a.fit(X, y, epochs=1, batch_size=16, shuffle=True)
    b.fit(X, y, epochs=1, batch_size=16, shuffle=True)
    assert_differ(a, b)
    c.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    d.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    assert_bitwise_equal(c, d)


def test_fit_split_over_calls_is_one_fit(fb):
    """fit(epochs=2) then fit(epochs=1) == fit(epochs=3), bit for bit (the generator, the
    optimizer state and the step count carry over)."""
    X, y = data(n=101)
    a, b = make(fb, opt="adamw"), make(fb, opt="adamw")
    ha = a.fit(X, y, epochs=3, batch_size=16)
    hb = list(b.fit(X, y, epochs=2, batch_size=16)) + list(b.fit(X, y, epochs=1, batch_size=16))
    assert list(ha) == hb
    assert_bitwise_equal(a, b)


def test_other_models_and_inference_in_between_change_nothing(fb):
    """No state is shared between models, and predict / evaluate / loss_and_grads between
    training steps do not disturb training."""
    X, y = data()
    alone = make(fb)
    alone.fit(X, y, epochs=2, batch_size=16)
    for i in range(0, 150, 32):
        alone.train_step(X[i:i + 32], y[i:i + 32])

    busy = make(fb)
    other = fb.MLP([6, 30, 4], optimizer=fb.Adam(0.1), dtype="float32", seed=99)
    other64 = fb.MLP([6, 5, 2, 4], optimizer=fb.SGD(0.1), dtype="float64", seed=98, activation="tanh")
    for epoch in range(2):
        other.fit(X, y, epochs=1, batch_size=7)
        busy.fit(X, y, epochs=1, batch_size=16)
        other64.train_step(X[:3], y[:3])
        busy.predict(X[:5])
        busy.evaluate(X, y)
        other.predict(np.repeat(X, 10, axis=0))
    for i in range(0, 150, 32):
        other.loss_and_grads(X[:50], y[:50])
        busy.loss_and_grads(X[:3], y[:3])
        busy.train_step(X[i:i + 32], y[i:i + 32])
    assert_bitwise_equal(alone, busy)
